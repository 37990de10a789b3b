"""Class weights for imbalanced data: the training masks' pixel counts (cached beside the snapshots), the
inverse- and median-frequency formulas, and weight files that name the classes."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from refinenet_tf.data.images import check_labels, load_mask
from refinenet_tf.data.listfile import Sample, read_list_file
from refinenet_tf.defaults import CLASS_FREQUENCIES_FILE
from refinenet_tf.errors import ConfigError, DataError, parameter
from refinenet_tf.files import write_text_atomically

NO_WEIGHTS = "none"
_LOG = logging.getLogger(__name__)
_LISTED_NAMES = 8  # class names quoted in an error message


def inverse_frequency(frequencies: np.ndarray) -> np.ndarray:
    """``w_c = 1 / f_c``, scaled so that the pixel-weighted mean weight ``sum_c f_c w_c`` is 1: ``1 / (C f_c)``.

    The loss is a weighted mean, so the scale does not change training; this one keeps the numbers readable:
    over the training pixels the weights average 1, as plain cross-entropy's do, and a weight above 1 means the
    class counts more than there, below 1 less. ``frequencies`` are the shares of the ``C`` classes that occur.
    """
    return 1.0 / (len(frequencies) * frequencies)


def median_frequency(frequencies: np.ndarray) -> np.ndarray:
    """Median-frequency balancing (Eigen & Fergus, 2015): ``w_c = median(f) / f_c``; the median class weighs 1.

    ``f_c`` is the class's share of all labelled pixels (Eigen & Fergus divide by the pixels of the images where
    the class occurs instead, which only changes how strongly classes that cluster in few images are lifted).
    """
    return np.median(frequencies) / frequencies


METHODS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"inverse-frequency": inverse_frequency,
                                                         "median-frequency": median_frequency}


def check_choice(choice: str | os.PathLike | None) -> str | None:
    """A ``class_weights`` value checked: None for equal weights (None or 'none'), a method, or a weights file."""
    if choice is None or choice == NO_WEIGHTS:
        return None
    if not isinstance(choice, (str, os.PathLike)):
        raise ConfigError(f"{parameter('class_weights')} must be a method name or a file path, got {choice!r}")
    choice = os.fspath(choice)
    if choice in METHODS or os.path.isfile(choice):
        return choice
    raise ConfigError(f"{parameter('class_weights')} is {NO_WEIGHTS}, {', '.join(METHODS)} or a weights file "
                      f"(CSV name,weight rows or JSON {{\"name\": weight}}); {choice} is neither a method nor a file")


@dataclass(frozen=True)
class ClassWeights:
    """Every class's weight, where it came from (a method or a file) and the pixel counts behind a method."""

    source: str
    weights: tuple[float, ...]
    pixels: tuple[int, ...] | None = None

    def table(self, names: Sequence[str]) -> list[str]:
        """The lines of a table: class name, pixels and frequency (when counted), weight."""
        width = max(len("class"), *(len(name) for name in names))
        if self.pixels is None:
            return [f"{'class':<{width}}  {'weight':>9}"] + [
                f"{name:<{width}}  {weight:>9.4g}" for name, weight in zip(names, self.weights, strict=True)]
        total = sum(self.pixels)
        return [f"{'class':<{width}}  {'pixels':>12}  {'frequency':>9}  {'weight':>9}"] + [
            f"{name:<{width}}  {count:>12}  {count / total:>9.3%}  {weight:>9.4g}"
            for name, count, weight in zip(names, self.pixels, self.weights, strict=True)]


def resolve_class_weights(choice: str | None, names: Sequence[str], ignore_label: int, data_dir: str,
                          data_list: str, snapshot_dir: str, skip_bad: bool = False) -> ClassWeights | None:
    """The weights ``choice`` (see :func:`check_choice`) gives the classes ``names``; None for equal weights.

    A method counts the pixels of the list's masks (:func:`class_pixels`); a file is read with
    :func:`read_weights_file`.
    """
    if choice is None:
        return None
    if choice not in METHODS:
        return ClassWeights(choice, tuple(float(w) for w in read_weights_file(choice, names)))
    pixels = class_pixels(snapshot_dir, data_dir, data_list, len(names), ignore_label, skip_bad)
    weights = weights_from_pixels(choice, pixels, names, data_list)
    return ClassWeights(choice, tuple(float(w) for w in weights), tuple(int(count) for count in pixels))


def weights_from_pixels(method: str, pixels: np.ndarray, names: Sequence[str], source: str) -> np.ndarray:
    """The weights of ``method`` for classes with these pixel counts (counted in ``source``).

    A class without a pixel carries no loss in this run, whatever its weight; it gets the largest weight of
    the classes that occur (it is rarer than all of them), with a one-line warning.
    """
    total = int(np.sum(pixels))
    if total == 0:
        raise DataError(f"{source}: the masks hold no labelled pixel (all are the ignore label), so "
                        f"{parameter('class_weights')} {method} has no class frequencies; check the masks and "
                        f"{parameter('ignore_label')}, or give the weights in a file")
    present = np.asarray(pixels) > 0
    weights = np.zeros(len(pixels))
    weights[present] = METHODS[method](np.asarray(pixels, np.float64)[present] / total)
    absent = np.flatnonzero(~present)
    if absent.size:
        weights[absent] = weights[present].max()
        listed = ", ".join(f"{names[index]!r} ({index})" for index in absent)
        _LOG.warning("class weights: %s never occur in the masks of %s; they carry no loss here and get the "
                     "largest weight, %.4g (check the class count and the data list, or give the weights in "
                     "a file)", listed, source, weights[present].max())
    return weights


