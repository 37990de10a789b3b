"""A tiny generated segmentation set: red squares (class 1) and blue discs (class 2) on grey clutter."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
from PIL import Image

NUM_CLASSES = 3
SQUARE_COLOUR = (220, 40, 40)
DISC_COLOUR = (40, 70, 220)


def render(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One (image uint8 HxWx3, mask uint8 HxW) pair with a square and a disc at random places."""
    height, width = size
    image = rng.uniform(90, 160, (height, width, 1)) + rng.normal(0, 8, (height, width, 3))
    mask = np.zeros((height, width), np.uint8)
    ys, xs = np.mgrid[0:height, 0:width]
    side = int(rng.integers(height // 4, height // 2))
    top, left = rng.integers(0, height - side), rng.integers(0, width - side)
    square = (ys >= top) & (ys < top + side) & (xs >= left) & (xs < left + side)
    radius = rng.uniform(height / 8, height / 4)
    cy, cx = rng.uniform(radius, height - radius), rng.uniform(radius, width - radius)
    disc = (ys - cy) ** 2 + (xs - cx) ** 2 <= radius**2
    image[square], mask[square] = SQUARE_COLOUR, 1
    image[disc], mask[disc] = DISC_COLOUR, 2
    return np.clip(image, 0, 255).astype(np.uint8), mask


def write_dataset(root, count: int = 24, size: tuple[int, int] = (64, 64), seed: int = 0,
                  list_name: str = "train.txt", draw: Callable = render) -> str:
    """Write ``count`` pairs made by ``draw`` under ``root/{images,labels}`` and a DeepLab list file; returns the
    list path."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    os.makedirs(os.path.join(root, "labels"), exist_ok=True)
    lines = []
    for index in range(count):
        image, mask = draw(rng, size)
        Image.fromarray(image).save(os.path.join(root, "images", f"{index:03d}.png"))
        Image.fromarray(mask, mode="L").save(os.path.join(root, "labels", f"{index:03d}.png"))
        lines.append(f"/images/{index:03d}.png /labels/{index:03d}.png\n")
    list_path = os.path.join(root, list_name)
    with open(list_path, "w") as handle:
        handle.writelines(lines)
    return list_path
