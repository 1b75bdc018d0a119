"""Fixtures for search tests: the lattice lookup task as a tensors file, search configs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("optuna")

# Spawned workers import the stand-in trial functions (fake_trials) by module name.
HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from fake_trials import write_lookup  # noqa: E402


@pytest.fixture(scope="session")
def lookup_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_lookup(tmp_path_factory.mktemp("lookup") / "lookup.npz")
