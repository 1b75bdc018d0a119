"""The [search] table: defaults, the space (shorthands, conditions, table merges) and errors that
name the path in the file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fake_trials import write_search

from fuselab.search import load_search_config
from fuselab.search.check import base_config, probe_designs
from fuselab.search.space import resolve, suggest
from fuselab.study import ConfigError

GOOD = """
[search]
trials = 5

[search.space.depth]
choices = ["early", "late"]

[search.space.lr]
path = "train.lr"
low = 0.001
high = 0.1
log = true
"""


def test_defaults_and_shorthand_paths(tmp_path: Path) -> None:
    cfg = load_search_config(write_search(tmp_path / "s.toml", tmp_path / "x.npz", GOOD))
    s = cfg.search
    assert (s.trials, s.sampler, s.pruner, s.top_k, s.seed, s.train_seed) == (
        5, "tpe", "median", 3, 0, 0)
    depth, lr = s.space
    assert depth.paths == ["model.fusion[-1].at"] and depth.labels == ["early", "late"]
    assert lr.paths == ["train.lr"] and lr.log and not lr.integer
    two = load_search_config(tmp_path / "s.toml", {"search.cost": "params"})
    assert (two.search.sampler, two.search.pruner, two.search.objectives) == ("nsga2", "none", 2)


CONDITIONAL = """
[search]
trials = 3

[search.space.design]
path = "model.fusion[-1]"
choices = [{ at = "early", adapter = "resize" }, { at = "late" }]
labels = ["early", "late"]

[search.space.op]
choices = ["concat", "lowrank"]
when = { design = "late" }

[search.space.rank]
path = "model.fusion[-1].options.rank"
low = 2
high = 8
when = { op = "lowrank" }

[search.space.pro]
path = "model"
choices = [{}, { progressive = { steps = 2 } }]
labels = ["off", "on"]
when = { design = "late" }

