"""``segment-archive``: segment every image of a file pattern, folder or list file on Apache Beam, locally or on a cluster.

Each image gets the files ``inference.py`` writes, with the same names and bytes, in --output (a folder or a
bucket URL). An image that cannot be read or predicted goes to the failures file (``path<TAB>error``) and the run
goes on; it ends with the counts done, skipped and failed. A second run skips the images whose files are all
there (each file is published whole, by a rename). Options after ``--`` go to Beam (``--runner DataflowRunner``,
``--runner FlinkRunner --flink_master HOST:PORT``...); without ``--runner`` the run is local, on --workers
processes. Needs ``pip install "refinenet_tf[beam]"``; docs/ARCHIVE.md has the details. ``--precision int8
--calibration-list LIST`` quantizes a checkpoint once, before a local run, for every worker (a cluster's workers need
a quantized model folder made with ``quantize``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence

from refinenet_tf.archive import require_beam
from refinenet_tf.cli import flags
from refinenet_tf.cli.evaluate import checkpoint_description
from refinenet_tf.cli.infer import add_segment_flags, check_settings_fit, segment_settings
from refinenet_tf.description import ModelDescription
from refinenet_tf.errors import ConfigError, parameter
from refinenet_tf.hardware import choose_precision
from refinenet_tf.predict.int8 import check_calibration, check_single_scale, is_quantized

_PROG = "python -m refinenet_tf segment-archive"


def build_parser() -> argparse.ArgumentParser:
    parser = flags.new_parser(_PROG, __doc__.splitlines()[0], [
        f"{_PROG} --input 'tiles/*.png' --output out/ --model snapshots/ --workers 2",
        f"{_PROG} --input dataset/voc/val.txt --data-dir VOCdevkit/VOC2012 --output out/ --model snapshots/ "
        "--save-probabilities",
        f"{_PROG} --input 'gs://bucket/tiles/*.png' --output gs://bucket/out/ --model snapshots/ -- "
        "--runner DataflowRunner --project P --region R --temp_location gs://bucket/tmp/"])
    parser.add_argument("--input", required=True,
                        help="a file pattern ('tiles/*.png', 'gs://bucket/scans/*.tif'), an image folder, or a list "
                             "file (one image path per line, relative to --data-dir; a mask column is ignored)")
    parser.add_argument("--output", required=True, help="folder or bucket URL for the images' files")
    parser.add_argument("--model", default=None, help="checkpoint file or directory (its model.json describes the "
                                                      "model); workers must be able to read it")
    flags.add_model_flags(parser, restore_help="the same as --model")
    parser.add_argument("--data-dir", default=None, help="folder a list file's paths are relative to "
                                                         "(default: the list file's folder)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="worker processes of a local run (default: one per core)")
    parser.add_argument("--failures", default=None, metavar="PATH",
                        help="where the failures file goes (default OUTPUT/failures.tsv)")
    flags.add_predict_flags(parser, (1.0,))
    flags.add_calibration_group(parser)
    add_segment_flags(parser)
    return parser


def split_beam_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``argv`` split at the first ``--``: this command's flags, and Beam's pipeline options."""
    argv = list(argv)
    if "--" not in argv:
        return argv, []
    at = argv.index("--")
    return argv[:at], argv[at + 1:]


def quiet_beam() -> None:
    """Keep Beam's INFO lines (type hints, batch statistics, shard renames) off stderr, and print the warnings of
    local worker processes once (they print them themselves; Beam's job service would repeat them)."""
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    logging.getLogger("apache_beam.runners.portability.local_job_service").setLevel(logging.ERROR)
    logging.getLogger().addFilter(_not_beams_missing_cloud_clients)


def _not_beams_missing_cloud_clients(record: logging.LogRecord) -> bool:
    """False for the warning Beam logs on the root logger when its optional Google Cloud clients are missing (a local
    run needs none of them)."""
    return not str(record.msg).startswith("apitools not found")


@contextlib.contextmanager
def model_for_workers(args: argparse.Namespace, prefix: str, description: ModelDescription,
                      local: bool) -> Iterator[str]:
    """The model the workers load: ``prefix``, or for int8 with a plain checkpoint that checkpoint quantized here, once,
    into a temporary folder kept for the run (a local run only: a cluster's workers could not read it)."""
    quantized = is_quantized(prefix)
    if not quantized and choose_precision(args.precision).precision != "int8":
        yield prefix
        return
    check_single_scale(flags.predict_options(args))  # before any quantization or worker starts
    if quantized:
        yield prefix
        return
    calibration = flags.calibration_images(args)
    check_calibration(prefix, calibration)
    if not local:
        raise ConfigError(f"{parameter('precision')} int8 on a cluster needs a quantized model folder its workers can "
                          f"read: make one with python -m refinenet_tf quantize and give it as {parameter('model')}")
    from refinenet_tf.quantize.folder import quantized_folder  # deferred: ONNX Runtime, checked with the list

    with quantized_folder(prefix, description, calibration, threads=args.threads) as folder:
        yield folder


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``segment-archive``."""
    ours, beam_args = split_beam_args(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(ours)
    if args.model and args.restore_from and args.model != args.restore_from:
        raise ConfigError(f"two checkpoints given: {args.model} and {parameter('checkpoint')} {args.restore_from}")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"{parameter('workers')} must be at least 1, got {args.workers}")
    require_beam()
    if not args.verbose:
        quiet_beam()
    from refinenet_tf.archive import inputs, job, pipeline, runner  # deferred: Apache Beam, an optional extra

    settings = segment_settings(args)
    images = inputs.archive_images(args.input, args.data_dir)
    prefix, description = checkpoint_description(args, args.model or args.restore_from)
    check_settings_fit(settings, description)
    workers = args.workers or os.cpu_count() or 1
    options, beam_runner = runner.pipeline_options(beam_args, workers)
    threads = args.threads if args.threads or beam_runner is None else max(1, (os.cpu_count() or 1) // workers)
    failures = args.failures or pipeline.failures_path(args.output)
    with model_for_workers(args, prefix, description, local=beam_runner is not None) as model:
        archive_job = job.ArchiveJob(model, description, args.output, settings, flags.predict_options(args),
                                     several=len(images) > 1, threads=threads, precision=args.precision)
        print(f"{len(images)} images -> {args.output}", flush=True)
        counts = pipeline.run_archive(archive_job, images, failures, options, beam_runner,
                                      progress=beam_runner is not None)
    print(counts.line(failures), flush=True)
