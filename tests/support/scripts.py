"""Run the repository's scripts (train.py, evaluate_msc.py) as users do, and read their one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.toy_data import NUM_CLASSES

REPO = Path(__file__).resolve().parents[2]
ARCH = "lw-refinenet-mobilenetv2"
TINY_MODEL_FLAGS = ["--arch", ARCH, "--num-classes", str(NUM_CLASSES), "--input-size", "48,48", "--batch-size", "2",
                    "--threads", "1", "--save-num-images", "0", "--log-every", "1"]


def script_command(script: str, *flags: str) -> list[str]:
    """The command line running ``script`` from the repository root with this Python."""
    return [sys.executable, str(REPO / script), *flags]


def script_environment() -> dict[str, str]:
    """The environment of a script run: no GPU, TensorFlow's C++ logging off."""
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")


def run_script(script: str, *flags: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run a script to completion, capturing its output as text."""
    return subprocess.run(script_command(script, *flags), cwd=REPO, env=script_environment(),
                          capture_output=True, text=True, timeout=timeout)


def single_error_line(result: subprocess.CompletedProcess) -> str:
    """Check a script failed as a user error (status 2, one 'error:' line, no traceback); that line."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]
