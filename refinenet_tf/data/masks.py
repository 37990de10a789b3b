"""Mask conversion to single-channel uint8 index masks, the only mask form training reads.

Formats: ``rgb`` (colour masks + a class table), ``palette`` (palette PNGs such as VOC's
SegmentationClass, whose pixel values already are class indices) and ``cityscapes`` (``*_labelIds.png``
to the 19 train ids). Unknown colours are counted per file so a whole run can report them at once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np
from PIL import Image

from refinenet_tf.data.class_table import (
    ADE20K_CLASS_NAMES,
    CITYSCAPES_LABEL_IDS_OF_TRAIN_IDS,
    VOC_VOID_INDEX,
    ClassTable,
    Colour,
    ade20k_table,
    binary_table,
    cityscapes_table,
)
from refinenet_tf.data.images import open_image
from refinenet_tf.defaults import IGNORE_LABEL
from refinenet_tf.errors import ConfigError, DataError, parameter
from refinenet_tf.files import temporary_name
from refinenet_tf.palette import colourise, voc_palette
from refinenet_tf.progress import Progress

MASK_FORMATS = ("rgb", "palette", "cityscapes", "binary", "ade20k")
UNKNOWN_POLICIES = ("error", "ignore")
MAX_COLOURS_IN_MESSAGE = 20

_LOG = logging.getLogger(__name__)


# --- array conversions -------------------------------------------------------------------------------

def rgb_to_index(rgb: np.ndarray, table: ClassTable, ignore_label: int = IGNORE_LABEL) -> tuple[np.ndarray, dict[Colour, int]]:
    """HxWx3 colour mask -> (HxW uint8 index mask, {unknown colour: pixel count}).

    A class's index is its position in ``table``; the void colour and unknown colours become
    ``ignore_label`` (the caller decides whether unknown colours are an error).
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise DataError(f"expected an HxWx3 colour mask, got shape {rgb.shape}")
    colours = list(table.colours) + ([table.void_colour] if table.void_colour is not None else [])
    values = list(range(table.num_classes)) + [ignore_label] * (len(colours) - table.num_classes)
    table_keys = _colour_keys(np.asarray(colours, dtype=np.uint8))
    order = np.argsort(table_keys)
    sorted_keys, sorted_values = table_keys[order], np.asarray(values, dtype=np.uint8)[order]
    keys = _colour_keys(rgb)
    positions = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    known = sorted_keys[positions] == keys
    index = np.where(known, sorted_values[positions], np.uint8(ignore_label)).astype(np.uint8)
    unknown_keys, counts = np.unique(keys[~known], return_counts=True)
    return index, {_key_colour(key): int(count) for key, count in zip(unknown_keys, counts, strict=True)}


def palette_to_index(indices: np.ndarray, ignore_label: int = IGNORE_LABEL) -> np.ndarray:
    """Palette indices -> index mask: VOC's void border (255) becomes ``ignore_label``."""
    indices = np.asarray(indices, dtype=np.uint8)
    return np.where(indices == VOC_VOID_INDEX, np.uint8(ignore_label), indices).astype(np.uint8)


def binary_to_index(values: np.ndarray) -> np.ndarray:
    """A two-class mask: 0 stays background (0), every other value (1, 255, ...) becomes foreground (1)."""
    return (np.asarray(values) != 0).astype(np.uint8)


def ade20k_to_index(values: np.ndarray, ignore_label: int = IGNORE_LABEL) -> np.ndarray:
    """ADE20K's mask values -> class indices: 0 ("other") becomes ``ignore_label``, 1..150 become 0..149."""
    lookup = np.full(256, ignore_label, dtype=np.uint8)
    lookup[1:len(ADE20K_CLASS_NAMES) + 1] = np.arange(len(ADE20K_CLASS_NAMES))
    return lookup[np.asarray(values, dtype=np.uint8)]


def cityscapes_to_train_ids(label_ids: np.ndarray, ignore_label: int = IGNORE_LABEL) -> np.ndarray:
    """Cityscapes labelIds -> the 19 train ids; every other label becomes ``ignore_label``."""
    lookup = np.full(256, ignore_label, dtype=np.uint8)
    lookup[list(CITYSCAPES_LABEL_IDS_OF_TRAIN_IDS)] = np.arange(len(CITYSCAPES_LABEL_IDS_OF_TRAIN_IDS))
    return lookup[np.asarray(label_ids, dtype=np.uint8)]


