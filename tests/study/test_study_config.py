"""Study config validation (errors name the path in the file) and grid expansion."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuselab.study import ConfigError, expand, load_config, parse_config

BASE = {
    "study": {"name": "s", "seeds": [0, 1], "baseline": "late · concat"},
    "data": {"name": "lattice", "options": {"dim": 8}},
    "model": {"name": "staged", "fusion": [{"at": "late", "operator": "concat"}]},
    "train": {"epochs": 1},
    "grid": {"fusion": [{"depth": ["early", "late"], "op": ["concat", "sum"]},
                        {"label": "pro", "progressive": {"steps": 2}}],
             "axes": {"d": {"path": ["model.a", "model.b"], "values": [[4, 4], [8, 8]],
                            "labels": [4, 8]}}},
}


def _with(**changes: object) -> dict:
    import copy

    cfg = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        node = cfg
        *parents, last = dotted.split("__")
        for p in parents:
            node = node[p]
        node[last] = value
    return cfg


def test_grid_size_factors_and_shorthand_targets() -> None:
    runs = expand(parse_config(BASE))
    # (2 depths x 2 ops + 1 pro) variants x 2 axis values x 2 seeds
    assert len(runs) == (4 + 1) * 2 * 2
    assert len({r.run_id for r in runs}) == len(runs)
    r = next(r for r in runs if r.variant == "early · sum · d=8" and r.seed == 1)
    assert r.factors == {"depth": "early", "operator": "sum", "d": 8}
    # shorthands edit the merging point (last fusion entry); axes set every listed path
    assert r.config["model"]["fusion"] == [{"at": "early", "operator": "sum"}]
    assert r.config["model"]["a"] == r.config["model"]["b"] == [8, 8]
    assert r.config["seed"] == 1
    pro = next(r for r in runs if r.variant.startswith("pro"))
    assert pro.config["model"]["progressive"] == {"steps": 2}
    assert pro.config["model"]["fusion"] == [{"at": "late", "operator": "concat"}]


def test_run_ids_are_stable_and_depend_on_config() -> None:
    a = [r.run_id for r in expand(parse_config(BASE))]
    b = [r.run_id for r in expand(parse_config(BASE))]
    assert a == b
    c = [r.run_id for r in expand(parse_config(_with(train={"epochs": 2})))]
    assert set(a).isdisjoint(c)


@pytest.mark.parametrize(
    ("cfg", "path", "fragment"),
    [
        (_with(grid__fusion=[{"op": "concat"}, {"op": "sum"}, {"opp": "x"}]),
         "grid.fusion[2].opp", "did you mean 'op'"),
        (_with(study__seeds=[0, "1"]), "study.seeds[1]", "expected an integer"),
        (_with(study__seeds=[1, 1]), "study.seeds", "distinct"),
        (_with(study__baseline="nope"), "study.baseline", "late · concat"),
        (_with(grid__train_snr=[{"audio": 0}]), "grid.train_snr[0].audio", "> 0"),
        (_with(execution={"device": "tpu"}), "execution.device", "['auto', 'cpu', 'cuda', 'cuda:N']"),
        (_with(grid__axes={"d": {"path": "optim.lr", "values": [1]}}), "grid.axes.d.path",
         "model.KEY"),
        (_with(grid__fusion=[{"model": {"x": 1}}]), "grid.fusion[0]", "label"),
        (_with(grid__fusion=[{"label": "a"}, {"label": "a"}]), "grid.fusion[1]", "duplicates"),
    ],
)
def test_errors_name_the_path(cfg: dict, path: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        expand(parse_config(cfg))
    assert info.value.path == path
    assert fragment in str(info.value)


def test_missing_table_and_unknown_top_level_key() -> None:
    cfg = _with()
    del cfg["model"]
    with pytest.raises(ConfigError, match=r"^model: missing required table"):
        parse_config(cfg)
    with pytest.raises(ConfigError, match=r"^modle: unknown key.*did you mean 'model'"):
        parse_config({**BASE, "modle": {}})


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="study config not found"):
        load_config(tmp_path / "nope.toml")


def test_yaml_and_toml_give_the_same_runs(tmp_path: Path) -> None:
    import yaml

    toml = tmp_path / "s.toml"
    toml.write_text(
        '[study]\nname = "s"\nbaseline = "late · concat"\n[data]\nname = "lattice"\n'
        '[model]\nname = "staged"\nfusion = [{at = "late", operator = "concat"}]\n'
        '[[grid.fusion]]\ndepth = ["early", "late"]\nop = "concat"\n'
    )
    yml = tmp_path / "s.yaml"
    yml.write_text(yaml.safe_dump({
        "study": {"name": "s", "baseline": "late · concat"}, "data": {"name": "lattice"},
        "model": {"name": "staged", "fusion": [{"at": "late", "operator": "concat"}]},
        "grid": {"fusion": [{"depth": ["early", "late"], "op": "concat"}]},
    }, allow_unicode=True))
    a, b = expand(load_config(toml)), expand(load_config(yml))
    assert [r.run_id for r in a] == [r.run_id for r in b]
    assert [r.variant for r in a] == ["early · concat", "late · concat"]


def test_bad_syntax_is_a_config_error(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text("[study\nname = 1")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config(p)


def test_train_snr_axis_and_baseline_prefix() -> None:
    cfg = parse_config(_with(grid__train_snr=[{}, {"audio": 0.5}]))
    runs = expand(cfg)
    noisy = [r for r in runs if r.factors.get("train_snr") == "audio=0.5"]
    assert noisy and all(r.config["train"]["train_snr"] == {"audio": 0.5} for r in noisy)
    assert all("train_snr" not in r.config["train"] for r in runs if r not in noisy)
    # the baseline names the fusion part only; axis and train-SNR suffixes are matched per run
    assert cfg.baseline == "late · concat"
