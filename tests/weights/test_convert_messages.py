"""Weight-mismatch messages stay one short line: counts of each problem and a few names, not every name."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from refinenet_tf.errors import WeightsError
from refinenet_tf.weights.convert import NAMED_PER_KIND, LoadReport, assign_from_arrays, match_arrays

v1 = tf.compat.v1


def test_describe_counts_every_kind_and_names_a_few():
    report = LoadReport(
        missing=[f"res{i}/weights" for i in range(40)],
        unexpected=[f"extra{i}/biases" for i in range(7)],
        mis_shaped=[("a/weights", (1, 1, 3, 8), (1, 1, 3, 4)), ("b/biases", (8,), (4,))],
    )
    text = report.describe(lambda name: f"key.{name}")
    assert NAMED_PER_KIND == 3
    assert text == (
        "40 missing from the file: res0/weights, res1/weights and 38 more, the last res39/weights; "
        "7 unexpected: key.extra0/biases, key.extra1/biases and 5 more, the last key.extra6/biases; "
        "2 mis-shaped: key.a/weights is [1, 1, 3, 8] but the model needs [1, 1, 3, 4], "
        "key.b/biases is [8] but the model needs [4]"
    )


def test_names_up_to_the_limit_are_all_shown():
    report = LoadReport(missing=["a/weights", "b/weights", "c/weights"])
    assert report.describe() == "3 missing from the file: a/weights, b/weights, c/weights"
    assert LoadReport(assigned=["a/weights"]).describe() == ""


def test_strict_assign_of_many_wrong_arrays_is_short():
    with tf.Graph().as_default():
        variables = [v1.get_variable(f"layer{i}/weights", [3, 3, 4, 4], initializer=v1.zeros_initializer())
                     for i in range(200)]
        arrays = {f"layer{i}/weights": np.ones((3, 3, 4, 8), np.float32) for i in range(0, 200, 2)}
        arrays.update({f"other{i}/weights": np.ones(2, np.float32) for i in range(300)})
        report = match_arrays(arrays, variables)
        assert (len(report.missing), len(report.unexpected), len(report.mis_shaped)) == (100, 300, 100)
        with v1.Session() as session, pytest.raises(WeightsError) as error:
            assign_from_arrays(session, arrays, variables)
    message = str(error.value)
    assert len(message) < 500 and "\n" not in message
    assert "100 missing from the file: layer1/weights, layer3/weights and 98 more, the last layer199/weights" in message
    assert "300 unexpected: other0/weights, other1/weights and 298 more, the last other299/weights" in message
    assert "100 mis-shaped: layer0/weights is [3, 3, 4, 8] but the model needs [3, 3, 4, 4]" in message


@pytest.mark.slow  # builds ResNet graphs
def test_wrong_architecture_error_is_one_short_line(tmp_path):
    torch = pytest.importorskip("torch", reason="writing a PyTorch file needs torch")
    from refinenet_tf.weights.convert import convert_weights
    from tests.support.weights import arch_variable_shapes, random_weights, torch_state_dict

    arrays = random_weights(arch_variable_shapes("lw-refinenet-resnet50", 21))
    state = {key: torch.from_numpy(np.ascontiguousarray(np.asarray(value)))
             for key, value in torch_state_dict(arrays, 50).items()}
    path = str(tmp_path / "lw_resnet50.pth")
    torch.save(state, path)
    needed = arch_variable_shapes("lw-refinenet-mobilenetv2", 21)
    shared = needed.keys() & arrays.keys()  # the classifier has the same name and shape in both
    assert shared and all(needed[name] == arrays[name].shape for name in shared)
    with pytest.raises(WeightsError) as error:
        convert_weights(path, "lw-refinenet", "lw-refinenet-mobilenetv2", 21, str(tmp_path / "out"))
    message = str(error.value)
    assert len(message.replace(path, "")) < 600 and "\n" not in message  # the path's length is the user's
    assert message.startswith(f"{path}: does not fit arch lw-refinenet-mobilenetv2 num_classes 21: it holds ")
    assert "but arch lw-refinenet-mobilenetv2 needs MobileNet-v2 backbone" in message
    assert f"{len(needed) - len(shared)} missing from the file: layer1/conv/weights, " in message
    assert f"{len(state) - len(shared)} unexpected: " in message and "and " in message and "more, the last " in message
    assert "layer4.2.bn3.running_var" in message  # the file's last key, by name
    assert not (tmp_path / "out").exists()
