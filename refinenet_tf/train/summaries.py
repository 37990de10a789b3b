"""TensorBoard summaries of training: loss, learning rate, and image | ground truth | prediction strips."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from refinenet_tf.description import ModelDescription, Preprocessing
from refinenet_tf.palette import colourise

v1 = tf.compat.v1


def display_images(images: tf.Tensor, preprocessing: Preprocessing) -> tf.Tensor:
    """Preprocessed NHWC images -> uint8 RGB (the inverse of ``preprocessing.apply``); a model of other bands shows
    its first three (grey: the first, repeated), two standard deviations either side of the mean."""
    if not preprocessing.is_rgb:
        bands = images[..., :3] if preprocessing.channels >= 3 else tf.tile(images[..., :1], [1, 1, 1, 3])
        return tf.cast(tf.clip_by_value(tf.round(bands * 64.0 + 128.0), 0.0, 255.0), tf.uint8)
    pixels = (images * tf.constant(preprocessing.std, tf.float32) + tf.constant(preprocessing.mean, tf.float32))
    pixels = pixels / preprocessing.scale
    if preprocessing.channel_order == "BGR":
        pixels = tf.reverse(pixels, axis=[-1])
    return tf.cast(tf.clip_by_value(tf.round(pixels), 0.0, 255.0), tf.uint8)


def colour_masks(masks: tf.Tensor, description: ModelDescription) -> tf.Tensor:
    """Integer masks [B,H,W] -> uint8 RGB with the model's colours (VOC colours beyond its classes)."""
    table = tf.constant(colourise(np.arange(256), description.colours))
    return tf.gather(table, tf.clip_by_value(tf.cast(masks, tf.int32), 0, 255))


def comparison_summary(images: tf.Tensor, labels: tf.Tensor, logits: tf.Tensor, description: ModelDescription,
                       count: int) -> tf.Tensor:
    """An image summary of the first ``count`` examples shown as image | ground truth | prediction."""
    images, labels, logits = images[:count], labels[:count], logits[:count]
    size = tf.shape(images)[1:3]
    predictions = tf.argmax(tf.image.resize(logits, size, method=tf.image.ResizeMethod.BILINEAR), axis=-1)
    strip = tf.concat([display_images(images, description.preprocessing),
                       colour_masks(labels[..., 0], description),
                       colour_masks(predictions, description)], axis=2)
    return v1.summary.image("image_groundtruth_prediction", strip, max_outputs=count)
