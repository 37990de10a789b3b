"""Tiled prediction: window planning, blending, the banded resize, agreement with whole-image prediction of a
trained model, batches of same-size images, probability files, and the one-line errors of bad settings."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from refinenet_tf.errors import ConfigError
from refinenet_tf.predict import tiling
from refinenet_tf.predict.crf import CRFParams, CRFPool, dense_crf
from refinenet_tf.predict.predictor import Predictor
from refinenet_tf.predict.probability_files import probability_paths, save_probabilities
from refinenet_tf.predict.segment import SegmentSettings, group_by_size, segment_files
from refinenet_tf.predict.tiling import (
    EDGE_WEIGHT,
    LogitMap,
    auto_tile,
    blend_weights,
    check_overlap,
    check_tile,
    crf_labels,
    crf_margin,
    crf_marginal_bands,
    plan_tiles,
    tiled_logits,
)
from tests.support.toy_data import render


@pytest.fixture(scope="module")
def predictor(toy_model):
    with Predictor(toy_model, threads=2) as predictor:
        yield predictor


def toy_images(count: int, size: tuple[int, int], seed: int = 11) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [render(rng, size)[0] for _ in range(count)]


@pytest.mark.parametrize("size, tile, overlap", [((200, 264), (64, 64), 0.25), ((37, 45), (64, 96), 0.5),
                                                 ((1000, 70), (128, 32), 0.0), ((129, 257), (96, 160), 0.9)])
def test_windows_cover_every_pixel_inside_the_padded_image_and_honour_the_overlap(size, tile, overlap):
    plan = plan_tiles(size, tile, overlap)
    covered = np.zeros(plan.padded_size, int)
    for top, left in plan.windows:
        assert top % 4 == 0 and left % 4 == 0
        assert top + plan.window[0] <= plan.padded_size[0] and left + plan.window[1] <= plan.padded_size[1]
        covered[top:top + plan.window[0], left:left + plan.window[1]] += 1
    assert covered.min() >= 1
    assert plan.padded_size[0] >= size[0] and plan.padded_size[1] >= size[1]
    assert all(side % 32 == 0 and side <= wanted for side, wanted in zip(plan.window, tile, strict=True))
    for starts, window in ((plan.row_starts, plan.window[0]), (plan.column_starts, plan.window[1])):
        assert starts[0] == 0
        for first, second in zip(starts, starts[1:], strict=False):
            assert 0 < second - first and window - (second - first) >= overlap * window


def test_blend_weights_fall_from_the_middle_to_a_floor_at_the_edges():
    weights = blend_weights(16, 24)
    assert weights.shape == (16, 24) and weights.dtype == np.float32
    assert weights.min() >= EDGE_WEIGHT * 0.99 and weights.max() <= 1
    assert weights[8, 12] > 0.98 and weights[0, 0] < 0.02
    np.testing.assert_allclose(weights, weights[::-1, ::-1], rtol=1e-6)


def test_blending_reproduces_logits_that_do_not_depend_on_the_window():
    """A 'model' whose logits are a function of the image alone: every blend of windows gives them back."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (150, 210, 3)).astype(np.uint8)
    truth = rng.normal(size=(38, 53, 5)).astype(np.float32)  # ceil(150/4) x ceil(210/4) cells
    fill = (10, 20, 30)

    def windows_logits(windows):  # finds each window in the image by its pixels and returns its cells
        found = []
        for window in windows:
            matches = [(top, left) for top in range(0, 160, 4) for left in range(0, 220, 4)
                       if np.array_equal(window[:4, :4], image[top:top + 4, left:left + 4])]
            top, left = matches[0]
            padded = np.zeros((40, 56, 5), np.float32)
            padded[:38, :53] = truth
            found.append(padded[top // 4:(top + window.shape[0]) // 4, left // 4:(left + window.shape[1]) // 4])
        return np.stack(found)

    plan = plan_tiles(image.shape[:2], (64, 96), 0.25)
    logits = tiled_logits(windows_logits, image, plan, fill, batch_size=3)
    np.testing.assert_allclose(logits.logits, truth, rtol=1e-5, atol=1e-5)


def test_the_banded_resize_equals_tensorflows_bilinear_resize():
    logits = np.random.default_rng(1).normal(size=(10, 13, 4)).astype(np.float32)
    size = (37, 51)  # ceil(37/4) = 10, ceil(51/4) = 13
    expected = tf.image.resize(logits[None], size, method="bilinear").numpy()[0]
    resized = LogitMap(logits, size)
    bands = np.concatenate([resized.rows(start, stop) for start, stop in resized.bands(7)])
    np.testing.assert_allclose(bands, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(resized.labels(), expected.argmax(axis=-1))
    np.testing.assert_allclose(resized.probabilities(3, 9), tf.nn.softmax(expected[3:9]).numpy(), atol=1e-6)


def test_tiled_labels_agree_with_whole_image_labels_of_a_trained_model(predictor):
    agreements = []
    for image in toy_images(3, (200, 264)):
        whole = predictor.predict(image, ("labels",)).labels
        tiled = predictor.predict_tiled(image, (96, 128), 0.25, batch_size=4).labels()
        assert tiled.shape == whole.shape
        agreements.append(np.mean(tiled == whole))
    assert min(agreements) >= 0.98, agreements


def test_fused_logits_resized_in_bands_are_the_whole_image_prediction(predictor):
    image = toy_images(1, (61, 83))[0]
    prediction = predictor.predict(image, ("labels", "probabilities", "fused_logits"))
    logits = LogitMap(prediction.fused_logits, image.shape[:2])
    assert np.mean(logits.labels() == prediction.labels) > 0.999
    np.testing.assert_allclose(logits.probabilities(0, 61), prediction.probabilities, atol=1e-4)


def test_batches_of_images_equal_one_image_at_a_time(predictor):
    images = toy_images(3, (48, 64), seed=3)
    batch = predictor.predict_batch(np.stack(images), ("labels", "logits_os"))
    for image, prediction in zip(images, batch, strict=True):
        alone = predictor.predict(image, ("labels", "logits_os"))
        assert np.mean(prediction.labels == alone.labels) > 0.999
        np.testing.assert_allclose(prediction.logits_os, alone.logits_os, rtol=1e-3, atol=1e-3)


def test_auto_tiles_only_images_too_large_for_the_budget(predictor):
    assert auto_tile((100, 100), 1000.0, 10_000_000) is None
    assert auto_tile((1000, 1000), 1000.0, 10_000_000) == (96, 96)  # sqrt(10^4) = 100, rounded down to 32s
    assert predictor.tile_for((64, 64), "auto") is None
    assert predictor.tile_for((100_000, 100_000), "auto")[0] % 32 == 0
    assert predictor.tile_for((64, 64), (32, 64)) == (32, 64)


def test_crf_margin_is_three_standard_deviations_of_the_widest_kernel():
    assert crf_margin(CRFParams()) == 147
    assert crf_margin(CRFParams(bilateral_sxy=5, gaussian_sxy=9)) == 27


@pytest.mark.parametrize("tile, message", [((16, 64), "at least 32"), ((64, 100), "multiple of 32"),
                                           ("big", "(height, width) or 'auto'"), ((0, 64), "at least 32")])
def test_bad_tiles_are_one_line_errors_naming_the_parameter(tile, message):
    with pytest.raises(ConfigError, match="tile") as error:
        check_tile(tile)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert error.value.render(lambda name: "--" + name.replace("_", "-")).startswith("--tile ")


@pytest.mark.parametrize("overlap", [-0.1, 1.0, 1.5, "half"])
def test_overlaps_outside_zero_to_one_are_refused(overlap):
    with pytest.raises(ConfigError, match="tile_overlap"):
        check_overlap(overlap)
    assert check_overlap(0) == 0 and check_overlap(0.99) == 0.99


def test_batch_size_below_one_is_refused():
    with pytest.raises(ConfigError, match="batch_size must be at least 1"):
        SegmentSettings(batch_size=0)


def test_images_of_different_sizes_are_grouped_and_batches_never_mix_them(predictor, tmp_path, caplog):
    sizes = [(48, 64), (32, 32), (48, 64), (32, 32), (48, 64)]
    paths = []
    for index, (image, size) in enumerate(zip(toy_images(5, (48, 64)), sizes, strict=True)):
        path = tmp_path / f"im{index}.png"
        Image.fromarray(image[:size[0], :size[1]]).save(path)
        paths.append(str(path))
    assert group_by_size(paths) == [[paths[0], paths[2], paths[4]], [paths[1], paths[3]]]
    with caplog.at_level("INFO"):
        done = list(segment_files(predictor, paths, str(tmp_path / "out"), SegmentSettings(batch_size=2)))
    assert "5 images of 2 sizes" in caplog.text
    assert sorted(item.path for item in done) == sorted(paths)
    for item in done:
        labels = np.asarray(Image.open(item.files[0]))
        expected = predictor.predict(np.asarray(Image.open(item.path).convert("RGB")), ("labels",)).labels
        assert np.mean(labels == expected) > 0.999


def test_probabilities_are_written_in_bands_as_float16_npy_and_per_class_pngs(predictor, tmp_path):
    image = toy_images(1, (70, 90))[0]
    path = tmp_path / "scene.png"
    Image.fromarray(image).save(path)
    names = predictor.description.names()
    for settings in (SegmentSettings(probability_format="npy"),
                     SegmentSettings(tile=(32, 64), probability_format="png", batch_size=2)):
        (item,) = segment_files(predictor, [str(path)], str(tmp_path / "out"), settings)
        mask = np.asarray(Image.open(item.files[0]))
        assert mask.dtype == np.uint8 and mask.max() < len(names)  # plain class indices, no palette
        expected = predictor.predict_tiled(image, (32, 64), batch_size=2) if settings.tile else None
    stored = np.load(probability_paths(str(tmp_path / "out"), "scene", names, "npy")[0])
    assert stored.dtype == np.float16 and stored.shape == (70, 90, len(names))
    np.testing.assert_allclose(stored, predictor.predict(image, ("probabilities",)).probabilities, atol=2e-3)
    pngs = probability_paths(str(tmp_path / "out"), "scene", names, "png")
    assert [p.rsplit("/", 1)[1] for p in pngs] == [f"scene_prob_{name}.png" for name in names]
    levels = np.stack([np.asarray(Image.open(p)) for p in pngs], axis=-1)
    np.testing.assert_allclose(levels / 255, expected.probabilities(0, 70), atol=1 / 255 + 1e-6)


def test_with_a_crf_the_probabilities_written_are_its_marginals_and_the_mask_their_argmax(predictor, tmp_path,
                                                                                         monkeypatch):
    pytest.importorskip("pydensecrf", reason="the CRF needs pydensecrf2")
    params = CRFParams(iterations=5, gaussian_sxy=1, bilateral_sxy=3)  # a margin of 9 rows
    monkeypatch.setattr(tiling, "CRF_BAND_PIXELS", 90 * 40)  # bands of 22 rows: a tiled image takes 4 of them
    image = toy_images(1, (70, 90), seed=5)[0]
    path = tmp_path / "scene.png"
    Image.fromarray(image).save(path)
    names = predictor.description.names()
    softmax = predictor.predict(image, ("probabilities",)).probabilities
    tiled = predictor.predict_tiled(image, (32, 64))
    with CRFPool(params, 1) as pool:
        whole = dense_crf(softmax, image, params)
        bands = list(crf_marginal_bands(tiled, image, pool))
        tiled_crf_labels = crf_labels(tiled, image, pool)
    banded = np.concatenate([band for _, band in bands])
    assert [start for start, _ in bands] == [0, 22, 44, 66] and banded.shape == (70, 90, len(names))
    np.testing.assert_array_equal(tiled_crf_labels, banded.argmax(axis=-1))
    assert np.abs(whole - softmax).max() > 0.05  # the CRF moves the probabilities: they are not the softmax
    for tile, marginals in ((None, whole), ((32, 64), banded)):
        out = str(tmp_path / ("tiled" if tile else "whole"))
        settings = SegmentSettings(tile=tile, crf=params, probability_format="npy")
        (item,) = segment_files(predictor, [str(path)], out, settings)
        stored = np.load(probability_paths(out, "scene", names)[0]).astype(np.float32)
        np.testing.assert_allclose(stored, marginals, atol=1e-3)
        np.testing.assert_array_equal(np.asarray(Image.open(item.files[0])), marginals.argmax(axis=-1))


def test_probability_bands_land_in_their_rows(tmp_path):
    probabilities = np.random.default_rng(2).random((23, 9, 3)).astype(np.float32)
    bands = [(start, probabilities[start:start + 5]) for start in range(0, 23, 5)]
    (path,) = save_probabilities(str(tmp_path), "x", bands, (23, 9), ["a", "b b", "c/d"])
    np.testing.assert_allclose(np.load(path), probabilities, atol=1e-3)
    assert probability_paths(str(tmp_path), "x", ["a", "b b", "c/d"], "png")[1].endswith("x_prob_b_b.png")