def count_class_pixels(samples: Sequence[Sample], num_classes: int, ignore_label: int,
                       skip_bad: bool = False) -> np.ndarray:
    """Labelled pixels per class in the samples' masks, read and checked as training reads them (the ignore label
    is not counted); with ``skip_bad`` an unusable mask is left out with a warning instead of stopping."""
    counts = np.zeros(num_classes, np.int64)
    skipped = []
    for sample in samples:
        try:
            mask = load_mask(sample.mask_path)
            check_labels(mask, num_classes, ignore_label, sample.mask_path)
        except DataError as error:
            if not skip_bad:
                raise
            skipped.append(str(error))
            continue
        counts += np.bincount(mask.ravel(), minlength=256)[:num_classes]
    if skipped:
        _LOG.warning("class frequencies: %d unusable masks left out, the first: %s", len(skipped), skipped[0])
    return counts


def class_pixels(snapshot_dir: str, data_dir: str, data_list: str, num_classes: int, ignore_label: int,
                 skip_bad: bool = False) -> np.ndarray:
    """:func:`count_class_pixels` over a list file's masks, cached in ``snapshot_dir/class_frequencies.json``.

    The cache holds the list file's path, size and modification time, the data folder, class count and ignore
    label; when any differs the masks are counted again (delete the file after editing masks in place).
    """
    path = os.path.join(snapshot_dir, CLASS_FREQUENCIES_FILE)
    key = _cache_key(data_dir, data_list, num_classes, ignore_label)
    cached = _read_cache(path)
    if cached.get("key") == key:
        return np.asarray(cached["pixels"], np.int64)
    samples = read_list_file(data_dir, data_list)
    _LOG.info("counting the class pixels of %d masks in %s", len(samples), data_list)
    pixels = count_class_pixels(samples, num_classes, ignore_label, skip_bad)
    total = max(int(pixels.sum()), 1)
    os.makedirs(snapshot_dir, exist_ok=True)
    write_text_atomically(path, json.dumps({"key": key, "pixels": pixels.tolist(),
                                            "frequencies": (pixels / total).tolist()}, indent=2) + "\n")
    return pixels


def _cache_key(data_dir: str, data_list: str, num_classes: int, ignore_label: int) -> dict:
    status = os.stat(data_list)
    return {"data_list": os.path.abspath(data_list), "list_size": status.st_size, "list_mtime_ns": status.st_mtime_ns,
            "data_dir": os.path.abspath(data_dir), "num_classes": num_classes, "ignore_label": ignore_label}


def _read_cache(path: str) -> dict:
    """The cache file's content, or {} when it is missing or unreadable (the masks are counted again)."""
    try:
        with open(path, encoding="utf-8") as stream:
            cached = json.load(stream)
    except (OSError, ValueError):
        return {}
    return cached if isinstance(cached, dict) and isinstance(cached.get("pixels"), list) else {}


def read_weights_file(path: str, names: Sequence[str]) -> np.ndarray:
    """A weights file's weights in the order of the model's classes ``names``.

    CSV: ``name,weight`` rows (an optional ``name,weight`` header); JSON (``.json``): ``{"name": weight, ...}``.
    Every class of the model is named exactly once, in any order; weights are finite numbers >= 0, not all 0,
    and are used as given (no normalisation).
    """
    entries = _json_entries(path) if path.lower().endswith(".json") else _csv_entries(path)
    weights: dict[str, float] = {}
    for name, value, where in entries:
        if name not in names:
            raise DataError(f"{where}: {name!r} is not a class of the model (its classes: {_listed(names)})")
        if name in weights:
            raise DataError(f"{where}: class {name!r} is given twice")
        weights[name] = _weight(value, name, where)
    missing = next((index for index, name in enumerate(names) if name not in weights), None)
    if missing is not None:
        raise DataError(f"{path}: no weight for class {names[missing]!r} (class {missing}); the file needs one for "
                        f"each of the model's classes: {_listed(names)}")
    if not any(weights.values()):
        raise DataError(f"{path}: every weight is 0, so no pixel would carry a loss")
    return np.array([weights[name] for name in names])


def _csv_entries(path: str) -> list[tuple[str, object, str]]:
    rows = []
    for number, row in enumerate(csv.reader(_read_text(path).splitlines()), start=1):
        fields = [field.strip() for field in row]
        if not any(fields) or fields[0].startswith("#"):
            continue
        where = f"{path}:{number}"
        if len(fields) != 2:
            raise DataError(f"{where}: expected 'name,weight', got {','.join(row)!r}")
        if not rows and [field.lower() for field in fields] == ["name", "weight"]:
            continue  # header
        rows.append((fields[0], fields[1], where))
    return rows


class _JsonObject(list):
    """A JSON object's (key, value) pairs in file order, duplicates kept."""


def _json_entries(path: str) -> list[tuple[str, object, str]]:
    try:
        pairs = json.loads(_read_text(path), object_pairs_hook=_JsonObject)
    except ValueError as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(pairs, _JsonObject):
        raise DataError(f'{path}: expected a JSON object {{"class name": weight, ...}}, got {type(pairs).__name__}')
    return [(name, value, path) for name, value in pairs]


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8-sig") as stream:
            return stream.read()
    except FileNotFoundError:
        raise DataError(f"{path}: weights file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read the weights file ({error})") from None


def _weight(value: object, name: str, where: str) -> float:
    """A weight from a CSV field or a JSON number, refusing text, negative and non-finite values."""
    try:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError
        weight = float(value)
    except ValueError:
        raise DataError(f"{where}: the weight of {name!r} is {value!r}, not a number") from None
    if not math.isfinite(weight) or weight < 0:
        raise DataError(f"{where}: the weight of {name!r} is {value}; weights must be finite numbers >= 0")
    return weight


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_LISTED_NAMES])
    return shown if len(names) <= _LISTED_NAMES else f"{shown}, ... ({len(names)} classes)"
