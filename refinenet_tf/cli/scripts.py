"""Console-script entry points: each runs one command with the one-line error handling of ``run``."""

from __future__ import annotations

import sys
from collections.abc import Callable

from refinenet_tf.cli import launch


def _entry(command: str) -> Callable[[], None]:
    def main() -> None:
        sys.exit(launch(command))

    main.__doc__ = f"The ``{command}`` command."
    return main


train = _entry("train")
train_msc = _entry("train-msc")
evaluate = _entry("evaluate")
evaluate_crf = _entry("evaluate-crf")
infer = _entry("infer")
segment_archive = _entry("segment-archive")
convert_masks = _entry("convert-masks")
convert_weights = _entry("convert-weights")
export = _entry("export")
info = _entry("info")
demo = _entry("demo")
