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

# command name -> module under refinenet_tf.cli holding its main(argv)
COMMANDS = {
    "info": "info",
    "train": "train",
    "train-msc": "train_msc",
    "evaluate": "evaluate",
    "evaluate-crf": "evaluate_crf",
    "infer": "infer",
    "convert-masks": "convert_masks",
    "convert-weights": "convert_weights",
    "export": "export",
    "demo": "demo",
}


def command_main(name: str, entry: str = "main"):
    """The ``main(argv)`` of one command (``entry`` names another function of its module)."""
    return getattr(importlib.import_module(f"refinenet_tf.cli.{COMMANDS[name]}"), entry)


def quiet_command(argv: Sequence[str]) -> None:
    """What a command's process does before its module loads TensorFlow: keep TensorFlow's start-up log off stderr,
    or with ``--verbose`` in ``argv`` show it, in this process and in the processes the command starts."""
    if tf_quiet.verbose_flag(argv):
        os.environ[tf_quiet.VERBOSE_ENV] = "1"
        tf_quiet.set_verbose(True)
    else:
        tf_quiet.arm()


def launch(command: str, argv: Sequence[str] | None = None, entry: str = "main") -> int:
    """Run one command as its program does (``argv`` defaults to ``sys.argv[1:]``): its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    quiet_command(argv)
    return run(command_main(command, entry), argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a command; ``--help`` lists them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [tf_quiet.VERBOSE_FLAG]:  # python -m refinenet_tf --verbose COMMAND ...
        argv = [*argv[1:2], tf_quiet.VERBOSE_FLAG, *argv[2:]]
    available = [name for name in COMMANDS if importlib.util.find_spec(f"refinenet_tf.cli.{COMMANDS[name]}")]
    commands = "{" + ",".join(available) + "}"
    if argv and argv[0] not in available and argv[0] not in ("-h", "--help", tf_quiet.VERBOSE_FLAG):
        print(f"error: unknown command {argv[0]!r}; one of {commands}", file=sys.stderr)
        return 2
    if not argv or argv[0] not in available:
        print(f"usage: python -m refinenet_tf [--verbose] {commands} [flags]", file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    return launch(argv[0], argv[1:])
