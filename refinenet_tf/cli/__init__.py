"""``python -m refinenet_tf COMMAND [flags]``: one module per command, each with ``main(argv)``.

Every entry point (the top-level scripts, ``python -m refinenet_tf``, the console scripts) goes through
:func:`launch` or :func:`main`, which keep TensorFlow's start-up log off stderr (see :mod:`refinenet_tf.tf_quiet`;
``--verbose`` shows it) before the command's module imports TensorFlow. Importing this package does nothing of
the kind: a program that imports the library keeps its stderr as it is.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from refinenet_tf import tf_quiet
from refinenet_tf.cli.common import run

# command name -> (module under refinenet_tf.cli holding its main(argv), what it does), in the order --help lists them
COMMANDS = {
    "demo": ("demo", "train and evaluate a small model on generated scenes (no downloads)"),
    "train": ("train", "train a model on a list file (DeepLab's train.py)"),
    "train-msc": ("train_msc", "multi-scale training with gradient accumulation (train_msc.py)"),
    "evaluate": ("evaluate", "score a checkpoint on a labelled list: IoU, precision, F1 (evaluate_msc.py)"),
    "evaluate-crf": ("evaluate_crf", "the same with and without dense-CRF refinement (evaluate_msc_with_CRF.py)"),
    "infer": ("infer", "segment images into index and coloured masks (inference.py)"),
    "segment-archive": ("segment_archive", "segment a whole archive of images on Apache Beam, restartable"),
    "convert-masks": ("convert_masks", "masks, annotation files and data set layouts to index masks and lists"),
    "convert-weights": ("convert_weights", "import pretrained weights (PyTorch, Keras, TensorFlow checkpoints)"),
    "export": ("export", "export a checkpoint: SavedModel, frozen graph, TFLite or ONNX"),
    "quantize": ("quantize", "an int8 model folder (ONNX Runtime) calibrated on your images, accuracy-guarded"),
    "info": ("info", "this machine and precision choice; an architecture's parameters and multiply-adds"),
}
TRAINING_COMMANDS = ("train", "train-msc", "demo")
ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
EXAMPLES = (
    "python -m refinenet_tf demo",
    "python -m refinenet_tf convert-masks --layout labelme annotations/ --name shots --val-fraction 0.25",
    "python -m refinenet_tf train --arch lw-refinenet-mobilenetv2 --data-dir ./ --data-list dataset/shots/train.txt "
    "--num-classes 3",
    "python -m refinenet_tf infer photo.jpg snapshots/ --save-dir output/",
)


def overview(available: Sequence[str]) -> str:
    """What ``python -m refinenet_tf --help`` prints: the commands ``available`` with what each does, and examples."""
    width = max(len(name) for name in available) + 2
    lines = ["usage: python -m refinenet_tf [--verbose] COMMAND [flags]", "",
             "RefineNet and Light-Weight RefineNet semantic segmentation, DeepLab-ResNet-TF's workflow.", "",
             "commands:"]
    lines += [f"  {name:<{width}}{COMMANDS[name][1]}" for name in available]
    lines += ["", "examples:", *(f"  {example}" for example in EXAMPLES), "",
              "'python -m refinenet_tf COMMAND --help' lists a command's flags; --verbose shows TensorFlow's log."]
    return "\n".join(lines)


def command_main(name: str, entry: str = "main"):
    """The ``main(argv)`` of one command (``entry`` names another function of its module)."""
    return getattr(importlib.import_module(f"refinenet_tf.cli.{COMMANDS[name][0]}"), entry)


def quiet_command(argv: Sequence[str]) -> None:
    """What a command's process does before its module loads TensorFlow: keep TensorFlow's start-up log off stderr,
    or with ``--verbose`` in ``argv`` show it, in this process and in the processes the command starts."""
    if tf_quiet.verbose_flag(argv):
        os.environ[tf_quiet.VERBOSE_ENV] = "1"
        tf_quiet.set_verbose(True)
    else:
        tf_quiet.arm()


def prefer_onednn_for_training(command: str, environ=os.environ) -> None:
    """Before TensorFlow loads: a training command runs with oneDNN unless ``TF_ENABLE_ONEDNN_OPTS`` is set.
    TensorFlow turns oneDNN on by itself only where the CPU has AVX-512 VNNI or BF16; on AVX2-only CPUs it was
    measured to train faster with oneDNN but to predict faster without, so prediction keeps TensorFlow's choice
    (docs/BENCHMARKS.md, "Training on AVX2")."""
    if command in TRAINING_COMMANDS:
        environ.setdefault(ONEDNN_ENV, "1")


def launch(command: str, argv: Sequence[str] | None = None, entry: str = "main") -> int:
    """Run one command as its program does (``argv`` defaults to ``sys.argv[1:]``): its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    quiet_command(argv)
    prefer_onednn_for_training(command)
    return run(command_main(command, entry), argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a command; ``--help`` lists them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [tf_quiet.VERBOSE_FLAG]:  # python -m refinenet_tf --verbose COMMAND ...
        argv = [*argv[1:2], tf_quiet.VERBOSE_FLAG, *argv[2:]]
    available = [name for name in COMMANDS if importlib.util.find_spec(f"refinenet_tf.cli.{COMMANDS[name][0]}")]
    if argv and argv[0] not in available and argv[0] not in ("-h", "--help", tf_quiet.VERBOSE_FLAG):
        print(f"error: unknown command {argv[0]!r}; one of {', '.join(available)} "
              "(python -m refinenet_tf --help says what each does)", file=sys.stderr)
        return 2
    if argv[:1] in (["-h"], ["--help"]):
        print(overview(available))
        return 0
    if not argv or argv[0] not in available:
        print(overview(available), file=sys.stderr)
        return 2
    return launch(argv[0], argv[1:])