def train_ids_to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """The inverse: train ids -> Cityscapes labelIds (anything else -> 0, 'unlabeled'), e.g. for submissions."""
    lookup = np.zeros(256, dtype=np.uint8)
    lookup[: len(CITYSCAPES_LABEL_IDS_OF_TRAIN_IDS)] = CITYSCAPES_LABEL_IDS_OF_TRAIN_IDS
    return lookup[np.asarray(train_ids, dtype=np.uint8)]


def index_to_colour(index: np.ndarray, table: ClassTable, ignore_label: int = IGNORE_LABEL) -> np.ndarray:
    """Paint an index mask with the table's colours; ignored pixels get the void colour (black)."""
    rgb = colourise(index, table.colours)
    if table.void_colour is not None:
        rgb[np.asarray(index) == ignore_label] = table.void_colour
    return rgb


# --- files ---------------------------------------------------------------------------------------------

def save_index_mask(path: str, index: np.ndarray) -> None:
    """Write a single-channel 8-bit PNG, atomically (a partial file never has the final name)."""
    _save_png(path, Image.fromarray(np.asarray(index, dtype=np.uint8), mode="L"))


def save_palette_mask(path: str, index: np.ndarray) -> None:
    """Write an index mask as a palette PNG in the VOC colours (the SegmentationClass form)."""
    image = Image.fromarray(np.asarray(index, dtype=np.uint8), mode="L").convert("P")
    image.putpalette(voc_palette(256).tobytes())
    _save_png(path, image)


@dataclass(frozen=True)
class MaskConverter:
    """Reads one mask file of a given format and returns its index mask and unknown colours."""

    format: str
    table: ClassTable | None = None
    ignore_label: int = IGNORE_LABEL
    unknown: str = "error"

    def __post_init__(self) -> None:
        if self.format not in MASK_FORMATS:
            raise ConfigError(f"{parameter('format')} must be one of {MASK_FORMATS}, got {self.format!r}")
        if self.unknown not in UNKNOWN_POLICIES:
            raise ConfigError(f"{parameter('unknown')} must be one of {UNKNOWN_POLICIES}, got {self.unknown!r}")
        if self.format == "rgb" and self.table is None:
            raise ConfigError(f"rgb masks need a class table ({parameter('class_dict')} class_dict.csv)")
        if not 0 <= self.ignore_label <= 255:
            raise ConfigError(f"{parameter('ignore_label')} must fit in a uint8 mask (0..255), got {self.ignore_label}")
        classes = self.classes()
        num_classes = classes.num_classes if classes else 0
        if self.ignore_label < num_classes:
            raise ConfigError(f"{parameter('ignore_label')} {self.ignore_label} is a class index (there are {num_classes} classes)")

    def classes(self) -> ClassTable | None:
        """The class table the output indices refer to (Cityscapes' own, or background/foreground for binary
        masks unless a table is given)."""
        if self.format == "cityscapes":
            return cityscapes_table()
        if self.format == "binary" and self.table is None:
            return binary_table()
        if self.format == "ade20k":
            return ade20k_table()
        return self.table

    def convert(self, path: str) -> tuple[np.ndarray, dict[Colour, int]]:
        """Read ``path`` and convert it; unknown colours are only possible for rgb masks."""
        image = open_image(path)
        if self.format == "rgb":
            return rgb_to_index(_as_rgb(image, path), self.table, self.ignore_label)
        if self.format == "palette":
            return palette_to_index(_as_indices(image, path, "a palette mask"), self.ignore_label), {}
        if self.format == "ade20k":
            values = _as_indices(image, path, "an ADE20K annotation")
            if values.max(initial=0) > len(ADE20K_CLASS_NAMES):
                raise DataError(f"{path}: holds the value {values.max()}, above ADE20K's {len(ADE20K_CLASS_NAMES)} "
                                "classes (0 is 'other'): not an ADE20K scene-parsing annotation")
            return ade20k_to_index(values, self.ignore_label), {}
        if self.format == "binary":
            grey = image.convert("L") if image.mode == "1" else image
            return binary_to_index(_as_indices(grey, path, "a binary mask")), {}
        return cityscapes_to_train_ids(_as_indices(image, path, "a Cityscapes labelIds mask"), self.ignore_label), {}


