"""``build_model``: an architecture's graph for any input size, and multi-scale inference over it.

Every script, the trainer, the predictor and the API build their networks here. Multi-scale fusion of logits
is a model concern (as in tensorflow/models' deeplab ``model.py``): the same weights run at several input
scales, the smaller scales' logits are resized bilinearly to the first scale's logits and fused element-wise
by ``max`` (DeepLab) or ``mean`` (the original RefineNet). Only the multi-scale *loss* belongs to training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import tensorflow as tf

from refinenet_tf.architectures import check_arch
from refinenet_tf.defaults import MULTISCALE_SCALES
from refinenet_tf.description import ModelDescription
from refinenet_tf.errors import ConfigError, parameter
from refinenet_tf.models.layers import DEFAULT_BATCH_NORM_DECAY, LayerOptions
from refinenet_tf.models.lightweight_mobilenet import lightweight_mobilenet_decoder
from refinenet_tf.models.mobilenet_v2 import mobilenet_v2
from refinenet_tf.models.refinenet import refinenet_decoder
from refinenet_tf.models.resnet import resnet

FUSIONS = ("max", "mean")


class ModelOutput(NamedTuple):
    """Logits at stride 4 (NHWC, ceil(H/4) x ceil(W/4)) and the backbone's named end points."""

    logits: tf.Tensor
    end_points: dict[str, tf.Tensor]


@dataclass(frozen=True)
class MultiScaleLogits:
    """The fused logits (at the first scale's logits size) and each scale's own logits."""

    fused: tf.Tensor
    per_scale: tuple[tf.Tensor, ...]


def build_model(images: tf.Tensor, description: ModelDescription, dropout: bool = False,
                train_batch_norm: bool = False, reuse: bool | None = None,
                batch_norm_decay: float | None = None, dropout_seed: tf.Tensor | None = None) -> ModelOutput:
    """Build the graph for preprocessed NHWC ``images`` of any size.

    Variables are created in the current variable scope (top level by default, matching DeepLab names);
    ``reuse=True`` shares them, e.g. across the scales of multi-scale training. ``dropout`` switches the
    dropout layers on (training); batch norm uses batch statistics and updates its moving averages only when
    ``train_batch_norm`` (the update ops go to ``tf.compat.v1.GraphKeys.UPDATE_OPS``, with moving averages
    decaying by ``batch_norm_decay``, default 0.9997; short runs want a smaller value such as 0.99).
    ``dropout_seed`` (int64 [2]) makes dropout stateless: the same seed draws the same masks.
    """
    spec = check_arch(description.arch)
    options = LayerOptions(padding=description.padding, batch_norm_epsilon=description.batch_norm_epsilon,
                           train_batch_norm=train_batch_norm, dropout=dropout,
                           batch_norm_decay=DEFAULT_BATCH_NORM_DECAY if batch_norm_decay is None else batch_norm_decay,
                           dropout_seed=dropout_seed)
    with tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope(), reuse=reuse):
        if spec.backbone == "mobilenetv2":
            end_points = mobilenet_v2(images, options)
            logits = lightweight_mobilenet_decoder(end_points, description.num_classes, options)
        else:
            end_points = resnet(images, spec.depth, description.stride_on, options)
            logits = refinenet_decoder(end_points, description.num_classes, options,
                                       light_weight=spec.decoder == "lightweight")
    return ModelOutput(logits, end_points)


def check_scales(scales: Sequence[float], fusion: str = "max") -> None:
    """Refuse an unknown fusion and scales that are not positive (ConfigError naming the parameter)."""
    if fusion not in FUSIONS:
        raise ConfigError(f"{parameter('fusion')} must be one of {', '.join(FUSIONS)}, got {fusion!r}")
    if not scales or any(not scale > 0 for scale in scales):
        raise ConfigError(f"{parameter('scales')} must be positive numbers, got "
                          f"{','.join(f'{scale:g}' for scale in scales) or 'none'}")


def multiscale_logits(images: tf.Tensor, description: ModelDescription, scales: Sequence[float] = MULTISCALE_SCALES,
                      fusion: str = "max", dropout: bool = False, train_batch_norm: bool = False,
                      batch_norm_decay: float | None = None,
                      dropout_seed: tf.Tensor | None = None) -> MultiScaleLogits:
    """Build the model once per scale, sharing variables; ``images`` are preprocessed NHWC."""
    check_scales(scales, fusion)
    input_size = tf.shape(images)[1:3]
    per_scale = []
    for index, scale in enumerate(scales):
        scaled = images
        if scale != 1.0:
            size = tf.cast(tf.round(tf.cast(input_size, tf.float32) * scale), tf.int32)
            scaled = tf.image.resize(images, tf.maximum(size, 1), method=tf.image.ResizeMethod.BILINEAR)
        output = build_model(scaled, description, dropout=dropout, train_batch_norm=train_batch_norm,
                             batch_norm_decay=batch_norm_decay, dropout_seed=dropout_seed,
                             reuse=True if index > 0 else None)
        per_scale.append(output.logits)
    reference_size = tf.shape(per_scale[0])[1:3]
    aligned = [per_scale[0]] + [tf.image.resize(logits, reference_size, method=tf.image.ResizeMethod.BILINEAR)
                                for logits in per_scale[1:]]
    stacked = tf.stack(aligned)
    fused = tf.reduce_max(stacked, axis=0) if fusion == "max" else tf.reduce_mean(stacked, axis=0)
    return MultiScaleLogits(fused, tuple(per_scale))
