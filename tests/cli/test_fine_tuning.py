"""Fine-tuning from the weights users bring: every --source converted and trained with the same classes; for
full and Light-Weight RefineNet also trained with --not-restore-last, evaluated and used for inference through
the commands; a DeepLab checkpoint straight into --restore-from; resuming versus initialising."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from refinenet_tf.checkpoints import is_training_state
from refinenet_tf.cli import main as cli
from tests.support.toy_data import write_dataset
from tests.support.weight_files import (
    write_deeplab_checkpoint,
    write_keras_resnet50_h5,
    write_mobilenet_state_dict,
    write_torch_state_dict,
)

pytestmark = pytest.mark.slow
TINY = ["--input-size", "64,64", "--batch-size", "1", "--threads", "2", "--save-num-images", "0"]

# --source -> (architecture built from it, file writer, expected preprocessing channel order)
SOURCES = {
    "deeplab": ("lw-refinenet-resnet50", lambda path: write_deeplab_checkpoint(path, "lw-refinenet-resnet50"), "BGR"),
    "keras": ("lw-refinenet-resnet50", write_keras_resnet50_h5, "BGR"),
    "torchvision": ("lw-refinenet-resnet50",
                    lambda path: write_torch_state_dict(path, "lw-refinenet-resnet50", backbone_only=True), "RGB"),
    "lw-refinenet": ("lw-refinenet-mobilenetv2", lambda path: write_mobilenet_state_dict(path, legacy=True), "RGB"),
    "refinenet-pytorch": ("refinenet-resnet50",
                          lambda path: write_torch_state_dict(path, "refinenet-resnet50", prefix="module."), "RGB"),
}
FILE_NAMES = {"deeplab": "deeplab_resnet_init.ckpt", "keras": "resnet50_notop.h5", "torchvision": "resnet50.pth",
              "lw-refinenet": "mbv2_voc.pth.tar", "refinenet-pytorch": "refinenet50.pth"}
# Past the converted model the commands run the same code whatever the source: once per family (full, Light-Weight).
FAMILIES = ("refinenet-pytorch", "lw-refinenet")


def command(*argv: str) -> None:
    """Run one command in this process as the console script would; it must succeed."""
    assert cli([str(arg) for arg in argv]) == 0, argv


def arrays(checkpoint: str) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(checkpoint)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


@pytest.fixture(scope="module")
def data(module_tmp) -> list[str]:
    root = module_tmp("data")
    return ["--data-dir", str(root), "--data-list", write_dataset(root, count=2, size=(64, 64))]


def convert(source: str, folder: Path) -> Path:
    """``convert-weights`` of a --source's file (21 classes) written in ``folder``: the converted model's folder.
    The source file is deleted once converted, freeing its disk for the runs."""
    arch, write, _ = SOURCES[source]
    src = folder / FILE_NAMES[source]
    write(str(src))
    converted = folder / "converted"
    command("convert-weights", src, "--source", source, "--arch", arch, "--num-classes", 21, "--output-dir", converted)
    for file in folder.glob(FILE_NAMES[source] + "*"):
        file.unlink()
    return converted


@pytest.mark.parametrize("source", list(SOURCES))
def test_convert_and_train_for_every_source_then_evaluate_and_segment(source, data, tmp_path, caplog, request):
    caplog.set_level(logging.INFO)
    arch, _, channel_order = SOURCES[source]
    # a full RefineNet-50 run holds 1.5 GB, a Light-Weight ResNet-50 run about 400 MB
    request.getfixturevalue("large_disk" if arch.startswith("refinenet-") else "medium_disk")
    converted = convert(source, tmp_path)
    source_values = arrays(str(converted / "model.ckpt-0"))

    # Momentum, same classes, learning rate 0: the first snapshot holds exactly the converted values.
    same = tmp_path / "same"
    command("train", "--arch", arch, "--restore-from", converted, *data, *TINY, "--num-steps", 1,
            "--learning-rate", 0, "--snapshot-dir", same)
    trained = arrays(str(same / "model.ckpt-1"))
    assert trained["global_step"] == 1
    for name, value in source_values.items():
        np.testing.assert_array_equal(trained[name], value, err_msg=name)
    assert any(name.endswith("/Momentum") for name in trained)
    assert f"restored {len(source_values)} variables from {converted}/model.ckpt-0" in caplog.text
    described = json.loads((same / "model.json").read_text())
    assert described == json.loads((converted / "model.json").read_text())  # layout and preprocessing inherited
    assert described["preprocessing"]["channel_order"] == channel_order
    shutil.rmtree(same)  # checked: a full RefineNet-50 run holds 1.1 GB
    if source not in FAMILIES:
        return

    # Three classes, the classifier left out: everything else restored, the step starts at 0.
    other = tmp_path / "other"
    command("train", "--restore-from", converted, "--not-restore-last", "--num-classes", 3, *data, *TINY,
            "--num-steps", 1, "--snapshot-dir", other)
    assert "initialised 2 (classifier 2)" in caplog.text
    started = arrays(str(other / "model.ckpt-0"))
    assert started["global_step"] == 0 and started["clf_conv/biases"].shape == (3,)
    # the starting weights hold no optimizer state; the first update's snapshot has the Momentum slots
    assert not any(name.endswith("/Momentum") for name in started)
    assert any(name.endswith("/Momentum") for name in arrays(str(other / "model.ckpt-1")))
    for name, value in source_values.items():
        if not name.startswith("clf_conv/"):
            np.testing.assert_array_equal(started[name], value, err_msg=name)
    assert json.loads((other / "model.json").read_text())["preprocessing"] == described["preprocessing"]

    results = tmp_path / "results.json"  # several scales: tests/cli/test_evaluate_scripts.py
    command("evaluate", "--restore-from", other, *data, "--scales", "1.0", "--output", results)
    assert json.loads(results.read_text())["metadata"]["images"] == 2
    command("infer", data[1] + "/images/000.png", other, "--save-dir", tmp_path / "out")
    assert (tmp_path / "out" / "000_colour.png").is_file()


def test_a_deeplab_checkpoint_goes_straight_into_restore_from(data, tmp_path, caplog, medium_disk):
    caplog.set_level(logging.INFO)
    prefix = str(tmp_path / "deeplab_resnet.ckpt")
    backbone = write_deeplab_checkpoint(prefix, "lw-refinenet-resnet50")
    snapshots = tmp_path / "snapshots"
    command("train", "--arch", "lw-refinenet-resnet50", "--restore-from", prefix, "--not-restore-last",
            "--num-classes", 3, *data, *TINY, "--num-steps", 1, "--learning-rate", 0, "--snapshot-dir", snapshots)
    summary = next(message for message in caplog.messages if message.startswith("restored "))
    assert summary == (f"restored {len(backbone)} variables from {prefix} (backbone {len(backbone)}, decoder 0, "
                       "classifier 0); initialised 28 (decoder 26, classifier 2); not used from the checkpoint: "
                       "fc1_voc12_c0, fc1_voc12_c1, fc1_voc12_c2, fc1_voc12_c3 (8 variables), "
                       "optimizer state and step (2 variables)")
    trained = arrays(str(snapshots / "model.ckpt-1"))
    for name, value in backbone.items():
        np.testing.assert_array_equal(trained[name], value, err_msg=name)
    assert trained["global_step"] == 1  # not DeepLab's 20000
    described = json.loads((snapshots / "model.json").read_text())
    assert (described["stride_on"], described["padding"], described["batch_norm_epsilon"],
            described["preprocessing"]["channel_order"]) == ("1x1", "same", 1e-3, "BGR")


def test_resuming_restores_slots_and_step_and_initialising_does_not(data, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    run = ["train", "--restore-from", convert("lw-refinenet", tmp_path), *data, *TINY, "--threads", 1, "--learning-rate",
           1e-3, "--random-seed", 5, "--power", 0]  # a constant rate: the schedule does not depend on --num-steps
    command(*run, "--num-steps", 2, "--snapshot-dir", tmp_path / "whole")
    command(*run, "--num-steps", 1, "--snapshot-dir", tmp_path / "parts")
    caplog.clear()
    command(*run, "--num-steps", 2, "--snapshot-dir", tmp_path / "parts")  # the same command, more steps
    assert f"resuming from {tmp_path / 'parts' / 'model.ckpt-1'} at step 1" in caplog.text
    whole, resumed = arrays(str(tmp_path / "whole" / "model.ckpt-2")), arrays(str(tmp_path / "parts" / "model.ckpt-2"))
    assert whole.keys() == resumed.keys() and resumed["global_step"] == 2
    moving = [name for name in whole if name.endswith("/Momentum") and np.any(whole[name])]
    assert len(moving) > 50
    for name in whole:
        np.testing.assert_allclose(resumed[name], whole[name], rtol=1e-5, atol=1e-6, err_msg=name)

    # Another run's snapshot only initialises: weights yes, slots and step no.
    caplog.clear()
    command(*run, "--num-steps", 1, "--learning-rate", 0, "--restore-from", tmp_path / "parts",
            "--snapshot-dir", tmp_path / "next")
    assert "not used from the checkpoint: optimizer state and step" in caplog.text
    started = arrays(str(tmp_path / "next" / "model.ckpt-0"))
    assert started["global_step"] == 0 and not any(name in started for name in moving)
    for name in started:
        if not is_training_state(name):
            np.testing.assert_array_equal(started[name], resumed[name], err_msg=name)
