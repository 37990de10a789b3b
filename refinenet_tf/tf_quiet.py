"""Keep TensorFlow's start-up log off stderr unless asked for (``REFINENET_TF_VERBOSE=1``, ``--verbose``).

TensorFlow's C++ runtime writes its log lines (the absl pre-init banner, ``I0000 ... cudart_stub.cc:31]
Could not find cuda drivers ...``, ``E0000 ... failed call to cuInit ...``) straight to file
descriptor 2, partly before any log level applies, so ``TF_CPP_MIN_LOG_LEVEL`` cannot remove them.

A command's entry point (``refinenet_tf.cli.launch``), or a program calling ``refinenet_tf.quiet()``, puts a
hook on the import system (:func:`arm`); importing the library alone does not. Just before ``tensorflow`` is first
imported, fd 2 is routed through a filter that drops only lines in TensorFlow's/absl's log formats
(fatal ``F`` lines are kept), and the start-up lines of Apache Beam's local worker processes, and passes every other
byte on unchanged. Python's ``sys.stderr`` writes
to fd 2 as before, so C and Python output stay in one stream, in the order it was written (a direct
path for Python would overtake C lines still in the pipe). The filter runs as a small separate
process (``python -I -S`` on this file), so it drains everything even when this process crashes or
is killed; child processes inherit the filtered fd 2 and do not start a filter of their own. At exit
fd 2 is given back and the filter is waited for. TensorFlow's Python logger ("tensorflow", with its
deprecation notices) is limited to errors.

Nothing is filtered when tensorflow was imported before :func:`arm`, when the environment
variable ``REFINENET_TF_VERBOSE`` is 1 (or true/yes/on), after ``set_verbose()``, or, for the
commands, with ``--verbose``. Without POSIX pipes only ``TF_CPP_MIN_LOG_LEVEL=2`` is set as a default.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import select
import signal
import subprocess
import sys
from collections.abc import Sequence

VERBOSE_ENV = "REFINENET_TF_VERBOSE"
VERBOSE_FLAG = "--verbose"
_FILTERED_ENV = "_REFINENET_TF_STDERR_FILTER"  # identity of the pipe a filter reads, for child processes
_PARTIAL_LINE_WAIT = 0.05  # seconds an unfinished line may wait for its end before it is passed on
_EXIT_WAIT = 2.0  # seconds to wait at exit for the filter to pass on what it still holds
_MAX_HELD = 1 << 16  # an unfinished line longer than this is passed on without waiting for its end

_LOG_LINE = re.compile(
    rb"[IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "  # absl: I0000 00:00:1795870313.071329    6985 port.cc:153] ...
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] \S+:\d+\] "  # TF < 2.16: 2023-05-01 12:00:00.123456: I tensorflow/...
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
)
# the start-up lines of Apache Beam's local worker processes (segment-archive), which print them before any log
# level of ours applies: Beam's optional Google Cloud clients missing, its worker's log handler, its scratch folder
_BEAM_WORKER_LINE = re.compile(
    rb"(WARNING:root:)?apitools not found, and bigquery client libraries are not available despite the import not "
    rb"raising an ImportError\.$"
    rb"|INFO:__main__:Logging handler created\.$"
    rb"|WARNING:__main__:No semi_persistent_directory found: "
)
# lines that continue the message of the log line just before them
_CONTINUATION = re.compile(rb"To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.$")


class LineFilter:
    """Drops TensorFlow's log lines from a byte stream; every other byte passes on unchanged, in order."""

    def __init__(self) -> None:
        self._partial = b""  # the start of a line, not judged yet
        self._passing = False  # the start of the current line was passed on: its rest follows unjudged
        self._after_log = False  # the last judged line was a dropped log line

    @property
    def waiting(self) -> bool:
        """Whether an unfinished line is held back."""
        return bool(self._partial)

    def feed(self, data: bytes) -> bytes:
        """The bytes to pass on for ``data``; an unfinished last line is held for ``feed`` or ``release``."""
        passed = []
        if self._passing:
            rest, newline, data = data.partition(b"\n")
            passed.append(rest + newline)
            self._passing = not newline
        if data:
            *lines, self._partial = (self._partial + data).split(b"\n")
            passed.extend(line + b"\n" for line in lines if not self._drops(line))
            if len(self._partial) > _MAX_HELD:
                passed.append(self.release())
        return b"".join(passed)

    def release(self) -> bytes:
        """Pass on the held unfinished line as it is (nothing more came for it)."""
        partial, self._partial = self._partial, b""
        self._passing = bool(partial)
        self._after_log = False
        return partial

    def close(self) -> bytes:
        """The end of the stream: judge the unfinished line as a whole line."""
        partial, self._partial = self._partial, b""
        return b"" if not partial or self._drops(partial) else partial

    def _drops(self, line: bytes) -> bool:
        text = line.rstrip(b"\r")
        self._after_log = bool(_LOG_LINE.match(text) or (self._after_log and _CONTINUATION.match(text)))
        return self._after_log or bool(_BEAM_WORKER_LINE.match(text))


