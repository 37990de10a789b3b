"""``evaluate`` (evaluate_msc.py): multi-scale evaluation of a checkpoint, per-class IoU table.

The model description comes from the checkpoint's model.json; ``--arch``/``--num-classes`` are only
needed for checkpoints without one. ``--output results.json`` records the scores and the confusion
matrix (with the CRF: ``{"plain": ..., "crf": ..., "metadata": ...}``).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from refinenet_tf.cli import common
from refinenet_tf.description import ModelDescription
from refinenet_tf.errors import ConfigError

DATA_LIST_PATH = "./dataset/val.txt"
_LOG = logging.getLogger(__name__)


def parse_ints(text: str) -> tuple[int, ...]:
    """'11,12,13' -> (11, 12, 13)."""
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_predict_flags(parser: argparse.ArgumentParser, default_scales: Sequence[float]) -> None:
    """--scales, --fusion, --flip, --threads (shared by evaluation and inference)."""
    from refinenet_tf.train.multiscale import FUSIONS

    group = parser.add_argument_group("prediction")
    group.add_argument("--scales", type=common.parse_floats, default=tuple(default_scales),
                       help="input scales, must include 1.0 (default %(default)s; '1.0' = single scale)")
    group.add_argument("--fusion", choices=FUSIONS, default="max",
                       help="how the scales' logits are fused: max (DeepLab) or mean (original RefineNet)")
    group.add_argument("--flip", action="store_true", help="also predict the mirrored image and average")
    group.add_argument("--threads", type=int, default=None,
                       help="TensorFlow intra- and inter-op threads (default: TensorFlow's choice)")


def predict_options(args: argparse.Namespace):
    """The PredictOptions chosen by :func:`add_predict_flags`."""
    from refinenet_tf.evaluate.predict import PredictOptions

    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {args.threads}")
    return PredictOptions(tuple(args.scales), args.fusion, args.flip)


def checkpoint_description(args: argparse.Namespace, checkpoint: str | None) -> tuple[str, ModelDescription]:
    """The checkpoint prefix and its description, the model flags checked against model.json."""
    from refinenet_tf.checkpoints import resolve_checkpoint
    from refinenet_tf.evaluate.predict import description_for_checkpoint

    if not checkpoint:
        raise ConfigError("no checkpoint given (--restore-from)")
    prefix = resolve_checkpoint(checkpoint)
    description = description_for_checkpoint(checkpoint, args.arch, args.num_classes, args.stride_on,
                                              args.padding, args.img_mean, getattr(args, "ignore_label", None))
    return prefix, description


def build_parser(with_crf: bool = False, multiscale: bool = True) -> argparse.ArgumentParser:
    """The flags of evaluate_msc.py, of evaluate_msc_with_CRF.py (``with_crf``) or of evaluate.py (not ``multiscale``)."""
    from refinenet_tf.data.reader import ON_BAD_SAMPLE
    from refinenet_tf.train.multiscale import DEFAULT_SCALES

    prog = "evaluate_msc_with_CRF.py" if with_crf else "evaluate_msc.py" if multiscale else "evaluate.py"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    common.add_model_flags(parser)
    common.add_data_flags(parser, data_list=DATA_LIST_PATH)
    parser.add_argument("--num-steps", type=int, default=None,
                        help="evaluate only the first N images of the list (DeepLab's name for the image count)")
    add_predict_flags(parser, DEFAULT_SCALES if multiscale else (1.0,))
    parser.add_argument("--output", default=None, help="write the scores and confusion matrix to this JSON file")
    parser.add_argument("--save-dir", default=None, help="write <stem>.png index and <stem>_colour.png masks here")
    parser.add_argument("--on-bad-sample", choices=ON_BAD_SAMPLE, default="fail",
                        help="stop at an unreadable image/mask, or skip it with a warning (default fail)")
    group = parser.add_argument_group("instance-normalised IoU (nIoU)")
    group.add_argument("--instance-list", default=None,
                       help="list file of instance-id masks (one per line, same order as --data-list)")
    group.add_argument("--thing-classes", type=parse_ints, default=(), help="class indices scored by nIoU")
    if with_crf:
        from refinenet_tf.evaluate.crf import add_crf_flags

        add_crf_flags(parser)
        parser.add_argument("--crf-workers", type=int, default=1, help="processes running the CRF (default 1)")
    return parser


def run_evaluation(argv: Sequence[str] | None, with_crf: bool, multiscale: bool = True) -> dict:
    """Parse flags, evaluate, print the table(s), write --output; returns the results dict."""
    from refinenet_tf.data.listfile import read_list_file
    from refinenet_tf.evaluate.crf import crf_params_from_args, require_pydensecrf
    from refinenet_tf.evaluate.evaluator import evaluate, read_instance_list
    from refinenet_tf.evaluate.report import (
        format_comparison,
        format_results,
        results_dict,
        write_results_json,
    )

    args = build_parser(with_crf, multiscale).parse_args(argv)
    crf = None
    if with_crf:
        require_pydensecrf()
        crf = crf_params_from_args(args)
    options = predict_options(args)
    if args.num_steps is not None and args.num_steps < 1:
        raise ConfigError(f"--num-steps must be at least 1, got {args.num_steps}")
    prefix, description = checkpoint_description(args, args.restore_from)
    samples = read_list_file(args.data_dir, args.data_list)[: args.num_steps]
    instances = None
    if args.instance_list:
        instances = read_instance_list(args.data_dir, args.instance_list, samples, args.thing_classes)
    result = evaluate(prefix, samples, description, options, crf=crf,
                      crf_workers=getattr(args, "crf_workers", 1), save_dir=args.save_dir, instances=instances,
                      on_bad_sample=args.on_bad_sample, threads=args.threads)
    names = description.names()
    metadata = {"checkpoint": result.checkpoint, "data_list": args.data_list, "images": result.images,
                "skipped": result.skipped, "scales": list(options.scales), "fusion": options.fusion,
                "flip": options.flip}
    if result.crf is None:
        print(format_results(result.plain, names))
        results = results_dict(result.plain, names, metadata)
    else:
        print(format_comparison(result.plain, result.crf, names))
        results = {"plain": results_dict(result.plain, names), "crf": results_dict(result.crf, names),
                   "metadata": {**metadata, "crf": vars(crf)}}
    skipped = f", {len(result.skipped)} skipped" if result.skipped else ""
    print(f"{result.images} images evaluated{skipped}; checkpoint {result.checkpoint}")
    if args.output:
        write_results_json(args.output, results)
        _LOG.info("results written to %s", args.output)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``evaluate_msc.py``: scales 1.0, 0.75 and 0.5 by default."""
    run_evaluation(argv, with_crf=False)


def main_single_scale(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``evaluate.py``: DeepLab's single-scale evaluation, the same evaluator."""
    run_evaluation(argv, with_crf=False, multiscale=False)
