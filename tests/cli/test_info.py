"""``info``: a short summary for a person by default, JSON lines with ``--json``, for an architecture or for the
model a checkpoint's model.json describes."""

from __future__ import annotations

import json

import pytest

from refinenet_tf.cli import info
from refinenet_tf.cli.common import run
from refinenet_tf.description import default_description

pytestmark = pytest.mark.slow  # builds models


def test_the_summary_reads_as_sentences_and_json_lines_hold_the_same_numbers(capsys):
    assert run(info.main, ["--arch", "lw-refinenet-mobilenetv2", "--num-classes", "5", "--input-size", "64,96"]) == 0
    summary = capsys.readouterr().out.splitlines()
    assert summary[0].startswith("machine: ") and "CPU cores" in summary[0]
    assert summary[1].startswith("threads: ") and summary[2].startswith("--precision auto picks ")
    assert summary[4] == "lw-refinenet-mobilenetv2, 5 classes, for a 64x96 image:"
    assert run(info.main, ["--arch", "lw-refinenet-mobilenetv2", "--num-classes", "5", "--input-size", "64,96",
                           "--json"]) == 0
    machine, model = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert set(machine["machine"]) >= {"cpu_cores", "cpu_features", "onednn", "precision_auto"}
    assert model["output_shape"] == [1, 16, 24, 5]
    assert summary[5] == f"  parameters     {model['parameters_m']:.2f} M ({model['parameters']:,})"
    assert summary[6] == f"  multiply-adds  {model['multiply_adds_g']:.1f} G"
    assert summary[7].startswith("  logits         16x24x5 ")


def test_a_checkpoint_is_described_by_its_model_json(tmp_path, capsys):
    default_description("lw-refinenet-mobilenetv2", 7).save(str(tmp_path / "snapshots"))
    assert run(info.main, [str(tmp_path / "snapshots"), "--input-size", "32,32", "--json"]) == 0
    model = json.loads(capsys.readouterr().out.splitlines()[1])
    assert model["arch"] == "lw-refinenet-mobilenetv2" and model["output_shape"] == [1, 8, 8, 7]
    assert run(info.main, [str(tmp_path / "snapshots"), "--arch", "refinenet-resnet50"]) == 2
    assert "give a checkpoint or --arch and --num-classes, not both" in capsys.readouterr().err


def test_a_folder_without_model_json_names_what_to_give(tmp_path, capsys):
    assert run(info.main, [str(tmp_path)]) == 2
    assert "no model description found" in capsys.readouterr().err

