"""Command sequences as their documents give them: every shell command of the README's workflow sections, and
DeepLab-ResNet-TF's CI script, each run in order in one folder. They share this file so that pytest-xdist
(``--dist loadfile``) runs them one after the other: each holds up to 2 GB of ResNet-101 snapshots at a time.

**The README.** Every shell command of its workflow sections, run as written on tiny generated data; the lines it
quotes from DeepLab's CI script run in the DeepLab test below, in that script's order.

The commands run in order, in this process (``tests/support/scripts.py``), from a folder holding what they name
(``tests/support/sandbox.py``); training commands get ``--num-steps 1 --input-size 64,64 --batch-size 1
--grad-update-every 1`` appended (argparse keeps the last value), so they run the README's architectures in
seconds, and ``segment-archive`` gets ``--workers 1`` (the pipeline in this process). A training run that no later command reads is checked, then its files are deleted: the README's two
ResNet-101 runs would otherwise hold 2.8 GB of disk.

**DeepLab-ResNet-TF's CI script**, its nine lines as typed, in one folder and in order, against this project.

The lines are the ``script:`` section of DeepLab-ResNet-TF's ``.travis.yml``, unchanged. They run from one folder
laid out as DeepLab's repository (its debug list ``dataset/debug.txt`` and image ``misc/2007_000129.jpg``, which
this project ships, and ``./deeplab_resnet.ckpt``: a ResNet-101 under DeepLab's variable names with its ASPP
classifier and a Momentum slot, written once per test session), with the default architecture (RefineNet
ResNet-101) and the default ``--snapshot-dir ./snapshots/``. Each line runs in this process
(``tests/support/scripts.py``): the script's own lines, argv and working folder; only Python's start-up is left out.

The three lines that predict or evaluate straight from ``./deeplab_resnet.ckpt`` (a backbone and DeepLab
classifier, no RefineNet decoder) pass when they stop with the one line that says so; every other line exits 0.
Between lines the test reads the folder. When the 3-class run moves the 21-class one into ``snapshots/run-<time>/``,
the test lists that folder and then deletes it (a hook on ``run_folder.set_aside``): two ResNet-101 runs would
hold 2.8 GB of disk at once.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from pathlib import Path

import pytest

from refinenet_tf import checkpoints, defaults
from refinenet_tf.train import run_folder
from tests.support.sandbox import make_readme_sandbox
from tests.support.scripts import run_script
from tests.support.weight_files import write_deeplab_checkpoint

REPO = Path(__file__).resolve().parents[2]
SECTIONS = ("## The DeepLab-ResNet-TF workflow", "## Large images and imbalanced data", "## Pretrained weights",
            "## Bring your own data", "## Segment a whole archive")
TRAINING = ("train.py", "train_msc.py")
TINY = ["--num-steps", "1", "--input-size", "64,64", "--batch-size", "1", "--grad-update-every", "1",
        "--save-num-images", "0"]
ONE_WORKER = ["--workers", "1"]  # segment-archive in this process (N workers would start N TensorFlow processes)
BASH_BLOCK = re.compile(r"```bash\n(.*?)```", re.DOTALL)


def readme_commands(readme: str) -> list[str]:
    """The ``python ...`` lines of the bash blocks in :data:`SECTIONS`, continuations joined, comments cut."""
    commands = []
    for heading in SECTIONS:
        section = readme.split(heading, 1)[1].split("\n## ", 1)[0]
        for block in BASH_BLOCK.findall(section):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split("  #", 1)[0].strip()
                if line.startswith("python "):
                    commands.append(" ".join(line.split()))
    return commands


@pytest.fixture(scope="module")
def deeplab_checkpoint(module_tmp) -> str:
    """DeepLab-ResNet-TF's ``deeplab_resnet.ckpt`` in form (ResNet-101, ASPP classifier, a Momentum slot), written
    once for this file's two tests (which link its files into their folders) and deleted after them: its prefix."""
    prefix = str(module_tmp("deeplab_checkpoint") / "deeplab_resnet.ckpt")
    write_deeplab_checkpoint(prefix, "refinenet-resnet101")
    return prefix


def test_the_readme_names_the_workflow_commands():
    commands = readme_commands((REPO / "README.md").read_text(encoding="utf-8"))
    scripts = {shlex.split(command)[1] for command in commands}
    assert scripts >= {"convert_masks.py", "convert_weights.py", "train.py", "train_msc.py", "evaluate.py",
                       "evaluate_msc.py", "evaluate_msc_with_CRF.py", "inference.py"}


