"""``python -m refinenet_tf COMMAND [flags]``: one module per command, each with ``main(argv)``."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence

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


def command_main(name: str):
    """The ``main(argv)`` of one command."""
    return importlib.import_module(f"refinenet_tf.cli.{COMMANDS[name]}").main


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a command; ``--help`` lists them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    available = [name for name in COMMANDS if importlib.util.find_spec(f"refinenet_tf.cli.{COMMANDS[name]}")]
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in available:
        print("usage: python -m refinenet_tf {" + ",".join(available) + "} [flags]", file=sys.stderr)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"error: unknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0 if argv else 2
    return run(command_main(argv[0]), argv[1:])
