"""Pixel cross-entropy (ignore handling, label resizing) and weight decay."""

import numpy as np
import tensorflow as tf

from refinenet_tf.train.losses import pixel_cross_entropy, resize_labels, weight_decay_loss

v1 = tf.compat.v1


def _numpy_cross_entropy(logits, labels):
    shifted = logits - logits.max(-1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    return -np.take_along_axis(log_softmax, labels[..., None], -1)[..., 0]


def test_cross_entropy_averages_over_pixels_with_a_class_label_only():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 3, 4)).astype(np.float32)
    labels = rng.integers(0, 4, size=(2, 3, 3)).astype(np.int32)
    labels[0, 0, 0] = 255  # ignore label
    labels[1, 2, 1] = 7  # beyond the classes: no loss either
    valid = labels < 4
    expected = _numpy_cross_entropy(logits, np.where(valid, labels, 0))[valid].mean()
    loss = pixel_cross_entropy(tf.constant(logits), tf.constant(labels[..., None]), num_classes=4)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)


def test_loss_is_zero_with_finite_gradient_when_every_pixel_is_ignored():
    logits = tf.Variable(np.ones((1, 2, 2, 3), np.float32))
    labels = tf.fill([1, 2, 2, 1], 255)
    with tf.GradientTape() as tape:
        loss = pixel_cross_entropy(logits, labels, num_classes=3)
    gradient = tape.gradient(loss, logits)
    assert loss.numpy() == 0.0
    assert np.all(np.isfinite(gradient.numpy())) and np.all(gradient.numpy() == 0)


def test_labels_are_nearest_resized_to_the_logits_stride_4_size():
    labels = np.zeros((1, 8, 8, 1), np.int32)
    labels[:, :, 4:] = 1  # right half class 1
    resized = resize_labels(tf.constant(labels), [2, 2]).numpy()
    np.testing.assert_array_equal(resized, [[[0, 1], [0, 1]]])
    # logits that predict the right half perfectly give a near-zero loss only with resized labels
    logits = np.zeros((1, 2, 2, 2), np.float32)
    logits[..., 0, 0], logits[..., 1, 1] = 20.0, 20.0
    assert pixel_cross_entropy(tf.constant(logits), tf.constant(labels), 2).numpy() < 1e-6


def test_weight_decay_covers_convolution_weights_only():
    graph = tf.Graph()
    with graph.as_default():
        weights = v1.get_variable("conv/weights", initializer=np.full((1, 1, 2, 2), 2.0, np.float32))
        v1.get_variable("conv/biases", initializer=np.full((2,), 5.0, np.float32))
        v1.get_variable("bn/gamma", initializer=np.full((2,), 3.0, np.float32))
        loss = weight_decay_loss(v1.global_variables(), 0.1)
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            value = session.run(loss)
    assert weights.op.name == "conv/weights"
    np.testing.assert_allclose(value, 0.1 * 4 * 4.0 / 2)
