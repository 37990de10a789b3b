"""Command-line flags: the shared flag groups, their parsers, and the flag each library parameter is.

Defaults come from :mod:`refinenet_tf.defaults`; library errors name parameters (``batch_size``), and
:func:`flag_name` says which flag that is here (``--batch-size``).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from refinenet_tf import defaults
from refinenet_tf.architectures import ARCHITECTURES
from refinenet_tf.hardware import PRECISIONS
from refinenet_tf.predict.crf import CRFParams
from refinenet_tf.predict.decision import LabelRule
from refinenet_tf.tf_quiet import VERBOSE_ENV, VERBOSE_FLAG

if TYPE_CHECKING:
    from refinenet_tf.predict.graph import PredictOptions

# Library parameters whose flag is not simply '--' + the name with dashes.
FLAG_OF_PARAMETER = {
    "checkpoint": "--restore-from",
    "train_batch_norm": "--is-training",
    "batch_norm_decay": "--bn-decay",
    "iterations": "--crf-iterations",
    "calibration": "--calibration-list",
}
_LOG = logging.getLogger(__name__)


def flag_name(parameter: str) -> str:
    """The flag that sets the library parameter ``parameter``."""
    return FLAG_OF_PARAMETER.get(parameter, "--" + parameter.replace("_", "-"))


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one ``error: ...`` line, with ``--verbose`` on every command."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument(VERBOSE_FLAG, action="store_true",
                          help=f"also show TensorFlow's log lines and debug messages (or set {VERBOSE_ENV}=1)")

    def error(self, message: str):
        self.exit(2, f"error: {' '.join(message.split())} (see {self.prog} --help)\n")


def new_parser(prog: str, description: str, examples: Sequence[str] = (), **options) -> argparse.ArgumentParser:
    """The argument parser of one command (``options`` as for ``argparse.ArgumentParser``); its ``--help`` ends
    with ``examples``, command lines shown as they are."""
    if examples:
        options.setdefault("epilog", "examples:\n" + "\n".join(f"  {line}" for line in examples))
        options.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
    return OneLineErrorParser(prog=prog, description=description, **options)


def add_alias(parser: argparse.ArgumentParser | argparse._ArgumentGroup, alias: str, canonical: str, **options) -> None:
    """Accept ``alias`` for ``canonical`` for one release: hidden from --help, one warning line when used."""

    class Deprecated(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            _LOG.warning("%s is renamed %s; the old name goes away in the next release", alias, canonical)
            setattr(namespace, self.dest, values)

    parser.add_argument(alias, dest=canonical.lstrip("-").replace("-", "_"), action=Deprecated,
                        default=argparse.SUPPRESS, help=argparse.SUPPRESS, **options)


def parse_size(text: str) -> tuple[int, int]:
    """'H,W' -> (H, W), with an argparse error for anything else."""
    try:
        height, width = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHT,WIDTH such as 321,321, got {text!r}") from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return height, width


def parse_floats(text: str) -> tuple[float, ...]:
    """'1.0,0.75,0.5' -> (1.0, 0.75, 0.5)."""
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def parse_ints(text: str) -> tuple[int, ...]:
    """'11,12,13' -> (11, 12, 13)."""
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_model_flags(parser: argparse.ArgumentParser, restore_help: str = "checkpoint file or directory to restore") -> None:
    """--arch, --num-classes, --restore-from and the layout options; None means 'from model.json'."""
    group = parser.add_argument_group("model")
    group.add_argument("--arch", choices=sorted(ARCHITECTURES), default=None,
                       help=f"architecture (default: the checkpoint's model.json, else {defaults.DEFAULT_ARCH})")
    group.add_argument("--num-classes", type=int, default=None,
                       help=f"number of classes (default: the checkpoint's model.json, else {defaults.NUM_CLASSES})")
    group.add_argument("--restore-from", default=None, help=restore_help)
    group.add_argument("--stride-on", choices=["1x1", "3x3"], default=None,
                       help="where the first bottleneck of a ResNet stage strides (Caffe/Keras: 1x1, torchvision: 3x3)")
    group.add_argument("--padding", choices=["same", "symmetric"], default=None,
                       help="stride-2 padding: TF 'same' (bottom/right) or PyTorch-style symmetric")
    group.add_argument("--img-mean", type=parse_floats, default=None,
                       help="mean to subtract, in the model's channel order, one value per band (default: the "
                            "model description's)")


def add_data_flags(parser: argparse.ArgumentParser, data_list: str = defaults.DATA_LIST_PATH) -> None:
    """--data-dir, --data-list, --ignore-label."""
    group = parser.add_argument_group("data")
    group.add_argument("--data-dir", default=defaults.DATA_DIRECTORY,
                       help="directory the list file's paths are relative to")
    group.add_argument("--data-list", default=data_list, help="list file: 'image mask' per line, or 'image' alone")
    group.add_argument("--ignore-label", type=int, default=None,
                       help=f"label excluded from loss and metrics (default: the model description's, else "
                            f"{defaults.IGNORE_LABEL})")


def add_predict_flags(parser: argparse.ArgumentParser, default_scales: Sequence[float]) -> None:
    """--scales, --fusion, --flip, --threads (shared by evaluation, inference and export)."""
    from refinenet_tf.models.model import FUSIONS  # deferred: TensorFlow, which convert-masks and info skip

    group = parser.add_argument_group("prediction")
    group.add_argument("--scales", type=parse_floats, default=tuple(default_scales),
                       help="input scales, must include 1.0 (default %(default)s; '1.0' = single scale)")
    group.add_argument("--fusion", choices=FUSIONS, default="max",
                       help="how the scales' logits are fused: max (DeepLab) or mean (original RefineNet)")
    group.add_argument("--flip", action="store_true", help="also predict the mirrored image and average")
    group.add_argument("--threads", type=int, default=None,
                       help="TensorFlow intra- and inter-op threads (default: every core)")
    add_precision_flag(group)


def parse_tile(text: str) -> tuple[int, int] | str:
    """'auto' or 'H,W' -> (H, W); the sizes are checked by the library (at least 32, a multiple of 32)."""
    return text if text == "auto" else parse_size(text)


def add_label_rule_flags(parser: argparse.ArgumentParser) -> None:
    """--threshold and --min-confidence: how probabilities become labels (shared by evaluation and inference)."""
    group = parser.add_argument_group("labels from probabilities")
    group.add_argument("--threshold", type=float, default=None, metavar="T",
                       help="two-class models: foreground (class 1) where its probability is at least T, 0 < T < 1 "
                            "(default: the most probable class, which is T=0.5)")
    group.add_argument("--min-confidence", type=float, default=None, metavar="P",
                       help="pixels whose top class probability is below P (0 <= P <= 1) are unknown: the ignore "
                            "label, painted in the void colour; evaluation counts them as misses and reports the "
                            "coverage and the accuracy on covered pixels (default: every pixel gets a class)")


def label_rule(args: argparse.Namespace) -> LabelRule:
    """The LabelRule chosen by :func:`add_label_rule_flags`, checked (neither flag: the argmax)."""
    return LabelRule(args.threshold, args.min_confidence)


def add_tile_flags(parser: argparse.ArgumentParser) -> None:
    """--tile and --tile-overlap: sliding-window prediction of large images."""
    group = parser.add_argument_group("tiled prediction (large images)")
    group.add_argument("--tile", type=parse_tile, default=None, metavar="H,W|auto",
                       help="predict in overlapping windows of H,W pixels (multiples of 32, at least 32) whose "
                            "stride-4 logits are blended, so memory follows the window, not the image; 'auto' tiles "
                            "only images whose whole-image prediction would not fit a quarter of the RAM "
                            "(default: whole images)")
    group.add_argument("--tile-overlap", type=float, default=defaults.TILE_OVERLAP, metavar="F",
                       help="fraction of a window its neighbours share, 0 <= F < 1 (default %(default)s)")


def add_precision_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--precision for prediction: float32 (default), bfloat16, or auto (bfloat16 where the hardware has it)."""
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="compute type of the network: float32 (default, reproduces published numbers), "
                             "bfloat16, auto (bfloat16 on CPUs with AVX512_BF16/AMX-BF16 or a GPU, else float32), "
                             "or int8 (ONNX Runtime; a quantized model folder runs in int8 without it)")


