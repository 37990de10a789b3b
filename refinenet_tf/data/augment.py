"""Training augmentation as graph ops on one example: random scale, mirror, pad and random crop.

Every op takes ``image`` float32 [H, W, bands] (already preprocessed, so 0 is the mean colour),
``mask`` [H, W, 1] and ``seed``, a stateless seed: an int32/int64 tensor of shape [2]. The same
seed gives the same result, so a pipeline that derives one seed per example is reproducible no
matter how many examples are decoded in parallel.
"""

from __future__ import annotations

import tensorflow as tf


def random_scale(image: tf.Tensor, mask: tf.Tensor, min_scale: float, max_scale: float, seed: tf.Tensor):
    """Resize image (bilinear) and mask (nearest neighbour) by one factor drawn uniformly in [min, max]."""
    scale = tf.random.stateless_uniform([], seed, minval=min_scale, maxval=max_scale)
    size = tf.cast(tf.shape(image)[:2], tf.float32) * scale
    size = tf.maximum(tf.cast(tf.round(size), tf.int32), 1)
    image = tf.image.resize(image, size, method=tf.image.ResizeMethod.BILINEAR)
    mask = tf.image.resize(mask, size, method=tf.image.ResizeMethod.NEAREST_NEIGHBOR)
    return image, mask


def random_mirror(image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor):
    """Flip image and mask left-right together with probability 0.5."""
    flip = tf.random.stateless_uniform([], seed) < 0.5
    image = tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
    mask = tf.cond(flip, lambda: tf.reverse(mask, axis=[1]), lambda: mask)
    return image, mask


def pad_and_random_crop(
    image: tf.Tensor, mask: tf.Tensor, crop_h: int, crop_w: int, ignore_label: int, seed: tf.Tensor
):
    """Pad bottom/right to at least the crop size (image with 0, mask with ignore_label), then crop both.

    The outputs have static shapes [crop_h, crop_w, bands] and [crop_h, crop_w, 1].
    """
    bands = int(image.shape[-1])
    height, width = tf.shape(mask)[0], tf.shape(mask)[1]
    padding = [[0, tf.maximum(crop_h - height, 0)], [0, tf.maximum(crop_w - width, 0)], [0, 0]]
    image = tf.pad(image, padding)
    mask = tf.pad(mask, padding, constant_values=tf.cast(ignore_label, mask.dtype))
    slack = tf.shape(mask)[:2] - tf.constant([crop_h, crop_w])
    fraction = tf.random.stateless_uniform([2], seed)
    offset = tf.minimum(tf.cast(fraction * tf.cast(slack + 1, tf.float32), tf.int32), slack)
    image = tf.slice(image, [offset[0], offset[1], 0], [crop_h, crop_w, bands])
    mask = tf.slice(mask, [offset[0], offset[1], 0], [crop_h, crop_w, 1])
    return tf.ensure_shape(image, [crop_h, crop_w, bands]), tf.ensure_shape(mask, [crop_h, crop_w, 1])
