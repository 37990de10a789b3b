"""Expensive test setup made once per test session, also when pytest-xdist runs the session in several worker
processes: the first worker to ask makes it under a file lock in the session's shared temporary folder, the
others wait for it and read what it recorded."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from filelock import FileLock

DONE = "made.json"


def session_folder(tmp_path_factory) -> Path:
    """The session's temporary folder, the same in every xdist worker."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # a worker's own is popen-gwN inside it


def one_worker_at_a_time(tmp_path_factory, name: str) -> FileLock:
    """A lock on ``name`` that one xdist worker holds at a time."""
    return FileLock(str(session_folder(tmp_path_factory) / f"{name}.lock"))


@contextlib.contextmanager
def disk_share(tmp_path_factory, alone: bool) -> Iterator[None]:
    """Hold the session's disk: ``alone`` (an exclusive lock) for a test that writes over a gigabyte, else a shared
    lock, which any number of tests that write a few hundred megabytes hold together, but never beside a test
    holding it alone (``flock``, released when the test ends or its worker dies)."""
    with open(session_folder(tmp_path_factory) / "disk.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def made_once(tmp_path_factory, name: str, make: Callable[[Path], object]) -> object:
    """``make(folder)`` run once per session for ``name``; its JSON-serialisable result, in every worker."""
    folder = session_folder(tmp_path_factory) / f"shared-{name}"
    with one_worker_at_a_time(tmp_path_factory, folder.name):
        record = folder / DONE
        if record.is_file():
            return json.loads(record.read_text())
        folder.mkdir(parents=True, exist_ok=True)
        value = make(folder)
        record.write_text(json.dumps(value))
        return value