def filter_stream(source: int = 0, target: int = 2) -> None:
    """Copy ``source`` to ``target`` through a ``LineFilter`` until every writer has closed ``source``."""

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: keep draining
    lines = LineFilter()
    target_open = True

    def write(data: bytes) -> None:
        nonlocal target_open
        while data and target_open:
            try:
                data = data[os.write(target, data):]
            except OSError:  # nobody reads stderr any more: keep reading so that writers never block
                target_open = False

    while True:
        if lines.waiting and not select.select([source], [], [], _PARTIAL_LINE_WAIT)[0]:
            write(lines.release())
            continue
        data = os.read(source, 1 << 16)
        if not data:
            break
        write(lines.feed(data))
    write(lines.close())


def verbose_flag(argv: Sequence[str]) -> bool:
    """Whether ``--verbose`` is among the options of ``argv`` (not after ``--``)."""
    argv = list(argv)
    return VERBOSE_FLAG in (argv[:argv.index("--")] if "--" in argv else argv)


def verbose_requested(argv: Sequence[str] = ()) -> bool:
    """Whether ``REFINENET_TF_VERBOSE`` asks for TensorFlow's log, or ``argv`` has ``--verbose``."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on") or verbose_flag(argv)


def set_verbose(verbose: bool = True) -> None:
    """Show (True) or hide (False) TensorFlow's log in this process from now on."""
    if verbose:
        _disarm()
        _unsilence()
    elif "tensorflow" in sys.modules:
        _silence()
    else:
        _disarm()
        sys.meta_path.insert(0, _BeforeTensorFlow())


def arm() -> None:
    """Quiet TensorFlow when it is first imported, unless ``REFINENET_TF_VERBOSE`` is set or it is imported already."""
    if not verbose_requested() and "tensorflow" not in sys.modules:
        set_verbose(False)


class _BeforeTensorFlow:
    """Quiets TensorFlow just before its first import, then steps aside (it never finds a module itself)."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname == "tensorflow":
            _disarm()
            _silence()
        return None


def _disarm() -> None:
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _BeforeTensorFlow)]


def _errors_only(record: logging.LogRecord) -> bool:
    """The filter put on TensorFlow's Python logger: error records only."""
    return record.levelno >= 40  # logging.ERROR


class _Route:
    """fd 2 routed through a filter process: what to undo."""

    def __init__(self, process: subprocess.Popen, real: int) -> None:
        self.pid = os.getpid()  # the process that routed its fd 2
        self.process = process
        self.real = real  # a duplicate of the real stderr
        self.pipe = _identity(2)  # the pipe fd 2 now writes to


_route: _Route | None = None


def _silence() -> None:

    logging.getLogger("tensorflow").addFilter(_errors_only)
    if os.name != "posix":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        return
    try:
        _route_stderr()
    except (OSError, ValueError, subprocess.SubprocessError):
        pass  # no filter then: TensorFlow's lines show, nothing else is lost


def _unsilence() -> None:

    logging.getLogger("tensorflow").removeFilter(_errors_only)
    _restore_stderr()


def _identity(fd: int) -> str:
    status = os.fstat(fd)
    return f"{status.st_dev}:{status.st_ino}"


def _route_stderr() -> None:

    global _route
    if _route is not None or os.environ.get(_FILTERED_ENV) == _identity(2):
        return  # routed already, here or by the process that started this one
    if not sys.executable or not os.path.isfile(__file__):
        return
    read_end, write_end = os.pipe()
    try:
        real = os.dup(2)
        try:
            process = subprocess.Popen([sys.executable, "-I", "-S", __file__], stdin=read_end,
                                       stdout=subprocess.DEVNULL, stderr=real, start_new_session=True)
        except BaseException:
            os.close(real)
            raise
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    _flush()
    os.dup2(write_end, 2)
    os.close(write_end)
    _route = _Route(process, real)
    os.environ[_FILTERED_ENV] = _route.pipe
    atexit.register(_restore_stderr)


def _restore_stderr() -> None:
    """Give fd 2 back to the real stderr and wait (briefly) for the filter to pass on what it holds."""

    global _route
    route, _route = _route, None
    if route is None or route.pid != os.getpid():
        return
    _flush()
    try:
        if _identity(2) == route.pipe:  # still ours (pytest, for one, swaps fd 2 itself)
            os.dup2(route.real, 2)
    except OSError:
        pass
    os.close(route.real)
    if os.environ.get(_FILTERED_ENV) == route.pipe:
        del os.environ[_FILTERED_ENV]
    try:
        route.process.wait(_EXIT_WAIT)  # ends once every child holding the pipe has closed it too
    except subprocess.TimeoutExpired:
        pass


def _flush() -> None:
    for stream in {id(s): s for s in (sys.stderr, sys.__stderr__)}.values():
        try:
            stream.flush()  # type: ignore[union-attr]
        except (AttributeError, OSError, ValueError):
            pass


if __name__ == "__main__":
    filter_stream()
