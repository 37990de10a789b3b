"""Training losses: per-pixel softmax cross-entropy, plain, on the hardest pixels (OHEM) or focal, or the soft Dice
loss, with class weights, skipping unlabeled pixels; their multi-scale sum; and L2 weight decay."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import tensorflow as tf

from refinenet_tf.defaults import FOCAL_GAMMA, LOSS, OHEM_KEEP, OHEM_MIN_KEPT
from refinenet_tf.errors import ConfigError, parameter
from refinenet_tf.models.model import MultiScaleLogits

LOSSES = ("cross-entropy", "ohem", "focal", "dice")
DICE_SMOOTHING = 1.0  # added to the Dice ratio's numerator and denominator: a class absent from both counts as 1
_FOCAL_FLOOR = 1e-12  # 1 - p is at least this in the focal factor: finite gradients where p rounds to 1


def check_loss_settings(loss: str, ohem_keep: float, ohem_min_kept: int, focal_gamma: float) -> None:
    """Refuse an unknown loss, an OHEM fraction outside (0, 1], a negative OHEM floor or focal gamma."""
    if loss not in LOSSES:
        raise ConfigError(f"{parameter('loss')} must be one of {', '.join(LOSSES)}, got {loss!r}")
    if not 0 < ohem_keep <= 1:
        raise ConfigError(f"{parameter('ohem_keep')} is the fraction of pixels OHEM keeps, in (0, 1]; got {ohem_keep}")
    if not (ohem_min_kept >= 0 and float(ohem_min_kept).is_integer()):
        raise ConfigError(f"{parameter('ohem_min_kept')} must be a whole number >= 0, got {ohem_min_kept}")
    if not focal_gamma >= 0 or math.isinf(focal_gamma):
        raise ConfigError(f"{parameter('focal_gamma')} must be a finite number >= 0, got {focal_gamma}")


@dataclass(frozen=True)
class PixelLoss:
    """The per-pixel loss to minimise and the class weights it applies.

    ``kind``: ``cross-entropy``; ``ohem`` (online hard example mining: only the ``ohem_keep`` fraction of a
    batch's labelled pixels with the highest cross-entropy carry the loss, at least ``ohem_min_kept`` of them
    and at most all); ``focal`` (cross-entropy times ``(1 - p) ** focal_gamma``, ``p`` the probability of the
    true class); ``dice`` (the soft Dice loss: one minus the mean over classes of ``(2 |P Y| + 1) / (|P| + |Y| + 1)``
    on the batch's labelled pixels, ``P`` the softmax probabilities, ``Y`` the one-hot labels; it weighs each class
    alike whatever its pixel count). ``class_weights``: one weight per class (for Dice, of its term in the mean), or
    None for equal weights.
    """

    kind: str = LOSS
    class_weights: tuple[float, ...] | None = None
    ohem_keep: float = OHEM_KEEP
    ohem_min_kept: int = OHEM_MIN_KEPT
    focal_gamma: float = FOCAL_GAMMA

    def __post_init__(self) -> None:
        check_loss_settings(self.kind, self.ohem_keep, self.ohem_min_kept, self.focal_gamma)


def resize_labels(labels: tf.Tensor, size) -> tf.Tensor:
    """Labels [B,H,W,1] or [B,H,W] -> [B,h,w] int32, nearest-neighbour resized to ``size`` (h, w)."""
    if labels.shape.rank == 3:
        labels = labels[..., tf.newaxis]
    resized = tf.image.resize(labels, size, method=tf.image.ResizeMethod.NEAREST_NEIGHBOR)
    return tf.cast(tf.squeeze(resized, axis=-1), tf.int32)


def segmentation_loss(logits: tf.Tensor, labels: tf.Tensor, num_classes: int,
                      settings: PixelLoss | None = None) -> tf.Tensor:
    """The loss ``settings`` names: :func:`soft_dice_loss` for ``dice``, else :func:`pixel_cross_entropy`."""
    settings = settings or PixelLoss()
    if settings.kind == "dice":
        return soft_dice_loss(logits, labels, num_classes, settings.class_weights)
    return pixel_cross_entropy(logits, labels, num_classes, settings)


def soft_dice_loss(logits: tf.Tensor, labels: tf.Tensor, num_classes: int,
                   class_weights: Sequence[float] | None = None) -> tf.Tensor:
    """``1 - mean_c (2 sum(p_c y_c) + s) / (sum(p_c) + sum(y_c) + s)`` over the labelled pixels of the batch
    (labels resized to the logits first; the ignore label and other out-of-range values take no part), ``s`` =
    :data:`DICE_SMOOTHING`; the mean weighted by ``class_weights`` when given."""
    labels = resize_labels(labels, tf.shape(logits)[1:3])
    valid = tf.logical_and(labels >= 0, labels < num_classes)
    probabilities = tf.nn.softmax(tf.cast(logits, tf.float32))
    counted = tf.cast(valid, tf.float32)[..., tf.newaxis]
    truth = tf.one_hot(tf.where(valid, labels, tf.zeros_like(labels)), num_classes, dtype=tf.float32) * counted
    predicted = probabilities * counted
    overlap = tf.reduce_sum(truth * predicted, axis=[0, 1, 2])
    sizes = tf.reduce_sum(truth, axis=[0, 1, 2]) + tf.reduce_sum(predicted, axis=[0, 1, 2])
    dice = (2.0 * overlap + DICE_SMOOTHING) / (sizes + DICE_SMOOTHING)
    if class_weights is None:
        return 1.0 - tf.reduce_mean(dice)
    if len(class_weights) != num_classes:
        raise ConfigError(f"{len(class_weights)} {parameter('class_weights')} for {num_classes} classes")
    weights = tf.constant(class_weights, tf.float32)
    return 1.0 - tf.reduce_sum(weights * dice) / tf.reduce_sum(weights)


def pixel_cross_entropy(logits: tf.Tensor, labels: tf.Tensor, num_classes: int,
                        settings: PixelLoss | None = None) -> tf.Tensor:
    """The weighted mean ``sum(w * l) / sum(w)`` of the per-pixel loss ``l`` (plain cross-entropy by default).

    ``labels`` are resized (nearest) to the logits' size first, as DeepLab does. A pixel's weight ``w`` is its
    class's weight (1 without class weights); pixels labelled with the ignore label, or anything else out of
    range, weigh 0, and so do the pixels OHEM drops. With no weighted pixel the loss is 0.
    """
    settings = settings or PixelLoss()
    labels = resize_labels(labels, tf.shape(logits)[1:3])
    valid = tf.logical_and(labels >= 0, labels < num_classes)
    safe_labels = tf.where(valid, labels, tf.zeros_like(labels))
    per_pixel = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe_labels, logits=logits)
    weights = tf.cast(valid, per_pixel.dtype)
    if settings.class_weights is not None:
        if len(settings.class_weights) != num_classes:
            raise ConfigError(f"{len(settings.class_weights)} {parameter('class_weights')} for {num_classes} classes")
        weights *= tf.gather(tf.constant(settings.class_weights, per_pixel.dtype), safe_labels)
    if settings.kind == "focal":
        per_pixel *= _focal_factor(per_pixel, settings.focal_gamma)
    elif settings.kind == "ohem":
        weights *= _hardest(per_pixel, valid, settings.ohem_keep, settings.ohem_min_kept)
    return tf.math.divide_no_nan(tf.reduce_sum(per_pixel * weights), tf.reduce_sum(weights))


def _focal_factor(cross_entropy: tf.Tensor, gamma: float) -> tf.Tensor:
    """``(1 - p) ** gamma`` where ``p = exp(-cross_entropy)`` is the true class's probability."""
    return tf.pow(tf.maximum(-tf.math.expm1(-cross_entropy), _FOCAL_FLOOR), gamma)


