"""Pixel losses (cross-entropy, class weights, OHEM, focal), the soft Dice loss; ignore handling, label resizing;
and weight decay."""

import numpy as np
import pytest
import tensorflow as tf

from refinenet_tf.errors import ConfigError
from refinenet_tf.models.model import MultiScaleLogits
from refinenet_tf.train.losses import (
    DICE_SMOOTHING,
    PixelLoss,
    multiscale_loss,
    pixel_cross_entropy,
    resize_labels,
    segmentation_loss,
    weight_decay_loss,
)

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


# --- class weights, OHEM and focal loss against NumPy ------------------------------------------------------------

NUM_CLASSES = 4


def _batch(seed: int = 0):
    """Logits [2,5,6,4] and labels with two ignored pixels (255 and 9, beyond the classes)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(2, 5, 6, NUM_CLASSES)).astype(np.float32)
    labels = rng.integers(0, NUM_CLASSES, size=(2, 5, 6)).astype(np.int32)
    labels[0, 1, 2], labels[1, 4, 0] = 255, 9
    return logits, labels


def _loss(logits, labels, settings=None):
    return segmentation_loss(tf.constant(logits), tf.constant(labels[..., None]), NUM_CLASSES, settings).numpy()


def _gradient(logits, labels, settings):
    variable = tf.Variable(logits)
    with tf.GradientTape() as tape:
        loss = segmentation_loss(variable, tf.constant(labels[..., None]), NUM_CLASSES, settings)
    return tape.gradient(loss, variable).numpy()


def _per_pixel(logits, labels):
    """NumPy cross-entropy of the valid pixels, their labels, and the valid mask."""
    valid = labels < NUM_CLASSES
    return _numpy_cross_entropy(logits, np.where(valid, labels, 0))[valid], labels[valid], valid


def test_class_weights_give_the_weighted_mean_of_the_pixel_cross_entropies():
    logits, labels = _batch()
    weights = np.array([0.5, 1.0, 4.0, 0.0])
    losses, classes, _ = _per_pixel(logits, labels)
    expected = np.sum(weights[classes] * losses) / np.sum(weights[classes])
    np.testing.assert_allclose(_loss(logits, labels, PixelLoss(class_weights=tuple(weights))), expected, rtol=1e-5)
    # weights of one value change nothing: the mean is normalised by the weights
    np.testing.assert_allclose(_loss(logits, labels, PixelLoss(class_weights=(3.0,) * 4)), losses.mean(), rtol=1e-5)


@pytest.mark.parametrize("keep, min_kept, kept", [(0.25, 0, 15), (0.1, 0, 6), (0.1, 20, 20), (0.5, 1000, 58),
                                                  (1.0, 0, 58)])
def test_ohem_keeps_exactly_the_k_hardest_valid_pixels(keep, min_kept, kept):
    logits, labels = _batch()
    losses, classes, valid = _per_pixel(logits, labels)
    assert len(losses) == 58 and kept == min(58, max(int(np.ceil(keep * 58)), min_kept))
    hardest = np.argsort(-losses)[:kept]
    settings = PixelLoss("ohem", ohem_keep=keep, ohem_min_kept=min_kept)
    np.testing.assert_allclose(_loss(logits, labels, settings), losses[hardest].mean(), rtol=1e-5)
    # only the kept pixels receive a gradient
    touched = np.abs(_gradient(logits, labels, settings)).sum(-1) > 0
    expected = np.zeros_like(valid)
    expected[tuple(index[hardest] for index in np.nonzero(valid))] = True
    np.testing.assert_array_equal(touched, expected)


def test_ohem_ranks_pixels_by_their_loss_and_then_applies_the_class_weights():
    logits, labels = _batch(1)
    weights = np.array([1.0, 2.0, 0.5, 3.0])
    losses, classes, _ = _per_pixel(logits, labels)
    hardest = np.argsort(-losses)[:15]
    expected = np.sum(weights[classes[hardest]] * losses[hardest]) / np.sum(weights[classes[hardest]])
    settings = PixelLoss("ohem", tuple(weights), ohem_keep=0.25, ohem_min_kept=0)
    np.testing.assert_allclose(_loss(logits, labels, settings), expected, rtol=1e-5)


def test_focal_loss_scales_each_pixel_by_one_minus_p_to_the_gamma_and_is_cross_entropy_at_gamma_0():
    logits, labels = _batch(2)
    weights = np.array([1.0, 2.0, 0.5, 3.0])
    losses, classes, _ = _per_pixel(logits, labels)
    focal = (1 - np.exp(-losses)) ** 2 * losses
    expected = np.sum(weights[classes] * focal) / np.sum(weights[classes])
    np.testing.assert_allclose(_loss(logits, labels, PixelLoss("focal", tuple(weights), focal_gamma=2.0)), expected,
                               rtol=1e-5)
    np.testing.assert_allclose(_loss(logits, labels, PixelLoss("focal", focal_gamma=0.0)), _loss(logits, labels),
                               rtol=1e-6)


@pytest.mark.parametrize("settings", [PixelLoss(), PixelLoss(class_weights=(1.0, 2.0, 0.5, 3.0)),
                                      PixelLoss("ohem", ohem_keep=0.2, ohem_min_kept=0),
                                      PixelLoss("focal", focal_gamma=0.5), PixelLoss("focal", focal_gamma=0.0),
                                      PixelLoss("dice"), PixelLoss("dice", class_weights=(1.0, 2.0, 0.5, 3.0))],
                         ids=["cross-entropy", "weighted", "ohem", "focal-0.5", "focal-0", "dice", "dice-weighted"])
def test_ignored_pixels_contribute_nothing_and_gradients_stay_finite(settings):
    logits, labels = _batch(3)
    logits[0, 0, 0] = [60.0, -60.0, -60.0, -60.0]  # a pixel the model is sure of: p rounds to 1
    labels[0, 0, 0] = 0
    changed = logits.copy()
    ignored = labels >= NUM_CLASSES
    changed[ignored] = 50.0 * np.random.default_rng(4).normal(size=(ignored.sum(), NUM_CLASSES))
    np.testing.assert_allclose(_loss(changed, labels, settings), _loss(logits, labels, settings), rtol=1e-6)
    gradient = _gradient(logits, labels, settings)
    assert np.all(np.isfinite(gradient)) and np.all(gradient[ignored] == 0)
    everything_ignored = np.full_like(labels, 255)
    assert _loss(logits, everything_ignored, settings) == 0.0
    assert np.all(_gradient(logits, everything_ignored, settings) == 0)


def _numpy_dice_loss(logits, labels, weights=None):
    valid = labels < NUM_CLASSES
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities = (shifted / shifted.sum(-1, keepdims=True))[valid]
    truth = np.eye(NUM_CLASSES)[labels[valid]]
    dice = ((2 * (probabilities * truth).sum(0) + DICE_SMOOTHING)
            / (probabilities.sum(0) + truth.sum(0) + DICE_SMOOTHING))
    weights = np.ones(NUM_CLASSES) if weights is None else np.asarray(weights)
    return 1 - (weights * dice).sum() / weights.sum()


@pytest.mark.parametrize("weights", [None, (1.0, 2.0, 0.5, 3.0)])
def test_soft_dice_loss_against_numpy_over_the_labelled_pixels(weights):
    logits, labels = _batch(7)
    np.testing.assert_allclose(_loss(logits, labels, PixelLoss("dice", weights)),
                               _numpy_dice_loss(logits, labels, weights), rtol=1e-5)


def test_soft_dice_loss_is_near_0_for_a_sure_right_answer_and_near_1_for_a_sure_wrong_one():
    _, labels = _batch(8)
    labels[labels >= NUM_CLASSES] = 0
    right = 40.0 * np.eye(NUM_CLASSES, dtype=np.float32)[labels]
    wrong = 40.0 * np.eye(NUM_CLASSES, dtype=np.float32)[(labels + 1) % NUM_CLASSES]
    assert _loss(right, labels, PixelLoss("dice")) < 1e-3
    assert _loss(wrong, labels, PixelLoss("dice")) > 0.9


def test_multiscale_loss_uses_the_chosen_loss_for_every_term():
    logits, labels = _batch(5)
    small, _ = _batch(6)
    small = small[:, :3, :3]  # a 3x3 scale: labels are nearest-resized to it
    settings = PixelLoss("ohem", (1.0, 2.0, 0.5, 3.0), ohem_keep=0.3, ohem_min_kept=0)
    outputs = MultiScaleLogits(tf.constant(logits), (tf.constant(logits), tf.constant(small)))
    total = multiscale_loss(outputs, tf.constant(labels[..., None]), NUM_CLASSES, settings).numpy()
    small_labels = resize_labels(tf.constant(labels[..., None]), [3, 3]).numpy()
    np.testing.assert_allclose(total, 2 * _loss(logits, labels, settings) + _loss(small, small_labels, settings),
                               rtol=1e-5)
    assert abs(total - multiscale_loss(outputs, tf.constant(labels[..., None]), NUM_CLASSES).numpy()) > 0.1


@pytest.mark.parametrize("changes, message", [
    (dict(kind="lovasz"), "loss must be one of cross-entropy, ohem, focal, dice, got 'lovasz'"),
    (dict(ohem_keep=0.0), "ohem_keep is the fraction of pixels OHEM keeps, in (0, 1]; got 0.0"),
    (dict(ohem_keep=1.5), "ohem_keep is the fraction of pixels OHEM keeps, in (0, 1]; got 1.5"),
    (dict(ohem_min_kept=-1), "ohem_min_kept must be a whole number >= 0, got -1"),
    (dict(focal_gamma=-0.5), "focal_gamma must be a finite number >= 0, got -0.5"),
])
def test_bad_loss_settings_are_refused_in_one_line_naming_the_parameter(changes, message):
    with pytest.raises(ConfigError) as error:
        PixelLoss(**changes)
    assert str(error.value) == message
