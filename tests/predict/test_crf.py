"""Dense CRF: improves noisy predictions on a synthetic scene; worker pool matches the in-process call."""

import argparse
import sys

import numpy as np
import pytest

from refinenet_tf.cli import flags
from refinenet_tf.errors import ConfigError, DataError
from refinenet_tf.evaluate.metrics import ConfusionMatrix
from refinenet_tf.predict.crf import CRFParams, CRFPool, dense_crf

COLOURS = np.array([[40, 70, 190], [220, 50, 40], [50, 200, 70]], dtype=np.uint8)


@pytest.fixture
def densecrf():
    return pytest.importorskip("pydensecrf.densecrf", reason="pydensecrf2 is not installed: pip install pydensecrf2")


def make_scene(seed: int, height: int = 60, width: int = 80, noise: float = 1.6):
    """A background, a rectangle and a disc; image colours follow the regions; noisy softmax maps."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((height, width), dtype=np.int64)
    top, left = rng.integers(5, 20), rng.integers(5, 25)
    labels[top:top + 25, left:left + 30] = 1
    rows, cols = np.mgrid[:height, :width]
    centre_row, centre_col = rng.integers(25, 45), rng.integers(45, 65)
    labels[(rows - centre_row) ** 2 + (cols - centre_col) ** 2 < 12**2] = 2
    image = COLOURS[labels].astype(np.int16) + rng.integers(-12, 13, size=(height, width, 3))
    image = np.clip(image, 0, 255).astype(np.uint8)
    logits = 2.0 * np.eye(3)[labels] + rng.normal(0.0, noise, size=(height, width, 3))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    return labels, image, probabilities.astype(np.float32)


def pixel_accuracy(labels, probabilities) -> float:
    confusion = ConfusionMatrix(probabilities.shape[-1])
    confusion.update(labels, probabilities.argmax(axis=-1))
    return confusion.pixel_accuracy()


def test_crf_raises_pixel_accuracy_on_a_noisy_scene(densecrf):
    labels, image, probabilities = make_scene(seed=0)
    refined = dense_crf(probabilities, image)
    assert refined.shape == probabilities.shape and refined.dtype == np.float32
    np.testing.assert_allclose(refined.sum(axis=-1), 1.0, atol=1e-4)
    before, after = pixel_accuracy(labels, probabilities), pixel_accuracy(labels, refined)
    assert after > before + 0.1 and after > 0.95, f"pixel accuracy without CRF {before:.4f}, with CRF {after:.4f}"


@pytest.mark.parametrize("num_classes", [2, 5])
def test_any_number_of_classes(densecrf, num_classes):
    rng = np.random.default_rng(num_classes)
    probabilities = rng.dirichlet(np.ones(num_classes), size=(9, 11)).astype(np.float32)
    image = rng.integers(0, 256, size=(9, 11, 3), dtype=np.uint8)
    refined = dense_crf(probabilities, image, CRFParams(iterations=3))
    assert refined.shape == (9, 11, num_classes)
    np.testing.assert_allclose(refined.sum(axis=-1), 1.0, atol=1e-4)


def test_zero_compatibility_leaves_the_unary_argmax(densecrf):
    """With both pairwise weights 0 the CRF is the softmax of the unaries: the same labels."""
    labels, image, probabilities = make_scene(seed=1)
    refined = dense_crf(probabilities, image, CRFParams(gaussian_compat=0, bilateral_compat=0))
    np.testing.assert_array_equal(refined.argmax(-1), probabilities.argmax(-1))


def test_worker_pool_matches_in_process_results_in_order(densecrf):
    scenes = [make_scene(seed) for seed in range(4)]
    params = CRFParams(iterations=5)
    expected = [dense_crf(probabilities, image, params) for _, image, probabilities in scenes]
    with CRFPool(params, processes=2, max_pending=2) as pool:
        tagged = list(pool.map_tagged((index, probabilities, image) for index, (_, image, probabilities)
                                      in enumerate(scenes)))
        plain = list(pool.map((probabilities, image) for _, image, probabilities in scenes))
    assert [tag for tag, _ in tagged] == [0, 1, 2, 3]
    for want, (_, got_tagged), got in zip(expected, tagged, plain, strict=True):
        np.testing.assert_allclose(got_tagged, want, atol=1e-6)
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_single_process_pool_runs_in_process(densecrf):
    labels, image, probabilities = make_scene(seed=2)
    with CRFPool(CRFParams(iterations=2), processes=1) as pool:
        (refined,) = list(pool.map([(probabilities, image)]))
    np.testing.assert_array_equal(refined, dense_crf(probabilities, image, CRFParams(iterations=2)))


def test_bad_inputs(densecrf):
    _, image, probabilities = make_scene(seed=3)
    with pytest.raises(DataError, match="CRF image is"):
        dense_crf(probabilities, image[:-1])
    with pytest.raises(DataError, match="uint8"):
        dense_crf(probabilities, image.astype(np.float32))
    with pytest.raises(DataError, match="height, width, classes"):
        dense_crf(probabilities[..., 0], image)
    with pytest.raises(ConfigError, match="iterations"):
        CRFParams(iterations=0)
    with pytest.raises(ConfigError, match="bilateral_srgb"):
        CRFParams(bilateral_srgb=0)


def test_missing_pydensecrf_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydensecrf", None)
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    with pytest.raises(ConfigError, match=r'pip install "refinenet_tf\[crf\]"'):
        dense_crf(np.ones((2, 2, 2), np.float32) / 2, np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ConfigError, match="pydensecrf2"):
        CRFPool()


def test_flags_build_params():
    parser = argparse.ArgumentParser()
    flags.add_crf_flags(parser)
    assert flags.crf_params(parser.parse_args([])) == CRFParams()
    params = flags.crf_params(parser.parse_args(["--crf-iterations", "5", "--gaussian-sxy", "3",
                                                     "--gaussian-compat", "2", "--bilateral-sxy", "80",
                                                     "--bilateral-srgb", "7", "--bilateral-compat", "10"]))
    assert params == CRFParams(iterations=5, gaussian_sxy=3, gaussian_compat=2, bilateral_sxy=80,
                               bilateral_srgb=7, bilateral_compat=10)


def test_read_only_image_is_accepted(densecrf):
    # Images decoded by PIL through np.asarray are read-only; the CRF must not need to write to them.
    image = np.zeros((12, 10, 3), np.uint8)
    image[:, 5:] = 200
    image.setflags(write=False)
    probabilities = np.full((12, 10, 2), 0.5, np.float32)
    probabilities[:, 5:, 1] = 0.9
    probabilities[:, 5:, 0] = 0.1
    refined = dense_crf(probabilities, image)
    assert refined.shape == (12, 10, 2)
    assert (refined[:, 5:].argmax(-1) == 1).all()
