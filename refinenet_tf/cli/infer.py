"""``infer`` (inference.py IMAGE CKPT): segment images with a checkpoint and write coloured masks.

IMAGE is an image file, a folder (every image in it) or a list file (one image path per line,
relative to --data-dir, default the list's folder; a mask column is ignored). For each image
``<stem>.png`` (index mask: the model's class indices, 8-bit grey, no palette), ``<stem>_colour.png``
(coloured mask) and ``<stem>_overlay.png`` (mask blended with the image) go into --save-dir.
``--save-logits PATH.npy`` writes the float32 logits at output stride 4 (ceil(H/4) x ceil(W/4) x classes,
scale 1.0, before resizing; for a tiled image the blended fused logits): to PATH.npy for one image, to
PATH_<stem>.npy for each image when there are several. ``--save-probabilities`` writes the per-class
probabilities at the image size, the softmax or with ``--crf`` the CRF's marginals (the mask is their argmax):
``<stem>_prob.npy`` (float16, H x W x classes) or, with ``--probability-format png``,
``<stem>_prob_<class>.png`` (8-bit, 255 = 1). ``--tile`` predicts large images window by window.
``--threshold T`` (two-class models) makes foreground where its probability is at least T; ``--min-confidence P``
leaves pixels whose top probability is below P unknown (the ignore label, in the void colour).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from refinenet_tf import defaults
from refinenet_tf.cli import flags
from refinenet_tf.cli.evaluate import checkpoint_description
from refinenet_tf.data.images import images_named_by
from refinenet_tf.description import ModelDescription
from refinenet_tf.errors import ConfigError, parameter
from refinenet_tf.predict.crf import check_crf_applies, require_pydensecrf
from refinenet_tf.predict.outputs import check_unique_stems
from refinenet_tf.predict.predictor import Predictor
from refinenet_tf.predict.probability_files import PROBABILITY_FORMATS
from refinenet_tf.predict.segment import SegmentSettings, segment_files


def build_parser() -> argparse.ArgumentParser:
    parser = flags.new_parser("inference.py", __doc__.splitlines()[0], [
        "inference.py photo.jpg snapshots/ --save-dir output/",
        "inference.py scans/ snapshots/ --tile auto --save-dir output/ --save-probabilities"])
    parser.add_argument("image", help="image file, folder of images, or list file")
    parser.add_argument("checkpoint", nargs="?", default=None,
                        help="checkpoint file or directory (its model.json describes the model)")
    flags.add_model_flags(parser, restore_help="checkpoint, when not given as the second argument")
    parser.add_argument("--data-dir", default=None, help="folder a list file's paths are relative to "
                                                         "(default: the list file's folder)")
    flags.add_predict_flags(parser, (1.0,))
    flags.add_calibration_group(parser)
    parser.add_argument("--save-dir", default=defaults.SAVE_DIRECTORY,
                        help=f"output folder (default {defaults.SAVE_DIRECTORY})")
    add_segment_flags(parser)
    return parser


def add_segment_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of :func:`segment_settings`: CRF, extra outputs, batch size and tiles (shared with
    segment-archive)."""
    parser.add_argument("--crf", action="store_true", help="refine the prediction with a dense CRF")
    flags.add_crf_flags(parser)
    parser.add_argument("--save-logits", default=None, metavar="PATH.npy",
                        help="also save the stride-4 logits (PATH_<stem>.npy per image when several)")
    parser.add_argument("--save-probabilities", action="store_true",
                        help="also save the per-class probabilities at the image size: the softmax, or with "
                             "--crf the CRF's marginals (see --probability-format)")
    parser.add_argument("--probability-format", choices=PROBABILITY_FORMATS, default="npy",
                        help="npy: <stem>_prob.npy, float16 HxWxC (default); png: one 8-bit "
                             "<stem>_prob_<class>.png per class")
    parser.add_argument("--batch-size", type=int, default=1,
                        help="images of the same size predicted together (a batch never mixes sizes); for a tiled "
                             "image, its windows (default 1)")
    flags.add_tile_flags(parser)
    flags.add_label_rule_flags(parser)


def segment_settings(args: argparse.Namespace) -> SegmentSettings:
    """The SegmentSettings chosen by the flags of :func:`add_segment_flags` (checks pydensecrf for --crf)."""
    crf = None
    if args.crf:
        require_pydensecrf()
        crf = flags.crf_params(args)
    return SegmentSettings(args.tile, args.tile_overlap, args.batch_size, crf, args.save_logits,
                           args.probability_format if args.save_probabilities else None, flags.label_rule(args))


def check_settings_fit(settings: SegmentSettings, description: ModelDescription) -> None:
    """Refuse, before any work, settings the model cannot take: a threshold on a model of more than two classes, or
    a dense CRF on a model of other bands than RGB."""
    settings.rule.check_classes(description.num_classes)
    if settings.crf:
        check_crf_applies(description.preprocessing)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``inference.py``."""
    args = build_parser().parse_args(argv)
    if args.checkpoint and args.restore_from and args.checkpoint != args.restore_from:
        raise ConfigError(f"two checkpoints given: {args.checkpoint} and {parameter('checkpoint')} {args.restore_from}")
    options = flags.predict_options(args)
    settings = segment_settings(args)
    images = images_named_by(args.image, args.data_dir)
    check_unique_stems(images)
    prefix, description = checkpoint_description(args, args.checkpoint or args.restore_from)
    check_settings_fit(settings, description)
    with Predictor(prefix, description, options, threads=args.threads, precision=args.precision,
                   calibration=flags.calibration_images(args)) as predictor:
        start = time.perf_counter()
        for segmented in segment_files(predictor, images, args.save_dir, settings):
            print(f"{segmented.path} -> {segmented.files[1]}{' (tiled)' if segmented.tiled else ''}", flush=True)
        seconds = time.perf_counter() - start
    print(f"{len(images)} images in {seconds:.1f} s ({len(images) / seconds:.2f} images/s)", flush=True)
