"""segment-archive as a user runs it: two worker processes over 40 images, one of them corrupt, killed part-way,
run again to the end, then once more. The outputs are inference.py's, byte for byte; no file is ever partial."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from tests.support.scripts import script_environment

pytest.importorskip("apache_beam")

from refinenet_tf.cli.segment_archive import main  # noqa: E402  (after the skip: Beam is an optional extra)
from refinenet_tf.predict.predictor import Predictor  # noqa: E402
from refinenet_tf.predict.segment import segment_files  # noqa: E402

pytestmark = pytest.mark.slow
IMAGES = 40
SIZE = (64, 80)


def write_archive(folder) -> tuple[list[str], str]:
    """39 good images and a truncated one: (good paths, corrupt path)."""
    os.makedirs(folder)
    rng = np.random.default_rng(11)
    good = []
    for index in range(IMAGES - 1):
        good.append(os.path.join(folder, f"tile{index:02d}.png"))
        Image.fromarray(rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)).save(good[-1])
    corrupt = os.path.join(folder, "tile99.png")
    with open(good[0], "rb") as source, open(corrupt, "wb") as target:
        target.write(source.read()[:80])
    return good, corrupt


def command(folder, output, checkpoint) -> list[str]:
    return [sys.executable, "-m", "refinenet_tf", "segment-archive", "--input", os.path.join(folder, "*.png"),
            "--output", str(output), "--model", checkpoint, "--workers", "2", "--threads", "1"]


def index_masks(output) -> list[str]:
    return sorted(name for name in os.listdir(output) if name.startswith("tile") and name.count("_") == 0) \
        if os.path.isdir(output) else []


def test_two_workers_killed_part_way_then_finished_match_inference_py(tiny_checkpoints, tmp_path, capsys):
    checkpoint = tiny_checkpoints[0]
    good, corrupt = write_archive(str(tmp_path / "tiles"))
    with Predictor(checkpoint, threads=1) as predictor:
        list(segment_files(predictor, good, str(tmp_path / "reference")))
    output = tmp_path / "out"

    first = subprocess.Popen(command(tmp_path / "tiles", output, checkpoint), env=script_environment(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not index_masks(output) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(first.pid, signal.SIGKILL)  # the command and its Beam workers
    first.wait()
    killed_with = len(index_masks(output))
    assert 0 < killed_with < len(good), killed_with  # really part-way
    for name in os.listdir(output):
        if name.endswith(".png") and not name.startswith("."):  # what a killed run left under its own name is whole
            with Image.open(output / name) as image:
                image.load()

    second = subprocess.run(command(tmp_path / "tiles", output, checkpoint), env=script_environment(),
                            capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    # the command's own lines only: no TensorFlow or Beam worker start-up lines (from three processes)
    assert [line for line in second.stderr.splitlines() if not line.startswith("segmented ")] == []
    last = second.stdout.strip().splitlines()[-1]
    done, skipped = (int(word) for word in last.split()[0:3:2])
    assert done + skipped == len(good) and skipped >= killed_with and "1 failed" in last

    reference = {name: (tmp_path / "reference" / name).read_bytes() for name in os.listdir(tmp_path / "reference")}
    written = {name: (output / name).read_bytes() for name in os.listdir(output)
               if name.endswith(".png") and not name.startswith(".")}
    assert written == reference and len(reference) == 3 * len(good)
    failures = (output / "failures.tsv").read_text().splitlines()
    assert len(failures) == 1 and failures[0].startswith(corrupt + "\t")
    assert "cannot decode the image" in failures[0]

    capsys.readouterr()
    main(["--input", os.path.join(tmp_path, "tiles", "*.png"), "--output", str(output), "--model", checkpoint,
          "--workers", "1", "--threads", "1"])
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"0 done, {len(good)} skipped, 1 failed")
    assert {name: (output / name).read_bytes() for name in written} == written
