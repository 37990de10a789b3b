"""Every shell command of the README's workflow sections, run as written on tiny generated data.

The commands run in order from a folder holding what they name (``tests/support/sandbox.py``); training
commands get ``--num-steps 1 --input-size 64,64 --batch-size 1 --grad-update-every 1`` appended (argparse keeps
the last value), so they run the README's architectures in seconds.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.sandbox import make_readme_sandbox

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
SECTIONS = ("## The DeepLab-ResNet-TF workflow", "## Large images and imbalanced data", "## Pretrained weights")
TRAINING = ("train.py", "train_msc.py")
TINY = ["--num-steps", "1", "--input-size", "64,64", "--batch-size", "1", "--grad-update-every", "1",
        "--save-num-images", "0"]
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


def test_the_readme_names_the_workflow_commands():
    commands = readme_commands((REPO / "README.md").read_text(encoding="utf-8"))
    scripts = {shlex.split(command)[1] for command in commands}
    assert scripts >= {"convert_masks.py", "convert_weights.py", "train.py", "train_msc.py", "evaluate.py",
                       "evaluate_msc.py", "evaluate_msc_with_CRF.py", "inference.py"}


def test_every_readme_command_runs(tmp_path):
    pytest.importorskip("pydensecrf", reason="the README's CRF command needs pydensecrf2")
    pytest.importorskip("torch", reason="writing the README's .pth weight file needs torch")
    sandbox = make_readme_sandbox(tmp_path)
    environment = dict(os.environ, PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="")
    for command in readme_commands((REPO / "README.md").read_text(encoding="utf-8")):
        words = shlex.split(command)
        argv = [sys.executable, str(REPO / words[1]), *words[2:]]
        if words[1] in TRAINING:
            argv += TINY
        result = subprocess.run(argv, cwd=sandbox, env=environment, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"{command}\n{result.stderr[-2000:]}"
        assert "Traceback" not in result.stderr, f"{command}\n{result.stderr}"
    assert (sandbox / "output" / "2007_000032_colour.png").is_file()
    assert (sandbox / "predictions").is_dir() and (sandbox / "results.json").is_file()
