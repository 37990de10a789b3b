"""Prediction precision: what ``auto`` picks for the hardware, bfloat16 through the commands and exports, and
the accuracy guard (bfloat16 against float32) with a trained model on scenes it has not seen."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
from PIL import Image

from refinenet_tf import hardware
from refinenet_tf.cli import main as cli
from refinenet_tf.data.listfile import read_list_file
from refinenet_tf.description import load_description
from refinenet_tf.errors import ConfigError
from refinenet_tf.evaluate.precision_check import compare_precisions
from tests.support.model_factory import write_dataset
from tests.support.toy_data import write_dataset as write_toy_dataset


@pytest.mark.parametrize("flags, gpu, expected", [
    ({"avx2", "avx512f", "avx512_bf16"}, False, "bfloat16"),
    ({"avx2", "amx_bf16"}, False, "bfloat16"),
    ({"avx2", "fma"}, True, "bfloat16"),
    ({"avx2", "fma", "avx512f"}, False, "float32"),
])
def test_auto_follows_the_hardware(monkeypatch, flags, gpu, expected):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: set(flags))
    monkeypatch.setattr(hardware, "gpu_available", lambda: gpu)
    choice = hardware.choose_precision("auto")
    assert choice.precision == expected
    assert choice.reason.startswith("auto: ") and str(choice).startswith(expected)
    assert hardware.choose_precision("float32").precision == "float32"


def test_emulated_bfloat16_runs_with_one_warning_and_bad_values_are_refused(monkeypatch, caplog):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "fma"})
    monkeypatch.setattr(hardware, "gpu_available", lambda: False)
    caplog.set_level(logging.WARNING)
    assert hardware.choose_precision("bfloat16").precision == "bfloat16"
    assert len(caplog.records) == 1 and "emulated" in caplog.records[0].getMessage()
    with pytest.raises(ConfigError, match="precision must be one of auto, float32, bfloat16"):
        hardware.choose_precision("float16")


def test_onednn_follows_the_environment_then_the_cpu(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2"})
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    assert not hardware.onednn_enabled()
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_vnni"})
    assert hardware.onednn_enabled()
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert not hardware.onednn_enabled()


def test_commands_take_precision_and_record_it(tmp_path, capsys, tiny_checkpoints):
    checkpoint, _ = tiny_checkpoints
    list_path = write_dataset(str(tmp_path / "data"))
    results = tmp_path / "results.json"
    assert cli(["evaluate", "--restore-from", checkpoint, "--data-dir", str(tmp_path / "data"), "--data-list",
                list_path, "--scales", "1.0", "--precision", "bfloat16", "--output", str(results)]) == 0
    assert json.loads(results.read_text())["metadata"]["precision"] == "bfloat16"
    image = os.path.join(tmp_path, "data", "img", "im0.png")
    for precision in ("float32", "bfloat16"):
        assert cli(["infer", image, checkpoint, "--precision", precision, "--save-dir",
                    str(tmp_path / precision)]) == 0
    float32, bfloat16 = (np.asarray(Image.open(tmp_path / p / "im0.png")) for p in ("float32", "bfloat16"))
    assert np.mean(float32 == bfloat16) > 0.9
    assert cli(["export", checkpoint, str(tmp_path / "frozen"), "--format", "frozen", "--precision", "bfloat16"]) == 0
    capsys.readouterr()
    assert cli(["export", checkpoint, str(tmp_path / "lite"), "--format", "tflite", "--precision", "bfloat16"]) == 2
    assert "--precision bfloat16 applies to saved_model and frozen exports" in capsys.readouterr().err


@pytest.mark.slow  # reads the session's trained toy model
def test_bfloat16_keeps_the_trained_models_answers(toy_model, tmp_path):
    list_path = write_toy_dataset(str(tmp_path), count=20, seed=1, list_name="val.txt")  # scenes it has not seen
    samples = read_list_file(str(tmp_path), list_path)
    result = compare_precisions(toy_model, samples, load_description(toy_model), threads=2)
    assert result.images == 20
    assert result.mean_iou_float32 > 0.5, result  # a trained model, not a constant answer
    assert result.label_agreement >= 0.99, result
    assert abs(result.mean_iou_change_points) <= 0.3, result
