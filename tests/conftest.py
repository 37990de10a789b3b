"""Shared test setup: quiet TensorFlow, the optional ../shared reference folder, and what is expensive to make
(a briefly trained toy model, tiny checkpoints, the DeepLab-named checkpoint), made once per session."""

import os
from pathlib import Path

import pytest

from refinenet_tf import tf_quiet
from tests.support.shared import made_once

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
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
def deeplab_checkpoint(tmp_path_factory) -> str:
    """DeepLab-ResNet-TF's ``deeplab_resnet.ckpt`` in form (ResNet-101, ASPP classifier, a Momentum slot), written
    once per session: its prefix. Tests link its files into their folders."""
    from tests.support.weight_files import write_deeplab_checkpoint

    def make(folder):
        prefix = str(folder / "deeplab_resnet.ckpt")
        write_deeplab_checkpoint(prefix, "refinenet-resnet101")
        return prefix

    return made_once(tmp_path_factory, "deeplab_checkpoint", make)


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> tuple[str, str]:
    """The (random, constant) tiny checkpoint folders of ``tests/support/model_factory.py``, written once per
    session; tests read them and write elsewhere."""
    from tests.support.model_factory import write_checkpoints

    return tuple(made_once(tmp_path_factory, "tiny_checkpoints", lambda folder: list(write_checkpoints(str(folder)))))


# A test that uses one of these trained or saved models runs real prediction or training: end-to-end work, which
# the quick loop (pytest -m "not slow") leaves out whatever file it is in. See docs/TESTING.md.
MODEL_FIXTURES = {"toy_training", "toy_model", "tiny_checkpoints", "deeplab_checkpoint"}


def pytest_itemcollected(item):
    """Mark slow every test that uses a shared model, directly or through another fixture."""
    if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
        item.add_marker(pytest.mark.slow)
