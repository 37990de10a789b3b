"""Prediction with a checkpoint: its model description, and the Predictor every command and the API use.

The :class:`Predictor` runs the batch-norm-folded graph of :mod:`refinenet_tf.inference_graph` (in float32
or bfloat16), with multi-scale fusion and mirroring inside the graph and one copy of the (folded) weights.
The dense CRF and tiling work on its outputs.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from refinenet_tf.defaults import DEFAULT_ARCH, NUM_CLASSES
from refinenet_tf.description import ModelDescription, default_description, has_description, load_description
from refinenet_tf.errors import ConfigError, DescriptionError, parameter
from refinenet_tf.hardware import choose_precision
from refinenet_tf.inference_graph import GraphPredictor, build_inference_graph
from refinenet_tf.models.prediction import SINGLE_SCALE, PredictOptions

_LOG = logging.getLogger(__name__)
_OUTPUT_OF_FIELD = {"labels": "labels", "probabilities": "probabilities", "logits_os": "logits"}


class Prediction(NamedTuple):
    """NumPy results for one image; outputs that were not asked for are None."""

    labels: np.ndarray | None
    probabilities: np.ndarray | None  # [H,W,C] float32 softmax
    logits_os: np.ndarray | None  # [ceil(H/4),ceil(W/4),C] float32, scale 1.0, before resizing


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
        if len(img_mean) != 3:
            raise DescriptionError(f"{parameter('img_mean')} needs 3 values, got {len(img_mean)}")
        changes["preprocessing"] = dataclasses.replace(description.preprocessing, mean=tuple(img_mean))
    if ignore_label is not None:
        changes["ignore_label"] = ignore_label
    return description.replace(**changes) if changes else description


class Predictor(GraphPredictor):
    """A checkpoint ready to segment images, in its own graph and session; several can coexist.

    ``precision`` is float32 (the default: published numbers reproduce exactly), bfloat16, or auto
    (bfloat16 where the hardware computes it, see :func:`refinenet_tf.hardware.choose_precision`).

    >>> with Predictor("snapshots/", precision="auto") as predictor:
    ...     labels = predictor.predict(image_rgb, ("labels",)).labels
    """

    def __init__(self, checkpoint: str, description: ModelDescription | None = None,
                 options: PredictOptions = SINGLE_SCALE, threads: int | None = None, precision: str = "float32"):
        self.description = description if description is not None else description_for_checkpoint(checkpoint)
        self.options = options
        self.precision = choose_precision(precision)
        _LOG.info("predicting in %s", self.precision)
        graph = build_inference_graph(self.description, checkpoint, options, self.precision.precision)
        self.checkpoint = graph.checkpoint
        super().__init__(graph, threads, inter_op_threads=threads)

    def predict(self, image_rgb: np.ndarray, outputs: Sequence[str] = tuple(_OUTPUT_OF_FIELD)) -> Prediction:
        """Labels, softmax probabilities and stride-4 logits (those asked for) of one uint8 HxWx3 RGB image."""
        unknown = sorted(set(outputs) - set(_OUTPUT_OF_FIELD))
        if unknown:
            raise ConfigError(f"unknown outputs {unknown}; choose from: {', '.join(_OUTPUT_OF_FIELD)}")
        results = super().predict(image_rgb, tuple(_OUTPUT_OF_FIELD[field] for field in outputs))
        return Prediction(*(results.get(_OUTPUT_OF_FIELD[field]) for field in Prediction._fields))