[search.space.width]
path = ["model.encoders.x1.hidden", "model.encoders.x2.hidden"]
choices = [[16, 2], [16, 8]]
labels = [2, 8]
"""


def test_space_samples_conditions_and_merges_tables(tmp_path: Path) -> None:
    optuna = pytest.importorskip("optuna")
    cfg = load_search_config(write_search(tmp_path / "s.toml", tmp_path / "x.npz", CONDITIONAL))
    space = cfg.search.space
    assert space[2].integer
    off = resolve(base_config(cfg), space, {"design": "late", "op": "concat", "pro": "off"})
    assert "progressive" not in off["model"]
    # inactive parameters are never suggested: FixedTrial raises for a parameter it lacks
    early = suggest(optuna.trial.FixedTrial({"design": "early", "width": 8}), space)
    assert early == {"design": "early", "width": 8}
    late = suggest(optuna.trial.FixedTrial({"design": "late", "op": "lowrank", "rank": 4,
                                            "pro": "on", "width": 2}), space)
    config = resolve(base_config(cfg), space, late)
    # a table choice merges into the fusion point (operator kept), then op and rank are set
    assert config["model"]["fusion"] == [{"at": "late", "operator": "lowrank",
                                          "options": {"rank": 4}}]
    assert config["model"]["progressive"] == {"steps": 2}  # merged into the whole model table
    assert config["model"]["encoders"]["x1"]["hidden"] == [16, 2]
    assert config["model"]["encoders"]["x2"]["hidden"] == [16, 2]
    config = resolve(base_config(cfg), space, early)
    assert config["model"]["fusion"] == [{"at": "early", "operator": "concat",
                                          "adapter": "resize"}]
    assert base_config(cfg)["model"]["fusion"] == [{"at": "late", "operator": "concat"}]
    # the up-front check tries every value once, with the parameters its condition needs
    probes = dict(probe_designs(cfg))
    assert probes["search.space.rank.low"] == {"design": "late", "op": "lowrank", "rank": 2}
    assert probes["search.space.rank.high"]["rank"] == 8
    assert probes["search.space.design.choices[0]"] == {"design": "early"}
    assert probes["search.space.pro.choices[1]"] == {"design": "late", "pro": "on"}
    assert len(probes) == 2 + 2 + 2 + 2 + 2


def _space(body: str) -> str:
    return "\n[search]\ntrials = 4\n\n" + body


BAD = [
    # (the [search] part, the error path, a phrase of the message)
    (_space('[search.space.lr]\npath = "train.lr"\nlow = 0.01\nhigh = 0.001'),
     "search.space.lr.high", "high > low"),
    (_space('[search.space.lr]\npath = "train.lr"\nlow = 0\nhigh = 0.1\nlog = true'),
     "search.space.lr.low", "log-scale range needs low > 0"),
    (_space('[search.space.lr]\npath = "train.lr"\nlow = 0.001'), "search.space.lr.high",
     "missing"),
    (_space('[search.space.x]\npath = "train.lr"\nchoices = []'), "search.space.x.choices",
     "non-empty"),
    (_space('[search.space.x]\nchoices = [1, 2]'), "search.space.x.path", "shorthand"),
    (_space('[search.space.x]\npath = "data.options.seed"\nchoices = [1, 2]'),
     "search.space.x.path", "validation set"),
    (_space('[search.space.x]\npath = "train.seed"\nchoices = [1, 2]'), "search.space.x.path",
     "set by the runner"),
    (_space('[search.space.depth]\nchoices = ["early"]\nlowe = 1'), "search.space.depth.lowe",
     "did you mean 'low'"),
    (_space('[search.space.rank]\npath = "model.fusion[-1].options.rank"\nchoices = [2, 4]\n'
            'when = { op = "lowrank" }\n[search.space.op]\nchoices = ["concat", "lowrank"]'),
     "search.space.rank.when.op", "no earlier parameter"),
    (_space('[search.space.op]\nchoices = ["concat", "lowrank"]\n[search.space.rank]\n'
            'path = "model.fusion[-1].options.rank"\nchoices = [2, 4]\nwhen = { op = "lowrnk" }'),
     "search.space.rank.when.op", "'lowrnk' is not a label"),
    (_space('[search.space.pro]\npath = "model.progressive"\nchoices = [{ steps = 2 }, '
            '{ steps = 3 }]'), "search.space.pro.choices[0]", "give labels"),
    (_space('[search.space.w]\npath = "model.head.hidden"\nchoices = [[8], [16]]\n'
            'labels = [8]'), "search.space.w.labels", "expected 2 labels"),
    (_space('[search.space.depth]\nchoices = ["late", "late"]'), "search.space.depth.choices[1]",
     "duplicate"),
    (_space('[search.space.lr]\npath = "train.lr"\nchoices = [0.1]\nlow = 0.01'),
     "search.space.lr.low", "not both"),
    (_space('[search.space.lr]\npath = "train.lr"\nlow = 0.001\nhigh = 0.1\nstep = 0.01\n'
            'log = true'), "search.space.lr.step", "log-scale ranges take no step"),
    (_space('[search.space.pro]\npath = "model"\nchoices = [{}, 2]\nlabels = ["off", "on"]'),
     "search.space.pro.choices[1]", "a table merged into it"),
    (_space('[search.space.pro]\npath = "train"\nlow = 1\nhigh = 2'), "search.space.pro.path",
     "table choices"),
    (_space("[search.space]"), "search.space", "at least one parameter"),
    ("\n[search]\ntrials = 0\n[search.space.depth]\nchoices = ['late']", "search.trials", ">= 1"),
    ("\n[search]\ntrials = 2\ncost = 'flops'\n[search.space.depth]\nchoices = ['late']",
     "search.cost", "allowed"),
    ("\n[search]\ntrials = 2\ncost = 'params'\npruner = 'median'\n[search.space.depth]\n"
     "choices = ['late']", "search.pruner", "single-objective"),
    ("\n[search]\ntrials = 2\nsampler = 'cmaes'\n[search.space.depth]\nchoices = ['late']",
     "search.sampler", "allowed"),
    ("\n[search]\ntrials = 2\nenqueue = [{ depth = 'late', foo = 1 }]\n"
     "[search.space.depth]\nchoices = ['late']", "search.enqueue[0].foo", "unknown key"),
    ("\n[search]\ntrials = 2\nenqueue = [{ lr = 0.5 }]\n[search.space.lr]\npath = 'train.lr'\n"
     "low = 0.001\nhigh = 0.1", "search.enqueue[0].lr", "outside"),
    ("\n[search]\ntrials = 2\n[search.space.depth]\nchoices = ['late']\n[[grid.fusion]]\n"
     "depth = 'late'", "grid", "no [grid]"),
    ("\n[search]\ntrials = 2\nspace = {}", "search.space", "at least one"),
    ("", "search", "missing required table"),
]


@pytest.mark.parametrize(("search", "path", "phrase"), BAD, ids=[b[1] for b in BAD])
def test_bad_search_config_names_the_path(tmp_path: Path, search: str, path: str,
                                          phrase: str) -> None:
    f = write_search(tmp_path / "bad.toml", tmp_path / "x.npz", search)
    with pytest.raises(ConfigError) as err:
        load_search_config(f)
    assert err.value.path == path, str(err.value)
    assert str(err.value).startswith(f"{path}: ") and phrase in str(err.value), str(err.value)


def test_baseline_and_overrides_are_checked(tmp_path: Path) -> None:
    f = write_search(tmp_path / "s.toml", tmp_path / "x.npz", GOOD)
    with pytest.raises(ConfigError, match=r"^search\.trials: expected an integer >= 1"):
        load_search_config(f, {"search.trials": 0}, origin="--set")
    text = f.read_text().replace('seeds = [0, 1]', 'seeds = [0, 1]\nbaseline = "late"')
    f.write_text(text)
    with pytest.raises(ConfigError, match=r"^study\.baseline: a search has no variants"):
        load_search_config(f)


def test_sampler_and_pruner_options_are_checked_by_optuna(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    from fuselab.search import optuna_setup

    f = write_search(tmp_path / "s.toml", tmp_path / "x.npz", GOOD)
    cases = [
        ({"search.sampler_options": {"seed": 3}}, "search.sampler_options.seed",
         "the seed is search.seed"),
        ({"search.sampler_options": {"n_startup": 3}}, "search.sampler_options.n_startup",
         "not an option of sampler 'tpe'"),
        ({"search.pruner": "percentile"}, "search.pruner_options",
         re.escape("PercentilePruner rejects {}")),
        ({"search.pruner_options": {"n_warmup_steps": -1}}, "search.pruner_options",
         "MedianPruner rejects"),
    ]
    for overrides, path, phrase in cases:
        cfg = load_search_config(f, overrides)
        with pytest.raises(ConfigError) as err:
            optuna_setup.check(cfg.search)
        assert err.value.path == path and re.search(phrase, str(err.value)), str(err.value)
