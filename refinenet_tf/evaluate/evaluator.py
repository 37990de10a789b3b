"""Evaluate a checkpoint on a labeled list at full resolution: one dataset-level confusion matrix.

Images come from :func:`refinenet_tf.data.reader.eval_dataset` straight into the prediction graph
of :mod:`refinenet_tf.predict.predictor`. Only pixels with ``0 <= label < num_classes`` count. With
a CRF the softmax probabilities are refined by :class:`~refinenet_tf.predict.crf.CRFPool` and a
second matrix is kept, so plain and CRF scores come from the same forward passes. With a ``tile`` the reader
only decodes the images and the Predictor predicts them window by window (:mod:`refinenet_tf.predict.tiling`,
whose CRF works in bands of rows).

A :class:`~refinenet_tf.predict.decision.LabelRule` (``--threshold``, ``--min-confidence``) makes the labels from
the probabilities, everywhere: whole images, tiles and CRF marginals. With a minimum confidence the pixels left
unknown count as misses of their true class, and the scores add the coverage and the accuracy on covered pixels
(:mod:`refinenet_tf.evaluate.metrics`).

Instance-normalised IoU (nIoU) needs instance-id masks: an *instance list* holds one mask path per
line (relative to the data directory, like the data list), in the same order as the data list.
A mask is a single-channel 8- or 16-bit PNG of instance ids where 0 means "no instance"; ids only
need to be unique within a class of one image. The thing classes are given by index.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np
import tensorflow as tf
from PIL import Image

from refinenet_tf import checkpoints
from refinenet_tf.data.images import check_masks_hold_classes
from refinenet_tf.data.listfile import Sample, read_list_file
from refinenet_tf.data.reader import SkipCounter, eval_dataset, reader_errors
from refinenet_tf.defaults import TILE_OVERLAP
from refinenet_tf.description import ModelDescription
from refinenet_tf.errors import ConfigError, DataError, parameter
from refinenet_tf.evaluate.gallery import Gallery
from refinenet_tf.evaluate.metrics import ConfusionMatrix, InstanceStats, Scores
from refinenet_tf.evaluate.report import results_dict
from refinenet_tf.hardware import choose_precision
from refinenet_tf.predict.crf import CRFParams, CRFPool, check_crf_applies
from refinenet_tf.predict.decision import LabelRule, active, labels_from_probabilities
from refinenet_tf.predict.graph import SINGLE_SCALE, PredictOptions
from refinenet_tf.predict.inference_graph import INPUT, build_inference_graph
from refinenet_tf.predict.int8 import is_quantized
from refinenet_tf.predict.outputs import check_unique_stems, image_stem, save_prediction
from refinenet_tf.predict.predictor import Predictor
from refinenet_tf.predict.segment import labels_of
from refinenet_tf.predict.tiling import check_overlap, check_tile_setting
from refinenet_tf.progress import Progress
from refinenet_tf.sessions import new_session
from refinenet_tf.version import __version__

v1 = tf.compat.v1


@dataclass(frozen=True)
class InstanceMasks:
    """Instance-id masks for nIoU: image path -> mask path, and the thing classes."""

    paths: dict[str, str]
    thing_classes: tuple[int, ...]


@dataclass
class EvaluationResult:
    """Scores without (and with) the CRF, and what was evaluated."""

    checkpoint: str
    plain: Scores
    crf: Scores | None = None
    images: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    precision: str = "float32"  # what the network computed in
    gallery: Gallery | None = None  # the worst and best images of the final predictions (report_images > 0)
    tile: tuple[int, int] | str | None = None  # how images were tiled: a size, 'auto', or None (whole images)
    tile_overlap: float = TILE_OVERLAP
    rule: LabelRule | None = None  # how labels were made from the probabilities (None: argmax)


def read_instance_list(data_dir: str, list_path: str, samples: Sequence[Sample],
                       thing_classes: Sequence[int]) -> InstanceMasks:
    """Pair the lines of an instance list with the data list's samples, line by line."""
    masks = read_list_file(data_dir, list_path, require_masks=False)
    if len(masks) != len(samples):
        raise DataError(f"{list_path}: {len(masks)} instance masks listed for {len(samples)} images; "
                        "the instance list needs one line per data-list line, in the same order")
    if any(mask.mask_path is not None for mask in masks):
        raise DataError(f"{list_path}: expected one instance-mask path per line")
    if not thing_classes:
        raise DataError(f"{list_path}: nIoU needs the thing classes ({parameter('thing_classes')})")
    return InstanceMasks({sample.image_path: mask.image_path for sample, mask in zip(samples, masks, strict=True)},
                         tuple(int(c) for c in thing_classes))


