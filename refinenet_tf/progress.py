"""Progress of long work: one line that is redrawn in place on a terminal and written as whole lines, now and then,
to a log file or pipe."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def format_duration(seconds: float) -> str:
    """``h:mm:ss``."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """A one-line progress report on stderr: ``label  37/120  3.1 img/s  ETA 0:00:27``.

    ``total`` may be None when the length is unknown (no ETA then); ``silent`` counts without showing. On a terminal the line is
    redrawn in place at most every ``min_interval`` seconds (default 0.25); elsewhere (a log file)
    a new line is written at most every 10 s. :meth:`close` (or leaving the ``with`` block) prints
    the final line.
    """

    def __init__(self, total: int | None, label: str, unit: str = "img", stream: TextIO | None = None,
                 min_interval: float | None = None, clock: Callable[[], float] = time.monotonic,
                 silent: bool = False):
        self.total = total
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.min_interval = min_interval if min_interval is not None else (0.25 if self.interactive else 10.0)
        self.clock = clock
        self.count = 0
        self.started = clock()
        self.last_shown: float | None = None
        self.closed = False
        self.silent = silent  # count only, show nothing

    def rate(self) -> float:
        """Items per second so far (0 before any time has passed)."""
        elapsed = self.clock() - self.started
        return self.count / elapsed if elapsed > 0 else 0.0

    def line(self, final: bool = False) -> str:
        """The text of the progress line as it stands."""
        done = f"{self.count}/{self.total}" if self.total is not None else f"{self.count}"
        parts = [self.label, done, f"{self.rate():.1f} {self.unit}/s"]
        if final:
            parts.append(f"done in {format_duration(self.clock() - self.started)}")
        elif self.total is not None and self.rate() > 0:
            parts.append(f"ETA {format_duration(max(self.total - self.count, 0) / self.rate())}")
        return "  ".join(parts)

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items and redraw if enough time has passed."""
        self.count += n
        now = self.clock()
        if self.last_shown is None or now - self.last_shown >= self.min_interval:
            self.last_shown = now
            self._show(self.line(), end="" if self.interactive else "\n")

    def close(self) -> None:
        """Print the final line (once)."""
        if not self.closed:
            self.closed = True
            self._show(self.line(final=True), end="\n")

    def _show(self, text: str, end: str) -> None:
        if self.silent:
            return
        prefix = "\r\033[K" if self.interactive else ""
        self.stream.write(prefix + text + end)
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
