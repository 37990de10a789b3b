"""Dataset-level segmentation scores from a confusion matrix, plus Cityscapes-style instance IoU.

Rows of the confusion matrix are ground-truth classes, columns predicted classes. Only pixels whose
label lies in ``0 .. num_classes-1`` are counted, so the ignore label (255) and any other out-of-range
value carry no weight. A class that appears neither in the ground truth nor in the predictions has no
defined score: it is NaN ("n/a") and left out of every mean.

Predictions may leave pixels *unknown* (``--min-confidence``): a matrix made with an ``unknown_label`` counts them
per ground-truth class beside the matrix. They are misses: a false negative of their true class (in IoU, recall,
F1 and pixel accuracy) and a false positive of none. ``coverage`` is the share of counted pixels that got a class,
``accuracy_covered`` the pixel accuracy on those.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from refinenet_tf.errors import ConfigError, DataError


def _check_num_classes(num_classes: int) -> int:
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
    return int(num_classes)


def _valid_pixels(labels, predictions, num_classes: int, unknown_label: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flattened int64 labels and predictions, and the mask of pixels that count (predictions are classes, or
    ``unknown_label``)."""
    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    if labels.shape != predictions.shape:
        raise DataError(f"labels have shape {labels.shape} but predictions {predictions.shape}: they must match")
    labels = labels.reshape(-1).astype(np.int64)
    predictions = predictions.reshape(-1).astype(np.int64)
    valid = (labels >= 0) & (labels < num_classes)
    counted = predictions[valid]
    if unknown_label is not None:
        counted = counted[counted != unknown_label]
    if counted.size and (counted.min() < 0 or counted.max() >= num_classes):
        bad = counted[(counted < 0) | (counted >= num_classes)][0]
        raise DataError(f"prediction value {bad} is outside the {num_classes} classes (0..{num_classes - 1})")
    return labels, predictions, valid


def _nan_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _nan_mean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")


@dataclass
class Scores:
    """Every score of one evaluation; per-class arrays hold NaN where a class is n/a."""

    class_iou: np.ndarray
    class_accuracy: np.ndarray
    mean_iou: float
    pixel_accuracy: float
    mean_class_accuracy: float
    frequency_weighted_iou: float
    confusion: np.ndarray
    class_niou: np.ndarray | None = None
    mean_niou: float | None = None
    class_precision: np.ndarray | None = None
    class_f1: np.ndarray | None = None
    mean_precision: float | None = None
    mean_f1: float | None = None
    coverage: float | None = None  # with unknown pixels: the share of counted pixels that got a class
    accuracy_covered: float | None = None  # with unknown pixels: the pixel accuracy on those that got a class
    class_unknown: np.ndarray | None = None  # with unknown pixels: their count per ground-truth class

    @property
    def num_classes(self) -> int:
        return len(self.class_iou)


