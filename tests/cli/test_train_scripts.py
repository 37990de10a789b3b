"""train.py and train_msc.py as users run them: one step on a generated debug list, and bad data."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refinenet_tf import checkpoints
from tests.support.scripts import run_script
from tests.support.toy_data import write_dataset

pytestmark = pytest.mark.slow  # the training scripts end to end
COMMON_FLAGS = ["--arch", "lw-refinenet-mobilenetv2", "--num-classes", "3", "--input-size", "64,64",
                "--num-steps", "1", "--save-pred-every", "1", "--log-every", "1", "--threads", "1"]


def _debug_data(root: Path) -> list[str]:
    list_path = write_dataset(root, count=2, list_name="debug.txt")
    return ["--data-dir", str(root), "--data-list", list_path]


def test_train_py_runs_one_step_and_writes_a_snapshot(tmp_path):
    snapshots = tmp_path / "snapshots"
    result = run_script("train.py", *_debug_data(tmp_path), *COMMON_FLAGS, "--batch-size", "2", "--random-mirror",
                  "--random-scale", "--snapshot-dir", str(snapshots))
    assert result.returncode == 0, result.stderr
    assert "step 1/1" in result.stderr
    assert (snapshots / "model.ckpt-1.index").is_file()
    assert '"arch": "lw-refinenet-mobilenetv2"' in (snapshots / "model.json").read_text()


def test_train_msc_py_accumulates_and_runs_one_step(tmp_path):
    snapshots = tmp_path / "snapshots"
    result = run_script("train_msc.py", *_debug_data(tmp_path), *COMMON_FLAGS, "--grad-update-every", "2",
                  "--fusion", "mean", "--snapshot-dir", str(snapshots))
    assert result.returncode == 0, result.stderr
    assert "batch 1 x 2 accumulated" in result.stderr and "step 1/1" in result.stderr
    assert (snapshots / "model.ckpt-1.index").is_file()


def test_bad_mask_stops_training_with_a_message_naming_the_file(tmp_path):
    flags = _debug_data(tmp_path)
    bad_mask = tmp_path / "labels" / "001.png"
    Image.fromarray(np.full((64, 64), 7, np.uint8), mode="L").save(bad_mask)  # class 7 of 3
    result = run_script("train.py", *flags, *COMMON_FLAGS, "--batch-size", "2", "--snapshot-dir", str(tmp_path / "s"))
    assert result.returncode == 2
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: ") and str(bad_mask) in last_line and "7" in last_line
    assert "Traceback" not in result.stderr
    assert checkpoints.latest_snapshot(str(tmp_path / "s")).endswith("model.ckpt-0")  # the starting weights only
