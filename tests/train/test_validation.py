"""Validation during training: TensorBoard and progress lines, the kept best snapshot across a resume, bad inputs."""

from __future__ import annotations

import glob
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from refinenet_tf import checkpoints
from refinenet_tf.cli import train as train_command
from refinenet_tf.cli.common import run
from refinenet_tf.data.listfile import read_list_file
from refinenet_tf.description import default_description, load_description
from refinenet_tf.errors import ConfigError
from refinenet_tf.evaluate.metrics import ConfusionMatrix
from refinenet_tf.predict.graph import build_predictor_graph
from refinenet_tf.train.trainer import TrainConfig, Trainer
from refinenet_tf.train.validation import BEST_FOLDER, BEST_RECORD
from tests.support.toy_data import NUM_CLASSES, write_dataset

v1 = tf.compat.v1
REPO = Path(__file__).resolve().parents[2]
ARCH = "lw-refinenet-mobilenetv2"
NAMES = ["background", "square", "disc"]
SIZE = (48, 48)


def _lists(root: Path) -> tuple[str, str]:
    return (write_dataset(root, count=6, size=SIZE),
            write_dataset(root / "held_out", count=3, size=SIZE, seed=7, list_name="val.txt"))


def _config(root: Path, train_list: str, val_list: str, **changes) -> TrainConfig:
    settings = dict(description=default_description(ARCH, NUM_CLASSES, class_names=NAMES), data_dir=str(root),
                    data_list=train_list, snapshot_dir=str(root / "snapshots"), batch_size=2, input_size=SIZE,
                    optimizer="adam", learning_rate=1e-3, decoder_lr_mult=1.0, train_batch_norm=True,
                    batch_norm_decay=0.9, weight_decay=1e-5, dropout=False, save_num_images=0, log_every=1,
                    threads=2, val_list=val_list, val_data_dir=str(root / "held_out"))
    settings.update(changes)
    return TrainConfig(**settings)


def _events(snapshot_dir: str) -> dict[str, dict[int, float]]:
    """{tag: {step: value}} of the scalar summaries in a run's event files."""
    found: dict[str, dict[int, float]] = {}
    for path in sorted(glob.glob(os.path.join(snapshot_dir, "events.out.tfevents.*"))):
        for event in v1.train.summary_iterator(path):
            for value in event.summary.value:
                found.setdefault(value.tag, {})[event.step] = value.simple_value
    return found


def _confusion_of(snapshot: str, data_dir: str, list_path: str) -> ConfusionMatrix:
    """The snapshot's single-scale confusion matrix on the list, computed here in a graph of its own."""
    description = load_description(snapshot)
    confusion = ConfusionMatrix(description.num_classes)
    with tf.Graph().as_default():
        image = v1.placeholder(tf.uint8, [1, None, None, 3])
        labels = build_predictor_graph(description, image=image).labels
        with v1.Session() as session:
            variables = [v for v in v1.global_variables() if not checkpoints.is_training_state(v.op.name)]
            checkpoints.restore(session, snapshot, variables)
            for sample in read_list_file(data_dir, list_path):
                pixels = np.asarray(Image.open(sample.image_path).convert("RGB"))[None]
                confusion.update(np.asarray(Image.open(sample.mask_path)), session.run(labels, {image: pixels}))
    return confusion


@pytest.mark.slow  # trains
def test_validation_scores_go_to_tensorboard_and_the_progress_line(tmp_path, caplog):
    train_list, val_list = _lists(tmp_path)
    config = _config(tmp_path, train_list, val_list, num_steps=4, save_pred_every=2, val_every=3)
    with caplog.at_level(logging.INFO, logger="refinenet_tf"):
        Trainer(config).run()
    events = _events(config.snapshot_dir)
    assert sorted(events["val/mean_iou"]) == [3, 4]  # every 3 steps, and the last one
    confusion = _confusion_of(str(tmp_path / "snapshots" / "model.ckpt-4"), str(tmp_path / "held_out"), val_list)
    expected = confusion.mean_iou()
    assert events["val/mean_iou"][4] == pytest.approx(expected, rel=1e-6)
    for name, iou in zip(NAMES, confusion.class_iou(), strict=True):  # every class is in the held-out masks
        assert events[f"val/iou/{name}"][4] == pytest.approx(iou, rel=1e-6, abs=1e-9), name
    lines = [record.getMessage() for record in caplog.records if "validation mean IoU" in record.getMessage()]
    assert len(lines) == 2
    assert lines[-1].startswith(f"step 4/4  validation mean IoU {100 * expected:.2f}%  (3 images, ")