class ConfusionMatrix:
    """Accumulates a ``num_classes x num_classes`` pixel confusion matrix over a dataset; with an ``unknown_label``
    also the pixels predicted as that value (no class), per ground-truth class."""

    def __init__(self, num_classes: int, matrix: np.ndarray | None = None, unknown_label: int | None = None):
        self.num_classes = _check_num_classes(num_classes)
        if matrix is None:
            matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        matrix = np.asarray(matrix, dtype=np.int64)
        if matrix.shape != (self.num_classes, self.num_classes):
            raise DataError(f"confusion matrix has shape {matrix.shape}, expected {(self.num_classes,) * 2}")
        self.matrix = matrix.copy()
        self.unknown_label = unknown_label
        self.unknown = np.zeros(self.num_classes, np.int64)

    def update(self, labels, predictions) -> None:
        """Count one image (or batch): ``labels`` and ``predictions`` are integer arrays of one shape."""
        labels, predictions, valid = _valid_pixels(labels, predictions, self.num_classes, self.unknown_label)
        if self.unknown_label is not None:
            missed = valid & (predictions == self.unknown_label)
            self.unknown += np.bincount(labels[missed], minlength=self.num_classes)
            valid &= ~missed
        cells = labels[valid] * self.num_classes + predictions[valid]
        counts = np.bincount(cells, minlength=self.num_classes**2)
        self.matrix += counts.reshape(self.num_classes, self.num_classes)

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another matrix's counts into this one (in place); returns self."""
        if other.num_classes != self.num_classes:
            raise ConfigError(f"cannot merge confusion matrices of {other.num_classes} and {self.num_classes} classes")
        self.matrix += other.matrix
        self.unknown += other.unknown
        return self

    def __add__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        return ConfusionMatrix(self.num_classes, unknown_label=self.unknown_label).merge(self).merge(other)

    def __iadd__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        return self.merge(other)

    @property
    def total(self) -> int:
        """Number of pixels counted, unknown ones included."""
        return int(self.matrix.sum() + self.unknown.sum())

    def true_positives(self) -> np.ndarray:
        return np.diag(self.matrix).astype(np.int64)

    def ground_truth_counts(self) -> np.ndarray:
        """Pixels of each class in the ground truth (row sums, and those left unknown)."""
        return self.matrix.sum(axis=1) + self.unknown

    def predicted_counts(self) -> np.ndarray:
        """Pixels predicted as each class (column sums)."""
        return self.matrix.sum(axis=0)

    def false_positives(self) -> np.ndarray:
        return self.predicted_counts() - self.true_positives()

    def class_iou(self) -> np.ndarray:
        """TP / (TP + FP + FN) per class; NaN for a class absent from ground truth and predictions."""
        union = self.ground_truth_counts() + self.predicted_counts() - self.true_positives()
        return _nan_divide(self.true_positives(), union)

    def class_accuracy(self) -> np.ndarray:
        """Recall TP / (TP + FN) per class; NaN for a class absent from the ground truth."""
        return _nan_divide(self.true_positives(), self.ground_truth_counts())

    def class_precision(self) -> np.ndarray:
        """TP / (TP + FP) per class; NaN for a class never predicted."""
        return _nan_divide(self.true_positives(), self.predicted_counts())

    def class_f1(self) -> np.ndarray:
        """F1, the Dice coefficient: 2 TP / (2 TP + FP + FN) per class, the harmonic mean of precision and recall
        (0 for a class in the ground truth that is never predicted); NaN for a class absent from both."""
        return _nan_divide(2 * self.true_positives(), self.ground_truth_counts() + self.predicted_counts())

    def mean_iou(self) -> float:
        return _nan_mean(self.class_iou())

    def pixel_accuracy(self) -> float:
        return float(_nan_divide(self.true_positives().sum(), self.total))

    def mean_class_accuracy(self) -> float:
        return _nan_mean(self.class_accuracy())

    def coverage(self) -> float:
        """The share of counted pixels predicted as a class (not unknown)."""
        return float(_nan_divide(self.matrix.sum(), self.total))

    def accuracy_covered(self) -> float:
        """Pixel accuracy on the pixels predicted as a class."""
        return float(_nan_divide(self.true_positives().sum(), self.matrix.sum()))

    def frequency_weighted_iou(self) -> float:
        """Per-class IoU weighted by the class's share of ground-truth pixels."""
        if self.total == 0:
            return float("nan")
        frequency = self.ground_truth_counts() / self.total
        present = frequency > 0
        return float((frequency[present] * self.class_iou()[present]).sum())

    def scores(self, instances: InstanceStats | None = None) -> Scores:
        """All scores at once; with ``instances`` also the per-class and mean nIoU."""
        class_niou = instances.class_niou(self) if instances is not None else None
        unknown = self.unknown_label is not None
        return Scores(
            class_iou=self.class_iou(),
            class_accuracy=self.class_accuracy(),
            mean_iou=self.mean_iou(),
            pixel_accuracy=self.pixel_accuracy(),
            mean_class_accuracy=self.mean_class_accuracy(),
            frequency_weighted_iou=self.frequency_weighted_iou(),
            confusion=self.matrix.copy(),
            class_niou=class_niou,
            mean_niou=_nan_mean(class_niou) if class_niou is not None else None,
            class_precision=self.class_precision(),
            class_f1=self.class_f1(),
            mean_precision=_nan_mean(self.class_precision()),
            mean_f1=_nan_mean(self.class_f1()),
            coverage=self.coverage() if unknown else None,
            accuracy_covered=self.accuracy_covered() if unknown else None,
            class_unknown=self.unknown.copy() if unknown else None,
        )


