"""``--devices``: what a value means on this machine, and what a wrong one is told."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import tensorflow as tf

from refinenet_tf.errors import ConfigError
from refinenet_tf.train.distributed import resolve_devices


def _fake_devices(monkeypatch, gpus: int) -> None:
    """Make TensorFlow list ``gpus`` GPUs and one CPU."""
    names = {"CPU": ["/job:localhost/replica:0/task:0/device:CPU:0"],
             "GPU": [f"/job:localhost/replica:0/task:0/device:GPU:{i}" for i in range(gpus)]}

    def listed(kind=None):
        kinds = [kind] if kind else ["CPU", "GPU"]
        return [SimpleNamespace(name=name) for k in kinds for name in names[k]]

    monkeypatch.setattr(tf.config, "list_logical_devices", listed)


@pytest.fixture
def no_gpu():
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("this test needs a machine without a visible GPU")


@pytest.mark.parametrize("count, gpus", [("2", "2 GPUs"), ("1", "1 GPU")])
def test_a_gpu_count_without_gpus_says_there_are_none(no_gpu, count, gpus):
    with pytest.raises(ConfigError) as error:
        resolve_devices(count)
    assert str(error.value) == (
        f"devices {count} asks for {gpus} but this machine has none visible; use devices all (the CPU) "
        "or a device list such as /cpu:0 (see docs/DISTRIBUTED.md)")


def test_the_cpu_is_used_without_gpus(no_gpu):
    cpu = tf.config.list_logical_devices("CPU")[0].name
    assert resolve_devices("all") == [cpu]
    assert resolve_devices("/cpu:0") == [cpu]
    with pytest.raises(ConfigError, match=r"devices: no device '/gpu:0'; visible: "):
        resolve_devices("/gpu:0")


def test_too_many_gpus_keeps_the_range_message(monkeypatch):
    _fake_devices(monkeypatch, 2)
    assert resolve_devices("2") == ["/job:localhost/replica:0/task:0/device:GPU:0",
                                    "/job:localhost/replica:0/task:0/device:GPU:1"]
    for count in ("3", "0"):
        with pytest.raises(ConfigError) as error:
            resolve_devices(count)
        assert str(error.value) == (f"devices {count}: 2 GPU(s) are visible; give 1 to 2 or a device list "
                                    "such as /cpu:0")


def test_faked_machine_without_gpus_gets_the_no_gpu_message(monkeypatch):
    _fake_devices(monkeypatch, 0)
    with pytest.raises(ConfigError, match=r"^devices 4 asks for 4 GPUs but this machine has none visible"):
        resolve_devices("4")
