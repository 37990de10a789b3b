"""Training losses: pixel-wise softmax cross-entropy that skips unlabeled pixels, its multi-scale sum, and L2
weight decay."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from refinenet_tf.models.model import MultiScaleLogits


def resize_labels(labels: tf.Tensor, size) -> tf.Tensor:
    """Labels [B,H,W,1] or [B,H,W] -> [B,h,w] int32, nearest-neighbour resized to ``size`` (h, w)."""
    if labels.shape.rank == 3:
        labels = labels[..., tf.newaxis]
    resized = tf.image.resize(labels, size, method=tf.image.ResizeMethod.NEAREST_NEIGHBOR)
    return tf.cast(tf.squeeze(resized, axis=-1), tf.int32)


def pixel_cross_entropy(logits: tf.Tensor, labels: tf.Tensor, num_classes: int) -> tf.Tensor:
    """Mean softmax cross-entropy over the pixels whose label is a class (0 <= label < num_classes).

    ``labels`` are resized (nearest) to the logits' size first, as DeepLab does. Pixels labelled with
    the ignore label, or anything else out of range, carry no loss; with no valid pixel the loss is 0.
    """
    labels = resize_labels(labels, tf.shape(logits)[1:3])
    valid = tf.logical_and(labels >= 0, labels < num_classes)
    safe_labels = tf.where(valid, labels, tf.zeros_like(labels))
    per_pixel = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe_labels, logits=logits)
    weights = tf.cast(valid, per_pixel.dtype)
    return tf.reduce_sum(per_pixel * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def multiscale_loss(logits: MultiScaleLogits, labels: tf.Tensor, num_classes: int) -> tf.Tensor:
    """DeepLab's train_msc.py loss: CE(fused) + the CE of every scale, each against labels resized to its logits."""
    terms = [pixel_cross_entropy(logits.fused, labels, num_classes)]
    terms += [pixel_cross_entropy(scale_logits, labels, num_classes) for scale_logits in logits.per_scale]
    return tf.add_n(terms)


def is_conv_weight(variable: tf.Variable) -> bool:
    """True for convolution kernels (scope/``weights``), the only variables that get weight decay.

    Reads ``variable.name``, which (unlike ``variable.op.name``) is the same on every replica of a
    distribution strategy."""
    return variable.name.rsplit(":", 1)[0].endswith("/weights")


def weight_decay_loss(variables: Sequence[tf.Variable], weight_decay: float) -> tf.Tensor:
    """``weight_decay * sum(||w||^2 / 2)`` over the convolution kernels among ``variables``."""
    kernels = [variable for variable in variables if is_conv_weight(variable)]
    if not kernels or weight_decay == 0:
        return tf.constant(0.0)
    return weight_decay * tf.add_n([tf.nn.l2_loss(kernel) for kernel in kernels])
