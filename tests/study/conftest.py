"""Fixtures for study tests: a fake study config written to a temp dir."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Spawned workers and Ray tasks import the stand-in run functions by module name.
HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

FAKE_TOML = """
[study]
name = "fake"
seeds = [0, 1]
baseline = "late"

[data]
name = "none"

[model]
name = "fake"

[train]
sleep = {sleep}

[[grid.fusion]]
label = "late"

[[grid.fusion]]
label = "early"
model = {{ slope = 0.05 }}

[evaluate]
robustness = true
"""


def write_fake(path: Path, sleep: float = 0.0, extra: str = "") -> Path:
    path.write_text(FAKE_TOML.format(sleep=sleep) + extra)
    return path


@pytest.fixture
def fake_config(tmp_path: Path) -> Path:
    return write_fake(tmp_path / "fake.toml")
