"""DeepLab-ResNet-TF checkpoints: backbone names kept, DeepLab's classifier and optimiser slots left out."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import tensorflow as tf

from refinenet_tf.architectures import is_backbone_variable
from refinenet_tf.errors import WeightsError
from refinenet_tf.weights.convert import convert_weights
from tests.support.weights import arch_variable_shapes, checkpoint_arrays, random_weights


def _write_deeplab_checkpoint(path: str, skip: str | None = None) -> dict[str, np.ndarray]:
    """A ResNet-50 checkpoint with DeepLab's names, its classifier and a Momentum slot; returns the backbone."""
    shapes = arch_variable_shapes("lw-refinenet-resnet50")
    arrays = random_weights({name: shape for name, shape in shapes.items() if is_backbone_variable(name)}, seed=7)
    saved = {name: array for name, array in arrays.items() if name != skip}
    saved["fc1_voc12_c0/weights"] = np.ones((3, 3, 2048, 21), np.float32)
    saved["conv1/weights/Momentum"] = np.ones((7, 7, 3, 64), np.float32)
    tf.raw_ops.SaveV2(prefix=path, tensor_names=list(saved), shape_and_slices=[""] * len(saved),
                      tensors=list(saved.values()))
    return arrays


@pytest.mark.slow  # converts a ResNet-101
def test_deeplab_checkpoint_converts_with_its_conventions(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    src = str(tmp_path / "deeplab_resnet_init.ckpt")
    arrays = _write_deeplab_checkpoint(src)
    output = str(tmp_path / "out")
    convert_weights(src, "deeplab", "lw-refinenet-resnet50", 21, output)
    written = checkpoint_arrays(output)
    for name, array in arrays.items():
        np.testing.assert_array_equal(written[name], array, err_msg=name)
    assert "fc1_voc12_c0/weights" not in written
    assert "ignored 2 non-backbone variables: conv1/weights/Momentum, fc1_voc12_c0/weights" in caplog.text
    assert "decoder is freshly initialised" in caplog.text
    assert written["clf_conv/weights"].shape == (3, 3, 256, 21)
    description = json.loads((tmp_path / "out" / "model.json").read_text())
    assert (description["stride_on"], description["padding"], description["batch_norm_epsilon"]) == (
        "1x1", "same", 1e-3)
    assert description["preprocessing"]["channel_order"] == "BGR"


@pytest.mark.slow  # builds a ResNet-101 graph
def test_missing_backbone_variable_is_named(tmp_path):
    src = str(tmp_path / "partial.ckpt")
    _write_deeplab_checkpoint(src, skip="bn3c_branch2b/gamma")
    with pytest.raises(WeightsError, match=r"partial\.ckpt: .*1 missing from the file: bn3c_branch2b/gamma"):
        convert_weights(src, "deeplab", "lw-refinenet-resnet50", 21, str(tmp_path / "out"))


def test_unreadable_checkpoint_names_the_file(tmp_path):
    with pytest.raises(WeightsError, match="nothing.ckpt"):
        convert_weights(str(tmp_path / "nothing.ckpt"), "deeplab", "lw-refinenet-resnet50", 21, str(tmp_path / "o"))