@pytest.mark.slow  # trains twice
def test_keep_best_keeps_the_best_weights_and_a_resumed_run_keeps_the_record(tmp_path, caplog, medium_disk):
    train_list, val_list = _lists(tmp_path)
    first = _config(tmp_path, train_list, val_list, num_steps=3, save_pred_every=1, keep_best=True)
    Trainer(first).run()
    scores = _events(first.snapshot_dir)["val/mean_iou"]
    best = max(scores, key=lambda step: (scores[step], -step))  # the first step reaching the highest score
    best_dir = tmp_path / "snapshots" / BEST_FOLDER
    record = json.loads((best_dir / BEST_RECORD).read_text())
    assert record["step"] == best and record["mean_iou"] == pytest.approx(scores[best], rel=1e-6)
    assert sorted(os.listdir(best_dir)) == sorted(["checkpoint", BEST_RECORD, "model.json",
                                                   f"model.ckpt-{best}.index",
                                                   f"model.ckpt-{best}.data-00000-of-00001"])
    kept, snapshot = (tf.train.load_checkpoint(str(path)) for path in (best_dir / f"model.ckpt-{best}",
                                                                        tmp_path / "snapshots" / f"model.ckpt-{best}"))
    for name in kept.get_variable_to_shape_map():
        np.testing.assert_array_equal(kept.get_tensor(name), snapshot.get_tensor(name), err_msg=name)
    before = {name: (best_dir / name).read_bytes() for name in os.listdir(best_dir)}

    # Resume with frozen weights (learning rate 0, batch norm frozen): every validation scores the step-3
    # weights again, never more than the record, so the kept best stays; 11 more snapshots rotate the old ones out.
    caplog.clear()
    resumed = _config(tmp_path, train_list, val_list, num_steps=14, save_pred_every=1, keep_best=True,
                      learning_rate=0.0, train_batch_norm=False)
    with caplog.at_level(logging.INFO, logger="refinenet_tf"):
        Trainer(resumed).run()
    scores_after = _events(resumed.snapshot_dir)["val/mean_iou"]
    assert {scores_after[step] for step in range(4, 15)} == {scores[3]}
    assert {name: (best_dir / name).read_bytes() for name in os.listdir(best_dir)} == before
    assert checkpoints.latest_snapshot(resumed.snapshot_dir).endswith("model.ckpt-14")
    assert not (tmp_path / "snapshots" / f"model.ckpt-{best}.index").exists()  # rotated out, the best kept
    lines = [record.getMessage() for record in caplog.records if "validation mean IoU" in record.getMessage()]
    assert len(lines) == 11 and all(line.endswith(f"best {100 * record['mean_iou']:.2f}% at step {best}")
                                    for line in lines)


@pytest.mark.slow  # builds a training graph
def test_a_held_out_list_with_other_classes_stops_before_training(tmp_path, capsys):
    train_list, val_list = _lists(tmp_path)
    mask_path = tmp_path / "held_out" / "labels" / "001.png"
    mask = np.asarray(Image.open(mask_path)).copy()
    mask[:2, :3] = 7
    Image.fromarray(mask, mode="L").save(mask_path)
    status = run(train_command.main, ["--arch", ARCH, "--num-classes", "3", "--data-dir", str(tmp_path),
                                      "--data-list", train_list, "--val-list", val_list, "--val-data-dir",
                                      str(tmp_path / "held_out"), "--input-size", "48,48", "--batch-size", "2",
                                      "--num-steps", "1", "--snapshot-dir", str(tmp_path / "snapshots")])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == 2
    assert error == (f"error: {mask_path}: label values 7 (6 px) are not classes 0..2 nor the ignore label 255 "
                     f"(check --num-classes and --ignore-label) (listed at {val_list}:2)")
    assert not (tmp_path / "snapshots").exists()


@pytest.mark.parametrize("settings, message", [
    ({"keep_best": True}, "--keep-best needs --val-list"),
    ({"val_every": 5}, "--val-every needs --val-list"),
    ({"val_list": "val.txt", "val_every": 0}, "--val-every must be at least 1, got 0"),
])
def test_validation_settings_that_cannot_work_are_refused(settings, message):
    with pytest.raises(ConfigError) as error:
        TrainConfig(description=default_description(ARCH, NUM_CLASSES), **settings)
    assert error.value.render(train_command.flags.flag_name).startswith(message)


def test_the_flags_set_the_validation_fields(tmp_path):
    args = train_command.build_parser(multiscale=True).parse_args(
        ["--arch", ARCH, "--snapshot-dir", str(tmp_path), "--val-list", "val.txt", "--val-data-dir", "held_out",
         "--val-every", "250", "--keep-best"])
    config = train_command.config_from_args(args, multiscale=True)
    assert (config.val_list, config.val_data_dir, config.val_every, config.keep_best) == ("val.txt", "held_out",
                                                                                         250, True)


@pytest.mark.slow  # a process with two logical CPU devices
def test_several_replicas_are_refused(tmp_path):
    train_list, val_list = _lists(tmp_path)
    settings = {"logical_cpus": 2, "devices": "cpu:0,cpu:1", "data_dir": str(tmp_path), "data_list": train_list,
                "val_list": val_list, "val_data_dir": str(tmp_path / "held_out"), "batch_size": 2, "num_steps": 1,
                "snapshot_dir": str(tmp_path / "snapshots")}
    done = subprocess.run([sys.executable, "-m", "tests.distribute.worker", json.dumps(settings)], cwd=REPO,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""),
                          capture_output=True, text=True, timeout=240)
    assert done.returncode != 0
    assert ("ConfigError: val_list validates on one device, but this run trains 2 replicas (devices or TF_CONFIG)"
            in done.stderr), done.stderr[-2000:]
