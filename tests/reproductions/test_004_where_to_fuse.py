"""reproductions/004-where-to-fuse beyond the generic smoke harness (test_smoke.py): the grids
include late fusion after the last encoder layer, trend claims list their variants in x order,
and the fusion layer sets which encoder layers see the image tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import fuselab.data as data
import fuselab.models as models
from fuselab.study import expand, load_config
from fuselab.study.overrides import load_overrides

FOLDER = Path(__file__).resolve().parents[2] / "reproductions" / "004-where-to-fuse"


@pytest.mark.parametrize(("which", "num_layers"), [("cpu", 4), ("full", 12)])
def test_grid_reaches_layer_L_and_trend_claims_run_in_x_order(which, num_layers):
    cfg = load_config(FOLDER / f"{which}.toml")
    runs = expand(cfg)  # also checks every claim's variant names
    factors = {r.variant: r.factors for r in runs}
    assert {f["fusion_layer"] for f in factors.values()} >= {0, num_layers}
    assert len(cfg.seeds) >= 3 and all(cl.min_seeds >= 3 for cl in cfg.claims)
    trends = [cl for cl in cfg.claims if cl.rule == "trend"]
    assert trends
    for cl in trends:
        xs = [factors[v][cl.x.removeprefix("factor:")] for v in cl.left]
        assert xs in (sorted(xs), sorted(xs, reverse=True)) and len(set(xs)) == len(xs), cl.name


def test_smoke_grid_variants_see_the_image_from_their_fusion_layer_on():
    cfg = load_config(FOLDER / "cpu.toml", load_overrides(FOLDER / "smoke.toml"))
    assert cfg.train["epochs"] == 1 and cfg.data.options["sizes"]["train"] == 64
    train = data.load_splits(cfg.data.name, **cfg.data.options)["train"]
    x, y = next(train.batches(2))
    lengths = {}
    for spec in {r.variant: r for r in expand(cfg)}.values():
        torch.manual_seed(0)
        model = models.build(spec.config["model"], input_shapes=train.shapes,
                             num_outputs=train.num_classes)  # fmt: skip
        assert model(x, y).shape == (*y.shape, train.num_classes)
        lengths[spec.variant] = model.sequence_lengths()
    q = lengths["fuse 4 / dec 4"][0]  # late fusion (L = 4): no encoder layer sees the image
    assert lengths["fuse 4 / dec 4"] == lengths["fuse 4 / dec 1"] == [q] * 4
    assert lengths["fuse 2 / dec 4"] == [q, q, q + 64, q + 64]
    assert lengths["fuse 0 / dec 4 / mean 8"] == [q + 8] * 4
    assert lengths["fuse 0 / dec 4 / mean 1"] == [q + 1] * 4
