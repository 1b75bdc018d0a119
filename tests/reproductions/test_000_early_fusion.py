"""reproductions/000-early-fusion: the configs parse, their claims name real variants and records,
and the paper's stated settings are the ones used."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from fuselab.study import expand, parse_config

FOLDER = Path(__file__).resolve().parents[2] / "reproductions" / "000-early-fusion"
PAPER_SPEAKERS = ["george", "jackson", "nicolas", "theo", "yweweler"]
OCTAVES = ["clean", 8, 4, 2, 1, 0.5, 0.25, 0.125, 0.0625, 0.03125]


def _load(name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    raw = tomllib.loads((FOLDER / name).read_text())
    return raw, raw.pop("claims")


def _override(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        *path, last = dotted.split(".")
        node = out
        for key in path:
            node = node[key]
        assert last in node, f"smoke override {dotted!r} names no key of cpu.toml"
        node[last] = value
    return out


def _check_claims(raw: dict[str, Any], claims: list[dict[str, Any]]) -> None:
    specs = expand(parse_config(raw))
    evaluations = {s.variant: set(s.config["evaluate"]) for s in specs}
    assert len({c["name"] for c in claims}) == len(claims)
    for c in claims:
        for side in ("left", "right"):
            if isinstance(c.get(side), str):
                assert c[side] in evaluations, (c["name"], c[side])
                assert c["evaluation"] in evaluations[c[side]], (c["name"], c[side])
        assert c["metric"] == "accuracy" and c.get("min_seeds", 1) >= 3
        assert c["rule"] in ("cells_ge", "mean_gt", "mean_ge")
    assert len(raw["study"]["seeds"]) >= 3


@pytest.mark.parametrize("name", ["cpu.toml", "full.toml"])
def test_configs_parse_and_claims_name_their_variants(name):
    _check_claims(*_load(name))


def test_full_uses_the_papers_stated_settings():
    raw, _ = _load("full.toml")
    model, data, train = raw["model"], raw["data"]["options"], raw["train"]
    assert (model["units"], model["hidden"], model["kernel"], model["time_pool"]) == (64, 128, 3, 1)
    assert model["stream_pools"] is False
    assert data["pairs"]["train"] == 87516 and data["speakers"] == PAPER_SPEAKERS
    assert (train["optimizer"], train["lr"]) == ("adam", 0.001)
    pairs = {(p["audio"], p["image"]) for p in raw["grid"]["train_snr"]}
    assert pairs == {(0.5, 0.25), (1, 0.5), (2, 0.25), (1, 0.25), (1, 0.125)}


def test_cpu_and_full_share_everything_but_the_stated_reductions():
    cpu, cpu_claims = _load("cpu.toml")
    full, full_claims = _load("full.toml")
    assert cpu["data"]["options"].keys() == full["data"]["options"].keys()
    for key in ("seed", "spectrogram", "snr_kind", "speakers"):
        assert cpu["data"]["options"][key] == full["data"]["options"][key]
    assert cpu["data"]["options"]["spectrogram"] == "power"  # what lets the audio stream learn
    assert {k: v for k, v in cpu["model"].items() if k not in ("units", "time_pool")} \
        == {k: v for k, v in full["model"].items() if k not in ("units", "time_pool")}
    assert cpu["evaluate"] == full["evaluate"] and cpu["evaluate"]["snr_grid"]["snrs"] == OCTAVES
    assert cpu["grid"]["fusion"] == full["grid"]["fusion"]
    assert cpu["grid"]["train_snr"] == full["grid"]["train_snr"][:1]
    assert [c["name"] for c in cpu_claims] == [c["name"] for c in full_claims]


def test_smoke_overrides_shrink_cpu_toml():
    raw, claims = _load("cpu.toml")
    smoke = tomllib.loads((FOLDER / "smoke.toml").read_text())
    small = _override(raw, smoke)
    specs = expand(parse_config(small))
    assert len(specs) == 5 and small["data"]["options"]["pairs"]["train"] <= 64
    # the claims' training cell survives the smaller grid
    assert {0.5, 0.25} <= set(small["evaluate"]["snr_grid"]["snrs"])
