"""The archive pipeline: :class:`SegmentArchive`, the transform (image paths in; done, skipped and failed out), and
:func:`run_archive`, which runs it over a list of images, writes the failures file and returns the counts.

Which runner runs it is :mod:`.runner`'s choice.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import Metrics, MetricsFilter
from apache_beam.ml.inference.base import RunInference
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineResult, PipelineRunner

from refinenet_tf.archive.handler import METRICS_NAMESPACE, ArchiveImage, Outcome, SegmentHandler
from refinenet_tf.archive.inputs import is_local, read_image
from refinenet_tf.archive.job import ArchiveJob
from refinenet_tf.archive.outputs import is_complete
from refinenet_tf.archive.runner import pipeline_options
from refinenet_tf.archive.watch import MaskWatcher
from refinenet_tf.errors import RefineNetError

DONE, SKIPPED, FAILED = "done", "skipped", "failed"
FAILURES_FILE = "failures.tsv"


@dataclass(frozen=True)
class ArchiveCounts:
    """How a run went: images segmented, skipped (already complete) and failed, and the pixels segmented."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    pixels: int = 0

    def line(self, failures: str) -> str:
        """The run's last line, naming the failures file when there were failures."""
        listed = f" (listed in {failures})" if self.failed else ""
        return f"{self.done} done, {self.skipped} skipped, {self.failed} failed{listed}"


class _Triage(beam.DoFn):
    """Passes an image whose files are all published as skipped, reads the others; an unreadable one fails."""

    def __init__(self, job: ArchiveJob):
        self.job = job
        self.skipped = Metrics.counter(METRICS_NAMESPACE, SKIPPED)

    def process(self, path: str):
        if is_complete(self.job.planned_files(path).values()):
            self.skipped.inc()
            yield beam.pvalue.TaggedOutput(SKIPPED, path)
            return
        try:
            image = read_image(path, self.job.description.preprocessing)
        except RefineNetError as error:
            yield beam.pvalue.TaggedOutput(FAILED, Outcome.failed(path, error))
            return
        yield ArchiveImage(path, image)


class _Tally(beam.DoFn):
    """Counts the images and pixels segmented and sends failures their own way."""

    def __init__(self):
        self.images = Metrics.counter(METRICS_NAMESPACE, "images")
        self.pixels = Metrics.counter(METRICS_NAMESPACE, "pixels")

    def process(self, outcome: Outcome):
        if outcome.error is not None:
            yield beam.pvalue.TaggedOutput(FAILED, outcome)
            return
        self.images.inc()
        self.pixels.inc(outcome.pixels)
        yield outcome


class _CountFailure(beam.DoFn):
    def __init__(self):
        self.failures = Metrics.counter(METRICS_NAMESPACE, "failures")

    def process(self, outcome: Outcome):
        self.failures.inc()
        yield outcome


class SegmentArchive(beam.PTransform):
    """Segment a PCollection of image paths with ``job``, one model per worker inside ``RunInference``.

    Gives a dict of PCollections: ``done`` (an :class:`Outcome` per image segmented, its files published),
    ``skipped`` (the paths whose files were all there) and ``failed`` (an :class:`Outcome` with the error).
    Beam counters in the ``refinenet_tf.archive`` namespace: images, pixels, skipped, failures.

    >>> results = pipeline | beam.Create(paths) | SegmentArchive(job)
    >>> results["failed"] | beam.Map(Outcome.failure_line) | beam.io.WriteToText("failures")
    """

    def __init__(self, job: ArchiveJob):
        super().__init__()
        self.job = job

    def expand(self, paths):
        triaged = (paths
                   | "Spread" >> beam.Reshuffle()
                   | "Triage" >> beam.ParDo(_Triage(self.job)).with_outputs(SKIPPED, FAILED, main=DONE))
        segmented = (triaged[DONE]
                     | "Segment" >> RunInference(SegmentHandler(self.job))
                     | "Tally" >> beam.ParDo(_Tally()).with_outputs(FAILED, main=DONE))
        failed = ((triaged[FAILED], segmented[FAILED])
                  | "Failures" >> beam.Flatten()
                  | "CountFailures" >> beam.ParDo(_CountFailure()))
        return {DONE: segmented[DONE], SKIPPED: triaged[SKIPPED], FAILED: failed}


def failures_path(output: str) -> str:
    """The failures file's default place: ``failures.tsv`` in the output folder."""
    return FileSystems.join(output, FAILURES_FILE)


def run_archive(job: ArchiveJob, images: Sequence[str], failures: str, options: PipelineOptions | None = None,
                runner: PipelineRunner | None = None, progress: bool = False) -> ArchiveCounts:
    """Segment ``images`` with ``job`` on ``runner`` (see :func:`pipeline_options`; default: locally, in this
    process), write ``path<TAB>error`` lines to the file ``failures`` and return the counts. ``progress`` shows a
    progress line while a local run writes to a local folder."""
    if options is None:
        options, runner = pipeline_options([])
    pipeline = beam.Pipeline(runner=runner, options=options)
    results = pipeline | "Images" >> beam.Create(list(images)) | "SegmentArchive" >> SegmentArchive(job)
    _ = (results[FAILED]
         | "FailureLines" >> beam.Map(Outcome.failure_line)
         | "WriteFailures" >> beam.io.WriteToText(failures, shard_name_template="", num_shards=1))
    watching = progress and is_local(job.output)
    masks = [os.path.basename(next(iter(job.planned_files(path).values()))) for path in images] if watching else []
    with MaskWatcher(job.output, masks) if watching else contextlib.nullcontext():
        result = pipeline.run()
        result.wait_until_finish()
    return counts_of(result)


def counts_of(result: PipelineResult) -> ArchiveCounts:
    """The counts a finished run's counters hold."""
    values: dict[str, int] = {}
    for counter in result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        values[counter.key.metric.name] = values.get(counter.key.metric.name, 0) + (value or 0)
    return ArchiveCounts(values.get("images", 0), values.get(SKIPPED, 0), values.get("failures", 0),
                         values.get("pixels", 0))