def _snapshot_dir(words: list[str]) -> str:
    """The --snapshot-dir of a training command's words (train.py's default when absent)."""
    return words[words.index("--snapshot-dir") + 1] if "--snapshot-dir" in words else defaults.SNAPSHOT_DIR


def _names_a_file_of(words: list[str], snapshot_dir: str, sandbox: Path) -> bool:
    """Whether a command names ``snapshot_dir`` or a file of the run in it (not a run in a folder inside it)."""
    folder = os.path.normpath(snapshot_dir)
    return any(os.path.normpath(word) == folder or (os.path.dirname(os.path.normpath(word)) == folder
                                                    and not (sandbox / word).is_dir()) for word in words)


@pytest.mark.slow  # every workflow command of the README, in order
def test_every_readme_command_runs(tmp_path, deeplab_checkpoint, large_disk):
    pytest.importorskip("pydensecrf", reason="the README's CRF command needs pydensecrf2")
    pytest.importorskip("torch", reason="writing the README's .pth weight file needs torch")
    pytest.importorskip("pycocotools", reason="the README's COCO command needs pycocotools (the coco extra)")
    sandbox = make_readme_sandbox(tmp_path, deeplab_checkpoint)
    written = readme_commands((REPO / "README.md").read_text(encoding="utf-8"))
    # the README quotes lines of DeepLab's CI script: test_deeplab_ci_script_as_typed_in_one_folder runs them, in
    # their script's order and folder
    quoted = [command for command in written if command in TRAVIS_SCRIPT.splitlines()]
    assert quoted, "the README's DeepLab drop-in example quotes DeepLab's CI lines"
    commands = [shlex.split(command) for command in written if command not in quoted]
    runs = []
    for index, words in enumerate(commands):
        flags = words[2:] + (TINY if words[1] in TRAINING else []) + (ONE_WORKER if "segment-archive" in words else [])
        result = run_script(words[1], *flags, cwd=sandbox)
        command = " ".join(words)
        assert result.returncode == 0, f"{command}\n{result.stderr[-2000:]}"
        assert "Traceback" not in result.stderr, f"{command}\n{result.stderr}"
        if words[1] in TRAINING:
            runs.append(_snapshot_dir(words))
        for snapshot_dir in [run for run in runs
                             if not any(_names_a_file_of(later, run, sandbox) for later in commands[index + 1:])]:
            # no later command reads this run: checked, then its files deleted (ResNet-101 runs are 1.4 GB each)
            assert checkpoints.latest_snapshot(str(sandbox / snapshot_dir)).endswith("model.ckpt-1"), snapshot_dir
            shutil.rmtree(run_folder.set_aside(str(sandbox / snapshot_dir)))
            runs.remove(snapshot_dir)
    assert (sandbox / "output" / "2007_000032_colour.png").is_file()
    assert sorted(path.name for path in (sandbox / "archive").glob("*_overlay.png")) == \
        [f"scene{index}_overlay.png" for index in range(3)]
    assert (sandbox / "predictions").is_dir() and (sandbox / "results.json").is_file()


# --- DeepLab-ResNet-TF's CI script ---------------------------------------------------------------------------

TRAVIS_SCRIPT = """\
python inference.py ./misc/2007_000129.jpg ./deeplab_resnet.ckpt --num-classes 21
python train.py --batch-size 1 --data-dir ./ --data-list ./dataset/debug.txt --ignore-label 255 --num-classes 21 --num-steps 1 --random-mirror --random-scale --restore-from ./deeplab_resnet.ckpt --save-num-images 1
python train_msc.py --batch-size 1 --data-dir ./ --data-list ./dataset/debug.txt --grad-update-every 1 --ignore-label 255 --num-classes 21 --num-steps 1 --random-mirror --random-scale --restore-from ./deeplab_resnet.ckpt --save-num-images 1
python evaluate.py --data-dir ./ --data-list ./dataset/debug.txt --ignore-label 255 --num-classes 21 --num-steps 1 --restore-from ./deeplab_resnet.ckpt
python evaluate_msc.py --data-dir ./ --data-list ./dataset/debug.txt --ignore-label 255 --num-classes 21 --num-steps 1 --restore-from ./deeplab_resnet.ckpt
python train.py --batch-size 1 --data-dir ./ --data-list ./dataset/debug.txt --ignore-label 255 --not-restore-last --num-classes 3 --num-steps 1 --random-mirror --random-scale --restore-from ./deeplab_resnet.ckpt --save-num-images 1
python inference.py ./misc/2007_000129.jpg ./snapshots/model.ckpt-0 --num-classes 3
python train_msc.py --batch-size 1 --data-dir ./ --data-list ./dataset/debug.txt --grad-update-every 1 --ignore-label 255 --not-restore-last --num-classes 3 --num-steps 1 --random-mirror --random-scale --restore-from ./deeplab_resnet.ckpt --save-num-images 1
python inference.py ./misc/2007_000129.jpg ./snapshots/model.ckpt-0 --num-classes 3
"""
NO_DECODER = ("error: ./deeplab_resnet.ckpt: a ResNet-101 backbone + DeepLab classifier (fc1_voc12) checkpoint with "
              "no RefineNet decoder; it can start training (train.py --restore-from ./deeplab_resnet.ckpt), then "
              "predict with the snapshots")


