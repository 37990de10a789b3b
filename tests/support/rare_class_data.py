"""An imbalanced generated set: toy_data's squares and discs, plus a small green square of a rare class (3) in
some scenes, under 1% of all pixels."""

from __future__ import annotations

import numpy as np

from tests.support import toy_data

NUM_CLASSES = 4
RARE_CLASS = 3
RARE_COLOUR = (40, 200, 60)
RARE_SIDES = (8, 11)  # side in pixels, from 8 up to 10
RARE_CHANCE = 0.2  # share of the scenes holding one


def render_with_rare_class(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """toy_data's scene, with a green square of class 3 drawn over it in ``RARE_CHANCE`` of the scenes."""
    image, mask = toy_data.render(rng, size)
    if rng.random() < RARE_CHANCE:
        side = int(rng.integers(*RARE_SIDES))
        top, left = (int(rng.integers(0, extent - side)) for extent in size)
        image[top:top + side, left:left + side] = RARE_COLOUR
        mask[top:top + side, left:left + side] = RARE_CLASS
    return image, mask


def write_rare_class_dataset(root, count: int, seed: int = 0) -> str:
    """Write ``count`` 64x64 scenes with the rare class under ``root``; returns the list file's path."""
    return toy_data.write_dataset(root, count=count, seed=seed, draw=render_with_rare_class)
