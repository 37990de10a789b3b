"""Prediction graph: multi-scale fusion, mirror averaging, logits at output stride, and the Predictor."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from refinenet_tf import checkpoints as checkpoint_files
from refinenet_tf.errors import CheckpointError, ConfigError, DataError, DescriptionError
from refinenet_tf.predict.graph import PredictOptions, build_predictor_graph
from refinenet_tf.predict.predictor import Prediction, Predictor, description_for_checkpoint
from tests.support.model_factory import CONSTANT_LOGITS, NUM_CLASSES

HEIGHT, WIDTH = 37, 45  # not multiples of 4: the logits are ceil(H/4) x ceil(W/4)
v1 = tf.compat.v1


@pytest.fixture(scope="module")
def checkpoints(tiny_checkpoints):
    return tiny_checkpoints


@pytest.fixture(scope="module")
def image():
    return np.random.RandomState(7).randint(0, 256, (HEIGHT, WIDTH, 3)).astype(np.uint8)


class Variants:
    """One Predictor per way of predicting, all on the same checkpoint."""

    def __init__(self, checkpoint: str, variants: dict[str, PredictOptions]):
        self.predictors = {name: Predictor(checkpoint, options=options, threads=2) for name, options in variants.items()}

    def predict(self, name: str, image: np.ndarray) -> Prediction:
        return self.predictors[name].predict(image)

    def close(self) -> None:
        for predictor in self.predictors.values():
            predictor.close()


def variable_graph_prediction(checkpoint: str, options: PredictOptions, image: np.ndarray) -> Prediction:
    """The prediction of the plain variable graph (no folding), the reference for the Predictor."""
    graph = tf.Graph()
    with graph.as_default():
        tensors = build_predictor_graph(description_for_checkpoint(checkpoint), options)
        with v1.Session(graph=graph) as session:
            checkpoint_files.restore(session, checkpoint, v1.global_variables())
            return Prediction(*session.run([tensors.labels, tensors.probabilities, tensors.logits_os],
                                           {tensors.image: image[None]}))


@pytest.fixture(scope="module")
def constant(checkpoints):
    variants = Variants(checkpoints[1], {
        "single": PredictOptions(),
        "max": PredictOptions((1.0, 0.75, 0.5), "max"),
        "mean_flip": PredictOptions((0.5, 1.0), "mean", flip=True),
    })
    yield variants
    variants.close()


@pytest.fixture(scope="module")
def random_model(checkpoints):
    variants = Variants(checkpoints[0], {
        "single": PredictOptions(),
        "flip": PredictOptions(flip=True),
        "twice_max": PredictOptions((1.0, 1.0), "max"),
        "twice_mean": PredictOptions((1.0, 1.0), "mean"),
        "two_scales_max": PredictOptions((1.0, 0.5), "max"),
        "two_scales_mean": PredictOptions((1.0, 0.5), "mean"),
    })
    yield variants
    variants.close()


def _softmax(logits) -> np.ndarray:
    exp = np.exp(np.asarray(logits, np.float64) - np.max(logits))
    return exp / exp.sum()


def test_invariant_model_gives_the_single_scale_result_for_every_option(constant, image):
    expected = _softmax(CONSTANT_LOGITS)
    single = constant.predict("single", image)
    assert single.labels.shape == (HEIGHT, WIDTH) and single.labels.dtype == np.int32
    assert single.probabilities.shape == (HEIGHT, WIDTH, NUM_CLASSES)
    np.testing.assert_allclose(single.probabilities, np.broadcast_to(expected, single.probabilities.shape),
                               rtol=1e-5)
    for name in ("max", "mean_flip"):
        other = constant.predict(name, image)
        np.testing.assert_array_equal(other.labels, single.labels)
        np.testing.assert_allclose(other.probabilities, single.probabilities, rtol=1e-5)
    assert np.all(single.labels == int(np.argmax(CONSTANT_LOGITS)))


def test_logits_at_output_stride_are_the_unresized_scale_one_logits(constant, random_model, image):
    logits = constant.predict("mean_flip", image).logits_os
    assert logits.shape == (10, 12, NUM_CLASSES) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, np.broadcast_to(CONSTANT_LOGITS, logits.shape), rtol=1e-6)
    single = random_model.predict("single", image).logits_os
    # the same sums in other graphs: oneDNN may order them otherwise (seen: 1.6e-6 apart on logits up to 2.5)
    scale = float(np.abs(single).max())
    for name in ("flip", "two_scales_max"):
        np.testing.assert_allclose(random_model.predict(name, image).logits_os, single, rtol=1e-5, atol=1e-5 * scale)


def test_repeating_a_scale_changes_nothing_for_max_and_mean(random_model, image):
    single = random_model.predict("single", image)
    for name in ("twice_max", "twice_mean"):
        repeated = random_model.predict(name, image)
        np.testing.assert_allclose(repeated.probabilities, single.probabilities, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(repeated.labels, single.labels)


def test_max_and_mean_fusion_of_different_scales_differ(random_model, image):
    single = random_model.predict("single", image).probabilities
    fused_max = random_model.predict("two_scales_max", image).probabilities
    fused_mean = random_model.predict("two_scales_mean", image).probabilities
    assert not np.allclose(fused_max, single, atol=1e-4)
    assert not np.allclose(fused_mean, single, atol=1e-4)
    assert not np.allclose(fused_max, fused_mean, atol=1e-4)


def test_flip_really_mirrors(random_model, image):
    mirrored = image[:, ::-1]
    plain = random_model.predict("single", image).probabilities
    plain_of_mirror = random_model.predict("single", mirrored).probabilities
    # the network alone is not mirror-symmetric, so averaging with the mirror changes the result ...
    assert not np.allclose(plain_of_mirror[:, ::-1], plain, atol=1e-4)
    flipped = random_model.predict("flip", image)
    assert not np.allclose(flipped.probabilities, plain, atol=1e-4)
    # ... into the mean of the two, which is mirror-symmetric
    np.testing.assert_allclose(flipped.probabilities, 0.5 * (plain + plain_of_mirror[:, ::-1]), atol=0.05)
    flipped_of_mirror = random_model.predict("flip", mirrored)
    np.testing.assert_allclose(flipped_of_mirror.probabilities, flipped.probabilities[:, ::-1], rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(flipped_of_mirror.labels, flipped.labels[:, ::-1])


def test_predictor_equals_the_variable_graph_and_several_coexist(checkpoints, constant, image):
    with Predictor(checkpoints[0], options=PredictOptions(flip=True), threads=1) as first, \
            Predictor(checkpoints[1]) as second:
        assert first.description.num_classes == NUM_CLASSES
        assert first.checkpoint.endswith("model.ckpt-1")
        expected = variable_graph_prediction(checkpoints[0], PredictOptions(flip=True), image)
        result = first.predict(image)
        span = float(np.ptp(expected.logits_os))
        np.testing.assert_allclose(result.logits_os, expected.logits_os, atol=1e-5 * span, rtol=0)
        np.testing.assert_allclose(result.probabilities, expected.probabilities, rtol=1e-5, atol=1e-6)
        only_labels = first.predict(image, ("labels",))
        assert only_labels.probabilities is None and only_labels.logits_os is None
        np.testing.assert_array_equal(only_labels.labels, result.labels)
        np.testing.assert_array_equal(second.predict(image).labels, constant.predict("single", image).labels)
        with pytest.raises(DataError, match=r"uint8 RGB image of shape \(H, W, 3\)"):
            first.predict(image.astype(np.float32))


def test_flags_that_disagree_with_the_description_are_refused(checkpoints):
    with pytest.raises(DescriptionError, match=r"num_classes 21 .*\(3\)"):
        description_for_checkpoint(checkpoints[0], num_classes=21)
    with pytest.raises(DescriptionError, match=r"arch lw-refinenet-resnet50 .*lw-refinenet-mobilenetv2"):
        description_for_checkpoint(checkpoints[0], arch="lw-refinenet-resnet50")
    overridden = description_for_checkpoint(checkpoints[0], num_classes=3, ignore_label=0, img_mean=(1, 2, 3))
    assert overridden.ignore_label == 0 and overridden.preprocessing.mean == (1.0, 2.0, 3.0)


def test_checkpoint_without_description_is_read_as_the_arch_or_the_default(tmp_path):
    deeplab = description_for_checkpoint(str(tmp_path))  # DeepLab's own checkpoints have no model.json
    assert (deeplab.arch, deeplab.num_classes, deeplab.stride_on, deeplab.preprocessing.channel_order) == (
        "refinenet-resnet101", 21, "1x1", "BGR")
    described = description_for_checkpoint(str(tmp_path), arch="lw-refinenet-mobilenetv2", num_classes=4)
    assert (described.arch, described.num_classes) == ("lw-refinenet-mobilenetv2", 4)


def test_missing_checkpoint_and_bad_options_are_refused(checkpoints, tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        Predictor(str(tmp_path / "model.ckpt-9"), description_for_checkpoint(checkpoints[0]))
    with pytest.raises(ConfigError, match="must include 1.0"):
        PredictOptions((0.5, 0.75))
    with pytest.raises(ConfigError, match="fusion must be one of max, mean, got 'median'"):
        PredictOptions(fusion="median")
    with pytest.raises(ConfigError, match="scales must be positive numbers"):
        PredictOptions((1.0, -0.5))
