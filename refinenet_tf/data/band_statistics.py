"""The input of a model trained on images that are not 8-bit RGB: band count, pixel type, and each band's mean and
standard deviation, measured on the training list and recorded in ``model.json`` (so prediction needs no flag).

8-bit RGB and 8-bit grey images train an RGB model, as DeepLab does (grey is repeated into R, G and B), so RGB
weights apply unchanged. 16-bit or floating-point images, ``.npy`` arrays and images of 2 or 4+ bands (RGB+NIR,
multispectral TIFF) train a model of their own bands, each normalised to zero mean and unit spread.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from refinenet_tf.data.images import checked_bands, read_bands
from refinenet_tf.data.listfile import spread_over
from refinenet_tf.description import ModelDescription, Preprocessing
from refinenet_tf.errors import DataError

STATISTICS_IMAGES = 100  # images read to measure the bands' mean and spread, spread over the list
_LOG = logging.getLogger(__name__)


def input_type(array: np.ndarray) -> str:
    """The model input type for an image array: uint8, uint16, or float32 for any other numbers."""
    return array.dtype.name if array.dtype.name in ("uint8", "uint16") else "float32"


def is_rgb_input(array: np.ndarray, path: str) -> bool:
    """True when an image is read as 8-bit RGB: 8-bit with 3 bands, or 8-bit grey in an image file."""
    return array.dtype == np.uint8 and (array.shape[-1] == 3 or (array.shape[-1] == 1
                                                                 and not path.lower().endswith(".npy")))


def band_statistics(paths: Sequence[str], preprocessing: Preprocessing,
                    limit: int = STATISTICS_IMAGES) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Each band's mean and standard deviation over up to ``limit`` of ``paths`` (spread over the list; unreadable
    ones left out), read as ``preprocessing`` takes them."""
    picked = spread_over(paths, limit)
    total, total_squares, count = np.zeros(preprocessing.channels), np.zeros(preprocessing.channels), 0
    for path in picked:
        try:
            pixels = checked_bands(read_bands(path), preprocessing, path).reshape(-1, preprocessing.channels)
        except DataError:
            continue  # the reader reports a bad image in its own way (or skips it)
        pixels = pixels.astype(np.float64)
        total += pixels.sum(axis=0)
        total_squares += (pixels ** 2).sum(axis=0)
        count += len(pixels)
    mean = total / count
    std = np.sqrt(np.maximum(total_squares / count - mean ** 2, 0.0))
    return tuple(float(v) for v in mean), tuple(float(v) if v > 0 else 1.0 for v in std)


def fit_input_bands(description: ModelDescription, image_paths: Sequence[str], source: str) -> ModelDescription:
    """``description`` with the input its training images need (``source`` names the list in errors).

    An RGB description meets RGB images unchanged; other images give it their band count and type and the bands'
    statistics (one log line says so). A description of bands (a run being resumed, or flags) must match the images'
    bands; its type follows theirs.
    """
    first, array = _first_readable(image_paths)
    if array is None:
        return description  # the reader reports the images in its own way (or skips them)
    preprocessing = description.preprocessing
    if is_rgb_input(array, first):
        if preprocessing.is_rgb:
            return description
        if preprocessing.channels != array.shape[-1]:
            raise DataError(f"{first}: an 8-bit image of {array.shape[-1]} bands, but the model takes "
                            f"{preprocessing.channels} (listed in {source})")
    bands, dtype = array.shape[-1], input_type(array)
    if not preprocessing.is_rgb:
        if preprocessing.channels != bands:
            raise DataError(f"{first}: {bands} bands, but the model takes {preprocessing.channels} (its model.json "
                            f"or {source}'s flags); train a new model on these images")
        if preprocessing.input_dtype == dtype:
            return description
        return description.replace(preprocessing=Preprocessing("RGB", 1.0, preprocessing.mean, preprocessing.std,
                                                               dtype))
    measuring = Preprocessing("RGB", 1.0, (0.0,) * bands, (1.0,) * bands, dtype)
    mean, std = band_statistics(image_paths, measuring)
    _LOG.info("%s: %d-band %s images; each band normalised by its mean %s and standard deviation %s, measured on "
              "up to %d training images (recorded in model.json)", source, bands, dtype,
              _rounded(mean), _rounded(std), STATISTICS_IMAGES)
    return description.replace(preprocessing=Preprocessing("RGB", 1.0, mean, std, dtype))


def _first_readable(paths: Sequence[str], tries: int = 10) -> tuple[str | None, np.ndarray | None]:
    """The first of (up to ``tries`` of) ``paths`` that reads, with its bands; (None, None) when none does."""
    for path in paths[:tries]:
        try:
            return path, read_bands(path)
        except DataError:
            continue
    return None, None


def _rounded(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{value:.4g}" for value in values) + "]"
