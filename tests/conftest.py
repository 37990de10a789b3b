"""Shared test setup: quiet TensorFlow, the optional ../shared reference folder, and what is expensive to make
(a briefly trained toy model, tiny checkpoints), made once per session."""

import os
import shutil
from pathlib import Path

import pytest

from refinenet_tf import tf_quiet
from tests.support.shared import disk_share, made_once

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# pytest-xdist's workers share the cores: each worker's TensorFlow (and the processes it starts) gets its share of
# intra- and inter-op threads, where a session's own setting would have every worker use every core. TensorFlow
# sizes its CPU thread pools once per process, when the first device is made (worker_threads below).
XDIST_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if XDIST_WORKERS > 1:
    for variable in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ.setdefault(variable, str(max(1, (os.cpu_count() or 1) // XDIST_WORKERS)))
# pytest swaps fd 2 for its own capture, so the test process keeps stderr unfiltered; commands the
# tests start as subprocesses filter as usual (this does not change the environment they inherit)
tf_quiet.set_verbose(True)

REPO = Path(__file__).resolve().parents[1]
SHARED_REFERENCE = REPO.parent / "shared" / "reference"


@pytest.fixture
def shared_reference() -> Path:
    """The official-code parity reference; tests using it skip when the folder is absent."""
    if not (SHARED_REFERENCE / "mbv2.pth").is_file():
        pytest.skip(f"parity reference not present at {SHARED_REFERENCE}")
    return SHARED_REFERENCE


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory):
    """``module_tmp(name)``: a new folder for what a test file's tests share, deleted when they are done (the suite
    holds at most 2 GB at once: docs/TESTING.md)."""
    made = []

    def make(name: str) -> Path:
        made.append(tmp_path_factory.mktemp(name))
        return made[-1]

    yield make
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def large_disk(tmp_path_factory):
    """Held by a test that writes over a gigabyte (ResNet-101 or full RefineNet runs): it runs beside no other
    test holding ``large_disk`` or ``medium_disk`` in any xdist worker, so that the suite holds at most 2 GB at
    once (docs/TESTING.md)."""
    with disk_share(tmp_path_factory, alone=True):
        yield


@pytest.fixture
def medium_disk(tmp_path_factory):
    """Held by a test that writes a few hundred megabytes (ResNet-50 runs, ten snapshots kept): any number of them
    run together, but never beside a ``large_disk`` test."""
    with disk_share(tmp_path_factory, alone=False):
        yield


@pytest.fixture(scope="session")
def toy_training(tmp_path_factory):
    """The session's one trained toy model (``tests/support/trained_toy.py``, about 20 s): data, snapshots, losses."""
    from tests.support.trained_toy import ToyTraining, train_toy_model  # deferred: TensorFlow

    made = made_once(tmp_path_factory, "trained_toy", lambda folder: train_toy_model(str(folder)).as_record())
    return ToyTraining.from_record(made)


@pytest.fixture(scope="session")
def toy_model(toy_training) -> str:
    """The snapshot folder of the session's trained toy model; tests read it and write elsewhere."""
    return toy_training.snapshots


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> tuple[str, str]:
    """The (random, constant) tiny checkpoint folders of ``tests/support/model_factory.py``, written once per
    session; tests read them and write elsewhere."""
    from tests.support.model_factory import write_checkpoints

    return tuple(made_once(tmp_path_factory, "tiny_checkpoints", lambda folder: list(write_checkpoints(str(folder)))))


@pytest.fixture(scope="session", autouse=True)
def worker_threads():
    """In an xdist worker, make TensorFlow's CPU device before any test does, so that its thread pools take the
    worker's share (set up under pytest's capture: TensorFlow's start-up lines stay out of the report)."""
    if XDIST_WORKERS > 1:
        import tensorflow as tf

        tf.constant(0)


# A test that uses one of these trained or saved models runs real prediction or training: end-to-end work, which
# the quick loop (pytest -m "not slow") leaves out whatever file it is in. See docs/TESTING.md.
MODEL_FIXTURES = {"toy_training", "toy_model", "tiny_checkpoints"}


def pytest_itemcollected(item):
    """Mark slow every test that uses a shared model, directly or through another fixture."""
    if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
        item.add_marker(pytest.mark.slow)


# The files that take minutes, longest first (docs/TESTING.md, "Slowest steps"), with the fine-tuning file after the
# command sequences' end, since both take the large-disk lock. Under --dist loadfile a worker takes the next file when
# it is free, in collection order (pyproject.toml turns xdist's reordering by test count off): a long file started
# last would end the run alone.
LONGEST_FILES = ("tests/cli/test_command_sequences.py", "tests/reliability/test_kill_resume.py",
                 "tests/train/test_rare_class.py", "tests/predict/test_inference_graph.py",
                 "tests/models/test_architectures.py", "tests/distribute/test_distributed.py",
                 "tests/cli/test_fine_tuning.py", "tests/predict/test_tiling_memory.py",
                 "tests/quantize/test_int8_accuracy.py",
                 "tests/train/test_validation.py", "tests/train/test_run_folder.py")


def pytest_collection_modifyitems(config, items):
    """Collect LONGEST_FILES first, in that order; every other file keeps its place after them."""
    root = Path(str(config.rootpath))
    rank = {name: index for index, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.relative_to(root).as_posix(), len(LONGEST_FILES)))
