"""A Light-Weight RefineNet (MobileNet-v2) trained briefly on the toy squares-and-discs set: a model whose
predictions follow the image, for claims that an untrained network cannot support (tiled = whole-image)."""

from __future__ import annotations

import os

from refinenet_tf.description import default_description
from refinenet_tf.train.trainer import TrainConfig, Trainer
from tests.support.toy_data import NUM_CLASSES, write_dataset

ARCH = "lw-refinenet-mobilenetv2"
STEPS = 100


def train_toy_model(root: str, steps: int = STEPS) -> str:
    """Train on 32 toy 64x64 scenes under ``root`` (the demo's recipe: Adam 1e-3, batch 4, batch norm trained,
    no dropout); returns the snapshot folder (it holds model.json). 100 steps take about 20 s on two cores and
    reach an IoU of about 0.9 on every class."""
    list_path = write_dataset(os.path.join(root, "data"), count=32, size=(64, 64))
    snapshots = os.path.join(root, "snapshots")
    config = TrainConfig(description=default_description(ARCH, NUM_CLASSES), data_dir=os.path.join(root, "data"),
                         data_list=list_path, snapshot_dir=snapshots, batch_size=4, input_size=(64, 64),
                         learning_rate=1e-3, optimizer="adam", decoder_lr_mult=1.0, weight_decay=1e-5,
                         dropout=False, train_batch_norm=True, batch_norm_decay=0.9, random_mirror=True,
                         num_steps=steps, save_pred_every=steps, save_num_images=0, threads=2, log_every=steps)
    Trainer(config).run()
    return snapshots
