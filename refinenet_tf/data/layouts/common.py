"""What every data set layout shares: pairing images with masks by file name, the conversion options, and
writing DeepLab list files and the class table."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np

from refinenet_tf.data.class_table import FILE_NAME as CLASS_DICT
from refinenet_tf.data.class_table import ClassTable, write_class_table
from refinenet_tf.data.images import open_image
from refinenet_tf.defaults import IGNORE_LABEL
from refinenet_tf.errors import ConfigError, DataError, parameter
from refinenet_tf.files import write_text_atomically

# suffixes that mask files often add to their image's stem (CamVid's "_L", ...)
MASK_STEM_SUFFIXES = ("_L", "_mask", "_label", "_labels", "_gt")

_LOG = logging.getLogger(__name__)
Pair = tuple[str, str | None]


@dataclass
class PreparedDataset:
    """What a ``prepare_*`` call wrote: pass ``data_dir`` as --data-dir and a list as --data-list."""

    name: str
    data_dir: str
    lists: dict[str, str]
    class_dict: str | None
    table: ClassTable | None
    counts: dict[str, int] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)


@dataclass
class Pairing:
    """Images and masks matched by file stem, and the files left without a partner."""

    pairs: list[tuple[str, str]]
    unmatched_images: list[str]
    unmatched_masks: list[str]

    @property
    def unmatched(self) -> list[str]:
        return sorted(self.unmatched_images + self.unmatched_masks)


@dataclass(frozen=True)
class ConversionOptions:
    """How masks are converted: ignore label, unknown-colour policy, threads and where progress goes (None: nowhere)."""

    ignore_label: int = IGNORE_LABEL
    unknown: str = "error"
    workers: int = 1
    progress: TextIO | None = field(default_factory=lambda: sys.stderr)


def pair_by_stem(images: Sequence[str], masks: Sequence[str]) -> Pairing:
    """Pair images and masks whose file names agree without extension (a mask may add ``_L``, ``_mask``...)."""
    image_by_stem = by_stem(images, "image")
    mask_by_stem = by_stem(masks, "mask")
    pairs: list[tuple[str, str]] = []
    paired_masks: set[str] = set()
    for stem, image in sorted(image_by_stem.items()):
        candidates = [stem] + [stem + suffix for suffix in MASK_STEM_SUFFIXES]
        mask = next((mask_by_stem[c] for c in candidates if c in mask_by_stem), None)
        if mask is not None:
            pairs.append((image, mask))
            paired_masks.add(mask)
    unmatched_images = sorted(set(images) - {image for image, _ in pairs})
    unmatched_masks = sorted(set(masks) - paired_masks)
    return Pairing(pairs, unmatched_images, unmatched_masks)


def read_json(path: str) -> object:
    """The parsed JSON file; a DataError names the file when it cannot be read or parsed."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except ValueError as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read the file ({error.strerror})") from None


def read_ids(path: str) -> list[str] | None:
    """The first word of each line of an image-set file (VOC's ImageSets), or None when there is no such file."""
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return [line.split()[0] for line in handle if line.strip()]


