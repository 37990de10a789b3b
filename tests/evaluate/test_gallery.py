"""Per-image mean IoU, the error map, and the bounded worst/best ranking of the report's gallery."""

import math

import numpy as np
import pytest

from refinenet_tf.evaluate import gallery as gallery_module
from refinenet_tf.evaluate.gallery import ERROR_COLOURS, THUMBNAIL_SIDE, Gallery, error_map, image_mean_iou
from refinenet_tf.palette import colourise

PALETTE = np.array([[0, 0, 0], [200, 0, 0], [0, 200, 0]], np.uint8)


def test_image_mean_iou_counts_the_classes_in_truth_or_prediction():
    labels = np.array([[0, 0, 1, 1], [0, 0, 255, 255]])
    predictions = np.array([[0, 1, 1, 1], [0, 0, 2, 2]])
    # class 0: 3 of 4 (one predicted 1); class 1: 2 / 3; class 2 only under the ignore label: not counted
    assert image_mean_iou(labels, predictions, 3) == pytest.approx((3 / 4 + 2 / 3) / 2)
    assert math.isnan(image_mean_iou(np.full((2, 2), 255), np.zeros((2, 2), int), 3))


def test_error_map_paints_right_wrong_and_unscored_pixels():
    labels = np.array([[0, 1, 255]])
    predictions = np.array([[0, 2, 1]])
    expected = np.array([[ERROR_COLOURS["correct"], ERROR_COLOURS["wrong"], ERROR_COLOURS["not scored"]]], np.uint8)
    np.testing.assert_array_equal(error_map(labels, predictions, 3), expected)


def _scene(correct_pixels: int, side: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A side x side image of class 1 whose first ``correct_pixels`` pixels are predicted right, the rest 2."""
    labels = np.ones((side, side), np.int32)
    predictions = np.full((side, side), 2, np.int32)
    predictions.reshape(-1)[:correct_pixels] = 1
    image = np.full((side, side, 3), correct_pixels, np.uint8)
    return image, labels, predictions


def test_the_gallery_keeps_the_k_worst_and_best_and_makes_thumbnails_only_for_them(monkeypatch):
    made = []
    original = gallery_module._thumbnail
    monkeypatch.setattr(gallery_module, "_thumbnail", lambda picture, resample: made.append(1) or
                        original(picture, resample))
    ranking = Gallery(2, PALETTE)
    counts = [50, 10, 90, 10, 70, 30, 100, 0]
    scores = [ranking.add(f"im{index}", *_scene(count)) for index, count in enumerate(counts)]
    # class 1 IoU = c / 100, class 2 (predicted only) IoU = 0, except at 100 (class 2 absent) and 0 (class 1 is 0)
    expected = [count / 100 / 2 if 0 < count < 100 else float(count == 100) for count in counts]
    assert scores == pytest.approx(expected)
    worst, best = ranking.worst(), ranking.best()
    assert [item.path for item in worst] == ["im7", "im1"]  # 0, then the first of the two at 0.05
    assert [item.path for item in best] == ["im6", "im2"]
    assert [item.mean_iou for item in best] == pytest.approx([1.0, 0.45])
    assert ranking.count == len(counts)
    # thumbnails (4 per image) only for images that entered a heap when they came: all but im5 (0.15, when the
    # two worst held 0.05 and 0.05 and the two best 0.45 and 0.35)
    assert len(made) == 4 * (len(counts) - 1)
    item = best[1]
    np.testing.assert_array_equal(item.truth, colourise(np.ones((10, 10), int), PALETTE))
    np.testing.assert_array_equal(item.image, _scene(90)[0])


def test_large_images_become_thumbnails_of_the_longest_side():
    ranking = Gallery(1, PALETTE)
    labels = np.zeros((400, 200), np.int32)
    ranking.add("big", np.zeros((400, 200, 3), np.uint8), labels, labels)
    item = ranking.best()[0]
    assert item.image.shape == (THUMBNAIL_SIDE, THUMBNAIL_SIDE // 2, 3)
    assert item.truth.shape == item.prediction.shape == item.errors.shape == (THUMBNAIL_SIDE, THUMBNAIL_SIDE // 2, 3)
