"""Full-resolution prediction graph (multi-scale, mirror averaging) and a checkpoint-backed Predictor.

Order of operations, the same for evaluation and inference:

1. the RGB image (uint8 or float, ``[1,H,W,3]``, any size) is preprocessed inside the graph as the
   model description says;
2. for every scale the preprocessed input is resized bilinearly and run through the shared weights;
3. the logits of every scale are resized bilinearly to the size of the scale-1.0 logits (output
   stride 4) and fused element-wise by ``max`` (DeepLab) or ``mean`` (original RefineNet);
4. the fused logits are resized bilinearly to the image size;
5. with ``flip`` steps 2-4 also run on the mirrored image (in the same batch) and its image-size
   logits, mirrored back, are averaged with the plain ones. Mirroring back at image size keeps the
   two maps pixel-aligned whatever the image width;
6. ``probabilities`` = softmax, ``labels`` = argmax.

``logits_os`` is the scale-1.0 logits of the unmirrored image, before any resizing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from refinenet_tf import checkpoints
from refinenet_tf.defaults import DEFAULT_ARCH, NUM_CLASSES
from refinenet_tf.description import ModelDescription, default_description, has_description, load_description
from refinenet_tf.errors import ConfigError, DataError, DescriptionError, parameter
from refinenet_tf.models.model import check_scales, multiscale_logits
from refinenet_tf.sessions import new_session

v1 = tf.compat.v1


@dataclass(frozen=True)
class PredictOptions:
    """How to predict: input scales, how their logits are fused, and mirror averaging."""

    scales: tuple[float, ...] = (1.0,)
    fusion: str = "max"
    flip: bool = False


SINGLE_SCALE = PredictOptions()


class PredictorTensors(NamedTuple):
    """The graph's input and outputs for one image."""

    image: tf.Tensor  # [1,H,W,3] RGB, uint8 or float in 0..255
    labels: tf.Tensor  # [H,W] int32
    probabilities: tf.Tensor  # [H,W,C] float32
    logits_os: tf.Tensor  # [ceil(H/4),ceil(W/4),C] float32, scale 1.0, unmirrored, not resized


class Prediction(NamedTuple):
    """NumPy results for one image."""

    labels: np.ndarray
    probabilities: np.ndarray
    logits_os: np.ndarray


def build_predictor_graph(description: ModelDescription, scales: Sequence[float] = (1.0,), fusion: str = "max",
                          flip: bool = False, image: tf.Tensor | None = None) -> PredictorTensors:
    """Build the prediction graph in the default graph; ``image`` defaults to a uint8 placeholder ``[1,H,W,3]``."""
    if image is None:
        image = v1.placeholder(tf.uint8, [1, None, None, 3], name="image")
    check_options(PredictOptions(tuple(scales), fusion, flip))
    others = list(scales)
    others.remove(1.0)
    scales = (1.0, *others)  # the scale-1.0 logits set the fusion size and are logits_os
    inputs = description.preprocessing.apply(image)
    if flip:
        inputs = tf.concat([inputs, tf.reverse(inputs, axis=[2])], axis=0)
    multiscale = multiscale_logits(inputs, description, scales=scales, fusion=fusion)
    image_size = tf.shape(image)[1:3]
    logits = tf.image.resize(multiscale.fused, image_size, method=tf.image.ResizeMethod.BILINEAR)
    if flip:
        logits = 0.5 * (logits[0] + tf.reverse(logits[1], axis=[1]))
    else:
        logits = logits[0]
    return PredictorTensors(
        image=image,
        labels=tf.argmax(logits, axis=-1, output_type=tf.int32),
        probabilities=tf.nn.softmax(logits, axis=-1),
        logits_os=tf.cast(multiscale.per_scale[0][0], tf.float32),
    )


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


def restore_model(session: v1.Session, checkpoint: str) -> str:
    """Restore every model variable of the session's graph; returns the checkpoint prefix.

    Unlike training, nothing may stay uninitialised: a checkpoint without a trained decoder is refused.
    """
    with session.graph.as_default():
        return checkpoints.restore_trained_model(session, checkpoint, v1.global_variables()).checkpoint


def check_options(options: PredictOptions) -> None:
    """Refuse an unknown fusion, non-positive scales or scales without 1.0 (ConfigError)."""
    check_scales(options.scales, options.fusion)
    if 1.0 not in options.scales:
        raise ConfigError(f"{parameter('scales')} must include 1.0 (its logits set the fusion size), got "
                          f"{_listed(options.scales)}")


class Predictor:
    """A restored model in its own graph and session; several can coexist in one process.

    >>> with Predictor("snapshots/") as predictor:
    ...     prediction = predictor.predict(image_rgb)
    """

    def __init__(self, checkpoint: str, description: ModelDescription | None = None,
                 options: PredictOptions = SINGLE_SCALE, threads: int | None = None):
        check_options(options)
        self.description = description if description is not None else description_for_checkpoint(checkpoint)
        self.options = options
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.tensors = build_predictor_graph(self.description, options.scales, options.fusion, options.flip)
        self.graph.finalize()
        self.session = new_session(self.graph, threads, inter_op_threads=threads)
        try:
            self.checkpoint = restore_model(self.session, checkpoint)
        except BaseException:
            self.close()
            raise

    def predict(self, image_rgb: np.ndarray) -> Prediction:
        """Labels, softmax probabilities and stride-4 logits for one uint8 ``H x W x 3`` RGB image."""
        image_rgb = np.asarray(image_rgb)
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
            raise DataError(f"expected a uint8 HxWx3 RGB image, got {image_rgb.dtype} {image_rgb.shape}")
        labels, probabilities, logits_os = self.session.run(
            [self.tensors.labels, self.tensors.probabilities, self.tensors.logits_os],
            feed_dict={self.tensors.image: image_rgb[np.newaxis]})
        return Prediction(labels, probabilities, logits_os)

    def close(self) -> None:
        """Release the session (the predictor is unusable afterwards)."""
        self.session.close()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _listed(scales: Sequence[float]) -> str:
    return ",".join(f"{scale:g}" for scale in scales)