class UnknownColours:
    """Unknown colours collected over many files: pixel count, first file and number of files each."""

    def __init__(self) -> None:
        self._found: dict[Colour, list] = {}

    def add(self, path: str, counts: dict[Colour, int]) -> None:
        for colour, count in counts.items():
            entry = self._found.setdefault(colour, [0, path, 0])
            entry[0] += count
            entry[2] += 1

    def __bool__(self) -> bool:
        return bool(self._found)

    def entries(self) -> list[tuple[Colour, int, str, int]]:
        """(colour, pixels, first file, files) per unknown colour, most frequent first."""
        rows = [(colour, pixels, first, files) for colour, (pixels, first, files) in self._found.items()]
        return sorted(rows, key=lambda row: (-row[1], row[0]))

    def message(self) -> str:
        """One line listing every unknown colour (the most frequent ones when there are very many)."""
        rows = self.entries()
        shown = [f"{colour} in {pixels} pixels ({files} file{'s' if files > 1 else ''}, e.g. {first})"
                 for colour, pixels, first, files in rows[:MAX_COLOURS_IN_MESSAGE]]
        text = f"{len(rows)} colour{'s' if len(rows) > 1 else ''} not in the class table: " + "; ".join(shown)
        if len(rows) > MAX_COLOURS_IN_MESSAGE:
            hidden = rows[MAX_COLOURS_IN_MESSAGE:]
            text += (f"; and {len(hidden)} more colours in {sum(r[1] for r in hidden)} pixels "
                     "(so many colours suggest lossy (JPEG) or anti-aliased masks)")
        return text + f". Add them to class_dict.csv, or map them to the ignore label with {parameter('unknown')} ignore"


@dataclass
class ConversionResult:
    """What a conversion run wrote and the unknown colours it met."""

    written: list[str] = field(default_factory=list)
    unknown: UnknownColours = field(default_factory=UnknownColours)


def convert_mask_files(
    jobs: Sequence[tuple[str, str]],
    converter: MaskConverter,
    workers: int = 1,
    progress: TextIO | None = None,
) -> ConversionResult:
    """Convert each ``(source, destination)`` pair with ``workers`` threads; a progress line on ``progress``.

    Refuses to write over any source. With ``converter.unknown == 'error'``, files holding unknown
    colours are not written and one DataError lists every unknown colour of the whole run at the end.
    """
    sources = {os.path.realpath(source) for source, _ in jobs}
    for _, destination in jobs:
        if os.path.realpath(destination) in sources:
            raise ConfigError(f"{destination}: refusing to overwrite an input mask (choose another output folder)")
    result = ConversionResult()
    bar = Progress(len(jobs), "converting masks", unit="files", stream=progress, silent=progress is None)

    def convert_one(job: tuple[str, str]) -> tuple[str, str, dict[Colour, int]]:
        source, destination = job
        index, unknown = converter.convert(source)
        if not (unknown and converter.unknown == "error"):
            save_index_mask(destination, index)
        return source, destination, unknown

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for source, destination, unknown in pool.map(convert_one, jobs):
            result.unknown.add(source, unknown)
            if not (unknown and converter.unknown == "error"):
                result.written.append(destination)
            bar.update()
    bar.close()
    if result.unknown:
        if converter.unknown == "error":
            raise DataError(result.unknown.message())
        _LOG.warning("mapped to the ignore label %d: %s", converter.ignore_label, result.unknown.message())
    return result



# --- helpers -------------------------------------------------------------------------------------------

def _colour_keys(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb, dtype=np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _key_colour(key: int) -> Colour:
    key = int(key)
    return (key >> 16) & 255, (key >> 8) & 255, key & 255


def _as_rgb(image: Image.Image, path: str) -> np.ndarray:
    if image.mode in ("L", "I", "I;16", "F", "1"):
        raise DataError(f"{path}: a single-channel ({image.mode}) image, not an RGB colour mask; "
                        f"if it already holds class indices it needs no conversion, else try {parameter('format')} palette or "
                        "cityscapes")
    return np.asarray(image.convert("RGB"))


def _as_indices(image: Image.Image, path: str, what: str) -> np.ndarray:
    if image.mode not in ("P", "L"):
        hint = f" (colour masks need {parameter('format')} rgb and {parameter('class_dict')})" if image.mode in ("RGB", "RGBA") else ""
        raise DataError(f"{path}: expected {what} (8-bit palette or grey), got a {image.mode} image{hint}")
    return np.asarray(image)


def _save_png(path: str, image: Image.Image) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = os.path.join(os.path.dirname(os.path.abspath(path)), temporary_name(os.path.basename(path)))
    try:
        image.save(temporary, format="PNG")
        os.replace(temporary, path)
    except OSError as error:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise DataError(f"{path}: cannot write the mask ({error.strerror or error})") from None
