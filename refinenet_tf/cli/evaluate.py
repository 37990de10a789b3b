"""``evaluate`` (evaluate_msc.py, evaluate.py): evaluation of a checkpoint on a labelled list, per-class IoU table.

The model description comes from the checkpoint's model.json; ``--arch``/``--num-classes`` are only
needed for checkpoints without one. ``--output results.json`` records the scores and the confusion
matrix (with the CRF: ``{"plain": ..., "crf": ..., "metadata": ...}``); ``--report DIR`` writes them as a web
page with charts and the worst and best images. ``--threshold`` and ``--min-confidence`` make the labels from the
probabilities (see inference.py); with ``--min-confidence`` the unknown pixels count as misses of their class and
the table adds the coverage and the accuracy on covered pixels. ``--precision int8 --calibration-list LIST`` quantizes
the checkpoint first (at ``--scales 1.0``; a quantized model folder needs neither flag).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from refinenet_tf import defaults
from refinenet_tf.checkpoints import resolve_checkpoint
from refinenet_tf.cli import flags
from refinenet_tf.data.listfile import read_list_file
from refinenet_tf.data.reader import ON_BAD_SAMPLE
from refinenet_tf.description import ModelDescription
from refinenet_tf.errors import ConfigError, parameter
from refinenet_tf.evaluate.evaluator import read_instance_list
from refinenet_tf.evaluate.job import EvaluationJob, run_evaluation_job
from refinenet_tf.evaluate.report import format_comparison, format_results
from refinenet_tf.predict.crf import require_pydensecrf
from refinenet_tf.predict.int8 import is_quantized
from refinenet_tf.predict.predictor import description_for_checkpoint

_LOG = logging.getLogger(__name__)


def checkpoint_description(args: argparse.Namespace, checkpoint: str | None) -> tuple[str, ModelDescription]:
    """The checkpoint prefix and its description, the model flags checked against model.json."""
    if not checkpoint:
        raise ConfigError(f"no checkpoint given ({parameter('checkpoint')})")
    prefix = checkpoint if is_quantized(checkpoint) else resolve_checkpoint(checkpoint)  # int8: a model folder
    description = description_for_checkpoint(checkpoint, args.arch, args.num_classes, args.stride_on,
                                              args.padding, args.img_mean, getattr(args, "ignore_label", None))
    return prefix, description


def build_parser(with_crf: bool = False, multiscale: bool = True) -> argparse.ArgumentParser:
    """The flags of evaluate_msc.py, of evaluate_msc_with_CRF.py (``with_crf``) or of evaluate.py (not ``multiscale``)."""
    prog = "evaluate_msc_with_CRF.py" if with_crf else "evaluate_msc.py" if multiscale else "evaluate.py"
    example = f"{prog} --data-dir VOCdevkit/VOC2012 --data-list dataset/voc/val.txt --restore-from snapshots/"
    parser = flags.new_parser(prog, __doc__.splitlines()[0], [
        example + (" --crf-workers 2" if with_crf else " --flip --output results.json --report report/"
                   if multiscale else "")])
    flags.add_model_flags(parser)
    flags.add_data_flags(parser, data_list=defaults.VAL_LIST_PATH)
    parser.add_argument("--num-steps", type=int, default=None,
                        help="evaluate only the first N images of the list (DeepLab's name for the image count)")
    flags.add_predict_flags(parser, defaults.MULTISCALE_SCALES if multiscale else (1.0,))
    flags.add_calibration_group(parser)
    flags.add_tile_flags(parser)
    flags.add_label_rule_flags(parser)
    parser.add_argument("--output", default=None, help="write the scores and confusion matrix to this JSON file")
    parser.add_argument("--save-dir", default=None, help="write <stem>.png index and <stem>_colour.png masks here")
    parser.add_argument("--on-bad-sample", choices=ON_BAD_SAMPLE, default="fail",
                        help="stop at an unreadable image/mask, or skip it with a warning (default fail)")
    group = parser.add_argument_group("instance-normalised IoU (nIoU)")
    group.add_argument("--instance-list", default=None,
                       help="list file of instance-id masks (one per line, same order as --data-list)")
    group.add_argument("--thing-classes", type=flags.parse_ints, default=(), help="class indices scored by nIoU")
    if with_crf:
        flags.add_crf_flags(parser)
        parser.add_argument("--crf-workers", type=int, default=1, help="processes running the CRF (default 1)")
    flags.add_report_flags(parser)
    return parser


def run_evaluation(argv: Sequence[str] | None, with_crf: bool, multiscale: bool = True) -> dict:
    """Parse flags, evaluate, print the table(s), write --output; returns the results dict."""
    args = build_parser(with_crf, multiscale).parse_args(argv)
    crf = None
    if with_crf:
        require_pydensecrf()
        crf = flags.crf_params(args)
    options = flags.predict_options(args)
    if args.num_steps is not None and args.num_steps < 1:
        raise ConfigError(f"{parameter('num_steps')} must be at least 1, got {args.num_steps}")
    prefix, description = checkpoint_description(args, args.restore_from)
    samples = read_list_file(args.data_dir, args.data_list)[: args.num_steps]
    instances = None
    if args.instance_list:
        instances = read_instance_list(args.data_dir, args.instance_list, samples, args.thing_classes)
    job = EvaluationJob(options, crf=crf, crf_workers=getattr(args, "crf_workers", 1), tile=args.tile,
                        tile_overlap=args.tile_overlap, rule=flags.label_rule(args), precision=args.precision,
                        calibration=flags.calibration_images(args), threads=args.threads,
                        on_bad_sample=args.on_bad_sample, instances=instances, save_dir=args.save_dir,
                        results_file=args.output or None, report=args.report or None,
                        report_images=args.report_images)
    result, results = run_evaluation_job(prefix, samples, description, args.data_list, job)
    names = description.names()
    if result.crf is None:
        print(format_results(result.plain, names))
    else:
        print(format_comparison(result.plain, result.crf, names))
    skipped = f", {len(result.skipped)} skipped" if result.skipped else ""
    print(f"{result.images} images evaluated{skipped}; checkpoint {result.checkpoint}")
    return results


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``evaluate_msc.py``: scales 1.0, 0.75 and 0.5 by default."""
    run_evaluation(argv, with_crf=False)


def main_single_scale(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``evaluate.py``: DeepLab's single-scale evaluation, the same evaluator."""
    run_evaluation(argv, with_crf=False, multiscale=False)
