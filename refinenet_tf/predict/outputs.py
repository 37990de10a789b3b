"""Prediction files: index mask, coloured mask, overlay on the image, and raw logits.

For an image ``dir/2007_000032.jpg`` the files are named by its stem: ``2007_000032.png`` (index
mask, one class per pixel, 8-bit), ``2007_000032_colour.png`` (palette colours) and
``2007_000032_overlay.png`` (the colours blended half-and-half with the image).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence

import numpy as np
from PIL import Image

from refinenet_tf.data.images import display_rgb
from refinenet_tf.errors import ConfigError
from refinenet_tf.palette import colourise

OVERLAY_OPACITY = 0.5


def image_stem(path: str) -> str:
    """``/a/b/2007_000032.jpg`` -> ``2007_000032``."""
    return os.path.splitext(os.path.basename(path))[0]


def check_unique_stems(paths: Sequence[str]) -> None:
    """Refuse inputs whose output files would overwrite each other (same file stem)."""
    repeated = [stem for stem, count in Counter(image_stem(path) for path in paths).items() if count > 1]
    if repeated:
        raise ConfigError(f"several images share the file name {repeated[0]!r}; their outputs would overwrite "
                          "each other (use one folder per run or rename them)")


def logits_path(path: str, stem: str | None) -> str:
    """Where ``--save-logits PATH`` goes: PATH itself for one image, ``PATH`` with ``_<stem>`` before ``.npy`` else."""
    if stem is None:
        return path
    base, extension = os.path.splitext(path)
    return f"{base}_{stem}{extension or '.npy'}"


def save_logits(path: str, logits: np.ndarray) -> None:
    """Write float32 logits as a .npy file."""
    _write(path, lambda: np.save(path, np.asarray(logits, dtype=np.float32)))


def prediction_names(stem: str, suffix: str = "", overlay: bool = True) -> list[str]:
    """The file names :func:`save_prediction` writes: index mask, coloured mask and (``overlay``) the overlay."""
    return [f"{stem}{suffix}.png", f"{stem}{suffix}_colour.png", *([f"{stem}{suffix}_overlay.png"] if overlay else [])]


def save_prediction(save_dir: str, stem: str, labels: np.ndarray, palette: np.ndarray,
                    image_rgb: np.ndarray | None = None, suffix: str = "", void_label: int | None = None) -> list[str]:
    """Write the index and coloured masks (and the overlay when ``image_rgb`` is given: the image, or for a model of
    other bands its picture, see :func:`~refinenet_tf.data.images.display_rgb`); returns the paths.
    ``void_label`` (unknown pixels) is coloured in the void colour."""
    if labels.max(initial=0) > 255:
        raise ConfigError(f"class index {labels.max()} does not fit an 8-bit index mask")
    colours = colourise(labels, palette, void_label)
    names = prediction_names(stem, suffix, overlay=image_rgb is not None)
    images = {names[0]: Image.fromarray(labels.astype(np.uint8), mode="L"),
              names[1]: Image.fromarray(colours, mode="RGB")}
    if image_rgb is not None:
        images[names[2]] = Image.fromarray(_blend(display_rgb(image_rgb), colours), mode="RGB")
    os.makedirs(save_dir, exist_ok=True)
    written = []
    for name, image in images.items():
        path = os.path.join(save_dir, name)
        _write(path, lambda image=image, path=path: image.save(path, format="PNG"))
        written.append(path)
    return written


def _blend(image_rgb: np.ndarray, colours: np.ndarray, rows: int = 256) -> np.ndarray:
    """The overlay, computed a band of rows at a time (a large image needs no float copy of itself)."""
    blended = np.empty_like(colours)
    for start in range(0, colours.shape[0], rows):
        band = slice(start, start + rows)
        mixed = (1 - OVERLAY_OPACITY) * image_rgb[band].astype(np.float32) + OVERLAY_OPACITY * colours[band]
        blended[band] = np.round(mixed)
    return blended


def _write(path: str, write) -> None:
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        write()
    except OSError as error:
        raise ConfigError(f"{path}: cannot write ({error.strerror or error})") from None
