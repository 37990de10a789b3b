"""Writing files so that a reader, or a crash, never sees a half-written one."""

from __future__ import annotations

import os
import secrets


def temporary_name(name: str) -> str:
    """A hidden name, unique to this process and call, to write ``name``'s content under before renaming it."""
    return f".tmp-{os.getpid()}-{secrets.token_hex(6)}-{name}"


def write_text_atomically(path: str, text: str) -> None:
    """Write a file so that a reader sees either the old or the new content, never a partial one.

    The file gets the permissions an ordinary ``open(path, "w")`` would give (0666 less the umask), so a
    ``model.json`` or a report is as readable as the checkpoint and picture files written beside it.
    """
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, temporary_name(os.path.basename(path)))
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