@pytest.fixture
def deeplab_folder(tmp_path, deeplab_checkpoint) -> Path:
    shutil.copytree(REPO / "misc", tmp_path / "misc")
    (tmp_path / "dataset").mkdir()
    shutil.copy(REPO / "dataset" / "debug.txt", tmp_path / "dataset" / "debug.txt")
    for file in Path(deeplab_checkpoint).parent.glob("deeplab_resnet.ckpt.*"):  # the module's one copy
        (tmp_path / file.name).symlink_to(file)
    return tmp_path


def _run_line(line: str, folder: Path):
    words = shlex.split(line)
    assert words[0] == "python"
    return run_script(words[1], *words[2:], cwd=folder)


def _lines(stderr: str, start: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(start)]


@pytest.mark.slow  # nine commands with RefineNet ResNet-101
def test_deeplab_ci_script_as_typed_in_one_folder(deeplab_folder, monkeypatch, large_disk):
    set_aside_runs, set_aside = [], run_folder.set_aside

    def check_then_drop_the_earlier_run(snapshot_dir):  # two ResNet-101 runs would hold 2.8 GB of disk at once
        moved = set_aside(snapshot_dir)
        set_aside_runs.append({"name": os.path.basename(moved), "files": sorted(os.listdir(moved)),
                               "model": json.loads(Path(moved, "model.json").read_text())})
        shutil.rmtree(moved)
        return moved

    monkeypatch.setattr(run_folder, "set_aside", check_then_drop_the_earlier_run)
    lines = TRAVIS_SCRIPT.splitlines()
    assert len(lines) == 9
    snapshots = deeplab_folder / "snapshots"
    results = []
    for number, line in enumerate(lines, 1):
        result = _run_line(line, deeplab_folder)
        results.append(result)
        if number in (1, 4, 5):  # a backbone checkpoint cannot predict: one clear line, status 2
            assert (result.returncode, _lines(result.stderr, "error")) == (2, [NO_DECODER]), (line, result.stderr)
            assert "Traceback" not in result.stderr
            continue
        assert result.returncode == 0, (line, result.stderr[-3000:])
        assert "Traceback" not in result.stderr
        if number == 2:  # a new run, started from DeepLab's weights
            assert json.loads((snapshots / "model.json").read_text())["num_classes"] == 21
            assert sorted(path.name for path in snapshots.glob("*.index")) == ["model.ckpt-0.index",
                                                                              "model.ckpt-1.index"]
        if number in (3, 8):  # the same starting point and model: the run in ./snapshots/ continues
            assert _lines(result.stderr, "resuming from") == [
                "resuming from ./snapshots/model.ckpt-1 at step 1: the run in ./snapshots/ continues (it started "
                "from ./deeplab_resnet.ckpt too)"], result.stderr
        if number == 6:  # another class count: a new run, the 21-class one moved aside whole
            [earlier] = set_aside_runs
            assert _lines(result.stderr, "starting a new run") == [
                "starting a new run in ./snapshots/ (it held refinenet-resnet101 with 21 classes, this command trains "
                f"refinenet-resnet101 with 3); the earlier run's files are now in ./snapshots/{earlier['name']}"]
            assert earlier["model"]["num_classes"] == 21
            assert {"model.ckpt-0.index", "model.ckpt-1.index", "checkpoint", "training.json"} <= set(earlier["files"])
            assert json.loads((snapshots / "model.json").read_text())["num_classes"] == 3
        if number in (7, 9):
            assert (deeplab_folder / "output" / "2007_000129_colour.png").is_file()
    assert _lines(results[6].stderr, "error") == []
