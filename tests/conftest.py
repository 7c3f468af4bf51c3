"""Shared fixtures of the slidelearn test suite."""
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data():
    """The folder of the shared data sets (``<workspace>/shared/data``)."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"shared data folder {path} is absent")
    return path