def check_val_fraction(val_fraction: float) -> None:
    """A ConfigError unless ``val_fraction`` (the share of pairs held out for validation) is in [0, 1)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"{parameter('val_fraction')} must be in [0, 1), got {val_fraction}")


def split_pairs(pairs: Sequence[Pair], val_fraction: float, seed: int) -> dict[str, list[Pair]]:
    """``train`` and, for ``val_fraction`` > 0, ``val``: a seeded random share of ``pairs`` held out, each sorted."""
    order = np.random.default_rng(seed).permutation(len(pairs))
    num_val = int(round(val_fraction * len(pairs)))
    splits = {"train": sorted(pairs[i] for i in order[num_val:])}
    if num_val:
        splits["val"] = sorted(pairs[i] for i in order[:num_val])
    return splits


def converted_pairs(pairs: Sequence[tuple[str, str]], output_folder: str) -> tuple[list[Pair], list[tuple[str, str]]]:
    """For (image, mask) ``pairs`` whose masks are converted into ``output_folder`` as ``<image stem>.png``: the list
    pairs (image, converted mask) and the conversion jobs (mask, converted mask)."""
    outputs = [os.path.join(output_folder, file_stem(image) + ".png") for image, _ in pairs]
    return ([(image, output) for (image, _), output in zip(pairs, outputs, strict=True)],
            [(mask, output) for (_, mask), output in zip(pairs, outputs, strict=True)])


def write_list(path: str, pairs: Sequence[Pair], data_dir: str) -> str:
    """Write DeepLab list lines ``/image /mask`` (or ``/image``) relative to ``data_dir``."""
    lines = [" ".join(relative(p, data_dir) for p in pair if p is not None) for pair in pairs]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_text_atomically(path, "".join(line + "\n" for line in lines))
    return path


def finish(name: str, lists_dir: str, splits: dict[str, list[Pair]], table: ClassTable | None,
            unmatched: list[str]) -> PreparedDataset:
    """Write the lists and class table, log the outcome and the unmatched files."""
    files = [path for pairs in splits.values() for pair in pairs for path in pair if path is not None]
    if not files:
        raise DataError(f"data set {name!r}: no image could be listed (unmatched: {len(unmatched)} files)")
    data_dir = os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in files])
    folder = os.path.join(lists_dir, name)
    lists = {split: write_list(os.path.join(folder, f"{split}.txt"), pairs, data_dir) for split, pairs in splits.items()}
    class_dict = write_class_table(os.path.join(folder, CLASS_DICT), table) if table is not None else None
    for path in unmatched:
        _LOG.warning("unmatched (no image or mask partner, not listed): %s", path)
    counts = {split: len(pairs) for split, pairs in splits.items()}
    _LOG.info("%s: wrote %s in %s; use --data-dir %s%s", name,
             ", ".join(f"{split}.txt ({count})" for split, count in counts.items()), folder, data_dir,
             f"; {len(unmatched)} unmatched files" if unmatched else "")
    return PreparedDataset(name, data_dir, lists, class_dict, table, counts, list(unmatched))


def file_stem(path: str) -> str:
    """The file name without folder and extension."""
    return os.path.splitext(os.path.basename(path))[0]


def base_name(path: str) -> str:
    """The last folder name of ``path`` (a data set's default name)."""
    return os.path.basename(os.path.normpath(os.path.abspath(path)))


def by_stem(paths: Sequence[str], what: str) -> dict[str, str]:
    """Each path by its file stem; two ``what`` files with one stem are a DataError (they cannot be paired)."""
    found: dict[str, str] = {}
    for path in paths:
        stem = file_stem(path)
        if stem in found:
            raise DataError(f"{path}: two {what} files share the stem {stem!r} (also {found[stem]}); cannot pair by name")
        found[stem] = path
    return found


def relative(path: str, data_dir: str) -> str:
    """``path`` as a list-file field: ``/``-prefixed and relative to ``data_dir``, without whitespace."""
    relative = "/" + os.path.relpath(os.path.abspath(path), data_dir).replace(os.sep, "/")
    if any(character.isspace() for character in relative):
        raise DataError(f"{path}: list files separate fields by spaces, so paths cannot contain whitespace")
    return relative


def refuse_output_inside_inputs(output_dir: str, inputs: Sequence[str]) -> None:
    """A ConfigError when ``output_dir`` is one of the ``inputs`` folders or inside one: inputs are never written."""
    output = os.path.realpath(output_dir)
    for folder in inputs:
        folder = os.path.realpath(folder)
        if os.path.commonpath([output, folder]) == folder:
            raise ConfigError(f"{output_dir}: the output folder must not be the input folder {folder} or inside it")


def guess_mask_format(mask: str, table: ClassTable | None) -> str:
    """``index``, ``palette`` or ``rgb`` by the mode of ``mask`` (colour masks need ``table``)."""
    mode = open_image(mask).mode
    if mode == "L":
        return "index"
    if mode == "P":
        return "palette"
    if table is not None:
        return "rgb"
    raise DataError(f"{mask}: a {mode} colour mask; colour masks need a class table (class_dict.csv)")
