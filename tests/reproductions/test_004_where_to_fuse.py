"""reproductions/004-where-to-fuse: the configs load, expand, name real variants in their claims,
and every CPU variant builds and runs (the claims engine re-checks claims when it loads them)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import tomllib
import torch

import fuselab.data as data
import fuselab.models as models
from fuselab.study import _check as c
from fuselab.study import expand, parse_config

FOLDER = Path(__file__).resolve().parents[2] / "reproductions" / "004-where-to-fuse"
CLAIM_KEYS = {"name", "source", "paper", "left", "right", "evaluation", "metric", "where",
              "exclude", "rule", "tol", "min_seeds", "significant", "fraction", "x", "order",
              "sign", "value", "rel_tol", "min", "max"}  # fmt: skip


def load(which: str, smoke: bool = False) -> tuple[dict, list[dict]]:
    raw = tomllib.loads((FOLDER / f"{which}.toml").read_text(encoding="utf-8"))
    claims = raw.pop("claims", [])
    if smoke:
        for path, value in tomllib.loads((FOLDER / "smoke.toml").read_text()).items():
            node = raw  # an override must replace something cpu.toml has
            for part in path.split("."):
                assert part in node, f"smoke.toml: {path!r} is not in cpu.toml"
                node = node[part]
            c.set_path(raw, path, copy.deepcopy(value))
    return raw, claims


@pytest.mark.parametrize("which", ["cpu", "full"])
def test_config_expands_and_claims_name_its_variants(which):
    raw, claims = load(which)
    runs = expand(parse_config(raw))
    names = {r.variant for r in runs}
    assert {r.seed for r in runs} >= {0, 1, 2}  # claims need >= 3 seeds
    layers = {r.factors["fusion_layer"] for r in runs}
    # late fusion after the last encoder layer (L) is part of the grid, as in the thesis
    assert max(layers) == (4 if which == "cpu" else 12) and 0 in layers
    assert len({cl["name"] for cl in claims}) == len(claims) >= 5
    for i, cl in enumerate(claims):
        assert set(cl) <= CLAIM_KEYS, (i, set(cl) - CLAIM_KEYS)
        sides = cl["left"] if isinstance(cl["left"], list) else [cl["left"]]
        sides += [cl["right"]] if isinstance(cl.get("right"), str) else []
        assert all(s in names for s in sides), (i, [s for s in sides if s not in names])
        if isinstance(cl["left"], list):  # a trend over a factor: left in x order
            factor = cl["x"].removeprefix("factor:")
            xs = [next(r.factors[factor] for r in runs if r.variant == s) for s in cl["left"]]
            assert xs == sorted(xs) or xs == sorted(xs, reverse=True), (i, xs)


def test_smoke_overrides_shrink_the_cpu_grid_and_every_variant_runs():
    raw, _ = load("cpu", smoke=True)
    cfg = parse_config(raw)
    runs = expand(cfg)
    assert cfg.train["epochs"] == 1 and cfg.data.options["sizes"]["train"] == 64
    splits = data.load_splits(cfg.data.name, **cfg.data.options)
    train = splits["train"]
    x, y = next(train.batches(2))
    lengths = {}
    for spec in {r.variant: r for r in runs}.values():
        torch.manual_seed(0)
        model = models.build(spec.config["model"], input_shapes=train.shapes,
                             num_outputs=train.num_classes)  # fmt: skip
        assert model(x, y).shape == (*y.shape, train.num_classes)
        lengths[spec.variant] = model.sequence_lengths()
    # the fusion layer sets how many encoder layers see the 64 image tokens (none at L = 4)
    q = lengths["fuse 4 / dec 4"][0]
    assert lengths["fuse 4 / dec 4"] == [q] * 4
    assert lengths["fuse 2 / dec 4"] == [q, q, q + 64, q + 64]
    assert lengths["fuse 0 / dec 4 / mean 1"] == [q + 1] * 4
