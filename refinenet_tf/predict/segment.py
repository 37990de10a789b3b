"""Segment image files and write their outputs (``inference.py``): batches of same-size images, tiles for
large ones.

Images are grouped by size, groups in the order their first image comes; a batch never mixes sizes. A group
goes through the graph ``batch_size`` images at a time, or, when it is tiled (a ``tile`` size, or ``'auto'``
and too large for the memory budget), one image at a time with ``batch_size`` windows at a time. Each image
gets its index mask, coloured mask and overlay (:func:`~refinenet_tf.predict.outputs.save_prediction`), and
when asked its stride-4 logits and per-class probabilities (:mod:`~refinenet_tf.predict.probability_files`):
the network's softmax, or with a dense CRF the CRF's marginals, so that the index mask is always the argmax of
the probabilities written beside it (or their labels under the settings' ``rule``: a threshold, a minimum
confidence, see :mod:`~refinenet_tf.predict.decision`). The CRF runs once per image either way.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from refinenet_tf.data.images import image_size, load_model_image
from refinenet_tf.defaults import TILE_OVERLAP
from refinenet_tf.errors import ConfigError, parameter
from refinenet_tf.predict.crf import CRFParams, CRFPool, check_crf_applies
from refinenet_tf.predict.decision import LabelRule, labels_from_probabilities
from refinenet_tf.predict.outputs import image_stem, logits_path, save_logits, save_prediction
from refinenet_tf.predict.predictor import Prediction, Predictor
from refinenet_tf.predict.probability_files import PROBABILITY_FORMATS, save_probabilities
from refinenet_tf.predict.tiling import (
    LogitMap,
    argmax_into,
    check_overlap,
    check_tile_setting,
    crf_labels,
    crf_marginal_bands,
)

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentSettings:
    """How to segment and what to write besides the masks."""

    tile: tuple[int, int] | str | None = None  # None: whole images; 'auto': tile what would not fit
    tile_overlap: float = TILE_OVERLAP
    batch_size: int = 1  # images (or windows of a tiled image) through the graph at once
    crf: CRFParams | None = None
    save_logits: str | None = None  # PATH.npy, PATH_<stem>.npy when there are several images
    probability_format: str | None = None  # 'npy' or 'png'; None: no probability files
    rule: LabelRule | None = None  # labels by a threshold or a minimum confidence (predict.decision); None: argmax

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"{parameter('batch_size')} must be at least 1, got {self.batch_size}")
        check_tile_setting(self.tile)
        check_overlap(self.tile_overlap)
        if self.probability_format not in (None, *PROBABILITY_FORMATS):
            raise ConfigError(f"{parameter('probability_format')} must be one of {', '.join(PROBABILITY_FORMATS)}, "
                              f"got {self.probability_format!r}")
        if self.save_logits == "":
            raise ConfigError(f"{parameter('save_logits')} needs a file path")


class Segmented(NamedTuple):
    """One segmented image: its path, the files written (index mask first) and whether it was tiled."""

    path: str
    files: list[str]
    tiled: bool


def group_by_size(paths: Sequence[str]) -> list[list[str]]:
    """The paths grouped by image size (read from the file headers), each group in the given order."""
    groups: dict[tuple[int, int], list[str]] = {}
    for path in paths:
        groups.setdefault(image_size(path), []).append(path)
    return list(groups.values())


def segment_files(predictor: Predictor, paths: Sequence[str], save_dir: str,
                  settings: SegmentSettings = SegmentSettings()) -> Iterator[Segmented]:
    """Segment every image of ``paths`` into ``save_dir``, yielding each as it is written."""
    preprocessing = predictor.description.preprocessing
    groups = group_by_size(paths) if settings.batch_size > 1 else [[path] for path in paths]
    if settings.batch_size > 1 and len(groups) > 1:
        _LOG.info("%d images of %d sizes: a batch holds images of one size", len(paths), len(groups))
    with CRFPool(settings.crf, 1) if settings.crf else contextlib.nullcontext() as pool:
        segmenter = ImageSegmenter(predictor, save_dir, settings, pool, several=len(paths) > 1)
        for group in groups:
            tile = predictor.tile_for(image_size(group[0]), settings.tile)
            if tile is not None:
                for path in group:
                    yield segmenter.segment_tiled(path, load_model_image(path, preprocessing), tile)
                continue
            for start in range(0, len(group), settings.batch_size):
                chunk = group[start:start + settings.batch_size]
                images = [load_model_image(path, preprocessing) for path in chunk]
                for path, image, prediction in zip(chunk, images, predictor.predict_batch(np.stack(images),
                                                                                          segmenter.fields,
                                                                                          settings.rule),
                                                   strict=True):
                    yield segmenter.write_whole(path, image, prediction)


class ImageSegmenter:
    """The work on one loaded image: predict it (whole or in tiles, with the CRF ``pool`` if given) and write its
    files into ``save_dir``; :func:`segment_files` and the archive pipeline (:mod:`refinenet_tf.archive`) share it.
    ``several`` names the logits file by the image's stem, as for a run over several images."""

    def __init__(self, predictor: Predictor, save_dir: str, settings: SegmentSettings,
                 pool: CRFPool | None = None, several: bool = False):
        if settings.crf:
            check_crf_applies(predictor.description.preprocessing)
        self.predictor, self.settings, self.pool = predictor, settings, pool
        self.fields = ("labels", *(("probabilities",) if settings.crf or settings.probability_format else ()),
                       *(("logits_os",) if settings.save_logits else ()))
        self.writer = _Writer(predictor, save_dir, settings, several)

    def segment(self, path: str, image: np.ndarray) -> Segmented:
        """Segment the image read from ``path`` and write its files, tiled when the settings ask."""
        tile = self.predictor.tile_for(image.shape[:2], self.settings.tile)
        if tile is not None:
            return self.segment_tiled(path, image, tile)
        return self.write_whole(path, image, self.predictor.predict(image, self.fields, self.settings.rule))

    def segment_tiled(self, path: str, image: np.ndarray, tile: tuple[int, int]) -> Segmented:
        """Segment one image window by window and write its files."""
        logits = self.predictor.predict_tiled(image, tile, self.settings.tile_overlap, self.settings.batch_size)
        labels, bands = _tiled_outputs(logits, image, self.pool, bool(self.settings.probability_format),
                                       self.settings.rule, self.predictor.description.ignore_label)
        return Segmented(path, self.writer.write(path, image, labels, logits.logits, bands), True)

    def write_whole(self, path: str, image: np.ndarray, prediction: Prediction) -> Segmented:
        """Write the files of one image predicted whole (its ``prediction`` holds :attr:`fields`), after the CRF
        when there is one."""
        labels, probabilities = prediction.labels, prediction.probabilities
        if self.pool:
            probabilities = _crf_marginals_of_whole(self.pool, probabilities, image)
            labels = labels_from_probabilities(probabilities, self.settings.rule,
                                               self.predictor.description.ignore_label)
        return Segmented(path, self.writer.write(path, image, labels, prediction.logits_os,
                                                 [(0, probabilities)]), False)


