"""``convert-weights``: a DeepLab, Keras, torchvision, Light-Weight RefineNet or refinenet-pytorch weight file ->
``OUTPUT_DIR/model.ckpt-0`` and ``OUTPUT_DIR/model.json``, ready for ``--restore-from OUTPUT_DIR``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from refinenet_tf.architectures import ARCHITECTURES
from refinenet_tf.cli import flags
from refinenet_tf.defaults import DEFAULT_ARCH, NUM_CLASSES, RANDOM_SEED
from refinenet_tf.weights.convert import SOURCES, convert_weights


def parse_names(text: str) -> list[str]:
    """'background,cat,dog' -> ['background', 'cat', 'dog']."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated class names, got {text!r}")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = flags.new_parser("convert_weights.py", __doc__.splitlines()[0], [
        "convert_weights.py rf_lw50_voc.pth --source lw-refinenet --arch lw-refinenet-resnet50 --output-dir "
        "converted/lw50"])
    parser.add_argument("src", help="weight file: .pth, .h5, or a TF checkpoint prefix/directory")
    parser.add_argument("--source", choices=list(SOURCES), required=True,
                        help="where the file comes from (fixes stride placement, padding, BN epsilon, preprocessing)")
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default=DEFAULT_ARCH,
                        help=f"architecture to build (default {DEFAULT_ARCH})")
    parser.add_argument("--num-classes", type=int, default=NUM_CLASSES,
                        help=f"number of classes (default {NUM_CLASSES})")
    parser.add_argument("--output-dir", default=None, help="new directory for model.ckpt-0 and model.json (required)")
    flags.add_alias(parser, "--output", "--output-dir")
    parser.add_argument("--not-restore-last", action="store_true",
                        help="leave the file's classifier out (freshly initialised), e.g. for another class count")
    parser.add_argument("--class-names", type=parse_names, default=None,
                        help="comma-separated class names to record in model.json")
    parser.add_argument("--random-seed", type=int, default=RANDOM_SEED,
                        help="seed of the freshly initialised layers (default %(default)s)")
    flags.add_alias(parser, "--seed", "--random-seed", type=int)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``convert_weights.py``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.output_dir is None:  # not argparse's required=True, which would refuse the old spelling --output
        parser.error("the following arguments are required: --output-dir")
    path = convert_weights(args.src, args.source, args.arch, args.num_classes, args.output_dir,
                           not_restore_last=args.not_restore_last, class_names=args.class_names,
                           random_seed=args.random_seed)
    print(path)
