"""convert_weights with PyTorch sources: exact round trips, strict failures that name the key, the CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from refinenet_tf.architectures import is_backbone_variable
from refinenet_tf.checkpoints import variable_name
from refinenet_tf.cli.common import run
from refinenet_tf.cli.convert_weights import main as convert_main
from refinenet_tf.errors import ConfigError, WeightsError
from refinenet_tf.models.layers import LayerOptions
from refinenet_tf.models.refinenet import refinenet_decoder
from refinenet_tf.weights.convert import assign_from_arrays, convert_weights, match_arrays
from refinenet_tf.weights.torch_state_dict import map_state_dict
from tests.support.weights import (
    arch_variable_shapes,
    checkpoint_arrays,
    random_weights,
    save_with_torch,
    torch_state_dict,
)

v1 = tf.compat.v1


@pytest.fixture(scope="module")
def lw_resnet50():
    """Random Light-Weight RefineNet ResNet-50 weights (21 classes), ours and under PyTorch keys and layout."""
    arrays = random_weights(arch_variable_shapes("lw-refinenet-resnet50", 21))
    return arrays, torch_state_dict(arrays, 50)


@pytest.fixture(scope="module")
def lw_resnet50_file(lw_resnet50, module_tmp):
    return save_with_torch(lw_resnet50[1], module_tmp("lw") / "lw_resnet50.pth")


@pytest.mark.slow  # converts a ResNet-50 model
@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_lw_resnet_round_trips_exactly_with_data_parallel_prefix_and_classifier_dropped(lw_resnet50, tmp_path,
                                                                                      zip_format):
    arrays, _ = lw_resnet50
    src = save_with_torch(torch_state_dict(arrays, 50, prefix="module."), tmp_path / "dp.pth", zip_format)
    convert_weights(src, "lw-refinenet", "lw-refinenet-resnet50", 3, str(tmp_path / "out"), not_restore_last=True)
    written = checkpoint_arrays(str(tmp_path / "out"))
    assert sorted(written) == sorted(arrays)
    for name, array in arrays.items():
        if name.startswith("clf_conv/"):
            assert written[name].shape[-1] == 3
        else:
            np.testing.assert_array_equal(written[name], array, err_msg=name)
    description = json.loads((tmp_path / "out" / "model.json").read_text())
    assert (description["num_classes"], description["stride_on"], description["padding"],
            description["batch_norm_epsilon"]) == (3, "3x3", "symmetric", 1e-5)


@pytest.mark.slow  # builds a full RefineNet
def test_refinenet_pytorch_decoder_keys_and_shapes_match_the_full_model():
    with tf.Graph().as_default():
        end_points = {f"l{k}": v1.placeholder(tf.float32, [1, None, None, 128 * 2 ** k]) for k in range(1, 5)}
        refinenet_decoder(end_points, 21, LayerOptions(), light_weight=False)
        variables = v1.global_variables()
        shapes = {variable_name(v): tuple(v.shape.as_list()) for v in variables}
        arrays = random_weights(shapes)
        state = torch_state_dict(arrays, 50)
        assert "adapt_stage1_b.0.2_conv_relu_varout_dimred.weight" in state
        assert "mflow_conv_g4_b.0.3_conv.bias" in state
        weights = map_state_dict("decoder.pth", state, "resnet", 50, with_decoder=True)
        assert not weights.unmapped
        assert match_arrays(weights.arrays, variables).ok
    for name, array in arrays.items():
        np.testing.assert_array_equal(weights.arrays[name], array, err_msg=name)


@pytest.mark.slow  # builds ResNet graphs
def test_wrong_depth_is_reported_as_such(lw_resnet50_file, tmp_path):
    with pytest.raises(WeightsError) as error:
        convert_weights(lw_resnet50_file, "lw-refinenet", "lw-refinenet-resnet101", 21, str(tmp_path / "out"))
    message = str(error.value)
    assert "lw_resnet50.pth" in message
    assert "holds ResNet-50 backbone + Light-Weight RefineNet decoder" in message
    assert "needs ResNet-101 backbone" in message
    assert "bn4b22_branch2c/moving_variance" in message  # a missing one, by name
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.slow  # builds a model
def test_wrong_class_count_suggests_the_fixes(lw_resnet50_file, tmp_path):
    with pytest.raises(WeightsError, match="has 21 classes but num_classes is 3: use num_classes 21, "
                                           "or pass not_restore_last"):
        convert_weights(lw_resnet50_file, "lw-refinenet", "lw-refinenet-resnet50", 3, str(tmp_path / "bad"))


@pytest.mark.parametrize("change, expected", [
    ("missing", r"1 missing from the file: bn2b_branch2b/moving_variance"),
    ("unexpected", r"1 unexpected: extra_head\.weight \(extra_head/weights\)"),
    ("mis-shaped", r"1 mis-shaped: p_ims1d2_outl3_dimred\.weight \(p_ims1d2_outl3_dimred/weights\) "
                   r"is \[1, 1, 512, 128\] but the model needs \[1, 1, 512, 256\]"),
])
@pytest.mark.slow  # builds a ResNet-50 graph
def test_strict_loading_names_the_offending_key(lw_resnet50, tmp_path, change, expected):
    state = dict(lw_resnet50[1])
    if change == "missing":
        del state["layer1.1.bn2.running_var"]
    elif change == "unexpected":
        state["extra_head.weight"] = np.zeros((4, 4, 1, 1), np.float32)
    else:
        state["p_ims1d2_outl3_dimred.weight"] = state["p_ims1d2_outl3_dimred.weight"][:128]
    src = save_with_torch(state, tmp_path / "broken.pth")
    with pytest.raises(WeightsError, match=expected):
        convert_weights(src, "lw-refinenet", "lw-refinenet-resnet50", 21, str(tmp_path / "out"))


@pytest.mark.slow  # writes ResNet-50 weights with torch
def test_source_and_arch_families_must_agree(lw_resnet50_file, tmp_path):
    with pytest.raises(ConfigError, match="use an lw-refinenet"):
        convert_weights(lw_resnet50_file, "lw-refinenet", "refinenet-resnet50", 21, str(tmp_path / "a"))
    with pytest.raises(ConfigError, match="mobilenetv2 backbone"):
        convert_weights(lw_resnet50_file, "torchvision", "lw-refinenet-mobilenetv2", 21, str(tmp_path / "b"))


def test_assign_from_arrays_strict_and_lenient():
    with tf.Graph().as_default():
        a = v1.get_variable("a/weights", [2, 3], initializer=v1.zeros_initializer())
        b = v1.get_variable("b/biases", [3], initializer=v1.zeros_initializer())
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            with pytest.raises(WeightsError, match=r"b/biases is \[4\] but the model needs \[3\]"):
                assign_from_arrays(session, {"a/weights": np.ones((2, 3)), "b/biases": np.ones(4)}, [a, b])
            np.testing.assert_array_equal(session.run(a), np.zeros((2, 3)))  # nothing assigned
            report = assign_from_arrays(session, {"a/weights": np.full((2, 3), 2.0), "c/gamma": np.ones(1)},
                                        [a, b], strict=False)
            assert (report.assigned, report.missing, report.unexpected) == (["a/weights"], ["b/biases"], ["c/gamma"])
            np.testing.assert_array_equal(session.run(a), np.full((2, 3), 2.0))


@pytest.mark.slow  # converts a ResNet-50 backbone
def test_cli_converts_torchvision_backbone_and_reports_errors_in_one_line(lw_resnet50, tmp_path, capsys):
    arrays, _ = lw_resnet50
    backbone = {name: array for name, array in arrays.items() if is_backbone_variable(name)}
    state = torch_state_dict(backbone, 50)
    state.update({"fc.weight": np.zeros((1000, 2048), np.float32), "fc.bias": np.zeros(1000, np.float32)})
    src = save_with_torch(state, tmp_path / "resnet50.pth")
    output = str(tmp_path / "out")
    assert run(convert_main, [src, "--source", "torchvision", "--arch", "lw-refinenet-resnet50",
                              "--num-classes", "3", "--output-dir", output, "--class-names", "bg,cat,dog"]) == 0
    assert capsys.readouterr().out.strip() == tf.train.latest_checkpoint(output)
    written = checkpoint_arrays(output)
    for name, array in backbone.items():
        np.testing.assert_array_equal(written[name], array, err_msg=name)
    assert np.abs(written["p_ims1d2_outl1_dimred/weights"]).max() > 0  # decoder initialised, not zeros
    description = json.loads((tmp_path / "out" / "model.json").read_text())
    assert description["class_names"] == ["bg", "cat", "dog"]
    assert description["preprocessing"]["channel_order"] == "RGB"

    assert run(convert_main, [src, "--source", "torchvision", "--arch", "lw-refinenet-resnet50",
                              "--output-dir", output]) == 2
    assert "already holds a checkpoint" in capsys.readouterr().err
    assert run(convert_main, [str(tmp_path / "none.pth"), "--source", "torchvision", "--arch",
                              "lw-refinenet-resnet50", "--output-dir", str(tmp_path / "other")]) == 2
    error_lines = capsys.readouterr().err.strip().splitlines()
    assert error_lines[-1] == f"error: {tmp_path / 'none.pth'}: no such file"