def labels_of(predictor: Predictor, image: np.ndarray, tile=None, tile_overlap: float = TILE_OVERLAP,
              pool: CRFPool | None = None, rule: LabelRule | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """One image's labels, whole or in tiles (``tile`` as :meth:`Predictor.tile_for` takes it), and with a CRF
    ``pool`` also the dense CRF's labels (else None); both under ``rule`` when given."""
    ignore_label = predictor.description.ignore_label
    tile = predictor.tile_for(image.shape[:2], tile)
    if tile is not None:
        logits = predictor.predict_tiled(image, tile, tile_overlap)
        return (logits.labels(rule, ignore_label),
                crf_labels(logits, image, pool, rule, ignore_label) if pool else None)
    prediction = predictor.predict(image, ("labels", "probabilities") if pool else ("labels",), rule)
    if pool is None:
        return prediction.labels, None
    marginals = _crf_marginals_of_whole(pool, prediction.probabilities, image)
    return prediction.labels, labels_from_probabilities(marginals, rule, ignore_label)


def _crf_marginals_of_whole(pool: CRFPool, probabilities: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Dense-CRF marginals of a whole image from its softmax probabilities, float32 ``(H, W, C)``."""
    return next(pool.map([(probabilities, image)]))


def _tiled_outputs(logits: LogitMap, image: np.ndarray, pool: CRFPool | None, probabilities: bool,
                   rule: LabelRule | None, ignore_label: int
                   ) -> tuple[np.ndarray | None, Iterator[tuple[int, np.ndarray]]]:
    """A tiled image's labels (under ``rule``) and its probability bands, final ones (a CRF's marginals with
    ``pool``). With a CRF and ``probabilities`` the labels are None: the writer takes them from the bands, so the
    CRF runs once."""
    if pool is None:
        return logits.labels(rule, ignore_label), logits.probability_bands()
    if probabilities:
        return None, crf_marginal_bands(logits, image, pool)
    return crf_labels(logits, image, pool, rule, ignore_label), iter(())


class _Writer:
    """Writes one image's files as the settings ask."""

    def __init__(self, predictor: Predictor, save_dir: str, settings: SegmentSettings, several: bool):
        self.save_dir, self.settings, self.several = save_dir, settings, several
        self.names, self.palette = predictor.description.names(), predictor.description.palette()
        self.ignore_label = predictor.description.ignore_label
        self.void_label = self.ignore_label if settings.rule is not None and settings.rule.min_confidence is not None \
            else None  # unknown pixels are painted in the void colour

    def write(self, path: str, image: np.ndarray, labels: np.ndarray | None, logits: np.ndarray | None,
              probability_bands: Iterable[tuple[int, np.ndarray]]) -> list[str]:
        """Write one image's files and return their paths, the index mask first. ``probability_bands`` are read
        only for probability files; ``labels`` None (only with those) means their labels (argmax or the rule)."""
        stem = image_stem(path)
        probability_files = []
        if self.settings.probability_format:
            if labels is None:
                labels = np.empty(image.shape[:2], np.int32)
                probability_bands = argmax_into(labels, probability_bands, self.settings.rule, self.ignore_label)
            probability_files = save_probabilities(self.save_dir, stem, probability_bands, image.shape[:2],
                                                   self.names, self.settings.probability_format)
        written = save_prediction(self.save_dir, stem, labels, self.palette, image_rgb=image,
                                  void_label=self.void_label)
        if self.settings.save_logits:
            target = logits_path(self.settings.save_logits, stem if self.several else None)
            save_logits(target, logits)
            written.append(target)
        return written + probability_files