def load_instance_mask(path: str, shape: tuple[int, ...]) -> np.ndarray:
    """An instance-id mask as int64, checked to be single-channel and of the label's size."""
    try:
        with Image.open(path) as image:
            ids = np.asarray(image, dtype=np.int64)
    except (OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{path}: cannot read the instance mask ({error})") from None
    if ids.ndim != 2:
        raise DataError(f"{path}: instance mask must be single-channel, got shape {ids.shape}")
    if ids.shape != tuple(shape):
        raise DataError(f"{path}: instance mask is {ids.shape[1]}x{ids.shape[0]} (width x height) "
                        f"but its label is {shape[1]}x{shape[0]}")
    return ids


class _Branch:
    """The scores of one kind of prediction (plain or CRF), and where its files go."""

    def __init__(self, description: ModelDescription, instances: InstanceMasks | None, save_suffix: str,
                 gallery: Gallery | None = None, unknown_label: int | None = None):
        self.confusion = ConfusionMatrix(description.num_classes, unknown_label=unknown_label)
        self.instances = (InstanceStats(description.num_classes, instances.thing_classes, unknown_label=unknown_label)
                          if instances else None)
        self.palette = description.palette()
        self.unknown_label = unknown_label
        self.save_suffix = save_suffix
        self.gallery = gallery

    def add(self, labels: np.ndarray, predictions: np.ndarray, instance_ids: np.ndarray | None) -> None:
        self.confusion.update(labels, predictions)
        if self.instances is not None:
            self.instances.update(labels, predictions, instance_ids)

    def scores(self) -> Scores:
        return self.confusion.scores(self.instances)


def evaluate(checkpoint: str, samples: Sequence[Sample], description: ModelDescription,
             options: PredictOptions = SINGLE_SCALE, crf: CRFParams | None = None, crf_workers: int = 1,
             save_dir: str | None = None, instances: InstanceMasks | None = None, on_bad_sample: str = "fail",
             threads: int | None = None, progress_stream: TextIO | None = None,
             precision: str = "float32", report_images: int = 0, tile=None,
             tile_overlap: float = TILE_OVERLAP, rule: LabelRule | None = None,
             calibration: str | Sequence[str] | None = None) -> EvaluationResult:
    """Score ``checkpoint`` on labeled ``samples``; with ``crf`` also after dense-CRF refinement.

    ``save_dir`` receives per image ``<stem>.png`` (index) and ``<stem>_colour.png`` (and
    ``<stem>_crf.png``, ``<stem>_crf_colour.png`` with the CRF). The network runs as the Predictor's frozen
    graph, in ``precision`` (float32, bfloat16 or auto), or in int8 in ONNX Runtime: a quantized model folder, or
    ``checkpoint`` quantized first on the ``calibration`` images (:class:`Predictor`). ``report_images`` k > 0 keeps thumbnails of the k worst
    and k best images by their own mean IoU (of the CRF's predictions when there are some) in ``gallery``.
    ``tile`` ((height, width) or 'auto') predicts in overlapping windows, ``tile_overlap`` of a tile shared.
    ``rule`` makes the labels from the probabilities (:mod:`refinenet_tf.predict.decision`).
    """
    tile = check_tile_setting(tile)
    if rule is not None:
        rule.check_classes(description.num_classes)
    ruled = active(rule)
    unknown_label = description.ignore_label if ruled and rule.min_confidence is not None else None
    check_overlap(tile_overlap)
    if crf is not None:
        check_crf_applies(description.preprocessing)
    if report_images < 0:
        raise ConfigError(f"{parameter('report_images')} must not be negative, got {report_images}")
    unlabeled = next((sample for sample in samples if sample.mask_path is None), None)
    if unlabeled is not None:
        raise DataError(f"{unlabeled.origin}: evaluation needs a mask for every image, this line has none")
    if samples:
        check_masks_hold_classes([sample.mask_path for sample in samples], description.ignore_label,
                                 samples[0].list_path)
    if save_dir is not None:
        check_unique_stems([sample.image_path for sample in samples])
    skips = SkipCounter()
    graph = tf.Graph()
    with graph.as_default():
        dataset = eval_dataset(samples, description.preprocessing, description.num_classes,
                               description.ignore_label, on_bad_sample, skips)
        iterator = v1.data.make_initializable_iterator(dataset)
        example = iterator.get_next()
        prefix = checkpoint if is_quantized(checkpoint) else checkpoints.resolve_checkpoint(checkpoint)
        precision = choose_precision("int8" if is_quantized(checkpoint) else precision).precision
        by_predictor = tile is not None or precision == "int8"  # int8 runs in the Predictor's ONNX Runtime session
        fetches = {"labels": example["label"][0], "path": example["path"]}
        load = None
        if not by_predictor:
            outputs, load = build_inference_graph(description, prefix, options, precision).import_into(
                {INPUT: example["raw"]})
            if not ruled:
                fetches["predictions"] = outputs["labels"]
            if crf is not None or ruled:
                fetches["probabilities"] = outputs["probabilities"]
        if by_predictor or crf is not None or report_images:
            fetches["image"] = example["raw"][0]
    gallery = Gallery(report_images, description.palette(), unknown_label) if report_images else None
    plain = _Branch(description, instances, "", gallery if crf is None else None, unknown_label)
    refined = _Branch(description, instances, "_crf", gallery, unknown_label) if crf is not None else None
    graph.finalize()
    predictor = Predictor(prefix, description, options, threads, precision, calibration) if by_predictor else None
    with new_session(graph, threads, inter_op_threads=threads) as session, predictor or contextlib.nullcontext():
        if load is not None:
            load(session)
        session.run(iterator.initializer)
        with Progress(len(samples), "evaluating", stream=progress_stream) as progress:
            fetched = _run_all(session, fetches)
            if ruled and predictor is None:
                fetched = _ruled(fetched, rule, description.ignore_label)
            if predictor is not None:
                with CRFPool(crf, crf_workers) if crf is not None else contextlib.nullcontext() as pool:
                    for example in _score_plain(_predicted(fetched, predictor, tile, tile_overlap, pool, rule), plain,
                                                instances, save_dir):
                        if refined is not None:
                            _add(refined, example, example["crf_predictions"], save_dir)
                        progress.update()
            elif refined is None:
                for _ in _score_plain(fetched, plain, instances, save_dir):
                    progress.update()
            else:
                examples = _score_plain(fetched, plain, instances, save_dir)
                with CRFPool(crf, crf_workers) as pool:
                    items = ((example, example["probabilities"], example["image"]) for example in examples)
                    for example, marginals in pool.map_tagged(items):
                        predictions = labels_from_probabilities(marginals, rule, description.ignore_label)
                        _add(refined, example, predictions, save_dir)
                        progress.update()
    if progress.count == 0:
        raise DataError(f"{samples[0].list_path}: no image could be evaluated")
    return EvaluationResult(prefix, plain.scores(), refined.scores() if refined else None, progress.count,
                            skips.reasons, precision, gallery, tile, tile_overlap, rule if ruled else None)


def evaluation_results(result: EvaluationResult, description: ModelDescription, options: PredictOptions,
                       data_list: str, crf: CRFParams | None = None) -> dict:
    """What ``results.json`` holds: scores per class and overall, the confusion matrix and how they were made
    (with the CRF, the plain and CRF scores side by side)."""
    names = description.names()
    metadata = {"refinenet_tf_version": __version__, "checkpoint": result.checkpoint, "data_list": data_list,
                "images": result.images,
                "skipped": result.skipped, "scales": list(options.scales), "fusion": options.fusion,
                "flip": options.flip, "precision": result.precision}
    if result.tile is not None:
        metadata.update(tile=result.tile if isinstance(result.tile, str) else list(result.tile),
                        tile_overlap=result.tile_overlap)
    if result.rule is not None:
        metadata.update(result.rule.settings())
    if result.crf is None:
        return results_dict(result.plain, names, metadata)
    return {"plain": results_dict(result.plain, names), "crf": results_dict(result.crf, names),
            "metadata": {**metadata, "crf": dataclasses.asdict(crf)}}


def _run_all(session: v1.Session, fetches: dict) -> Iterator[dict]:
    """One fetched dict per image until the dataset is exhausted; reader failures become DataError."""
    while True:
        try:
            with reader_errors():
                example = session.run(fetches)
        except tf.errors.OutOfRangeError:
            return
        example["path"] = os.fsdecode(example["path"])
        yield example


def _predicted(examples: Iterator[dict], predictor: Predictor, tile, tile_overlap: float,
               pool: CRFPool | None, rule: LabelRule | None) -> Iterator[dict]:
    """Add each example's predictions (and CRF predictions, with a ``pool``) made by the Predictor."""
    for example in examples:
        example["predictions"], example["crf_predictions"] = labels_of(predictor, example["image"], tile,
                                                                       tile_overlap, pool, rule)
        yield example


def _ruled(examples: Iterator[dict], rule: LabelRule, ignore_label: int) -> Iterator[dict]:
    """Add each example's predictions made from its probabilities under ``rule``."""
    for example in examples:
        example["predictions"] = labels_from_probabilities(example["probabilities"], rule, ignore_label)
        yield example


def _score_plain(examples: Iterator[dict], plain: _Branch, instances: InstanceMasks | None,
                 save_dir: str | None) -> Iterator[dict]:
    """Count every example into the plain branch (loading its instance mask), passing it on."""
    for example in examples:
        example["instances"] = (load_instance_mask(instances.paths[example["path"]], example["labels"].shape)
                                if instances is not None else None)
        _add(plain, example, example["predictions"], save_dir)
        yield example


def _add(branch: _Branch, example: dict, predictions: np.ndarray, save_dir: str | None) -> None:
    branch.add(example["labels"], predictions, example["instances"])
    if branch.gallery is not None:
        branch.gallery.add(example["path"], example["image"], example["labels"], predictions)
    if save_dir is not None:
        save_prediction(save_dir, image_stem(example["path"]), predictions, branch.palette,
                        suffix=branch.save_suffix, void_label=branch.unknown_label)