def _hardest(per_pixel: tf.Tensor, valid: tf.Tensor, keep: float, min_kept: int) -> tf.Tensor:
    """1 on the ``k`` valid pixels of highest loss, 0 elsewhere; ``k = max(ceil(keep * n), min_kept)`` capped at
    the number ``n`` of valid pixels (ties go to the earlier pixel)."""
    losses, flat_valid = tf.reshape(tf.stop_gradient(per_pixel), [-1]), tf.reshape(valid, [-1])
    count = tf.reduce_sum(tf.cast(flat_valid, tf.int32))
    wanted = tf.cast(tf.math.ceil(keep * tf.cast(count, tf.float64)), tf.int32)
    k = tf.minimum(count, tf.maximum(wanted, int(min_kept)))
    _, indices = tf.math.top_k(tf.where(flat_valid, losses, tf.fill(tf.shape(losses), -math.inf)), k=k)
    kept = tf.scatter_nd(indices[:, tf.newaxis], tf.ones_like(indices, per_pixel.dtype), tf.shape(losses))
    return tf.reshape(kept, tf.shape(per_pixel))


def multiscale_loss(logits: MultiScaleLogits, labels: tf.Tensor, num_classes: int,
                    settings: PixelLoss | None = None) -> tf.Tensor:
    """DeepLab's train_msc.py loss: the loss of the fused logits plus that of every scale, each against labels
    resized to its logits, all with the same ``settings``."""
    terms = [segmentation_loss(logits.fused, labels, num_classes, settings)]
    terms += [segmentation_loss(scale_logits, labels, num_classes, settings) for scale_logits in logits.per_scale]
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
