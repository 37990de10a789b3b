"""Confusion-matrix scores: hand-computed cases, agreement with TensorFlow's mean_iou, and nIoU."""

import numpy as np
import pytest

from refinenet_tf.errors import DataError
from refinenet_tf.evaluate.metrics import ConfusionMatrix, InstanceStats

IGNORE = 255

# 4 classes; class 3 never occurs. The pixel labelled 255 (predicted 2) must not count.
LABELS = np.array([[0, 0, 1], [1, 2, IGNORE]])
PREDICTIONS = np.array([[0, 1, 1], [1, 0, 2]])


def test_hand_computed_scores():
    confusion = ConfusionMatrix(4)
    confusion.update(LABELS, PREDICTIONS)
    # rows = ground truth, columns = prediction
    np.testing.assert_array_equal(confusion.matrix, [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    assert confusion.total == 5
    # IoU: class 0: 1 / (2 + 2 - 1); class 1: 2 / (2 + 3 - 2); class 2: 0 / 1; class 3 absent -> n/a
    np.testing.assert_allclose(confusion.class_iou(), [1 / 3, 2 / 3, 0.0, np.nan])
    np.testing.assert_allclose(confusion.class_accuracy(), [1 / 2, 1.0, 0.0, np.nan])
    assert confusion.mean_iou() == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert confusion.pixel_accuracy() == pytest.approx(3 / 5)
    assert confusion.mean_class_accuracy() == pytest.approx(0.5)
    # ground-truth frequencies 2/5, 2/5, 1/5
    assert confusion.frequency_weighted_iou() == pytest.approx(0.4 * 1 / 3 + 0.4 * 2 / 3 + 0.2 * 0)
    # precision TP / predicted: 1/2, 2/3, class 2 never predicted -> n/a; F1 2 TP / (truth + predicted)
    np.testing.assert_allclose(confusion.class_precision(), [1 / 2, 2 / 3, np.nan, np.nan])
    np.testing.assert_allclose(confusion.class_f1(), [2 / 4, 4 / 5, 0.0, np.nan])
    scores = confusion.scores()
    assert scores.mean_precision == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert scores.mean_f1 == pytest.approx((1 / 2 + 4 / 5 + 0) / 3)


def test_f1_is_the_harmonic_mean_of_precision_and_recall_and_the_dice_of_the_masks():
    rng = np.random.default_rng(3)
    labels, predictions = rng.integers(0, 4, (2, 50, 60))
    confusion = ConfusionMatrix(4)
    confusion.update(labels, predictions)
    precision, recall = confusion.class_precision(), confusion.class_accuracy()
    np.testing.assert_allclose(confusion.class_f1(), 2 * precision * recall / (precision + recall))
    for index in range(4):
        truth, predicted = labels == index, predictions == index
        dice = 2 * (truth & predicted).sum() / (truth.sum() + predicted.sum())
        assert confusion.class_f1()[index] == pytest.approx(dice)


def test_class_only_predicted_scores_zero_iou_and_no_accuracy():
    confusion = ConfusionMatrix(3)
    confusion.update(np.array([0, 0]), np.array([0, 1]))
    # class 1: never in the ground truth but predicted once -> IoU 0, recall undefined; class 2 n/a
    np.testing.assert_allclose(confusion.class_iou(), [0.5, 0.0, np.nan])
    np.testing.assert_allclose(confusion.class_accuracy(), [0.5, np.nan, np.nan])
    np.testing.assert_allclose(confusion.class_precision(), [1.0, 0.0, np.nan])
    np.testing.assert_allclose(confusion.class_f1(), [2 / 3, 0.0, np.nan])
    assert confusion.mean_iou() == pytest.approx(0.25)
    assert confusion.mean_class_accuracy() == pytest.approx(0.5)


def test_empty_matrix_gives_nan_not_an_error():
    scores = ConfusionMatrix(2).scores()
    assert np.isnan(scores.mean_iou) and np.isnan(scores.pixel_accuracy) and np.isnan(scores.frequency_weighted_iou)


def _random_batches(seed, num_classes, count=4, shape=(2, 17, 23)):
    """Labels using classes 0..num_classes-2 (the last class never occurs) with ignored pixels."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        labels = rng.integers(0, num_classes - 1, size=shape)
        predictions = np.where(rng.random(shape) < 0.6, labels, rng.integers(0, num_classes - 1, size=shape))
        labels[rng.random(shape) < 0.15] = IGNORE
        batches.append((labels, predictions))
    return batches


def test_agrees_with_tensorflow_mean_iou():
    tf = pytest.importorskip("tensorflow")
    num_classes = 7
    batches = _random_batches(seed=3, num_classes=num_classes)
    confusion = ConfusionMatrix(num_classes)
    for labels, predictions in batches:
        confusion.update(labels, predictions)

    with tf.Graph().as_default():
        labels_in = tf.compat.v1.placeholder(tf.int64, shape=batches[0][0].shape)
        predictions_in = tf.compat.v1.placeholder(tf.int64, shape=batches[0][0].shape)
        counted = tf.less(labels_in, num_classes)
        mean_iou, update = tf.compat.v1.metrics.mean_iou(
            labels=tf.where(counted, labels_in, tf.zeros_like(labels_in)), predictions=predictions_in,
            num_classes=num_classes, weights=tf.cast(counted, tf.float32))
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.local_variables_initializer())
            for labels, predictions in batches:
                session.run(update, {labels_in: labels, predictions_in: predictions})
            expected_miou = session.run(mean_iou)
            (tf_matrix,) = session.run(tf.compat.v1.local_variables())

    np.testing.assert_array_equal(confusion.matrix, tf_matrix.astype(np.int64))
    assert np.isnan(confusion.class_iou()[num_classes - 1])
    assert confusion.mean_iou() == pytest.approx(float(expected_miou), rel=1e-6)


def test_updates_merge_and_add_like_one_big_update():
    batches = _random_batches(seed=5, num_classes=5)
    whole = ConfusionMatrix(5)
    whole.update(np.stack([b[0] for b in batches]), np.stack([b[1] for b in batches]))
    first, second = ConfusionMatrix(5), ConfusionMatrix(5)
    for labels, predictions in batches[:2]:
        first.update(labels, predictions)
    for labels, predictions in batches[2:]:
        second.update(labels, predictions)
    np.testing.assert_array_equal((first + second).matrix, whole.matrix)
    first += second
    np.testing.assert_array_equal(first.matrix, whole.matrix)


def test_bad_inputs_raise_data_errors():
    confusion = ConfusionMatrix(3)
    with pytest.raises(DataError, match="shape"):
        confusion.update(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(DataError, match="prediction value 7"):
        confusion.update(np.zeros(3), np.array([0, 7, 1]))
    # a bad prediction on an ignored pixel is harmless
    confusion.update(np.array([0, IGNORE]), np.array([0, 7]))
    assert confusion.total == 1


# One image, classes 0 (stuff) and 1, 2 (things). Instance A of class 1: 4 pixels, 2 predicted right;
# instance B of class 1: 1 pixel, missed; one stuff pixel predicted as class 1 (a false positive).
NIOU_LABELS = np.array([[1, 1, 1, 1, 0, 1], [0, 0, 0, 0, 0, IGNORE]])
NIOU_INSTANCES = np.array([[1, 1, 1, 1, 0, 2], [0, 0, 0, 0, 0, 0]])
NIOU_PREDICTIONS = np.array([[1, 1, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0]])


def _niou_scores(instances_stats, images):
    confusion = ConfusionMatrix(3)
    for labels, predictions, instances in images:
        confusion.update(labels, predictions)
        instances_stats.update(labels, predictions, instances)
    return confusion.scores(instances_stats)


def test_instance_iou_hand_computed():
    stats = InstanceStats(3, thing_classes=[1, 2])
    scores = _niou_scores(stats, [(NIOU_LABELS, NIOU_PREDICTIONS, NIOU_INSTANCES)])
    # average size of class 1 = (4 + 1) / 2 = 2.5; weights A 2.5/4, B 2.5/1
    assert stats.average_sizes() == {1: 2.5}
    weighted_tp = 2.5 / 4 * 2
    weighted_fn = 2.5 / 4 * 2 + 2.5 / 1 * 1
    assert weighted_tp == 1.25 and weighted_fn == 3.75
    assert scores.class_niou[1] == pytest.approx(1.25 / (1.25 + 1 + 3.75))
    assert np.isnan(scores.class_niou[0])  # stuff class
    assert np.isnan(scores.class_niou[2])  # thing class with nothing in ground truth or prediction
    assert scores.mean_niou == pytest.approx(1.25 / 6)
    assert scores.class_iou[1] == pytest.approx(2 / (5 + 3 - 2))  # plain IoU is unaffected


def test_instance_iou_with_given_average_sizes():
    stats = InstanceStats(3, thing_classes=[1, 2], average_sizes={1: 5.0})
    scores = _niou_scores(stats, [(NIOU_LABELS, NIOU_PREDICTIONS, NIOU_INSTANCES)])
    # weights A 5/4, B 5/1: wTP = 2.5, wFN = 2.5 + 5
    assert scores.class_niou[1] == pytest.approx(2.5 / (2.5 + 1 + 7.5))


def test_instance_sizes_are_averaged_over_the_whole_set():
    """The same two instances split over two images (both with id 1) give the same nIoU."""
    first_instances = np.where(NIOU_INSTANCES == 1, 1, 0)
    second_instances = np.where(NIOU_INSTANCES == 2, 1, 0)
    # the second image holds only B; everything else there is correctly predicted stuff
    second_labels = np.where(NIOU_INSTANCES == 2, NIOU_LABELS, 0)
    second_predictions = np.where(NIOU_INSTANCES == 2, NIOU_PREDICTIONS, 0)
    first_labels = np.where(NIOU_INSTANCES == 2, 0, NIOU_LABELS)
    first_predictions = np.where(NIOU_INSTANCES == 2, 0, NIOU_PREDICTIONS)
    first, second = InstanceStats(3, [1, 2]), InstanceStats(3, [1, 2])
    confusion = ConfusionMatrix(3)
    for stats, labels, predictions, instances in [(first, first_labels, first_predictions, first_instances),
                                                  (second, second_labels, second_predictions, second_instances)]:
        stats.update(labels, predictions, instances)
        confusion.update(labels, predictions)
    merged = first.merge(second)
    assert merged.average_sizes() == {1: 2.5}
    assert merged.class_niou(confusion)[1] == pytest.approx(1.25 / 6)
