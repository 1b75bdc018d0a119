"""Claims in a study config: structure at load, variants at grid expansion, metrics and
conditions against the up-front dry runs; every error names its path."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from fuselab.study import ConfigError, expand, load_config, parse_config
from fuselab.study.plan import check_plan

BASE: dict[str, Any] = {
    "study": {"name": "t", "seeds": [0]},
    "data": {"name": "lattice", "options": {"dim": 8, "embed_dim": 8, "harmonics": 2,
                                            "sizes": {"train": 32, "val": 16, "test": 16}}},
    "model": {"name": "staged", "encoders": {"x1": {"type": "mlp", "hidden": [8]},
                                             "x2": {"type": "mlp", "hidden": [8]}},
              "fusion": [{"at": "late", "operator": "concat"}]},
    "train": {"epochs": 1, "batch_size": 16},
    "grid": {"fusion": [{"label": "early", "depth": "early"}, {"label": "late", "depth": "late"}]},
    "evaluate": {"test": True, "snr_curve": {"snrs": ["clean", 1.0]}},
}
CLAIM = {"name": "early >= late", "source": "paper 001 Fig. 4", "left": "early", "right": "late",
         "evaluation": "test", "metric": "accuracy", "rule": "mean_ge"}


def config(*claims: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {**BASE, **top, "claims": [{**CLAIM, **c} for c in claims]}


def error(raw: dict[str, Any], stage: str = "load") -> str:
    with pytest.raises(ConfigError) as info:
        cfg = parse_config(raw)
        if stage != "load":
            specs = expand(cfg)
            if stage == "plan":
                check_plan(cfg, specs)
    return str(info.value)


def test_a_valid_claim_is_parsed_with_defaults() -> None:
    cfg = parse_config(config({"where": {"snr": ["clean", 0.5]}, "paper": 0.91}))
    (cl,) = cfg.claims
    assert (cl.left, cl.right, cl.tol, cl.min_seeds, cl.significant) == \
        ("early", "late", 0.0, 1, False)
    assert cl.where == {"snr": (None, 0.5)} and cl.paper == 0.91 and cl.path == "claims[0]"
    assert parse_config(BASE).claims == []


def test_a_claim_on_a_renamed_metric_reads_the_new_name() -> None:
    """Stores read ``throughput_b256`` as ``throughput``; an old config's claim must follow, or it
    would ask for a metric no record carries any more."""
    (cl,) = parse_config(config({"evaluation": "cost", "metric": "throughput_b256"})).claims
    assert cl.metric == "throughput"


@pytest.mark.parametrize(("claim", "message"), [
    ({"rulee": "mean_ge"}, "claims[0].rulee: unknown key; allowed: [...] (did you mean 'rule'?)"),
    ({"name": ""}, "claims[0].name: expected a non-empty string"),
    ({"source": None}, "claims[0].source: missing required key"),
    ({"rule": "mean_greater"}, "claims[0].rule: got 'mean_greater'; allowed: ['mean_ge'"),
    ({"fraction": 0.8}, "claims[0].fraction: only read by rule cells_ge, not by this claim's "
                        "rule 'mean_ge'"),
    ({"right": None, "rule": "mean_gt"}, "claims[0].right: missing: rule 'mean_gt' compares"),
    ({"rule": "trend", "x": "step", "sign": "+"}, "claims[0].right: rule 'trend' reads left only"),
    ({"rule": "equals", "right": None}, "claims[0].value: missing"),
    ({"rule": "between", "right": None, "min": 2, "max": 1}, "claims[0].max: max 1.0 is below min"),
    ({"rule": "trend", "right": None, "x": "step", "sign": "up"}, "claims[0].sign: got 'up'"),
    ({"left": ["early", "late"]}, "claims[0].left: a list of variants is only read by rule "
                                  "'trend'"),
    ({"where": {"snr": [[1]]}}, "claims[0].where.snr[0]: expected a string or number"),
    ({"tol": -0.1}, "claims[0].tol: expected a number >= 0.0"),
    ({"evaluation": "snr_grd"}, "claims[0].evaluation: got 'snr_grd'; allowed:"),
    ({"rule": "cells_ge", "fraction": 1.5}, "claims[0].fraction: expected a fraction in [0, 1]"),
])
def test_structural_errors_name_the_path(claim: dict[str, Any], message: str) -> None:
    raw = config({k: v for k, v in claim.items() if v is not None})
    for k, v in claim.items():
        if v is None:
            raw["claims"][0].pop(k)
    # "..." stands for any text (long lists of allowed keys)
    assert re.search(".*".join(map(re.escape, message.split("..."))), error(raw))


def test_duplicate_names_and_a_claims_table_that_is_not_a_list() -> None:
    assert "claims[1].name: 'early >= late' is also the name of claims[0]" in \
        error(config({}, {}))
    assert "claims: expected a list" in error({**BASE, "claims": {"name": "x"}})


def test_variant_and_evaluation_are_checked_at_grid_expansion() -> None:
    assert "claims[0].right: no variant named 'lat' (did you mean 'late'?); variants: " \
        "['early', 'late']" in error(config({"right": "lat"}), "expand")
    assert "claims[0].left: no variant named 'mid'" in error(config({"left": "mid"}), "expand")
    msg = error(config({"evaluation": "snr_grid"}), "expand")
    assert "claims[0].evaluation: variant 'early' does not run evaluation 'snr_grid'" in msg
    assert "claims[0].right: the same variant as left" in error(config({"right": "early"}),
                                                                "expand")
    trend = {"rule": "trend", "right": None, "left": ["early", "late"], "x": "factor:d",
             "sign": "+"}
    raw = config(trend)
    raw["claims"][0].pop("right")
    assert "claims[0].x: variant 'early' has no factor 'd'" in error(raw, "expand")
    # curve records are always there; robustness only with the cross-run evaluation
    expand(parse_config(config({"evaluation": "curve", "metric": "train_loss"})))


def test_metric_and_conditions_are_checked_against_the_dry_runs() -> None:
    msg = error(config({"evaluation": "snr_curve", "metric": "acc"}), "plan")
    assert "claims[0].metric: evaluation 'snr_curve' records no metric 'acc'" in msg
    assert msg.endswith("it records ['accuracy']")
    msg = error(config({"evaluation": "snr_curve", "where": {"snr_x": 1.0}}), "plan")
    assert "claims[0].where.snr_x: 'snr_curve' records of 'accuracy' have no condition " \
        "'snr_x'" in msg and "['modality', 'snr']" in msg
    msg = error(config({"evaluation": "curve", "metric": "val_acc"}), "plan")
    assert "claims[0].metric: evaluation 'curve' records no metric 'val_acc'" in msg
    assert "'val_accuracy'" in msg and "'train_loss'" in msg
    robust = config({"evaluation": "robustness", "metric": "robust_auc"},
                    {"evaluation": "robustness", "metric": "auc", "name": "b"},
                    study={"name": "t", "seeds": [0], "baseline": "late"},
                    evaluate={**BASE["evaluate"], "robustness": True})
    assert "claims[1].metric: evaluation 'robustness' records no metric 'auc'" in \
        error(robust, "plan")
    trend = config({"evaluation": "snr_curve", "rule": "trend", "x": "snrr", "sign": "-"})
    trend["claims"][0].pop("right")
    assert "claims[0].x: 'snr_curve' records of 'accuracy' have no condition 'snrr' " \
        "(did you mean 'snr'?)" in error(trend, "plan")
    ok = config({"evaluation": "snr_curve", "where": {"modality": "all"}, "exclude":
                 {"snr": "clean"}}, {"name": "c2", "evaluation": "curve", "metric": "val_accuracy"})
    cfg = parse_config(ok)
    check_plan(cfg, expand(cfg))


def test_load_config_reads_claims_from_toml(tmp_path: Path) -> None:
    p = tmp_path / "s.toml"
    p.write_text('[study]\nname = "x"\n[data]\nname = "lattice"\n[model]\nname = "staged"\n'
                 '[[grid.fusion]]\nlabel = "a"\n[[grid.fusion]]\nlabel = "b"\n'
                 '[[claims]]\nname = "a > chance"\nsource = "p"\nleft = "a"\nright = 0.1\n'
                 'evaluation = "test"\nmetric = "accuracy"\nrule = "mean_gt"\nmin_seeds = 3\n')
    (cl,) = load_config(p).claims
    assert cl.right == 0.1 and cl.min_seeds == 3
