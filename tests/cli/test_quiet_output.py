"""Commands, and the API after ``refinenet_tf.quiet()``, print only their own lines on stderr: TensorFlow's
start-up log is filtered. Importing the library alone changes nothing in the process.

The subprocesses run without TF_CPP_MIN_LOG_LEVEL (conftest sets it for this process), with
TF_ENABLE_ONEDNN_OPTS=1 and =0, and without CUDA_VISIBLE_DEVICES.
"""

import json
import logging
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from PIL import Image

from refinenet_tf import tf_quiet
from refinenet_tf.cli import common
from refinenet_tf.errors import ConfigError
from refinenet_tf.tf_quiet import LineFilter

REPO = Path(__file__).resolve().parents[2]
# TensorFlow's log lines, recognised independently of tf_quiet's own patterns
TF_LINE = re.compile(r"[IWEF]\d{4} \d\d:\d\d:|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] |WARNING: All log messages"
                     r"|WARNING:tensorflow|To enable the following instructions|.*(cuda|oneDNN|cuInit)")
FAKE_TF_LINE = "I0000 00:00:1795870313.071329    4242 fake_source.cc:7] a made-up TensorFlow log line"
API_SCRIPT = f"""
import os, sys
import refinenet_tf

refinenet_tf.quiet()
from refinenet_tf import RefineNet
print(RefineNet(model_type="lightweight", backbone="mobilenetv2", num_classes=3).description.arch)
import tensorflow as tf

tf.compat.v1.logging.warning("a TensorFlow Python warning")
os.write(2, b"genuine from C\\n")
os.write(2, b"{FAKE_TF_LINE}\\n")
print("ours from Python", file=sys.stderr)
os.write(2, b"unfinished at exit")
"""


def _environment(onednn: str, **extra: str) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES", tf_quiet.VERBOSE_ENV)
                   and not key.startswith("_REFINENET_TF")}
    return {**environment, "TF_ENABLE_ONEDNN_OPTS": onednn, "PYTHONPATH": str(REPO), **extra}


def _run(*args: str, onednn: str = "1", **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, env=_environment(onednn, **extra),
                          capture_output=True, text=True, timeout=180)


def _tensorflow_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if TF_LINE.match(line)]


def _sources(stderr: str) -> set[str]:
    """Where each TensorFlow line comes from: ``file.cc:line]``, or the line itself."""
    return {(re.search(r"\S+:\d+\]", line) or re.search(".*", line)).group() for line in _tensorflow_lines(stderr)}


@pytest.fixture(scope="module")
def image(module_tmp) -> str:
    path = module_tmp("images") / "image.png"
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path)
    return str(path)


# what a process is before and after importing the library, its API and TensorFlow
IMPORT_SCRIPT = """
import glob, json, os, sys

def state():
    children = set()
    for path in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
        with open(path) as file:
            children.update(file.read().split())
    stderr = os.fstat(2)
    return {"stderr": [stderr.st_dev, stderr.st_ino], "children": sorted(children),
            "finders": [name(finder if isinstance(finder, type) else type(finder)) for finder in sys.meta_path]}

def name(kind):
    return f"{kind.__module__}.{kind.__qualname__}"

before = state()
import refinenet_tf
imported = state()
from refinenet_tf import RefineNet
import tensorflow
print(json.dumps({"before": before, "imported": imported, "with_tensorflow": state()}))
"""


@pytest.fixture(scope="module")
def plain_import() -> subprocess.CompletedProcess:
    """A fresh process that imports the library, its API and TensorFlow, reporting its state at each stage."""
    return _run("-c", IMPORT_SCRIPT)


@pytest.fixture(scope="module")
def raw_tensorflow_sources(plain_import) -> set[str]:
    """What importing TensorFlow logs on this machine (maybe nothing, elsewhere): the library leaves it alone."""
    return _sources(plain_import.stderr)


@pytest.mark.slow  # a fresh process
def test_importing_the_library_leaves_the_process_as_it_was(plain_import):
    assert plain_import.returncode == 0, plain_import.stderr
    stages = json.loads(plain_import.stdout)
    before, imported, with_tensorflow = stages["before"], stages["imported"], stages["with_tensorflow"]
    assert imported == before
    assert with_tensorflow["stderr"] == before["stderr"]
    assert with_tensorflow["children"] == before["children"] == []
    added = [finder for finder in with_tensorflow["finders"] if finder not in before["finders"]]
    # TensorFlow's own imports add finders (absl's, six's here); none is the library's
    assert not [finder for finder in added if finder.startswith("refinenet_tf")], added
    assert set(before["finders"]) <= set(with_tensorflow["finders"])


def _infer_command(entry: str, image: str) -> list[str]:
    args = [image, "no_such_checkpoint"]
    if entry == "script":
        return ["inference.py", *args]
    if entry == "module":
        return ["-m", "refinenet_tf", "infer", *args]
    return ["-c", f"import sys; sys.argv = ['refinenet-infer', *{args!r}]\n"
                  "from refinenet_tf.cli.scripts import infer; infer()"]


@pytest.mark.slow  # fresh processes
@pytest.mark.parametrize(("entry", "onednn"), [("script", "1"), ("module", "0"), ("console", "1")])
def test_failing_command_prints_one_error_line(image, entry, onednn):
    result = _run(*_infer_command(entry, image), onednn=onednn)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "no_such_checkpoint" in lines[0]


@pytest.mark.slow  # a fresh process; oneDNN off: test_api_keeps_every_other_line_in_order
def test_successful_command_prints_nothing_on_stderr():
    result = _run("-m", "refinenet_tf", "info", "--arch", "lw-refinenet-mobilenetv2", "--num-classes", "3", "--json",
                  onednn="1")
    assert result.returncode == 0, result.stderr
    assert '"arch": "lw-refinenet-mobilenetv2"' in result.stdout
    assert result.stderr == ""


