"""``infer`` (inference.py IMAGE CKPT): segment images with a checkpoint and write coloured masks.

IMAGE is an image file, a folder (every image in it) or a list file (one image path per line,
relative to --data-dir, default the list's folder; a mask column is ignored). For each image
``<stem>.png`` (index mask), ``<stem>_colour.png`` (coloured mask) and ``<stem>_overlay.png`` (mask
blended with the image) go into --save-dir. ``--save-logits PATH.npy`` writes the float32 logits at
output stride 4 (ceil(H/4) x ceil(W/4) x classes, scale 1.0, before resizing): to PATH.npy for one
image, to PATH_<stem>.npy for each image when there are several.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from refinenet_tf import defaults
from refinenet_tf.cli import flags
from refinenet_tf.cli.evaluate import checkpoint_description
from refinenet_tf.data.images import images_named_by, load_image
from refinenet_tf.errors import ConfigError, parameter
from refinenet_tf.evaluate.crf import dense_crf, require_pydensecrf
from refinenet_tf.evaluate.outputs import (
    check_unique_stems,
    image_stem,
    logits_path,
    save_logits,
    save_prediction,
)
from refinenet_tf.evaluate.predict import Predictor


def build_parser() -> argparse.ArgumentParser:
    parser = flags.new_parser("inference.py", __doc__.splitlines()[0])
    parser.add_argument("image", help="image file, folder of images, or list file")
    parser.add_argument("checkpoint", nargs="?", default=None,
                        help="checkpoint file or directory (its model.json describes the model)")
    flags.add_model_flags(parser, restore_help="checkpoint, when not given as the second argument")
    parser.add_argument("--data-dir", default=None, help="folder a list file's paths are relative to "
                                                         "(default: the list file's folder)")
    flags.add_predict_flags(parser, (1.0,))
    parser.add_argument("--crf", action="store_true", help="refine the prediction with a dense CRF")
    flags.add_crf_flags(parser)
    parser.add_argument("--save-dir", default=defaults.SAVE_DIRECTORY,
                        help=f"output folder (default {defaults.SAVE_DIRECTORY})")
    parser.add_argument("--save-logits", default=None, metavar="PATH.npy",
                        help="also save the stride-4 logits (PATH_<stem>.npy per image when several)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``inference.py``."""
    args = build_parser().parse_args(argv)
    if args.checkpoint and args.restore_from and args.checkpoint != args.restore_from:
        raise ConfigError(f"two checkpoints given: {args.checkpoint} and {parameter('checkpoint')} {args.restore_from}")
    crf = None
    if args.crf:
        require_pydensecrf()
        crf = flags.crf_params(args)
    options = flags.predict_options(args)
    if args.save_logits is not None and not args.save_logits:
        raise ConfigError(f"{parameter('save_logits')} needs a file path")
    images = images_named_by(args.image, args.data_dir)
    check_unique_stems(images)
    prefix, description = checkpoint_description(args, args.checkpoint or args.restore_from)
    palette = description.palette()
    outputs = ("labels", *(("probabilities",) if crf else ()), *(("logits_os",) if args.save_logits else ()))
    with Predictor(prefix, description, options, threads=args.threads, precision=args.precision) as predictor:
        for path in images:
            image = load_image(path)
            prediction = predictor.predict(image, outputs)
            labels = prediction.labels
            if crf is not None:
                labels = dense_crf(prediction.probabilities, image, crf).argmax(axis=-1)
            stem = image_stem(path)
            written = save_prediction(args.save_dir, stem, labels, palette, image_rgb=image)
            if args.save_logits:
                save_logits(logits_path(args.save_logits, stem if len(images) > 1 else None), prediction.logits_os)
            print(f"{path} -> {written[1]}", flush=True)
