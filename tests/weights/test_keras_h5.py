"""Keras ResNet h5 import: layout reading, exact bias folding, and end-point parity with Keras' own ResNet50."""

from __future__ import annotations

import h5py
import keras
import numpy as np
import pytest
from keras.src.legacy.saving import legacy_h5_format

from refinenet_tf.description import Preprocessing
from refinenet_tf.weights.convert import convert_weights
from refinenet_tf.weights.keras_h5 import keras_depth, map_keras_layers, read_keras_h5, scope_name
from tests.support.weights import run_checkpoint

LAST_BLOCKS = {"l1": "conv2_block3_out", "l2": "conv3_block4_out", "l3": "conv4_block6_out", "l4": "conv5_block3_out"}


def test_keras_layer_names_map_to_caffe_names():
    assert scope_name("conv1_conv", 101) == "conv1"
    assert scope_name("conv1_bn", 101) == "bn_conv1"
    assert scope_name("conv2_block1_0_conv", 101) == "res2a_branch1"
    assert scope_name("conv4_block23_3_bn", 101) == "bn4b22_branch2c"
    assert scope_name("conv3_block2_2_conv", 50) == "res3b_branch2b"
    assert scope_name("conv4_block23_3_bn", 50) is None
    assert keras_depth([f"conv4_block{i}_1_conv" for i in range(1, 37)]) == 152


def test_full_model_file_with_keras2_names_and_bias_folding(tmp_path):
    path = str(tmp_path / "full_model.h5")
    rng = np.random.default_rng(3)
    kernel, bias = rng.random((1, 1, 4, 8), dtype=np.float32), rng.random(8, dtype=np.float32)
    mean = rng.random(8, dtype=np.float32)
    with h5py.File(path, "w") as handle:
        conv = handle.create_group("model_weights/conv2_block1_1_conv/conv2_block1_1_conv")
        conv["kernel:0"], conv["bias:0"] = kernel, bias
        bn = handle.create_group("model_weights/conv2_block1_1_bn/conv2_block1_1_bn")
        bn["gamma:0"], bn["beta:0"], bn["moving_mean:0"], bn["moving_variance:0"] = mean, mean, mean, mean
        handle.create_group("optimizer_weights")
    layers = read_keras_h5(path)
    assert sorted(layers) == ["conv2_block1_1_bn", "conv2_block1_1_conv"]
    weights = map_keras_layers(path, layers, 50)
    np.testing.assert_array_equal(weights.arrays["res2a_branch2a/weights"], kernel)
    np.testing.assert_array_equal(weights.arrays["bn2a_branch2a/moving_mean"], mean - bias)
    np.testing.assert_array_equal(weights.arrays["bn2a_branch2a/gamma"], mean)
    assert "res2a_branch2a/biases" not in weights.arrays


def _randomise(model: keras.Model, rng: np.random.Generator) -> None:
    """Non-trivial batch-norm statistics, scales and offsets, and conv biases."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.get_weights()[0].shape
            layer.set_weights([rng.uniform(low, high, channels).astype(np.float32)
                               for low, high in ((0.5, 1.5), (-0.2, 0.2), (-0.2, 0.2), (0.5, 1.5))])
        elif isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.uniform(-0.2, 0.2, bias.shape).astype(np.float32)])


@pytest.mark.slow  # Keras' ResNet-50 against ours
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras internals on NumPy 2
def test_keras_resnet50_end_points_match_keras(tmp_path):
    rng = np.random.default_rng(0)
    model = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(None, None, 3))
    _randomise(model, rng)
    path = str(tmp_path / "resnet50_notop.h5")
    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)
    output = str(tmp_path / "out")
    convert_weights(path, "keras", "lw-refinenet-resnet50", 21, output)

    image = rng.integers(0, 256, (67, 93, 3)).astype(np.uint8)
    ours = run_checkpoint(output, image)
    probe = keras.Model(model.input, [model.get_layer(name).output for name in LAST_BLOCKS.values()])
    theirs = probe(Preprocessing.keras().apply_numpy(image[None]), training=False)
    for end_point, expected in zip(LAST_BLOCKS, theirs, strict=True):
        expected = np.asarray(expected)[0]
        assert ours[end_point].shape == expected.shape, end_point
        value_range = float(expected.max() - expected.min())
        assert value_range > 0
        assert np.abs(ours[end_point] - expected).max() < 1e-4 * value_range, end_point
