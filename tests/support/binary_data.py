"""A tiny generated binary (foreground vs background) set: a bright blob on a noisy background, its masks stored with
a chosen foreground value (1, or 255 as many tools write them), and a small two-class model trained on it."""

from __future__ import annotations

import numpy as np

from refinenet_tf.description import default_description
from refinenet_tf.train.trainer import TrainConfig, Trainer
from tests.support.toy_data import write_dataset

ARCH = "lw-refinenet-mobilenetv2"
SIZE = (48, 48)
COUNT = 16
BLOB_COLOUR = (235, 215, 90)


def draw_blob(foreground: int):
    """A ``draw`` for :func:`tests.support.toy_data.write_dataset`: an ellipse of :data:`BLOB_COLOUR` on grey noise,
    its mask ``foreground`` on the blob and 0 elsewhere."""

    def draw(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        height, width = size
        image = rng.uniform(60, 140, (height, width, 1)) + rng.normal(0, 12, (height, width, 3))
        ys, xs = np.mgrid[0:height, 0:width]
        radii = rng.uniform(height / 8, height / 4, 2)
        cy, cx = rng.uniform(radii[0], height - radii[0]), rng.uniform(radii[1], width - radii[1])
        blob = ((ys - cy) / radii[0]) ** 2 + ((xs - cx) / radii[1]) ** 2 <= 1
        image[blob] = BLOB_COLOUR
        mask = np.where(blob, foreground, 0).astype(np.uint8)
        return np.clip(image, 0, 255).astype(np.uint8), mask

    return draw


def write_binary_dataset(root: str, foreground: int, count: int = COUNT, seed: int = 0,
                         list_name: str = "train.txt") -> str:
    """Write ``count`` blob scenes under ``root/{images,labels}`` with masks 0 / ``foreground``; the list path. The same
    seed gives the same images and blobs whatever ``foreground`` is."""
    return write_dataset(root, count=count, size=SIZE, seed=seed, list_name=list_name, draw=draw_blob(foreground))


def train_binary_model(data_dir: str, list_path: str, snapshot_dir: str, steps: int = 40, seed: int = 0) -> str:
    """Train a two-class LW-RefineNet MobileNet-v2 on a binary set (the toy model's recipe); the snapshot folder."""
    config = TrainConfig(description=default_description(ARCH, 2, class_names=["background", "foreground"]),
                         data_dir=data_dir, data_list=list_path, snapshot_dir=snapshot_dir, batch_size=4,
                         input_size=SIZE, learning_rate=1e-3, optimizer="adam", decoder_lr_mult=1.0, weight_decay=1e-5,
                         dropout=False, train_batch_norm=True, batch_norm_decay=0.9, random_mirror=True,
                         num_steps=steps, save_pred_every=steps, save_num_images=0, threads=2, log_every=steps,
                         random_seed=seed)
    Trainer(config).run()
    return snapshot_dir
