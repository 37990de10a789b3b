"""Data-parallel training: replicas on logical CPU devices, two localhost workers, bfloat16."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from refinenet_tf.errors import ConfigError
from refinenet_tf.train.distributed import check_batch_size, cluster_from_environment
from tests.distribute.worker import train
from tests.support.toy_data import write_dataset

REPO = Path(__file__).resolve().parents[2]


def _run_worker(settings: dict, environment: dict | None = None) -> subprocess.Popen:
    env = {name: value for name, value in os.environ.items() if name != "TF_CONFIG"}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", **(environment or {}))
    return subprocess.Popen([sys.executable, "-m", "tests.distribute.worker", json.dumps(settings)], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=240)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _data(root: Path) -> dict:
    return {"data_dir": str(root), "data_list": write_dataset(root, count=4, size=(32, 32)),
            "threads": 1, "weight_decay": 1e-4, "learning_rate": 1e-2, "log_every": 1}


def _weights(snapshot: str) -> dict:
    reader = tf.train.load_checkpoint(snapshot)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


@pytest.mark.slow
def test_two_replicas_with_global_batch_4_make_the_one_device_update(tmp_path):
    data = _data(tmp_path)
    start = train({**data, "num_steps": 1, "batch_size": 4, "learning_rate": 0.0,
                   "snapshot_dir": str(tmp_path / "start")})["snapshot"]
    common = {**data, "num_steps": 2, "batch_size": 4, "restore_from": start}
    # two logical devices need a process of their own; the one-device run is this process's
    two = _run_worker({**common, "snapshot_dir": str(tmp_path / "two"), "devices": "cpu:0,cpu:1", "logical_cpus": 2})
    one_result = train({**common, "snapshot_dir": str(tmp_path / "one"), "devices": "cpu:0"})
    two_result = _finish(two)
    assert two_result["loss"] == pytest.approx(one_result["loss"], rel=1e-4)
    initial, expected, actual = _weights(start), _weights(one_result["snapshot"]), _weights(two_result["snapshot"])
    assert expected.keys() == actual.keys()
    assert actual["global_step"] == 2
    moved = 0
    for name, value in expected.items():
        if name.endswith("/weights") or name.endswith("/biases"):
            update_one, update_two = value - initial[name], actual[name] - initial[name]
            # The replicas sum the same gradients in another order, and oneDNN picks its convolution kernels by
            # the batch (2 per replica against 4), so elements differ in their last bits and the differences
            # grow through the backward pass: 0.16% of the update's norm was measured for a deep layer on an
            # AVX512_BF16 EPYC with oneDNN on. The same update means the same step as a whole: the difference
            # stays within 1% of the norm, where a real error (a lost replica, a mean taken twice) is 50% or more.
            size = np.linalg.norm(update_one)
            assert np.linalg.norm(update_two - update_one) <= 1e-2 * size + 1e-9, (name, size)
            moved += bool(size > 0)
    assert moved > 20


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.mark.slow
def test_two_localhost_workers_train_to_the_same_weights_and_only_the_chief_saves(tmp_path):
    data = _data(tmp_path)
    ports = _free_ports(2)
    cluster = {"chief": [f"127.0.0.1:{ports[0]}"], "worker": [f"127.0.0.1:{ports[1]}"]}
    processes = []
    for task_type, directory in (("chief", "chief"), ("worker", "worker")):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": task_type, "index": 0}})
        processes.append(_run_worker({**data, "num_steps": 3, "batch_size": 4, "save_pred_every": 3,
                                      "snapshot_dir": str(tmp_path / directory),
                                      "dump": str(tmp_path / f"{directory}.npz")}, {"TF_CONFIG": tf_config}))
    chief, worker = (_finish(process) for process in processes)
    assert chief["step"] == worker["step"] == 3
    assert (tmp_path / "chief" / "model.ckpt-3.index").is_file()
    assert not (tmp_path / "worker" / "model.ckpt-3.index").exists()
    chief_weights, worker_weights = np.load(tmp_path / "chief.npz"), np.load(tmp_path / "worker.npz")
    assert set(chief_weights.files) == set(worker_weights.files)
    saved = _weights(chief["snapshot"])
    for name in chief_weights.files:
        np.testing.assert_array_equal(worker_weights[name], chief_weights[name], err_msg=name)
        if name.split(":")[0] in saved:
            np.testing.assert_array_equal(saved[name.split(":")[0]], chief_weights[name], err_msg=name)


@pytest.mark.slow
def test_a_bfloat16_step_trains_and_keeps_float32_variables(tmp_path):
    data = _data(tmp_path)
    result = train({**data, "num_steps": 2, "batch_size": 2, "precision": "bfloat16", "train_batch_norm": True,
                    "snapshot_dir": str(tmp_path / "bf16")})
    assert np.isfinite(result["loss"]) and result["step"] == 2
    weights = _weights(result["snapshot"])
    assert all(value.dtype in (np.float32, np.int64) for value in weights.values())


def test_the_global_batch_must_split_evenly_and_tf_config_must_be_valid(monkeypatch):
    check_batch_size(4, 2)
    with pytest.raises(ConfigError, match="multiple of the number of replicas, 3"):
        check_batch_size(4, 3)
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="TF_CONFIG is not a valid cluster description"):
        cluster_from_environment()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1"]},
                                                "task": {"type": "worker", "index": 0}}))
    assert cluster_from_environment() is None  # a single task trains on this machine alone
