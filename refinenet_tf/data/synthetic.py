"""A procedural scene data set for the built-in demo: no downloads, deterministic per seed.

Each image holds a textured, low-saturation background with small greyish distractor blobs
(background class) and 2-4 objects of five shapes, each with its own texture family: disc (radial
shading), box (checker), triangle (speckle), ring (flat with grain) and bar (stripes across it). Each
class draws its colours from its own hue band, varied in hue, saturation and brightness, so colour is a
cue alongside shape and texture (as in real scenes: a model trained from random weights in a few minutes
on two cores learns it; shape and texture alone were not learnable in that budget). Later objects
occlude earlier ones. Masks have hard edges and are written as colour masks plus ``class_dict.csv``
in the ``training|validation/{images,labels}`` layout, so the demo runs the mask conversion too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from refinenet_tf.data.class_table import FILE_NAME as CLASS_DICT
from refinenet_tf.data.class_table import ClassTable, write_class_table
from refinenet_tf.data.masks import index_to_colour
from refinenet_tf.errors import ConfigError

SYNTHETIC_CLASSES = ClassTable(
    names=("background", "disc", "box", "triangle", "ring", "bar"),
    colours=((70, 70, 70), (220, 20, 60), (0, 0, 142), (250, 170, 30), (0, 170, 80), (150, 60, 220)),
)
DISC, BOX, TRIANGLE, RING, BAR = range(1, 6)
SPLIT_FOLDERS = ("training", "validation")
OBJECT_SIZE = (0.3, 0.55)  # object diameter as a fraction of the image's shorter side
# Centre of each object class's hue band, in degrees (disc red, box blue, triangle yellow, ring green, bar purple).
CLASS_HUES = {DISC: 0.0, BOX: 220.0, TRIANGLE: 55.0, RING: 130.0, BAR: 285.0}
HUE_JITTER = 18.0  # degrees either side of the band's centre
BACKGROUND_SATURATION = (0.0, 0.22)


@dataclass(frozen=True)
class SyntheticDataset:
    """Where :func:`make_synthetic_dataset` wrote its files."""

    root: str
    class_dict: str
    table: ClassTable
    counts: dict[str, int]

    def images_dir(self, split: str) -> str:
        return os.path.join(self.root, split, "images")

    def labels_dir(self, split: str) -> str:
        return os.path.join(self.root, split, "labels")


def make_synthetic_dataset(root: str, num_train: int = 80, num_val: int = 20, size: tuple[int, int] = (128, 128),
                           seed: int = 1234, image_format: str = "png") -> SyntheticDataset:
    """Write ``num_train`` + ``num_val`` scenes under ``root`` (class_dict layout); same seed, same files.

    Scene ``i`` of a split depends only on (seed, split, i). Every object class appears in each split
    that has at least five images.
    """
    if image_format not in ("png", "jpg"):
        raise ConfigError(f"image_format must be 'png' or 'jpg', got {image_format!r}")
    if min(size) < 32:
        raise ConfigError(f"synthetic images need at least 32x32 pixels, got {size}")
    if num_train < 0 or num_val < 0:
        raise ConfigError("image counts must not be negative")
    counts = dict(zip(SPLIT_FOLDERS, (num_train, num_val), strict=True))
    for split_number, (split, count) in enumerate(counts.items()):
        os.makedirs(os.path.join(root, split, "images"), exist_ok=True)
        os.makedirs(os.path.join(root, split, "labels"), exist_ok=True)
        for i in range(count):
            rng = np.random.default_rng([seed, split_number, i])
            image, mask = render_scene(rng, size, on_top=1 + i % (SYNTHETIC_CLASSES.num_classes - 1))
            stem = f"scene_{i:05d}"
            Image.fromarray(image).save(os.path.join(root, split, "images", f"{stem}.{image_format}"),
                                        **({"quality": 95} if image_format == "jpg" else {}))
            Image.fromarray(index_to_colour(mask, SYNTHETIC_CLASSES)).save(os.path.join(root, split, "labels", f"{stem}.png"))
    class_dict = write_class_table(os.path.join(root, CLASS_DICT), SYNTHETIC_CLASSES)
    return SyntheticDataset(root, class_dict, SYNTHETIC_CLASSES, counts)


def render_scene(rng: np.random.Generator, size: tuple[int, int], on_top: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One scene: (HxWx3 uint8 image, HxW uint8 index mask). ``on_top``: a class drawn last, unoccluded."""
    height, width = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    background_colour = _background_colour(rng)
    image = _background(rng, height, width, background_colour)
    mask = np.zeros((height, width), dtype=np.uint8)
    _add_distractors(rng, image, ys, xs)
    classes = list(rng.integers(1, SYNTHETIC_CLASSES.num_classes, size=rng.integers(1, 4)))
    classes.append(on_top if on_top is not None else int(rng.integers(1, SYNTHETIC_CLASSES.num_classes)))
    for class_index in classes:
        inside, texture = _shape(rng, int(class_index), ys, xs, min(height, width))
        first, second = _object_colours(rng, int(class_index))
        colours = first + texture[..., None] * (second - first)
        image[inside] = colours[inside]
        mask[inside] = class_index
    noise = rng.normal(0.0, 3.0, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8), mask


# --- shapes and textures ---------------------------------------------------------------------------------

