"""The built-in demo at test size: its procedural 64x64 scenes (the demo's seed) and its training recipe
(Adam 1e-3, batch 8, batch norm trained, no dropout), run by the demo's own steps with fewer scenes and steps
and any architecture, for claims about a model that has learned the demo's classes."""

from __future__ import annotations

import os
from dataclasses import dataclass

from refinenet_tf import demo
from refinenet_tf.train.trainer import TrainResult


@dataclass(frozen=True)
class DemoRun:
    """A short demo training run: its data folder, list files, snapshot folder and how the training ended."""

    data_dir: str
    train_list: str
    val_list: str
    snapshots: str
    result: TrainResult

    @property
    def untrained(self) -> str:
        """The starting (random) weights, which the trainer saves as step 0."""
        return os.path.join(self.snapshots, "model.ckpt-0")


def train_on_demo_scenes(root: str, arch: str, num_steps: int, num_train: int, num_val: int) -> DemoRun:
    """Generate ``num_train`` + ``num_val`` demo scenes under ``root`` and train ``arch`` on the training
    ones from random weights for ``num_steps`` steps, as ``python -m refinenet_tf demo`` does (its layout)."""
    settings = demo.DemoSettings(num_steps=num_steps, num_train=num_train, num_val=num_val)
    paths = demo.DemoPaths(root)
    prepared = demo._prepare_data(paths, settings)
    trained = demo._train(paths, settings, prepared, demo._description(prepared.table, arch))
    lists = prepared.lists
    return DemoRun(prepared.data_dir, lists["train"], lists["val"], paths.snapshots, trained)
