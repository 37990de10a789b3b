"""Expensive test setup made once per test session, also when pytest-xdist runs the session in several worker
processes: the first worker to ask makes it under a file lock in the session's shared temporary folder, the
others wait for it and read what it recorded."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

DONE = "made.json"


def made_once(tmp_path_factory, name: str, make: Callable[[Path], object]) -> object:
    """``make(folder)`` run once per session for ``name``; its JSON-serialisable result, in every worker."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # each worker's folder is popen-gwN inside the session's
    folder = base / f"shared-{name}"
    with FileLock(str(folder) + ".lock"):
        record = folder / DONE
        if record.is_file():
            return json.loads(record.read_text())
        folder.mkdir(parents=True, exist_ok=True)
        value = make(folder)
        record.write_text(json.dumps(value))
        return value