def _shape(rng: np.random.Generator, class_index: int, ys: np.ndarray, xs: np.ndarray, side: int):
    """(inside mask, texture in 0..1) of one randomly placed object of ``class_index``."""
    height, width = ys.shape
    radius = rng.uniform(*OBJECT_SIZE) * side / 2
    cy, cx = rng.uniform(0.1, 0.9) * height, rng.uniform(0.1, 0.9) * width
    angle = rng.uniform(0, np.pi)
    u = (xs - cx) * np.cos(angle) + (ys - cy) * np.sin(angle)
    v = -(xs - cx) * np.sin(angle) + (ys - cy) * np.cos(angle)
    distance = np.hypot(u, v)
    if class_index == DISC:
        inside = distance <= radius
        texture = np.clip(distance / radius, 0, 1) ** rng.uniform(1.0, 2.0)
    elif class_index == BOX:
        half_u, half_v = radius * rng.uniform(0.75, 0.95), radius * rng.uniform(0.55, 0.95)
        inside = (np.abs(u) <= half_u) & (np.abs(v) <= half_v)
        period = rng.uniform(4.0, 9.0)
        texture = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    elif class_index == TRIANGLE:
        inside = _triangle(rng, u, v, radius * 1.15)
        texture = _speckle(rng, height, width)
    elif class_index == RING:
        inside = (distance <= radius) & (distance >= radius * rng.uniform(0.35, 0.5))
        texture = np.full((height, width), rng.uniform(0.0, 0.3), dtype=np.float32)
    elif class_index == BAR:
        inside = (np.abs(u) <= radius * rng.uniform(1.1, 1.4)) & (np.abs(v) <= radius * rng.uniform(0.3, 0.42))
        texture = (np.floor(u / rng.uniform(2.5, 5.0)) % 2).astype(np.float32)
    else:
        raise ValueError(f"no shape for class {class_index}")
    return inside, texture


def _triangle(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, radius: float) -> np.ndarray:
    """Inside a triangle whose corners sit near ``radius`` from the centre, at jittered thirds of a turn."""
    angles = np.arange(3) * 2 * np.pi / 3 + rng.uniform(-0.25, 0.25, 3)
    lengths = radius * rng.uniform(0.85, 1.1, 3)
    corners = np.stack([lengths * np.cos(angles), lengths * np.sin(angles)], axis=1)
    inside = np.ones(u.shape, dtype=bool)
    for (au, av), (bu, bv) in zip(corners, np.roll(corners, -1, axis=0), strict=True):
        inside &= (bu - au) * (v - av) - (bv - av) * (u - au) >= 0  # corners run counter-clockwise
    return inside


def _speckle(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Blocky random noise in 0..1, blocks of 1 or 2 pixels."""
    block = int(rng.integers(1, 3))
    noise = rng.random((height // block + 1, width // block + 1)).astype(np.float32)
    return np.repeat(np.repeat(noise, block, axis=0), block, axis=1)[:height, :width]


# --- colours and background -----------------------------------------------------------------------------

def _hsv_to_rgb(hue_degrees: float, saturation: float, value: float) -> np.ndarray:
    """One HSV colour (hue in degrees, saturation and value in 0..1) as float RGB in 0..255."""
    sector = (hue_degrees % 360.0) / 60.0
    chroma = value * saturation
    second = chroma * (1 - abs(sector % 2 - 1))
    order = [(chroma, second, 0), (second, chroma, 0), (0, chroma, second), (0, second, chroma),
             (second, 0, chroma), (chroma, 0, second)][int(sector) % 6]
    return ((np.asarray(order, np.float32) + value - chroma) * 255.0).astype(np.float32)


def _background_colour(rng: np.random.Generator) -> np.ndarray:
    """A greyish colour of any hue."""
    return _hsv_to_rgb(rng.uniform(0, 360), rng.uniform(*BACKGROUND_SATURATION), rng.uniform(0.25, 0.8))


def _object_colours(rng: np.random.Generator, class_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Two colours of the class's hue band: the texture runs between a brighter and a darker shade."""
    hue = CLASS_HUES[class_index] + rng.uniform(-HUE_JITTER, HUE_JITTER)
    saturation = rng.uniform(0.6, 0.95)
    value = rng.uniform(0.7, 0.95)
    darker = value - rng.uniform(0.25, 0.4)
    return _hsv_to_rgb(hue, saturation, value), _hsv_to_rgb(hue, saturation, darker)


def _background(rng: np.random.Generator, height: int, width: int, colour: np.ndarray) -> np.ndarray:
    """Smooth low-frequency clutter around ``colour``: coarse random blobs upsampled bilinearly."""
    cells = int(rng.integers(3, 7))
    coarse = rng.uniform(-1, 1, (cells, cells, 3)).astype(np.float32)
    field = np.asarray(Image.fromarray(((coarse + 1) * 127.5).astype(np.uint8)).resize((width, height), Image.BILINEAR))
    field = field.astype(np.float32) / 127.5 - 1
    return np.clip(colour + field * rng.uniform(15, 40), 0, 255)


def _add_distractors(rng: np.random.Generator, image: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> None:
    """Small flat blobs painted into the background (they stay background in the mask)."""
    side = min(ys.shape)
    for _ in range(int(rng.integers(2, 7))):
        cy, cx = rng.uniform(0, ys.shape[0]), rng.uniform(0, ys.shape[1])
        radius_y, radius_x = rng.uniform(0.015, 0.04, 2) * side
        blob = ((ys - cy) / radius_y) ** 2 + ((xs - cx) / radius_x) ** 2 <= 1
        image[blob] = _background_colour(rng)
