"""Shared test setup: quiet TensorFlow, the optional ../shared reference folder, and a briefly trained toy model."""

import os
from pathlib import Path

import pytest

from refinenet_tf import tf_quiet

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
def toy_model(tmp_path_factory) -> str:
    """A model trained 100 steps on the toy squares and discs (about 20 s): its snapshot folder."""
    from tests.support.trained_toy import train_toy_model  # deferred: trains only for the tests that use it

    return train_toy_model(str(tmp_path_factory.mktemp("trained_toy")))
