"""Which Beam runner runs an archive: for a local run Beam's in-Python FnApiRunner on ``workers`` processes, never
the DirectRunner's default Prism runner (it downloads a binary at first use); any other ``--runner`` (Dataflow,
Flink, Spark...) as Beam builds it from the options."""

from __future__ import annotations

from collections.abc import Sequence

from apache_beam.options.pipeline_options import (
    DirectOptions,
    PipelineOptions,
    StandardOptions,
    WorkerOptions,
)
from apache_beam.portability.api import beam_provision_api_pb2
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.runners.portability.fn_api_runner.fn_runner import ExtendedProvisionInfo
from apache_beam.runners.portability.portable_runner import JobServiceHandle
from apache_beam.runners.runner import PipelineRunner

# --runner values that mean a run on this machine (Beam's spellings, lower case, without "runner")
_LOCAL_RUNNERS = ("direct", "fnapi", "bundlebaseddirect", "switchingdirect")


def pipeline_options(beam_args: Sequence[str], workers: int = 1) -> tuple[PipelineOptions, PipelineRunner | None]:
    """Beam's options from ``beam_args`` (as on Beam's command line), and the runner to run them with: for a
    local run (no ``--runner``, or the DirectRunner) the FnApiRunner on ``workers`` processes (in this process
    for one); else None, Beam's choice from ``--runner``."""
    options = PipelineOptions(list(beam_args))
    runner = options.view_as(StandardOptions).runner
    if runner is not None and runner.lower().removesuffix("runner") not in _LOCAL_RUNNERS:
        return options, None
    direct = options.view_as(DirectOptions)
    direct.direct_num_workers = workers
    direct.direct_running_mode = "multi_processing" if workers > 1 else "in_memory"
    harness = options.view_as(WorkerOptions)
    harness.default_sdk_harness_log_level = harness.default_sdk_harness_log_level or "WARNING"
    # The workers read their options (the log level) from the provision info, as under Beam's DirectRunner.
    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options(drop_default=True))
    provision = ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    return options, FnApiRunner(provision_info=provision)