class InstanceStats:
    """Instance-normalised IoU (Cityscapes' iIoU, also called nIoU) for "thing" classes.

    Large objects dominate plain IoU. Here every ground-truth pixel that belongs to an instance of a
    thing class has its true-positive or false-negative count scaled by
    ``average instance size of its class / size of its instance``, so each object weighs about the
    same whatever its size. False positives stay unweighted (they belong to no ground-truth
    instance): ``iIoU = wTP / (wTP + FP + wFN)``.

    Instance masks hold one id per pixel; id 0 means "no instance" (stuff, or a crowd region) and
    such pixels take no part in the weighted counts. Ids only need to be unique within one class of
    one image. The average sizes are those of all instances seen by :meth:`update` unless given. Predictions of
    ``unknown_label`` (no class) are misses.
    """

    def __init__(self, num_classes: int, thing_classes: Iterable[int],
                 average_sizes: Mapping[int, float] | None = None, unknown_label: int | None = None):
        self.num_classes = _check_num_classes(num_classes)
        self.unknown_label = unknown_label
        self.thing_classes = sorted({int(c) for c in thing_classes})
        outside = [c for c in self.thing_classes if not 0 <= c < self.num_classes]
        if outside:
            raise ConfigError(f"thing classes {outside} are outside 0..{self.num_classes - 1}")
        self.given_average_sizes = dict(average_sizes) if average_sizes is not None else None
        # one entry per ground-truth instance seen: its class, pixel count, correctly predicted pixels
        self._classes: list[np.ndarray] = []
        self._sizes: list[np.ndarray] = []
        self._hits: list[np.ndarray] = []

    def update(self, labels, predictions, instances) -> None:
        """Record the instances of one image: labels, predictions and instance ids of one shape."""
        labels, predictions, valid = _valid_pixels(labels, predictions, self.num_classes, self.unknown_label)
        instances = np.asarray(instances)
        if instances.size != labels.size:
            raise DataError(f"instance mask has {instances.size} pixels but labels {labels.size}")
        instances = instances.reshape(-1).astype(np.int64)
        counted = valid & (instances > 0) & np.isin(labels, self.thing_classes)
        stride = int(instances[counted].max(initial=0)) + 1
        unique_keys, index = np.unique(labels[counted] * stride + instances[counted], return_inverse=True)
        hits = (predictions[counted] == labels[counted]).astype(np.int64)
        self._classes.append(unique_keys // stride)
        self._sizes.append(np.bincount(index, minlength=unique_keys.size))
        self._hits.append(np.bincount(index, weights=hits, minlength=unique_keys.size).astype(np.int64))

    def merge(self, other: InstanceStats) -> InstanceStats:
        """Add another accumulator's instances into this one (in place); returns self."""
        if other.num_classes != self.num_classes or other.thing_classes != self.thing_classes:
            raise ConfigError("cannot merge instance statistics with different classes")
        self._classes += other._classes
        self._sizes += other._sizes
        self._hits += other._hits
        return self

    def _records(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self._classes:
            empty = np.zeros(0, np.int64)
            return empty, empty, empty
        return np.concatenate(self._classes), np.concatenate(self._sizes), np.concatenate(self._hits)

    def average_sizes(self) -> dict[int, float]:
        """Mean instance size per thing class: the given values, else over the instances seen."""
        if self.given_average_sizes is not None:
            return {c: float(self.given_average_sizes[c]) for c in self.thing_classes if c in self.given_average_sizes}
        classes, sizes, _ = self._records()
        return {c: float(sizes[classes == c].mean()) for c in self.thing_classes if np.any(classes == c)}

    def weighted_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Weighted true positives and false negatives per class (zero outside the thing classes)."""
        classes, sizes, hits = self._records()
        averages = self.average_sizes()
        missing = sorted({int(c) for c in classes} - set(averages))
        if missing:
            raise ConfigError(f"no average instance size given for classes {missing}")
        weights = np.array([averages[int(c)] for c in classes], dtype=np.float64) / np.maximum(sizes, 1)
        true_positive = np.bincount(classes, weights=weights * hits, minlength=self.num_classes)
        false_negative = np.bincount(classes, weights=weights * (sizes - hits), minlength=self.num_classes)
        return true_positive, false_negative

    def class_niou(self, confusion: ConfusionMatrix) -> np.ndarray:
        """Per-class iIoU; NaN for stuff classes and for thing classes with nothing to score."""
        if confusion.num_classes != self.num_classes:
            raise ConfigError(f"confusion matrix has {confusion.num_classes} classes, instance stats {self.num_classes}")
        true_positive, false_negative = self.weighted_counts()
        niou = np.full(self.num_classes, np.nan)
        things = np.asarray(self.thing_classes, dtype=np.int64)
        if things.size:
            false_positive = confusion.false_positives()[things]
            niou[things] = _nan_divide(true_positive[things],
                                       true_positive[things] + false_positive + false_negative[things])
        return niou
