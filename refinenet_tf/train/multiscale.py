"""Multi-scale training (DeepLab's train_msc.py): one set of weights applied to several input scales.

The logits of the smaller scales are resized bilinearly to the logits of the first scale (1.0) and
fused element-wise by ``max`` (DeepLab) or ``mean`` (the original RefineNet). The loss is the
cross-entropy of the fused logits plus that of every scale, each against labels nearest-resized to
its own logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import tensorflow as tf

from refinenet_tf.description import ModelDescription
from refinenet_tf.errors import ConfigError
from refinenet_tf.models.registry import build_model
from refinenet_tf.train.losses import pixel_cross_entropy

DEFAULT_SCALES = (1.0, 0.75, 0.5)
FUSIONS = ("max", "mean")


@dataclass(frozen=True)
class MultiScaleLogits:
    """The fused logits (at the first scale's logits size) and each scale's own logits."""

    fused: tf.Tensor
    per_scale: tuple[tf.Tensor, ...]


def multiscale_logits(images: tf.Tensor, description: ModelDescription, scales: Sequence[float] = DEFAULT_SCALES,
                      fusion: str = "max", is_training: bool = False,
                      train_batch_norm: bool = False, batch_norm_decay: float | None = None,
                      dropout_seed: tf.Tensor | None = None) -> MultiScaleLogits:
    """Build the model once per scale, sharing variables; ``images`` are preprocessed NHWC."""
    if fusion not in FUSIONS:
        raise ConfigError(f"unknown fusion {fusion!r}; choose one of: {', '.join(FUSIONS)}")
    if not scales or any(scale <= 0 for scale in scales):
        raise ConfigError(f"scales must be positive numbers, got {tuple(scales)}")
    input_size = tf.shape(images)[1:3]
    per_scale = []
    for index, scale in enumerate(scales):
        scaled = images
        if scale != 1.0:
            size = tf.cast(tf.round(tf.cast(input_size, tf.float32) * scale), tf.int32)
            scaled = tf.image.resize(images, tf.maximum(size, 1), method=tf.image.ResizeMethod.BILINEAR)
        output = build_model(scaled, description, is_training=is_training, train_batch_norm=train_batch_norm,
                             batch_norm_decay=batch_norm_decay, dropout_seed=dropout_seed,
                             reuse=True if index > 0 else None)
        per_scale.append(output.logits)
    reference_size = tf.shape(per_scale[0])[1:3]
    aligned = [per_scale[0]] + [tf.image.resize(logits, reference_size, method=tf.image.ResizeMethod.BILINEAR)
                                for logits in per_scale[1:]]
    stacked = tf.stack(aligned)
    fused = tf.reduce_max(stacked, axis=0) if fusion == "max" else tf.reduce_mean(stacked, axis=0)
    return MultiScaleLogits(fused, tuple(per_scale))


def multiscale_loss(logits: MultiScaleLogits, labels: tf.Tensor, num_classes: int) -> tf.Tensor:
    """CE(fused) + the sum of CE(each scale), each against labels resized to its logits."""
    terms = [pixel_cross_entropy(logits.fused, labels, num_classes)]
    terms += [pixel_cross_entropy(scale_logits, labels, num_classes) for scale_logits in logits.per_scale]
    return tf.add_n(terms)
