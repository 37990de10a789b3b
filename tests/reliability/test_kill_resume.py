"""Interrupted training: train.py killed at random moments resumes and finishes; a resumed run equals an
uninterrupted one exactly, data order included (two runs of one seed on one thread, the stopped one resumed, end
with the same weights)."""

import os
import random
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf

from refinenet_tf import checkpoints
from refinenet_tf.data.listfile import read_list_file
from refinenet_tf.data.reader import train_dataset
from refinenet_tf.description import Preprocessing, default_description, load_description
from refinenet_tf.models.model import build_model
from refinenet_tf.train.trainer import TrainConfig, Trainer
from tests.support.scripts import ARCH, REPO, TINY_MODEL_FLAGS, script_command, script_environment
from tests.support.toy_data import NUM_CLASSES, write_dataset

pytestmark = pytest.mark.slow  # kill and resume: training processes stopped and restarted

v1 = tf.compat.v1
NUM_STEPS = 30
INTERRUPTIONS = (signal.SIGKILL, signal.SIGTERM)  # the second run resumes a killed run, the last a stopped one
SNAPSHOT_WAIT = 180.0


def _latest_step(snapshot_dir) -> int:
    latest = checkpoints.latest_snapshot(str(snapshot_dir))
    return checkpoints.step_of(latest) if latest else 0


def _start_training(root, list_path, snapshot_dir, log_path) -> subprocess.Popen:
    flags = ["--data-dir", str(root), "--data-list", list_path, *TINY_MODEL_FLAGS, "--num-steps", str(NUM_STEPS),
             "--save-pred-every", "2", "--random-mirror", "--random-scale", "--snapshot-dir", str(snapshot_dir)]
    with open(log_path, "w") as log:
        return subprocess.Popen(script_command("train.py", *flags), cwd=REPO, env=script_environment(),
                                stdout=subprocess.DEVNULL, stderr=log)


def _wait_for_a_new_snapshot(process: subprocess.Popen, snapshot_dir, after_step: int) -> None:
    deadline = time.monotonic() + SNAPSHOT_WAIT
    while _latest_step(snapshot_dir) <= after_step:
        assert process.poll() is None, f"train.py ended with status {process.returncode} before a new snapshot"
        assert time.monotonic() < deadline, "no new snapshot appeared"
        time.sleep(0.05)


def _assert_valid_final_snapshot(snapshot_dir) -> None:
    latest = checkpoints.latest_snapshot(str(snapshot_dir))
    assert checkpoints.step_of(latest) == NUM_STEPS
    description = load_description(str(snapshot_dir))
    assert (description.arch, description.num_classes) == (ARCH, NUM_CLASSES)
    assert tf.train.load_checkpoint(latest).get_tensor("global_step") == NUM_STEPS
    with tf.Graph().as_default():
        build_model(v1.placeholder(tf.float32, [1, 48, 48, 3]), description)
        with v1.Session() as session:
            report = checkpoints.restore(session, latest, v1.global_variables())
    assert report.restored and not report.fresh


