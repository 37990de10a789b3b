"""DeepLab-ResNet-TF's CI commands, as its users type them, against this project.

Its CI runs the training, evaluation and inference scripts on its debug list (``dataset/debug.txt``, the image
``misc/2007_000129.jpg``) with its checkpoint ``./deeplab_resnet.ckpt``. Here the checkpoint is a ResNet-101 under
DeepLab's variable names with its ASPP classifier and a Momentum slot, written by the test; the debug list and
image are the ones this project ships. Every command runs from a folder laid out as DeepLab's repository, with the
default architecture (RefineNet ResNet-101) and DeepLab's default batch (10) and crop (321x321).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.weight_files import write_deeplab_checkpoint

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
DEBUG = "--data-dir ./ --data-list ./dataset/debug.txt --num-steps 1"
COMMANDS = [
    f"python train.py {DEBUG} --restore-from ./deeplab_resnet.ckpt --snapshot-dir ./snapshots_voc/",
    f"python train.py {DEBUG} --restore-from ./deeplab_resnet.ckpt --not-restore-last --num-classes 3",
    f"python train_msc.py {DEBUG} --restore-from ./deeplab_resnet.ckpt --snapshot-dir ./snapshots_msc_voc/",
    f"python train_msc.py {DEBUG} --restore-from ./deeplab_resnet.ckpt --not-restore-last --num-classes 3 "
    "--snapshot-dir ./snapshots_msc/",
    f"python evaluate.py {DEBUG} --restore-from ./snapshots/model.ckpt-1 --num-classes 3",
    f"python evaluate_msc.py {DEBUG} --restore-from ./snapshots/model.ckpt-0 --num-classes 3",
    f"python evaluate_msc.py {DEBUG} --restore-from ./snapshots_msc/model.ckpt-1",
    "python inference.py ./misc/2007_000129.jpg ./snapshots_voc/model.ckpt-1",
    "python inference.py ./misc/2007_000129.jpg ./snapshots/model.ckpt-0 --num-classes 3",
]


@pytest.fixture(scope="module")
def deeplab_folder(tmp_path_factory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("deeplab")
    shutil.copytree(REPO / "misc", folder / "misc")
    (folder / "dataset").mkdir()
    shutil.copy(REPO / "dataset" / "debug.txt", folder / "dataset" / "debug.txt")
    write_deeplab_checkpoint(str(folder / "deeplab_resnet.ckpt"), "refinenet-resnet101")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)  # four ResNet-101 snapshot folders: 7 GB of disk


def run_as_typed(line: str, folder: Path) -> subprocess.CompletedProcess:
    """``python SCRIPT ...`` with this Python and this project's script, from DeepLab's folder layout."""
    words = shlex.split(line)
    assert words[0] == "python"
    environment = dict(os.environ, PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, str(REPO / words[1]), *words[2:]], cwd=folder, env=environment,
                          capture_output=True, text=True, timeout=1800)


def test_deeplab_ci_commands_all_pass(deeplab_folder):
    failed = []
    for line in COMMANDS:
        result = run_as_typed(line, deeplab_folder)
        if result.returncode != 0:
            failed.append(f"{line}\n  -> {result.returncode}: {result.stderr.strip().splitlines()[-1:]}")
    assert not failed, "\n".join(failed)
    assert (deeplab_folder / "snapshots" / "model.ckpt-0.index").is_file()  # the starting weights
    assert (deeplab_folder / "output" / "2007_000129_colour.png").is_file()


def test_a_deeplab_checkpoint_cannot_predict_and_says_what_to_do(deeplab_folder):
    result = run_as_typed("python inference.py ./misc/2007_000129.jpg ./deeplab_resnet.ckpt", deeplab_folder)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert lines == ["error: ./deeplab_resnet.ckpt: a ResNet-101 backbone + DeepLab classifier (fc1_voc12) "
                     "checkpoint with no RefineNet decoder; it can start training (train.py --restore-from "
                     "./deeplab_resnet.ckpt), then predict with the snapshots"], result.stderr
