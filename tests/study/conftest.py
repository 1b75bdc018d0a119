"""Fixtures for study tests: a fake study config written to a temp dir."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Spawned workers and Ray tasks import the stand-in run functions (fake_runs) by module name.
HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from fake_runs import write_fake  # noqa: E402


@pytest.fixture
def fake_config(tmp_path: Path) -> Path:
    return write_fake(tmp_path / "fake.toml")