def test_train_py_killed_at_random_moments_resumes_and_finishes(tmp_path):
    list_path = write_dataset(tmp_path, count=5, size=(48, 48))
    snapshot_dir = tmp_path / "snapshots"
    chance = random.Random(9)
    for number, interruption in enumerate(INTERRUPTIONS):
        before = _latest_step(snapshot_dir)
        log_path = tmp_path / f"run{number}.log"
        process = _start_training(tmp_path, list_path, snapshot_dir, log_path)
        try:
            _wait_for_a_new_snapshot(process, snapshot_dir, before)
            time.sleep(chance.uniform(0.0, 0.5))
            process.send_signal(interruption)
            status = process.wait(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        log = log_path.read_text()
        if before:
            assert f"resuming from {snapshot_dir / f'model.ckpt-{before}'} at step {before}" in log
        if interruption == signal.SIGKILL:
            assert status == -signal.SIGKILL
        else:  # SIGTERM: a snapshot of the step reached, then exit status 130
            assert status == 130 and "received SIGTERM" in log, log
            assert f"stopped at step {_latest_step(snapshot_dir)};" in log
    before = _latest_step(snapshot_dir)
    assert 0 < before < NUM_STEPS
    log_path = tmp_path / "final.log"
    process = _start_training(tmp_path, list_path, snapshot_dir, log_path)
    assert process.wait(timeout=300) == 0, log_path.read_text()
    assert f"at step {before}" in log_path.read_text()
    _assert_valid_final_snapshot(snapshot_dir)


# --- exact resume and determinism (in process, one thread) --------------------------------------------------

RESUME_STEPS = 6
STOP_AT = 3


def _config(root, snapshot_dir) -> TrainConfig:
    # 5 examples in batches of 2: the interruption falls mid-epoch, so the data order matters.
    return TrainConfig(description=default_description(ARCH, NUM_CLASSES), data_dir=str(root),
                       data_list=str(root / "train.txt"), snapshot_dir=str(snapshot_dir), input_size=(40, 40),
                       batch_size=2, num_steps=RESUME_STEPS, save_pred_every=100, save_num_images=0,
                       learning_rate=1e-3, optimizer="adam", train_batch_norm=True, random_mirror=True,
                       random_scale=True, random_seed=5, threads=1)


@pytest.fixture(scope="module")
def uninterrupted(module_tmp):
    """(data root, snapshot of a run of RESUME_STEPS steps without interruption)."""
    root = module_tmp("exact")
    write_dataset(root, count=5, size=(48, 48))
    return root, Trainer(_config(root, root / "whole")).run().snapshot


def _variables(snapshot: str) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(snapshot)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def _differing(actual: dict, expected: dict) -> list[str]:
    assert actual.keys() == expected.keys()
    return [name for name in expected if not np.array_equal(actual[name], expected[name])]


@pytest.fixture(scope="module")
def stopped(uninterrupted):
    """The snapshot directory of a run stopped by Ctrl-C's signal after STOP_AT steps mid-epoch."""
    root, _ = uninterrupted

    def interrupt(step, loss):
        if step == STOP_AT:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C would: save a snapshot and stop

    result = Trainer(_config(root, root / "stopped")).run(interrupt)
    assert result.stopped and result.step == STOP_AT
    return root / "stopped"


def _resume_a_copy(stopped_dir, name: str) -> str:
    """Resume a copy of the stopped run to the end; its final snapshot."""
    snapshot_dir = stopped_dir.parent / name
    shutil.copytree(stopped_dir, snapshot_dir)
    resumed = Trainer(_config(stopped_dir.parent, snapshot_dir)).run()
    assert resumed.step == RESUME_STEPS and not resumed.stopped
    return resumed.snapshot


def test_resuming_gives_exactly_the_weights_of_an_uninterrupted_run(uninterrupted, stopped):
    variables = _variables(_resume_a_copy(stopped, "resumed"))
    assert any(name.endswith("/Adam") for name in variables) and "global_step" in variables
    assert _differing(variables, _variables(uninterrupted[1])) == []


def test_restarting_the_data_stream_would_change_the_weights(uninterrupted, stopped, monkeypatch):
    monkeypatch.setattr(Trainer, "_examples_already_used", lambda self: 0)  # the behaviour before the fix
    restarted = _resume_a_copy(stopped, "restarted")
    assert len(_differing(_variables(restarted), _variables(uninterrupted[1]))) > 10


def test_a_stream_started_at_example_k_is_the_tail_of_the_whole_stream(tmp_path):
    list_path = write_dataset(tmp_path, count=5, size=(48, 48))
    samples = read_list_file(str(tmp_path), list_path)

    def batches(start_example: int, count: int) -> list[np.ndarray]:
        with tf.Graph().as_default():
            dataset = train_dataset(samples, Preprocessing.deeplab(), (32, 32), 2, NUM_CLASSES, 255,
                                    random_scale=True, random_mirror=True, seed=11, start_example=start_example)
            images, labels = v1.data.make_one_shot_iterator(dataset).get_next()
            with v1.Session() as session:
                return [np.concatenate([a.ravel(), b.ravel()]) for a, b in
                        (session.run((images, labels)) for _ in range(count))]

    whole = batches(0, 7)  # 14 examples: almost three passes over the 5 shuffled samples
    tail = batches(6, 4)
    for expected, actual in zip(whole[3:], tail, strict=True):
        np.testing.assert_array_equal(actual, expected)
    assert not np.array_equal(whole[3], whole[0])
