"""Shared test setup: quiet TensorFlow, and the optional ../shared reference folder."""

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