def add_calibration_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--calibration-list and --calibration-images: the images int8 quantization calibrates on."""
    parser.add_argument("--calibration-list", default=None, metavar="LIST|FOLDER",
                        help="images to calibrate int8 on: a list file (paths relative to --data-dir, masks "
                             "ignored) or a folder of images")
    parser.add_argument("--calibration-images", type=int, default=defaults.CALIBRATION_IMAGES, metavar="N",
                        help="calibrate on N of them, spread over the list or folder (default %(default)s)")


def add_calibration_group(parser: argparse.ArgumentParser) -> None:
    """The calibration flags as a group of their own, for commands that quantize a checkpoint when asked for int8."""
    add_calibration_flags(parser.add_argument_group("int8 (--precision int8 with a checkpoint)"))


def add_quantize_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, guarded: bool = False) -> None:
    """--data-dir, the calibration flags, --val-list and --tolerance: how a checkpoint is quantized to int8 and
    checked against float32 (``guarded``: --val-list is required)."""
    parser.add_argument("--data-dir", default=None,
                        help="folder the list files' paths are relative to (default: each list's folder)")
    add_calibration_flags(parser)
    parser.add_argument("--val-list", required=guarded, default=None, metavar="LIST",
                        help="labelled list ('image mask' per line) the accuracy guard scores int8 and float32 on"
                             + ("" if guarded else " (default: no guard)"))
    parser.add_argument("--tolerance", type=float, default=defaults.INT8_TOLERANCE, metavar="POINTS",
                        help="mean IoU points int8 may lose against float32 (default %(default)s)")


def calibration_images(args: argparse.Namespace) -> list[str] | None:
    """The image files chosen by :func:`add_calibration_flags` (None without --calibration-list)."""
    if not args.calibration_list:
        return None
    from refinenet_tf.predict.int8 import require_onnxruntime  # deferred: it imports TensorFlow

    require_onnxruntime()
    from refinenet_tf.quantize.calibration import calibration_paths  # deferred: ONNX Runtime, for int8

    return calibration_paths(args.calibration_list, getattr(args, "data_dir", None), args.calibration_images)


def predict_options(args: argparse.Namespace) -> PredictOptions:
    """The PredictOptions chosen by :func:`add_predict_flags`."""
    from refinenet_tf.predict.graph import PredictOptions  # deferred: TensorFlow

    return PredictOptions(tuple(args.scales), args.fusion, args.flip)


def add_crf_flags(parser: argparse.ArgumentParser) -> None:
    """The dense CRF flags (DeepLab's values as defaults)."""
    values = CRFParams()
    group = parser.add_argument_group("dense CRF")
    group.add_argument("--crf-iterations", type=int, default=values.iterations,
                       help=f"mean-field iterations (default {values.iterations})")
    group.add_argument("--gaussian-sxy", type=float, default=values.gaussian_sxy,
                       help=f"spatial std of the smoothness kernel, pixels (default {values.gaussian_sxy:g})")
    group.add_argument("--gaussian-compat", type=float, default=values.gaussian_compat,
                       help=f"weight of the smoothness kernel (default {values.gaussian_compat:g})")
    group.add_argument("--bilateral-sxy", type=float, default=values.bilateral_sxy,
                       help=f"spatial std of the appearance kernel, pixels (default {values.bilateral_sxy:g})")
    group.add_argument("--bilateral-srgb", type=float, default=values.bilateral_srgb,
                       help=f"colour std of the appearance kernel (default {values.bilateral_srgb:g})")
    group.add_argument("--bilateral-compat", type=float, default=values.bilateral_compat,
                       help=f"weight of the appearance kernel (default {values.bilateral_compat:g})")


def crf_params(args: argparse.Namespace) -> CRFParams:
    """The CRFParams chosen by the flags of :func:`add_crf_flags`."""
    return CRFParams(iterations=args.crf_iterations, gaussian_sxy=args.gaussian_sxy,
                     gaussian_compat=args.gaussian_compat, bilateral_sxy=args.bilateral_sxy,
                     bilateral_srgb=args.bilateral_srgb, bilateral_compat=args.bilateral_compat)


def add_report_flags(parser: argparse.ArgumentParser) -> None:
    """--report and --report-images: the HTML evaluation report."""
    group = parser.add_argument_group("HTML report")
    group.add_argument("--report", default=None, metavar="DIR",
                       help="write an HTML report (DIR/index.html, charts, worst and best images; needs "
                            'pip install "refinenet_tf[report]")')
    group.add_argument("--report-images", type=int, default=defaults.REPORT_IMAGES, metavar="K",
                       help="the report shows the K worst and K best images by their own mean IoU (default "
                            "%(default)s; 0: none)")


def add_validation_flags(parser: argparse.ArgumentParser) -> None:
    """--val-list, --val-data-dir, --val-every, --keep-best: validation during training."""
    group = parser.add_argument_group("validation during training")
    group.add_argument("--val-list", default=None,
                       help="held-out list file ('image mask' per line) scored at single scale during training")
    group.add_argument("--val-data-dir", default=None,
                       help="directory the --val-list paths are relative to (default: --data-dir)")
    group.add_argument("--val-every", type=int, default=None, metavar="N",
                       help="validate every N steps (default: at every snapshot, --save-pred-every)")
    group.add_argument("--keep-best", action="store_true",
                       help="also keep the snapshot with the best validation mean IoU in SNAPSHOT_DIR/best/")


def validation_settings(args: argparse.Namespace) -> dict:
    """The TrainConfig fields set by :func:`add_validation_flags`."""
    return {"val_list": args.val_list, "val_data_dir": args.val_data_dir, "val_every": args.val_every,
            "keep_best": args.keep_best}
