"""operator_cost: exact parameter and FLOP counts of MSAF / MMTM at paper 002's Figure 5 sizes."""

from __future__ import annotations

import pytest

import fuselab.evaluate as ev
from fuselab.study.errors import ConfigError
from fuselab.study.evaluate_table import options, run_evaluation


def _by(recs: list[dict], metric: str) -> dict[int, float]:
    return {r["channels"]: r["value"] for r in recs if r["metric"] == metric}


def _msaf_counts(c: int, r: int = 4, batch: int = 4) -> tuple[int, int]:
    """Two modalities of C channels, block C/2 (4 blocks), joint width C/2/r."""
    block, reduced, blocks = c // 2, c // 2 // r, 4
    params = block * reduced + reduced + 2 * reduced + blocks * (reduced * block + block)
    flops = 2 * batch * (block * reduced + blocks * reduced * block)  # the two FC layers
    return params, flops


def _mmtm_counts(c: int, r: int = 4, batch: int = 4) -> tuple[int, int]:
    hidden = int(2 * 2 * c / r)
    params = (2 * c * hidden + hidden) + 2 * (hidden * c + c)
    flops = 2 * batch * (2 * c * hidden + 2 * hidden * c)
    return params, flops


def test_paper_figure5_counts() -> None:
    sizes = [64, 128, 256, 512, 1024]
    msaf, mmtm = ev.operator_cost("msaf", sizes), ev.operator_cost("mmtm", sizes)
    for c in sizes:
        assert (_by(msaf, "params")[c], _by(msaf, "flops")[c]) == _msaf_counts(c)
        assert (_by(mmtm, "params")[c], _by(mmtm, "flops")[c]) == _mmtm_counts(c)
        assert _by(mmtm, "params")[c] > 10 * _by(msaf, "params")[c]
    assert _by(msaf, "params")[1024] == 330_112  # paper: "a maximum of 330K parameters"
    assert _by(msaf, "flops")[64] == 10_240  # paper: 10.4K (its counter adds elementwise work)
    assert _by(mmtm, "flops")[1024] == 33_554_432  # paper: 33.6M
    rec = msaf[0]
    assert rec["evaluation"] == "operator_cost" and rec["operator"] == "msaf"
    assert rec["batch"] == 4


def test_options_batch_and_spatial() -> None:
    got = ev.operator_cost("msaf", [64], options={"reduction": 2}, batch=8, spatial=[5])
    assert (_by(got, "params")[64], _by(got, "flops")[64]) == _msaf_counts(64, r=2, batch=8)
    three = ev.operator_cost("mmtm", [16], modalities=["a", "b", "c"])
    hidden = int(2 * 48 / 4)
    assert _by(three, "params")[16] == (48 * hidden + hidden) + 3 * (hidden * 16 + 16)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match=r"'concat' is not a feature-map operator; supported: "):
        ev.operator_cost("concat", [8])
    with pytest.raises(KeyError, match="unknown fusion operator 'msf'"):
        ev.operator_cost("msf", [8])
    with pytest.raises(ValueError, match=r"channels must be a list of at least 1 positive"):
        ev.operator_cost("msaf", [64, 0])
    with pytest.raises(ValueError, match="batch must be a positive int, got 0"):
        ev.operator_cost("msaf", [64], batch=0)
    with pytest.raises(ValueError, match="must not set in_channels"):
        ev.operator_cost("msaf", [64], options={"in_channels": {"a": 1}})
    with pytest.raises(ValueError, match="modalities must be distinct"):
        ev.operator_cost("msaf", [64], modalities=["a", "a"])


def test_study_evaluation_needs_no_model() -> None:
    opts = {"operator": "mmtm", "channels": [64]}
    recs = run_evaluation("operator_cost", opts, model=None, splits={"test": None},
                          eval_batch_size=8)
    assert _by(recs, "flops") == {64: 131_072}
    with pytest.raises(ConfigError, match=r"evaluate\.operator_cost\.size: unknown option"):
        options("operator_cost", {"operator": "msaf", "size": 3})
