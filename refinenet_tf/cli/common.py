"""Running a command: plain progress lines, one-line warnings, and a user's mistake as one ``error:`` line."""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence

from refinenet_tf import tf_quiet
from refinenet_tf.cli.flags import flag_name
from refinenet_tf.errors import RefineNetError


class _OneLineWarnings(logging.Formatter):
    """Progress lines as they are; a warning or error record on one line."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else one_line(text)


def one_line(text: str) -> str:
    """``text`` with its lines joined by spaces."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning (numpy, PIL, ...) as one ``warning: ...`` line."""
    print(f"warning: {one_line(str(message))} ({category.__name__})", file=file or sys.stderr)


@contextlib.contextmanager
def command_logging(verbose: bool = False) -> Iterator[None]:
    """For the length of a command: plain progress lines on stderr, warnings on one line; ``verbose`` adds debug
    lines and TensorFlow's log. The handler and levels are put back afterwards, so a command can run in a
    process that goes on (a test, a notebook)."""
    if verbose:
        tf_quiet.set_verbose(True)
    root, ours = logging.getLogger(), logging.getLogger("refinenet_tf")
    levels = root.level, ours.level
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineWarnings("%(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    ours.setLevel(logging.DEBUG if verbose else logging.NOTSET)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        ours.setLevel(levels[1])


@contextlib.contextmanager
def _one_line_python_warnings() -> Iterator[None]:
    show_warning = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        yield
    finally:
        warnings.showwarning = show_warning


def error_line(error: RefineNetError) -> str:
    """The one line a command prints for a user's mistake, parameters written as their flags."""
    return f"error: {one_line(error.render(flag_name))}"


def run(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> int:
    """Run a command; a RefineNetError becomes a one-line 'error: ...' and exit status 2."""
    try:
        with command_logging(tf_quiet.verbose_requested(sys.argv[1:] if argv is None else argv)), \
                _one_line_python_warnings():
            main(argv)
    except RefineNetError as error:
        print(error_line(error), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
