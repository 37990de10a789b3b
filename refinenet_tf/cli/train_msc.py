"""``train_msc.py``: multi-scale training with gradient accumulation (DeepLab-ResNet-TF's flags kept)."""

from __future__ import annotations

from collections.abc import Sequence

from refinenet_tf.cli.train import run_training


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``train_msc.py``: scales 1.0, 0.75, 0.5, batch 1, gradients over 10 batches per update."""
    run_training(argv, multiscale=True)
