"""Prediction with a checkpoint: its model description, and the Predictor every command and the API use.

The :class:`Predictor` runs the batch-norm-folded graph of :mod:`refinenet_tf.predict.inference_graph` (in float32
or bfloat16), with multi-scale fusion and mirroring inside the graph and one copy of the (folded) weights:
one image, a batch of same-size images, or a large image window by window (:mod:`refinenet_tf.predict.tiling`).
The dense CRF works on its outputs.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from refinenet_tf.defaults import AUTO_TILE_MEMORY_FRACTION, DEFAULT_ARCH, NUM_CLASSES, TILE_OVERLAP
from refinenet_tf.description import ModelDescription, default_description, has_description, load_description
from refinenet_tf.errors import ConfigError, DescriptionError, parameter
from refinenet_tf.hardware import choose_precision
from refinenet_tf.models.memory import physical_memory_bytes, prediction_bytes_per_pixel
from refinenet_tf.predict.decision import LabelRule, active, labels_from_probabilities
from refinenet_tf.predict.graph import SINGLE_SCALE, PredictOptions
from refinenet_tf.predict.inference_graph import (
    ClosesOnExit,
    GraphPredictor,
    build_inference_graph,
    checked_images,
)
from refinenet_tf.predict.int8 import is_quantized
from refinenet_tf.predict.tiling import (
    AUTO,
    LogitMap,
    auto_tile,
    check_tile_setting,
    plan_tiles,
    tiled_logits,
)

_LOG = logging.getLogger(__name__)
_OUTPUT_OF_FIELD = {"labels": "batch_labels", "probabilities": "batch_probabilities", "logits_os": "batch_logits_os",
                    "fused_logits": "fused_logits"}
DEFAULT_FIELDS = ("labels", "probabilities", "logits_os")


class Prediction(NamedTuple):
    """NumPy results for one image; outputs that were not asked for are None."""

    labels: np.ndarray | None
    probabilities: np.ndarray | None  # [H,W,C] float32 softmax
    logits_os: np.ndarray | None  # [ceil(H/4),ceil(W/4),C] float32, scale 1.0, before resizing
    fused_logits: np.ndarray | None = None  # [ceil(H/4),ceil(W/4),C] fused over scales and mirroring


def description_for_checkpoint(checkpoint: str, arch: str | None = None, num_classes: int | None = None,
                               stride_on: str | None = None, padding: str | None = None,
                               img_mean: Sequence[float] | None = None,
                               ignore_label: int | None = None) -> ModelDescription:
    """The description of a checkpoint to evaluate, with the flags checked against it.

    ``model.json`` beside the checkpoint is the truth: ``arch``, ``num_classes``, ``stride_on`` and
    ``padding`` given as flags must agree with it (they decide which weights fit and what they mean),
    else DescriptionError names both values. ``img_mean`` and ``ignore_label`` override it. Without a
    model.json, ``arch`` (default: the default architecture) and its defaults fill the rest.
    """
    if has_description(checkpoint):
        description = load_description(checkpoint)
        for name, given, saved in (("arch", arch, description.arch),
                                   ("num_classes", num_classes, description.num_classes),
                                   ("stride_on", stride_on, description.stride_on),
                                   ("padding", padding, description.padding)):
            if given is not None and given != saved:
                raise DescriptionError(f"{parameter(name)} {given} disagrees with the checkpoint's model description "
                                       f"({saved}) at {checkpoint}; leave it out or use a matching checkpoint")
    else:  # a DeepLab-style checkpoint: the flags, else the default architecture with DeepLab's conventions
        layout = {key: value for key, value in (("stride_on", stride_on), ("padding", padding)) if value}
        description = default_description(arch or DEFAULT_ARCH,
                                          num_classes if num_classes is not None else NUM_CLASSES, **layout)
    changes = {}
    if img_mean is not None:
        if len(img_mean) != description.preprocessing.channels:
            raise DescriptionError(f"{parameter('img_mean')} needs {description.preprocessing.channels} values (one "
                                   f"per band), got {len(img_mean)}")
        changes["preprocessing"] = dataclasses.replace(description.preprocessing, mean=tuple(img_mean))
    if ignore_label is not None:
        changes["ignore_label"] = ignore_label
    return description.replace(**changes) if changes else description


class Predictor(ClosesOnExit):
    """A checkpoint ready to segment images, in its own graph and session (a :class:`GraphPredictor`, which it
    holds as ``graph_predictor``); several can coexist.

    ``precision`` is float32 (the default: published numbers reproduce exactly), bfloat16, or auto
    (bfloat16 where the hardware computes it, see :func:`refinenet_tf.hardware.choose_precision`). A quantized
    model folder (``python -m refinenet_tf quantize``) runs in int8 whatever ``precision`` says; ``int8`` with a
    checkpoint quantizes it first on the ``calibration`` images (list file, folder or image paths):
    :mod:`refinenet_tf.predict.int8`.

    >>> with Predictor("snapshots/", precision="auto") as predictor:
    ...     labels = predictor.predict(image_rgb, ("labels",)).labels
    ...     large = predictor.predict_tiled(large_rgb, (512, 512)).labels()
    """

    def __init__(self, checkpoint: str, description: ModelDescription | None = None,
                 options: PredictOptions = SINGLE_SCALE, threads: int | None = None, precision: str = "float32",
                 calibration: str | Sequence[str] | None = None):
        self.description = description if description is not None else description_for_checkpoint(checkpoint)
        self.options = options
        self.precision = choose_precision("int8" if is_quantized(checkpoint) else precision)
        _LOG.info("predicting in %s", self.precision)
        if self.precision.precision == "int8":
            from refinenet_tf.quantize.folder import int8_predictor  # deferred: ONNX Runtime, int8 only

            self.graph_predictor = int8_predictor(checkpoint, self.description, options, threads, calibration)
            self.checkpoint = self.graph_predictor.path
        else:
            graph = build_inference_graph(self.description, checkpoint, options, self.precision.precision)
            self.checkpoint = graph.checkpoint
            self.graph_predictor = GraphPredictor(graph, threads, inter_op_threads=threads)
        self._bytes_per_pixel: float | None = None

    def close(self) -> None:
        """Release the session (the predictor is unusable afterwards)."""
        self.graph_predictor.close()

    def predict(self, image_rgb: np.ndarray, outputs: Sequence[str] = DEFAULT_FIELDS,
                rule: LabelRule | None = None) -> Prediction:
        """Labels, softmax probabilities and stride-4 logits (those asked for) of one image (uint8 HxWx3 RGB, or the
        bands of a model of other bands); with a
        ``rule`` the labels follow it (see :mod:`refinenet_tf.predict.decision`)."""
        return self.predict_batch(checked_images(image_rgb, self.graph_predictor.input_spec)[None], outputs,
                                  rule)[0]

    def predict_batch(self, images_rgb: np.ndarray, outputs: Sequence[str] = DEFAULT_FIELDS,
                      rule: LabelRule | None = None) -> list[Prediction]:
        """:meth:`predict` for images of one size ``(N, H, W, bands)``, run through the graph together."""
        unknown = sorted(set(outputs) - set(_OUTPUT_OF_FIELD))
        if unknown:
            raise ConfigError(f"unknown outputs {unknown}; choose from: {', '.join(_OUTPUT_OF_FIELD)}")
        ruled = active(rule) and "labels" in outputs
        fetched = [field for field in outputs if not (ruled and field == "labels")]
        fetched += ["probabilities"] if ruled and "probabilities" not in outputs else []
        results = self.graph_predictor.run_batch(images_rgb, tuple(_OUTPUT_OF_FIELD[field] for field in fetched))
        if ruled:
            results[_OUTPUT_OF_FIELD["labels"]] = labels_from_probabilities(
                results[_OUTPUT_OF_FIELD["probabilities"]], rule, self.description.ignore_label)
        arrays = [results.get(_OUTPUT_OF_FIELD[field]) if field in outputs else None for field in Prediction._fields]
        return [Prediction(*(None if array is None else array[index] for array in arrays))
                for index in range(len(images_rgb))]

    def tile_for(self, image_size: tuple[int, int], tile=None) -> tuple[int, int] | None:
        """The tile to predict an image of ``image_size`` with: ``tile`` itself, None (whole image), or for
        ``'auto'`` a tile only when the whole image's activations would exceed the memory budget (see
        :func:`refinenet_tf.predict.tiling.auto_tile`)."""
        tile = check_tile_setting(tile)
        if tile != AUTO:
            return tile
        memory = physical_memory_bytes()
        if memory is None:
            return None
        if self._bytes_per_pixel is None:
            self._bytes_per_pixel = prediction_bytes_per_pixel(self.description, self.options)
        return auto_tile(image_size, self._bytes_per_pixel, memory * AUTO_TILE_MEMORY_FRACTION)

    def predict_tiled(self, image_rgb: np.ndarray, tile: tuple[int, int], overlap: float = TILE_OVERLAP,
                      batch_size: int = 1) -> LogitMap:
        """The blended stride-4 logits of overlapping ``tile`` windows of one image, ``batch_size`` windows
        through the graph at a time; read labels and probabilities from the :class:`LogitMap` in bands."""
        image = checked_images(image_rgb, self.graph_predictor.input_spec)
        plan = plan_tiles(image.shape[:2], tile, overlap)
        _LOG.debug("%d windows of %dx%d", len(plan.windows), *plan.window)

        def fused(windows: np.ndarray) -> np.ndarray:
            return self.graph_predictor.run_batch(windows, ("fused_logits",))["fused_logits"]

        return tiled_logits(fused, image, plan, self.description.preprocessing.fill_value(), batch_size)
