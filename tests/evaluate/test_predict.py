"""Prediction graph: multi-scale fusion, mirror averaging, logits at output stride, and the Predictor."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from refinenet_tf.errors import CheckpointError, ConfigError, DataError, DescriptionError
from refinenet_tf.evaluate.predict import (
    Prediction,
    PredictOptions,
    Predictor,
    build_predictor_graph,
    check_options,
    description_for_checkpoint,
    restore_model,
)
from refinenet_tf.sessions import new_session
from tests.support.model_factory import CONSTANT_LOGITS, NUM_CLASSES, write_checkpoints

HEIGHT, WIDTH = 37, 45  # not multiples of 4: the logits are ceil(H/4) x ceil(W/4)
v1 = tf.compat.v1


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return write_checkpoints(str(tmp_path_factory.mktemp("checkpoints")))


@pytest.fixture(scope="module")
def image():
    return np.random.RandomState(7).randint(0, 256, (HEIGHT, WIDTH, 3)).astype(np.uint8)


class Variants:
    """Several prediction graphs sharing one set of restored weights, fed the same placeholder."""

    def __init__(self, checkpoint: str, variants: dict[str, PredictOptions]):
        self.description = description_for_checkpoint(checkpoint)
        graph = tf.Graph()
        with graph.as_default():
            self.image = v1.placeholder(tf.uint8, [1, None, None, 3])
            self.tensors = {}
            for index, (name, options) in enumerate(variants.items()):
                with v1.variable_scope(v1.get_variable_scope(), reuse=True if index else None):
                    self.tensors[name] = build_predictor_graph(self.description, options.scales, options.fusion,
                                                               options.flip, image=self.image)
        self.session = new_session(graph, threads=2, inter_op_threads=2)
        restore_model(self.session, checkpoint)

    def predict(self, name: str, image: np.ndarray) -> Prediction:
        tensors = self.tensors[name]
        return Prediction(*self.session.run([tensors.labels, tensors.probabilities, tensors.logits_os],
                                            feed_dict={self.image: image[np.newaxis]}))


@pytest.fixture(scope="module")
def constant(checkpoints):
    variants = Variants(checkpoints[1], {
        "single": PredictOptions(),
        "max": PredictOptions((1.0, 0.75, 0.5), "max"),
        "mean_flip": PredictOptions((0.5, 1.0), "mean", flip=True),
    })
    yield variants
    variants.session.close()


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
    variants.session.close()


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
    for name in ("flip", "two_scales_max"):
        np.testing.assert_allclose(random_model.predict(name, image).logits_os, single, rtol=1e-5, atol=1e-6)


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


def test_predictor_restores_and_several_coexist(checkpoints, random_model, constant, image):
    with Predictor(checkpoints[0], options=PredictOptions(flip=True), threads=1) as first, \
            Predictor(checkpoints[1]) as second:
        assert first.description.num_classes == NUM_CLASSES
        assert first.checkpoint.endswith("model.ckpt-1")
        np.testing.assert_allclose(first.predict(image).probabilities,
                                   random_model.predict("flip", image).probabilities, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(second.predict(image).labels, constant.predict("single", image).labels)
        with pytest.raises(DataError, match="uint8 HxWx3"):
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
        check_options(PredictOptions((0.5, 0.75)))
    with pytest.raises(ConfigError, match="fusion must be one of max, mean, got 'median'"):
        check_options(PredictOptions(fusion="median"))
