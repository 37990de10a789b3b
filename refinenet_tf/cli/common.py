"""Flag groups shared by the commands, with DeepLab-ResNet-TF's defaults in one place."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence

from refinenet_tf import tf_quiet
from refinenet_tf.errors import RefineNetError

# DeepLab-ResNet-TF defaults (train.py), the single source for every command.
BATCH_SIZE = 10
DATA_DIRECTORY = "./dataset/VOC2012"
DATA_LIST_PATH = "./dataset/train.txt"
IGNORE_LABEL = 255
INPUT_SIZE = "321,321"
LEARNING_RATE = 2.5e-4
MOMENTUM = 0.9
NUM_CLASSES = 21
NUM_STEPS = 20001
POWER = 0.9
RANDOM_SEED = 1234
SAVE_NUM_IMAGES = 2
SAVE_PRED_EVERY = 1000
SNAPSHOT_DIR = "./snapshots/"
WEIGHT_DECAY = 5e-4
MIN_SCALE = 0.5
MAX_SCALE = 1.5


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


def add_model_flags(parser: argparse.ArgumentParser, restore_help: str = "checkpoint file or directory to restore") -> None:
    """--arch, --num-classes, --restore-from and the layout options; None means 'from model.json'."""
    from refinenet_tf.models.registry import ARCHITECTURES

    group = parser.add_argument_group("model")
    group.add_argument("--arch", choices=sorted(ARCHITECTURES), default=None,
                       help="architecture (default: the checkpoint's model.json, else refinenet-resnet101)")
    group.add_argument("--num-classes", type=int, default=None,
                       help=f"number of classes (default: the checkpoint's model.json, else {NUM_CLASSES})")
    group.add_argument("--restore-from", default=None, help=restore_help)
    group.add_argument("--stride-on", choices=["1x1", "3x3"], default=None,
                       help="where the first bottleneck of a ResNet stage strides (Caffe/Keras: 1x1, torchvision: 3x3)")
    group.add_argument("--padding", choices=["same", "symmetric"], default=None,
                       help="stride-2 padding: TF 'same' (bottom/right) or PyTorch-style symmetric")
    group.add_argument("--img-mean", type=parse_floats, default=None,
                       help="mean to subtract, in the model's channel order (default: the model description's)")


def add_data_flags(parser: argparse.ArgumentParser, data_list: str = DATA_LIST_PATH) -> None:
    """--data-dir, --data-list, --ignore-label."""
    group = parser.add_argument_group("data")
    group.add_argument("--data-dir", default=DATA_DIRECTORY, help="directory the list file's paths are relative to")
    group.add_argument("--data-list", default=data_list, help="list file: 'image mask' per line, or 'image' alone")
    group.add_argument("--ignore-label", type=int, default=None,
                       help=f"label excluded from loss and metrics (default: the model description's, else {IGNORE_LABEL})")


VERBOSE_HELP = f"also show TensorFlow's log lines and debug messages (or set {tf_quiet.VERBOSE_ENV}=1)"


class _OneLineWarnings(logging.Formatter):
    """Progress lines as they are; a warning or error record on one line."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else one_line(text)


def one_line(text: str) -> str:
    """``text`` with its lines joined by spaces."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning (numpy, PIL, ...) as one ``warning: ...`` line."""
    print(f"warning: {one_line(str(message))} ({category.__name__})", file=file or sys.stderr)


def configure_logging(verbose: bool = False) -> None:
    """Plain progress lines on stderr, warnings on one line; ``verbose`` adds debug lines and TensorFlow's log."""
    if verbose:
        tf_quiet.set_verbose(True)
        logging.getLogger("refinenet_tf").setLevel(logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineWarnings("%(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])


@contextlib.contextmanager
def _command_conventions() -> Iterator[None]:
    """While a command runs: its parsers list --verbose, usage errors and Python warnings are one line."""
    parser_class = argparse.ArgumentParser
    parse_known_args, error, show_warning = parser_class.parse_known_args, parser_class.error, warnings.showwarning

    def parse_with_verbose(self, args=None, namespace=None):
        with contextlib.suppress(argparse.ArgumentError):  # a parser with a --verbose of its own keeps it
            self.add_argument(tf_quiet.VERBOSE_FLAG, action="store_true", help=VERBOSE_HELP)
        return parse_known_args(self, args, namespace)

    def one_line_error(self, message: str):
        self.exit(2, f"error: {one_line(message)} (see {self.prog} --help)\n")

    parser_class.parse_known_args, parser_class.error = parse_with_verbose, one_line_error
    warnings.showwarning = _show_warning
    try:
        yield
    finally:
        parser_class.parse_known_args, parser_class.error = parse_known_args, error
        warnings.showwarning = show_warning


def run(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> int:
    """Run a command; a RefineNetError becomes a one-line 'error: ...' and exit status 2."""
    configure_logging(tf_quiet.verbose_requested(sys.argv[1:] if argv is None else argv))
    try:
        with _command_conventions():
            main(argv)
    except RefineNetError as error:
        print(f"error: {one_line(str(error))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
