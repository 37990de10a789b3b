"""The best and worst images of an evaluation by their own mean IoU, kept as small thumbnails.

An image's mean IoU is that of its own confusion matrix: the mean over the classes present in its ground
truth or its prediction, counting only pixels labelled ``0 .. num_classes-1``. An image without such a
pixel is not ranked. Two bounded heaps hold the ``size`` worst and ``size`` best images, so memory stays
at ``2 * size`` thumbnails whatever the data set; thumbnails are made only for images that enter a heap.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from refinenet_tf.data.images import display_rgb
from refinenet_tf.evaluate.metrics import ConfusionMatrix
from refinenet_tf.palette import colourise

THUMBNAIL_SIDE = 160  # longest side of a thumbnail, pixels (smaller images are kept at their size)
ERROR_COLOURS = {"correct": (235, 235, 235), "wrong": (215, 25, 28), "not scored": (0, 0, 0)}


@dataclass(frozen=True)
class GalleryImage:
    """One ranked image: its path, mean IoU, position in the list, and uint8 RGB thumbnails."""

    path: str
    mean_iou: float
    order: int
    image: np.ndarray
    truth: np.ndarray
    prediction: np.ndarray
    errors: np.ndarray


def image_mean_iou(labels: np.ndarray, predictions: np.ndarray, num_classes: int,
                   unknown_label: int | None = None) -> float:
    """Mean IoU of one image over the classes in its ground truth or prediction (NaN: nothing scored); predictions
    of ``unknown_label`` are misses."""
    confusion = ConfusionMatrix(num_classes, unknown_label=unknown_label)
    confusion.update(labels, predictions)
    return confusion.mean_iou()


def error_map(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """An RGB picture of where the prediction is right, wrong, or not scored (labels outside the classes)."""
    scored = (labels >= 0) & (labels < num_classes)
    picture = np.empty((*labels.shape, 3), np.uint8)
    picture[:] = ERROR_COLOURS["not scored"]
    picture[scored & (labels == predictions)] = ERROR_COLOURS["correct"]
    picture[scored & (labels != predictions)] = ERROR_COLOURS["wrong"]
    return picture


class _Smallest:
    """The ``size`` items with the smallest keys seen so far (a bounded max-heap of negated keys)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._heap: list[tuple[tuple, GalleryImage]] = []

    def wants(self, key: tuple) -> bool:
        if len(self._heap) < self.size:
            return True
        return key < tuple(-part for part in self._heap[0][0])

    def push(self, key: tuple, item: GalleryImage) -> None:
        entry = (tuple(-part for part in key), item)
        if len(self._heap) < self.size:
            heapq.heappush(self._heap, entry)
        else:
            heapq.heapreplace(self._heap, entry)

    def items(self) -> list[GalleryImage]:
        return [item for _, item in sorted(self._heap, reverse=True)]


class Gallery:
    """Ranks evaluated images by their mean IoU and keeps thumbnails of the ``size`` worst and best; predictions of
    ``unknown_label`` (no class) are misses, painted in the void colour."""

    def __init__(self, size: int, palette: np.ndarray, unknown_label: int | None = None) -> None:
        self.palette = np.asarray(palette, np.uint8)
        self.num_classes = len(self.palette)
        self.unknown_label = unknown_label
        self._worst = _Smallest(size)  # key (mean IoU, order)
        self._best = _Smallest(size)  # key (-mean IoU, order)
        self.count = 0  # images seen

    def add(self, path: str, image_rgb: np.ndarray, labels: np.ndarray, predictions: np.ndarray) -> float:
        """Rank one image (uint8 HxWx3, HxW labels and predictions); returns its mean IoU."""
        order, self.count = self.count, self.count + 1
        score = image_mean_iou(labels, predictions, self.num_classes, self.unknown_label)
        if math.isnan(score):
            return score
        worst, best = (score, order), (-score, order)
        wanted = [heap for heap, key in ((self._worst, worst), (self._best, best)) if heap.wants(key)]
        if wanted:
            item = GalleryImage(path, score, order, _thumbnail(display_rgb(image_rgb), Image.BILINEAR),
                                _thumbnail(colourise(labels, self.palette), Image.NEAREST),
                                _thumbnail(colourise(predictions, self.palette, self.unknown_label), Image.NEAREST),
                                _thumbnail(error_map(labels, predictions, self.num_classes), Image.NEAREST))
            for heap in wanted:
                heap.push(worst if heap is self._worst else best, item)
        return score

    def worst(self) -> list[GalleryImage]:
        """The lowest-scoring images, worst first (ties: list order)."""
        return self._worst.items()

    def best(self) -> list[GalleryImage]:
        """The highest-scoring images, best first (ties: list order)."""
        return self._best.items()


def _thumbnail(picture: np.ndarray, resample: int) -> np.ndarray:
    height, width = picture.shape[:2]
    factor = THUMBNAIL_SIDE / max(height, width)
    if factor >= 1:
        return np.ascontiguousarray(picture, dtype=np.uint8)
    size = (max(round(width * factor), 1), max(round(height * factor), 1))
    return np.asarray(Image.fromarray(picture.astype(np.uint8)).resize(size, resample))
