"""A snapshot folder that already holds a run: the same command resumes it, another starting point or model starts
a new run and moves the earlier one into ``run-<time>/`` (README, "A folder that already holds snapshots")."""

from __future__ import annotations

import json
import logging
import os

import pytest

from refinenet_tf import checkpoints
from refinenet_tf.description import default_description, load_description
from refinenet_tf.train.trainer import TrainConfig, Trainer
from tests.support.toy_data import NUM_CLASSES, write_dataset

pytestmark = pytest.mark.slow  # training runs
ARCH = "lw-refinenet-mobilenetv2"
SIZE = 32


@pytest.fixture(scope="module")
def data(module_tmp):
    root = module_tmp("run_folder")
    return root, write_dataset(root, count=2, size=(SIZE, SIZE))


def _train(root, list_path, snapshot_dir, num_steps=1, num_classes=NUM_CLASSES, **changes):
    config = TrainConfig(description=default_description(ARCH, num_classes), data_dir=str(root),
                         data_list=str(list_path), snapshot_dir=str(snapshot_dir), input_size=(SIZE, SIZE),
                         batch_size=1, num_steps=num_steps, save_num_images=0, threads=1, **changes)
    return Trainer(config).run()


def _messages(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.getMessage().startswith(("resuming from", "starting a new run"))]


def test_the_same_command_resumes_and_says_from_where(data, tmp_path, caplog):
    root, list_path = data
    first = _train(root, list_path, tmp_path / "snapshots", num_steps=1)
    caplog.set_level(logging.INFO)
    second = _train(root, list_path, tmp_path / "snapshots", num_steps=2)
    assert (first.step, second.step) == (1, 2)
    assert _messages(caplog) == [f"resuming from {tmp_path / 'snapshots' / 'model.ckpt-1'} at step 1: the run in "
                                 f"{tmp_path / 'snapshots'} continues (no checkpoint to start from was named)"]
    assert not list(tmp_path.glob("snapshots/run-*"))


def test_another_class_count_starts_a_new_run_and_keeps_the_old_one(data, tmp_path, caplog):
    root, list_path = data
    snapshots = tmp_path / "snapshots"
    _train(root, list_path, snapshots, num_steps=2)
    before = sorted(path.name for path in snapshots.iterdir())
    caplog.set_level(logging.INFO)
    result = _train(root, list_path, snapshots, num_steps=1, num_classes=NUM_CLASSES + 1)
    [earlier] = snapshots.glob("run-*")
    assert _messages(caplog) == [
        f"starting a new run in {snapshots} (it held {ARCH} with {NUM_CLASSES} classes, this command trains {ARCH} "
        f"with {NUM_CLASSES + 1}); the earlier run's files are now in {earlier}"]
    assert sorted(path.name for path in earlier.iterdir()) == before  # every file of the earlier run, intact
    assert checkpoints.latest_snapshot(str(earlier)) == str(earlier / "model.ckpt-2")
    assert load_description(str(earlier)).num_classes == NUM_CLASSES
    assert result.step == 1 and load_description(str(snapshots)).num_classes == NUM_CLASSES + 1
    assert checkpoints.latest_snapshot(str(snapshots)) == str(snapshots / "model.ckpt-1")


def test_the_starting_checkpoint_decides_between_resuming_and_a_new_run(data, tmp_path, caplog, tiny_checkpoints):
    root, list_path = data
    source_a, source_b = (os.path.join(folder, "model.ckpt-1") for folder in tiny_checkpoints)
    snapshots = tmp_path / "snapshots"
    _train(root, list_path, snapshots, restore_from=source_a)
    record = json.loads((snapshots / "training.json").read_text())["start"]
    assert record == {"restore_from": source_a, "not_restore_last": False}
    caplog.set_level(logging.INFO)
    assert _train(root, list_path, snapshots, num_steps=2, restore_from=source_a).step == 2
    assert _messages(caplog)[-1].endswith(f"continues (it started from {source_a} too)")
    assert _train(root, list_path, snapshots, num_steps=1, restore_from=source_b).step == 1
    [earlier] = snapshots.glob("run-*")
    assert _messages(caplog)[-1] == (f"starting a new run in {snapshots} (it started from {source_a}, this command "
                                     f"from {source_b}); the earlier run's files are now in {earlier}")
    assert checkpoints.latest_snapshot(str(earlier)) == str(earlier / "model.ckpt-2")


def test_a_snapshot_of_the_folder_can_start_a_model_with_other_classes(data, tmp_path, caplog):
    root, list_path = data
    snapshots = tmp_path / "snapshots"
    _train(root, list_path, snapshots, num_steps=1)
    caplog.set_level(logging.INFO)
    result = _train(root, list_path, snapshots, num_classes=NUM_CLASSES + 2, not_restore_last=True,
                    restore_from=str(snapshots / "model.ckpt-1"))
    [earlier] = snapshots.glob("run-*")
    assert result.step == 1
    assert (f"restored 285 variables from {earlier / 'model.ckpt-1'} (backbone 260, decoder 25, classifier 0); "
            "initialised 2 (classifier 2)") in caplog.text
