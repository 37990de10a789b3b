"""``evaluate-crf`` (evaluate_msc_with_CRF.py): evaluation with and without dense-CRF refinement, side by side."""

from __future__ import annotations

from collections.abc import Sequence

from refinenet_tf.cli.evaluate import run_evaluation


def main(argv: Sequence[str] | None = None) -> None:
    run_evaluation(argv, with_crf=True)
