"""Every TOML example in docs/models.md builds and runs (the study configs are written from them)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import fuselab.models as fm

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

DOC = Path(__file__).resolve().parents[2] / "docs" / "models.md"
AVMNIST = {"image": (1, 28, 28), "audio": (1, 201, 4)}
LATTICE = {"x1": (32,), "x2": (32,)}


def examples() -> list[dict]:
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 10, "docs/models.md lost its examples"
    parsed = [tomllib.loads(b) for b in blocks]
    base = next(p["model"] for p in parsed if "model" in p)  # the LF baseline comes first
    # fragments (e.g. just ``fusion = [...]``) replace keys of the baseline
    return [p.get("model") or {**base, **p} for p in parsed]


@pytest.mark.parametrize("config", examples(), ids=lambda c: f"{c['name']}-{c.get('fusion_layer', c.get('fusion', [{}])[-1].get('at'))}")
def test_example_builds_and_runs(config, gen):
    shapes = LATTICE if "x1" in config.get("encoders", {}) else AVMNIST
    model = fm.build(config, input_shapes=shapes, num_outputs=10).eval()
    x = {m: torch.randn(2, *s, generator=gen) for m, s in shapes.items()}
    assert model(x).shape == (2, 10)
