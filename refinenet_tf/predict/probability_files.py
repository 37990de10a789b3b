"""Per-class probability files, written one band of rows at a time so that a large image never needs its
``H x W x C`` probabilities in memory.

For an image with stem ``x``:

- ``npy``: ``x_prob.npy``, float16 ``(H, W, C)`` softmax probabilities (``numpy.load(path, mmap_mode="r")``
  reads parts of it);
- ``png``: one 8-bit grey PNG per class, ``x_prob_<class name>.png``, 255 for probability 1 (rounded).
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import Iterable, Sequence

import numpy as np

from refinenet_tf.errors import ConfigError, parameter

PROBABILITY_FORMATS = ("npy", "png")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def probability_paths(save_dir: str, stem: str, names: Sequence[str], format: str = "npy") -> list[str]:
    """The files :func:`save_probabilities` writes for the image ``stem`` (one per class for PNG)."""
    if format not in PROBABILITY_FORMATS:
        raise ConfigError(f"{parameter('probability_format')} must be one of {', '.join(PROBABILITY_FORMATS)}, "
                          f"got {format!r}")
    if format == "npy":
        return [os.path.join(save_dir, f"{stem}_prob.npy")]
    safe = [re.sub(r"[^A-Za-z0-9.+-]+", "_", name).strip("_") or "class" for name in names]
    safe = [name if safe.count(name) == 1 else f"{name}_{index}" for index, name in enumerate(safe)]
    return [os.path.join(save_dir, f"{stem}_prob_{name}.png") for name in safe]


def save_probabilities(save_dir: str, stem: str, bands: Iterable[tuple[int, np.ndarray]],
                       image_size: tuple[int, int], names: Sequence[str], format: str = "npy") -> list[str]:
    """Write the probabilities that ``bands`` yields as ``(first row, float (rows, W, C))``, top to bottom;
    returns the paths written."""
    paths = probability_paths(save_dir, stem, names, format)
    height, width = image_size
    try:
        os.makedirs(save_dir, exist_ok=True)
        if format == "npy":
            _write_npy(paths[0], bands, (height, width, len(names)))
        else:
            _write_pngs(paths, bands, (height, width))
    except OSError as error:
        raise ConfigError(f"{save_dir}: cannot write the probabilities of {stem} ({error.strerror or error})") from None
    return paths


def _write_npy(path: str, bands: Iterable[tuple[int, np.ndarray]], shape: tuple[int, int, int]) -> None:
    """A float16 .npy file, each band mapped alone so that only one band is ever resident."""
    header = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=shape)
    offset = header.offset
    del header
    row_bytes = shape[1] * shape[2] * np.dtype(np.float16).itemsize
    for start, probabilities in bands:
        band = np.memmap(path, np.float16, "r+", offset=offset + start * row_bytes,
                         shape=probabilities.shape)
        band[...] = probabilities
        band.flush()
        del band


def _write_pngs(paths: Sequence[str], bands: Iterable[tuple[int, np.ndarray]], size: tuple[int, int]) -> None:
    """One 8-bit grey PNG per class, compressed as the bands arrive."""
    files = [_PngStream(path, size) for path in paths]
    try:
        for _, probabilities in bands:
            levels = np.rint(np.clip(probabilities, 0, 1) * 255).astype(np.uint8)
            for index, png in enumerate(files):
                png.write_rows(levels[..., index])
    finally:
        for png in files:
            png.close()


class _PngStream:
    """A greyscale 8-bit PNG written row band by row band (filter type 0, one zlib stream over IDAT chunks)."""

    def __init__(self, path: str, size: tuple[int, int]):
        self.file = open(path, "wb")  # noqa: SIM115 - closed by close(), which _write_pngs always calls
        self.file.write(_PNG_SIGNATURE)
        self._chunk(b"IHDR", struct.pack(">IIBBBBB", size[1], size[0], 8, 0, 0, 0, 0))
        self.compressor = zlib.compressobj(6)

    def write_rows(self, rows: np.ndarray) -> None:
        """Append uint8 rows (n, W)."""
        filtered = np.zeros((rows.shape[0], rows.shape[1] + 1), np.uint8)  # a 0 byte: no filter, then the row
        filtered[:, 1:] = rows
        self._chunk(b"IDAT", self.compressor.compress(filtered.tobytes()))

    def close(self) -> None:
        if not self.file.closed:
            self._chunk(b"IDAT", self.compressor.flush())
            self._chunk(b"IEND", b"")
            self.file.close()

    def _chunk(self, kind: bytes, data: bytes) -> None:
        if data or kind != b"IDAT":
            self.file.write(struct.pack(">I", len(data)) + kind + data
                            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
