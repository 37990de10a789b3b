"""``export CHECKPOINT OUTPUT_DIR``: write a checkpoint as a SavedModel, frozen graph, TFLite or ONNX model.

The model description comes from the checkpoint's model.json (``--arch``/``--num-classes`` only for
checkpoints without one). Formats, inputs and outputs are described in :mod:`refinenet_tf.export`.
``--format onnx --precision int8 --calibration-list LIST`` quantizes the checkpoint first (guarded with
``--val-list``); a quantized model folder exports its int8 model with ``--format onnx``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from refinenet_tf.cli import flags
from refinenet_tf.cli.evaluate import checkpoint_description
from refinenet_tf.errors import ConfigError, parameter
from refinenet_tf.export import FORMATS, export_model

_LOG = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = flags.new_parser("python -m refinenet_tf export", __doc__.splitlines()[0], [
        "python -m refinenet_tf export snapshots/ exported/ --format saved_model",
        "python -m refinenet_tf export snapshots/ exported/tflite --format tflite --input-size 480,640",
        "python -m refinenet_tf export snapshots/ exported/int8 --format onnx --precision int8 --data-dir "
        "VOCdevkit/VOC2012 --calibration-list dataset/voc/train.txt --val-list dataset/voc/val.txt"])
    parser.add_argument("checkpoint", help="checkpoint file or directory (its model.json describes the model)")
    parser.add_argument("output_dir", help="folder to write the exported model and model.json into")
    parser.add_argument("--format", choices=FORMATS, default="saved_model", help="export format (default %(default)s)")
    parser.add_argument("--input-size", type=flags.parse_size, default=None, metavar="HEIGHT,WIDTH",
                        help="fix the image size of saved_model, tflite and onnx exports (default: any size)")
    flags.add_model_flags(parser, restore_help="the same as CHECKPOINT (DeepLab-style spelling)")
    flags.add_precision_flag(parser)
    flags.add_quantize_flags(parser.add_argument_group("int8 (--format onnx --precision int8 with a checkpoint)"))
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m refinenet_tf export``."""
    args = build_parser().parse_args(argv)
    if args.restore_from and args.restore_from != args.checkpoint:
        raise ConfigError(f"two checkpoints given: {args.checkpoint} and {parameter('checkpoint')} {args.restore_from}")
    prefix, description = checkpoint_description(args, args.checkpoint)
    path = export_model(prefix, args.output_dir, args.format, description, args.input_size, args.precision,
                        calibration=flags.calibration_images(args), calibration_images=args.calibration_images,
                        val_list=args.val_list, data_dir=args.data_dir, tolerance=args.tolerance)
    _LOG.info("exported %s (%s) to %s", prefix, args.format, path)
    print(path, flush=True)
