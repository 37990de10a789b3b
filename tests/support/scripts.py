"""Run the repository's scripts (train.py, evaluate_msc.py) as users do, and read their one-line errors.

:func:`run_script` runs a script in the test process: its own lines (as ``__main__``), its argv and working folder,
with stdout and stderr captured and its exit status returned, as ``python SCRIPT ...`` would give them. Only the
start-up of a Python process is left out; tests where the process itself is the point (quiet output, signals,
several workers, peak memory) start one with :func:`script_command`.
"""

from __future__ import annotations

import contextlib
import io
import os
import runpy
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from tests.support.toy_data import NUM_CLASSES

REPO = Path(__file__).resolve().parents[2]
ARCH = "lw-refinenet-mobilenetv2"
TINY_MODEL_FLAGS = ["--arch", ARCH, "--num-classes", str(NUM_CLASSES), "--input-size", "48,48", "--batch-size", "2",
                    "--threads", "1", "--save-num-images", "0", "--log-every", "1"]


@dataclass(frozen=True)
class ScriptResult:
    """What a script run gave: exit status, stdout and stderr."""

    returncode: int
    stdout: str
    stderr: str


def run_script(script: str, *flags: object, cwd: str | os.PathLike = REPO) -> ScriptResult:
    """Run ``python SCRIPT FLAGS...`` (or with ``script`` ``-m``, ``python -m MODULE FLAGS...``) from ``cwd`` in this
    process; an uncaught exception is status 1 with its traceback on stderr, as in a process."""
    module = str(flags[0]) if script == "-m" else None  # python -m MODULE FLAGS...
    path = str(REPO / script)
    stdout, stderr = io.StringIO(), io.StringIO()
    saved_argv, saved_cwd, saved_path = sys.argv, os.getcwd(), sys.path[:]
    sys.argv = [module, *map(str, flags[1:])] if module else [path, *map(str, flags)]
    sys.path.insert(0, str(cwd) if module else os.path.dirname(path))  # as Python does: the folder, else the script's
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                if module:
                    runpy.run_module(module, run_name="__main__", alter_sys=True)
                else:
                    runpy.run_path(path, run_name="__main__")
                status = 0
            except SystemExit as exit_:
                status = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            except Exception:  # noqa: BLE001 - reported as Python reports it
                traceback.print_exc()
                status = 1
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        os.chdir(saved_cwd)
    return ScriptResult(status, stdout.getvalue(), stderr.getvalue())


def script_command(script: str, *flags: str) -> list[str]:
    """The command line running ``script`` from the repository root with this Python, for a separate process."""
    return [sys.executable, str(REPO / script), *flags]


def script_environment() -> dict[str, str]:
    """The environment of a script run in its own process: no GPU, TensorFlow's C++ logging off."""
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")


def single_error_line(result: ScriptResult) -> str:
    """Check a script failed as a user error (status 2, one 'error:' line, no traceback); that line."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]
