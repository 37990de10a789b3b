"""Shared test setup: quiet TensorFlow, and the optional ../shared reference folder."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED_REFERENCE = REPO.parent / "shared" / "reference"


@pytest.fixture
def shared_reference() -> Path:
    """The official-code parity reference; tests using it skip when the folder is absent."""
    if not (SHARED_REFERENCE / "mbv2.pth").is_file():
        pytest.skip(f"parity reference not present at {SHARED_REFERENCE}")
    return SHARED_REFERENCE
