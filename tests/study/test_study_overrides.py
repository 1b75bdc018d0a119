"""Config overrides (``--set``, ``--overrides smoke.toml``, ``load_config(overrides=...)``)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from fake_runs import write_fake

from fuselab.study import ConfigError, expand, load_config
from fuselab.study.overrides import (
    apply_overrides,
    dump_overrides,
    load_overrides,
    parse_assignment,
)

TABLES = ("study", "data", "model", "train", "grid", "evaluate", "execution", "claims")
RAW = {"study": {"name": "x"}, "train": {"epochs": 40, "lr": 0.1},
       "grid": {"fusion": [{"label": "a"}, {"label": "b", "op": "sum"}]}}


def test_parse_assignment_reads_toml_values() -> None:
    assert parse_assignment("train.epochs=1") == ("train.epochs", 1)
    assert parse_assignment("train.lr = 1e-3") == ("train.lr", 0.001)
    assert parse_assignment("study.seeds=[0, 1]") == ("study.seeds", [0, 1])
    assert parse_assignment("data.options.pairs={train=64,val=32}") == \
        ("data.options.pairs", {"train": 64, "val": 32})
    assert parse_assignment("execution.checkpoints=false") == ("execution.checkpoints", False)
    assert parse_assignment('data.name="lattice"') == ("data.name", "lattice")
    assert parse_assignment("data.name=lattice") == ("data.name", "lattice")  # a bare word
    assert parse_assignment("execution.device=cuda:1") == ("execution.device", "cuda:1")
    with pytest.raises(ConfigError, match="expected PATH=VALUE"):
        parse_assignment("train.epochs")
    with pytest.raises(ConfigError, match=r"data.options.pairs: --set value '\{train=64' is not "
                                          "a TOML value"):
        parse_assignment("data.options.pairs={train=64")


def test_apply_overrides_sets_paths_and_leaves_the_input_alone() -> None:
    out = apply_overrides(RAW, {"train.epochs": 1, "grid.fusion[1].op": "concat",
                                "grid.fusion[-1].label": "B", "execution.workers": 0,
                                "data.options.sizes": {"train": 8}}, tables=TABLES)
    assert out["train"] == {"epochs": 1, "lr": 0.1}
    assert out["grid"]["fusion"][1] == {"label": "B", "op": "concat"}
    assert out["execution"] == {"workers": 0} and out["data"] == {"options": {"sizes": {"train": 8}}}
    assert RAW["train"]["epochs"] == 40 and RAW["grid"]["fusion"][1]["op"] == "sum"


@pytest.mark.parametrize(("path", "message"), [
    ("trian.epochs", "trian.epochs: no top-level table 'trian' (override from smoke.toml); "
                     "tables: [...] (did you mean 'train'?)"),
    ("train.epochs.x", "train.epochs.x: train.epochs is int 40, not a table"),
    ("grid.fusion[2].op", "grid.fusion[2].op: grid.fusion has 2 entries, no index 2"),
    ("train[0]", "train[0]: train is table"),
    ("train", "train: override from smoke.toml would replace the whole [train] table"),
    ("train..x", "train..x: bad path"),
])
def test_bad_paths_are_named(path: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(RAW, {path: 1}, tables=TABLES, origin="smoke.toml")
    head, _, tail = message.partition("[...]")
    assert str(info.value).startswith(head) and tail in str(info.value)


def test_smoke_file_round_trip_and_load_config(tmp_path: Path) -> None:
    smoke = tmp_path / "smoke.toml"
    smoke.write_text('"train.sleep" = 0.5\n"study.seeds" = [3]\n'
                     '"data.options.pairs" = { train = 64, val = 32, test = 32 }\n')
    over = load_overrides(smoke)
    assert over == {"train.sleep": 0.5, "study.seeds": [3],
                    "data.options.pairs": {"train": 64, "val": 32, "test": 32}}
    weird = {**over, "model.name": 'a "quoted" ü\n', "train.x": [math.inf, -1.5, True]}
    (tmp_path / "back.toml").write_text(dump_overrides(weird))
    assert load_overrides(tmp_path / "back.toml") == weird
    cfg_path = write_fake(tmp_path / "fake.toml")
    base, cfg = load_config(cfg_path), load_config(cfg_path, over, origin=str(smoke))
    assert cfg.seeds == [3] and cfg.overrides == over and base.overrides == {}
    assert cfg.raw["train"]["sleep"] == 0.5 and cfg.data.options["pairs"]["val"] == 32
    runs = expand(cfg)
    assert {r.seed for r in runs} == {3} and not {r.run_id for r in runs} & \
        {r.run_id for r in expand(base)}  # other config values -> other run ids
    # an override is validated like a value in the file: same error path
    with pytest.raises(ConfigError, match=r"^study.seeds\[0\]: expected an integer"):
        load_config(cfg_path, {"study.seeds": ["zero"]})
    (tmp_path / "table.toml").write_text("[train]\nepochs = 1\n")
    with pytest.raises(ConfigError, match="write overrides as quoted dotted keys"):
        load_overrides(tmp_path / "table.toml")