@pytest.mark.slow  # a fresh process; oneDNN on: test_successful_command_prints_nothing_on_stderr
def test_api_keeps_every_other_line_in_order():
    result = _run("-c", API_SCRIPT, onednn="0")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "lw-refinenet-mobilenetv2\n"
    assert result.stderr == "genuine from C\nours from Python\nunfinished at exit"


@pytest.mark.slow  # fresh processes
def test_verbose_flag_shows_tensorflow_lines(image, raw_tensorflow_sources):
    result = _run("inference.py", image, "no_such_checkpoint", "--verbose")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith("error: ")
    assert raw_tensorflow_sources <= _sources(result.stderr)


@pytest.mark.slow  # fresh processes
def test_verbose_environment_variable_shows_tensorflow_lines(raw_tensorflow_sources):
    result = _run("-c", API_SCRIPT, **{tf_quiet.VERBOSE_ENV: "1"})
    assert result.returncode == 0, result.stderr
    assert FAKE_TF_LINE in result.stderr.splitlines()
    assert "a TensorFlow Python warning" in result.stderr
    assert raw_tensorflow_sources <= _sources(result.stderr)


# --- the filter itself --------------------------------------------------------------------------------

LOG_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1795870317.600310    6988 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.",
    "I0000 00:00:1795870313.071329    6985 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
    "GPU will not be used.",
    "E0000 00:00:1795870383.451042    7174 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    "Failed call to cuInit: UNKNOWN ERROR (303)",
    "W1231 23:59:59.123456  123456 external/local_xla/xla/tsl/lib/monitoring/collection_registry.cc:81] x",
    "2023-05-01 12:00:00.123456: I tensorflow/core/util/port.cc:110] oneDNN custom operations are on.",
]
CPU_GUARD = ("I0000 00:00:1795870378.659814    7174 cpu_feature_guard.cc:227] This TensorFlow binary is optimized "
             "to use available CPU instructions in performance-critical operations.\n"
             "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
             "appropriate compiler flags.\n")
KEPT = ("genuine line\n"
        "F0000 00:00:1795870378.659814    7174 x.cc:1] Check failed: a fatal line is kept\n"
        "To enable the following instructions: kept, as it follows no log line, rebuild TensorFlow with the "
        "appropriate compiler flags.\n"
        "  I0000 00:00:1.0 1 indented.cc:1] kept\n"
        "\n")


def _filtered(data: bytes, chunk: int) -> bytes:
    lines = LineFilter()
    out = b"".join(lines.feed(data[start:start + chunk]) for start in range(0, len(data), chunk))
    return out + lines.close()


@pytest.mark.parametrize("chunk", [1, 7, 1 << 16])
def test_filter_drops_tensorflow_lines_only(chunk):
    data = "".join(line + "\n" for line in LOG_LINES) + KEPT + CPU_GUARD + "last line without newline"
    assert _filtered(data.encode(), chunk) == (KEPT + "last line without newline").encode()


BEAM_WORKER_LINES = (  # as two local Beam workers of segment-archive print them, Beam 2.77
    "WARNING:root:apitools not found, and bigquery client libraries are not available despite the import not raising "
    "an ImportError.",
    "INFO:__main__:Logging handler created.",
    "WARNING:__main__:No semi_persistent_directory found:  User registered objects (e.g. schema, logical type) "
    "throughregisteries may not be effective",
)


def test_filter_drops_beam_worker_start_up_lines_only():
    kept = "INFO:__main__:Logging handler created for my own program, too\nsegmented  4/4  0.4 img/s\n"
    data = "".join(line + "\n" for line in BEAM_WORKER_LINES * 2) + kept
    assert _filtered(data.encode(), 7) == kept.encode()


def test_unfinished_line_is_released_and_its_rest_follows_unjudged():
    lines = LineFilter()
    assert lines.feed(b"ok\nprogress 10%") == b"ok\n" and lines.waiting
    assert lines.release() == b"progress 10%" and not lines.waiting
    assert lines.feed(b" I0000 00:00:1.0 1 a.cc:1] rest\nI0000 00:00:1.0 1 a.cc:1] x\n") == \
        b" I0000 00:00:1.0 1 a.cc:1] rest\n"


# --- one-line messages from the commands ----------------------------------------------------------------

def test_command_errors_and_python_warnings_are_one_line(capsys):
    def main(argv):
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("numpy-style warning\nwith a second line", RuntimeWarning, stacklevel=1)
        raise ConfigError("a message\nover two lines")

    assert common.run(main, []) == 2
    assert capsys.readouterr().err.splitlines() == [
        "warning: numpy-style warning with a second line (RuntimeWarning)", "error: a message over two lines"]


def test_usage_error_is_one_line_and_help_lists_verbose(capsys):
    from refinenet_tf.cli import info

    with pytest.raises(SystemExit) as exit_info:
        common.run(info.main, ["--no-such-flag"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: unrecognized arguments: --no-such-flag (see python -m refinenet_tf info --help)\n"
    with pytest.raises(SystemExit):
        common.run(info.main, ["--help"])
    assert "--verbose" in capsys.readouterr().out


def test_project_warnings_are_formatted_on_one_line():
    record = logging.LogRecord("refinenet_tf.x", logging.WARNING, __file__, 1, "skipping %s:\n%s", ("a.png", "bad"), None)
    assert common._OneLineWarnings("%(message)s").format(record) == "skipping a.png: bad"
