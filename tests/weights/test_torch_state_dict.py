"""Reading PyTorch files safely and renaming their keys; parity with the official Light-Weight MobileNet-v2."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from PIL import Image

from refinenet_tf.errors import WeightsError
from refinenet_tf.weights.convert import convert_weights
from refinenet_tf.weights.torch_state_dict import (
    decoder_name,
    map_state_dict,
    mobilenet_name,
    read_state_dict,
    resnet_name,
    to_tf_layout,
    torchvision_depth,
)
from tests.support.weights import reference_dir, run_checkpoint, save_with_torch


class _RunsCommandWhenUnpickled:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_resnet_keys_map_to_caffe_block_names():
    assert resnet_name("conv1.weight", 50) == "conv1/weights"
    assert resnet_name("bn1.running_var", 50) == "bn_conv1/moving_variance"
    assert resnet_name("layer1.0.downsample.0.weight", 50) == "res2a_branch1/weights"
    assert resnet_name("layer1.0.downsample.1.bias", 50) == "bn2a_branch1/beta"
    assert resnet_name("layer2.3.conv2.weight", 50) == "res3d_branch2b/weights"
    assert resnet_name("layer2.3.conv2.weight", 101) == "res3b3_branch2b/weights"
    assert resnet_name("layer3.22.bn3.running_mean", 101) == "bn4b22_branch2c/moving_mean"
    assert resnet_name("layer3.22.bn3.running_mean", 50) is None  # ResNet-50 has 6 res4 blocks
    assert resnet_name("layer4.0.bn1.num_batches_tracked", 50) is None


def test_mobilenet_and_decoder_keys():
    assert mobilenet_name("layer1.0.weight") == "layer1/conv/weights"
    assert mobilenet_name("layer1.1.running_mean") == "layer1/bn/moving_mean"
    assert mobilenet_name("layer4.2.output.1.0.weight") == "layer4/block2/depthwise/weights"
    assert mobilenet_name("layer8.0.output.2.1.weight") == "layer8/block0/project_bn/gamma"
    assert decoder_name("mflow_conv_g1_pool.0.3_outvar_dimred.weight") == "mflow_conv_g1_pool/3_outvar_dimred/weights"
    assert decoder_name("adapt_stage2_b.0.1_conv.bias") == "adapt_stage2_b/1_conv/biases"
    assert decoder_name("crp4.0.1_outvar_dimred.weight") == "crp4/1_outvar_dimred/weights"
    assert decoder_name("segm.bias") == "clf_conv/biases"
    assert decoder_name("conv_adapt3.weight") == "conv_adapt3/weights"


def test_kernels_become_hwio():
    kernel = np.arange(2 * 3 * 5 * 5, dtype=np.float32).reshape(2, 3, 5, 5)  # O, I, H, W
    converted = to_tf_layout("p_ims1d2_outl1_dimred/weights", kernel)
    assert converted.shape == (5, 5, 3, 2)
    assert converted[4, 1, 2, 1] == kernel[1, 2, 4, 1]
    depthwise = np.arange(4 * 9, dtype=np.float32).reshape(4, 1, 3, 3)
    converted = to_tf_layout("layer3/block0/depthwise/weights", depthwise)
    assert converted.shape == (3, 3, 4, 1)
    assert converted[2, 0, 3, 0] == depthwise[3, 0, 2, 0]


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_reads_wrapped_state_dict_and_strips_data_parallel_prefix(tmp_path, zip_format):
    torch = pytest.importorskip("torch", reason="torch is needed to write .pth test files")
    path = str(tmp_path / "checkpoint.pth")
    torch.save({"epoch": 3, "state_dict": {"module.conv1.weight": torch.ones(2, 3, 7, 7),
                                           "module.bn1.running_var": torch.full((2,), 4.0)}}, path,
               _use_new_zipfile_serialization=zip_format)
    arrays = read_state_dict(path)
    assert sorted(arrays) == ["bn1.running_var", "conv1.weight"]
    np.testing.assert_array_equal(arrays["bn1.running_var"], [4.0, 4.0])


def test_depth_is_read_from_the_file_and_unknown_keys_are_kept_as_unmapped():
    state = {f"layer3.{i}.conv1.weight": np.zeros((1, 1, 1, 1), np.float32) for i in range(23)}
    state["head.weight"] = np.zeros((2, 2), np.float32)
    assert torchvision_depth(state) == 101
    weights = map_state_dict("f.pth", state, "resnet", 101, with_decoder=False)
    assert weights.unmapped == ["head.weight"]
    assert weights.label("res4b22_branch2a/weights") == "layer3.22.conv1.weight (res4b22_branch2a/weights)"


def test_malicious_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    save_with_torch({"conv1.weight": np.zeros(1, np.float32), "payload": _RunsCommandWhenUnpickled(str(marker))},
                    path)
    with pytest.raises(WeightsError, match=re.escape(f"evil.pth: refuses to load {os.system.__module__}.system")):
        read_state_dict(str(path))
    assert not marker.exists()


def test_garbage_and_missing_files_name_the_file(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"this is not a torch file")
    with pytest.raises(WeightsError, match="garbage.pth"):
        read_state_dict(str(path))
    with pytest.raises(WeightsError, match="nothere.pth"):
        read_state_dict(str(tmp_path / "nothere.pth"))

@pytest.mark.slow  # the official reference end to end
def test_light_weight_mobilenet_v2_reproduces_official_logits(tmp_path):
    reference = reference_dir()
    output = str(tmp_path / "mbv2")
    convert_weights(os.path.join(reference, "mbv2.pth"), "lw-refinenet", "lw-refinenet-mobilenetv2", 21, output)
    for size in ("96x128", "101x133"):
        image = np.asarray(Image.open(os.path.join(reference, f"input_{size}.png")).convert("RGB"))
        expected = np.load(os.path.join(reference, f"mbv2_{size}_logits.npy"))
        logits = run_checkpoint(output, image, end_points=())["logits"]
        assert logits.shape == expected.shape
        value_range = float(expected.max() - expected.min())
        assert np.abs(logits - expected).max() < 1e-4 * value_range
