"""reproductions/000-early-fusion beyond the generic smoke harness (test_smoke.py): the claims name
real variants, the paper's stated settings are the ones used, and cpu.toml differs from full.toml
only by the reductions its header states."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuselab.study import expand, load_config
from fuselab.study.overrides import load_overrides

FOLDER = Path(__file__).resolve().parents[2] / "reproductions" / "000-early-fusion"
PAPER_SPEAKERS = ["george", "jackson", "nicolas", "theo", "yweweler"]  # FSDD 1.0.8
OCTAVES = ["clean", 8, 4, 2, 1, 0.5, 0.25, 0.125, 0.0625, 0.03125]


@pytest.mark.parametrize("which", ["cpu", "full"])
def test_claims_read_the_figure_1_variants_over_three_seeds(which):
    cfg = load_config(FOLDER / f"{which}.toml")
    runs = expand(cfg)  # also checks every claim's variant names and evaluations
    assert len(cfg.seeds) >= 3 and all(cl.min_seeds >= 3 for cl in cfg.claims)
    figure1 = {r.variant for r in runs
               if r.config["train"]["train_snr"] == {"audio": 0.5, "image": 0.25}}
    for cl in cfg.claims:
        assert cl.left in figure1 and (not isinstance(cl.right, str) or cl.right in figure1)


def test_full_uses_the_papers_stated_settings():
    cfg = load_config(FOLDER / "full.toml")
    model, data, train = cfg.model, cfg.data.options, cfg.train
    assert (model["units"], model["hidden"], model["kernel"], model["time_pool"]) == (64, 128, 3, 1)
    assert model["stream_pools"] is False  # appendix A.2 lists no pool after those convolutions
    assert data["pairs"]["train"] == 87516 and data["speakers"] == PAPER_SPEAKERS
    assert (train["optimizer"], train["lr"]) == ("adam", 0.001)
    pairs = {(p["audio"], p["image"]) for p in cfg.train_snrs}
    assert pairs == {(0.5, 0.25), (1, 0.5), (2, 0.25), (1, 0.25), (1, 0.125)}


def test_cpu_differs_from_full_only_by_the_stated_reductions():
    cpu, full = (load_config(FOLDER / f"{w}.toml") for w in ("cpu", "full"))
    reduced = ("pairs",)
    assert {k: v for k, v in cpu.data.options.items() if k not in reduced} \
        == {k: v for k, v in full.data.options.items() if k not in reduced}
    assert cpu.data.options["spectrogram"] == "power"  # what lets the audio stream learn
    assert {k: v for k, v in cpu.model.items() if k not in ("units", "time_pool")} \
        == {k: v for k, v in full.model.items() if k not in ("units", "time_pool")}
    assert cpu.evaluate == full.evaluate and cpu.evaluate["snr_grid"]["snrs"] == OCTAVES
    assert [v.shorthands for v in cpu.fusion] == [v.shorthands for v in full.fusion]
    assert cpu.train_snrs == full.train_snrs[:1]
    assert (cpu.train["optimizer"], cpu.train["lr"]) == (full.train["optimizer"], full.train["lr"])
    assert [c.name for c in cpu.claims] == [c.name for c in full.claims]


def test_smoke_keeps_every_variant_and_the_training_cell():
    cfg = load_config(FOLDER / "cpu.toml", load_overrides(FOLDER / "smoke.toml"))
    assert len(expand(cfg)) == 5 and cfg.data.options["pairs"]["train"] <= 64
    assert {0.5, 0.25} <= set(cfg.evaluate["snr_grid"]["snrs"])
