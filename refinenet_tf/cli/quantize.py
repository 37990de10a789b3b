"""``quantize CHECKPOINT --calibration-list LIST --val-list LIST --output DIR``: an int8 model folder, guarded.

Static post-training quantization in ONNX Runtime (QDQ, per-channel int8 weights), calibrated on the user's
images; the accuracy guard compares int8 with float32 on ``--val-list`` and returns the most sensitive layers
to float until the mean IoU loss is within ``--tolerance`` points. The folder runs with ``inference.py``,
``evaluate_msc.py`` and ``RefineNet(model=...)`` like any model folder (see docs/INT8.md).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from refinenet_tf.cli import flags
from refinenet_tf.cli.evaluate import checkpoint_description
from refinenet_tf.errors import ConfigError, parameter

_LOG = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = flags.new_parser("python -m refinenet_tf quantize", __doc__.splitlines()[0], [
        "python -m refinenet_tf quantize snapshots/ --data-dir VOCdevkit/VOC2012 --calibration-list "
        "dataset/voc/train.txt --val-list dataset/voc/val.txt --output int8/",
        "inference.py photo.jpg int8/ --save-dir output/"])
    parser.add_argument("checkpoint", help="checkpoint file or directory (its model.json describes the model)")
    parser.add_argument("--output", required=True, metavar="DIR", help="folder to write the int8 model folder into")
    flags.add_quantize_flags(parser, guarded=True)
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: every core)")
    flags.add_model_flags(parser, restore_help="the same as CHECKPOINT (DeepLab-style spelling)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m refinenet_tf quantize``."""
    args = build_parser().parse_args(argv)
    if args.restore_from and args.restore_from != args.checkpoint:
        raise ConfigError(f"two checkpoints given: {args.checkpoint} and {parameter('checkpoint')} {args.restore_from}")
    calibration = flags.calibration_images(args)  # checks that ONNX Runtime is installed
    if calibration is None:
        raise ConfigError(f"int8 calibrates on the user's images: give {parameter('calibration')} (a list or folder)")
    from refinenet_tf.quantize.folder import quantize_checkpoint  # deferred: ONNX Runtime, checked just above

    prefix, description = checkpoint_description(args, args.checkpoint)
    section = quantize_checkpoint(prefix, description, args.output, calibration, args.val_list, args.data_dir,
                                  args.tolerance, args.calibration_images, threads=args.threads)
    guard, settings = section["guard"], section["settings"]
    print(f"int8: float32 mean IoU {100 * guard['float_miou']:.2f}, int8 {100 * guard['int8_miou']:.2f} "
          f"({guard['miou_change_points']:+.2f} points, tolerance {guard['tolerance_points']:g}), labels agree on "
          f"{100 * guard['agreement']:.2f}% of pixels, {guard['layers_in_float']} layers in float; calibrated on "
          f"{section['calibration_images']} images; {settings['activation_type']}/{settings['weight_type']}"
          f"{' reduce_range' if settings['reduce_range'] else ''} ({settings['reason']})", flush=True)
    print(args.output, flush=True)
