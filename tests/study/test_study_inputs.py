"""Bad study files and values: each is a ConfigError naming where it is, before anything runs.

Covers the classes of issue 12: names used as paths, nan/inf and out-of-range numbers, files
that are not UTF-8 or too large, YAML alias bombs, recursive and too deeply nested documents,
duplicate YAML keys, grid paths that do not fit the config, and values that pass the structural
check but would fail every run (checked on the real pipeline with a tiny lattice task).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fuselab.study import ConfigError, expand, load_config, parse_config
from fuselab.study.configfile import MAX_BYTES, MAX_VALUES

TINY = """
[study]
name = "tiny"
[data]
name = "lattice"
options = { dim = 8, embed_dim = 8, harmonics = 2, sizes = { train = 64, val = 16, test = 16 } }
[model]
name = "staged"
encoders = { x1 = { type = "mlp", hidden = [8] }, x2 = { type = "mlp", hidden = [8] } }
fusion = [ { at = "late", operator = "concat" } ]
[train]
epochs = 1
[[grid.fusion]]
op = "concat"
"""


def _raw(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"study": {"name": "s"}, "data": {"name": "lattice"},
                           "model": {"name": "staged"}, "grid": {"fusion": [{"label": "a"}]}}
    for dotted, value in changes.items():
        node = raw
        *parents, last = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return raw


def _error(raw: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    return str(info.value)


@pytest.mark.parametrize("name", ["../../x", "/abs/x", "a/b", "a\\b", "..", ".", ".hidden",
                                  " x", "x ", "a\x00b", "x" * 101, "a#b", "a?b", "a%b", "a\nb"])
def test_a_study_name_is_a_name_not_a_path(name: str) -> None:
    assert _error(_raw(study__name=name)).startswith("study.name: ")


@pytest.mark.parametrize("name", ["quickstart", "my study", "AV-MNIST_v2.1", "ünïcödé (run 3)",
                                  "研究", "x" * 100])
def test_ordinary_names_are_accepted(name: str) -> None:
    assert parse_config(_raw(study__name=name)).name == name


@pytest.mark.parametrize("where, value", [
    ("train__lr", float("nan")), ("train__lr", float("inf")),
    ("model__hidden", [1, float("-inf")]), ("data__options", {"scale": float("nan")}),
    ("evaluate", {"snr_curve": {"snrs": [float("nan")]}}),
])
def test_nan_and_inf_name_their_key(where: str, value: Any) -> None:
    msg = _error(_raw(**{where: value}))
    assert "expected a finite number" in msg
    assert msg.split(":")[0].startswith(where.replace("__", "."))


def test_integers_must_fit_64_bits_and_execution_is_bounded() -> None:
    assert _error(_raw(study__seeds=[2**63])).startswith("study.seeds[0]: integer")
    assert parse_config(_raw(study__seeds=[2**63 - 1])).seeds == [2**63 - 1]
    assert "<= 4096" in _error(_raw(execution={"workers": 10**5}))
    assert "<= 1024" in _error(_raw(execution={"threads_per_run": 10**6}))
    assert _error(_raw(study__description={"a": 1})).startswith("study.description: expected")


def test_threads_bound_is_the_training_bound() -> None:
    from fuselab.study.config import MAX_THREADS
    from fuselab.train.config import MAX_THREADS as TRAIN_MAX_THREADS

    assert MAX_THREADS == TRAIN_MAX_THREADS  # one rule: threads_per_run becomes train.threads


def test_training_rejects_unbounded_epochs() -> None:
    from fuselab.train import TrainConfig
    from fuselab.train.config import MAX_EPOCHS

    assert TrainConfig(epochs=MAX_EPOCHS).epochs == MAX_EPOCHS
    with pytest.raises(ValueError, match=r"'epochs': expected an int >= 1 and <= 100000"):
        TrainConfig(epochs=10**18)
    with pytest.raises(ValueError, match="'seed'"):
        TrainConfig(seed=2**64)


@pytest.mark.parametrize("path, message", [
    ("model.fusion[x].at", "bad path"), ("model..x", "bad path"),
    ("model.fusion[5].at", "index 5 is outside 'fusion', which has 1 entries"),
    ("train.epochs.x", "train.epochs is int 1, not a table"),
])
def test_grid_axis_paths_that_do_not_fit(tmp_path: Path, path: str, message: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(TINY + f'[grid.axes.d]\npath = "{path}"\nvalues = [1]\n')
    with pytest.raises(ConfigError, match=r"^grid\.axes\.d\.path: ") as info:
        expand(load_config(cfg))
    assert message in str(info.value)


def test_non_utf8_and_oversized_files(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.toml"
    bad.write_bytes('[study]\nname = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte b'\\xe9' on line 2\)"):
        load_config(bad)
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbf" + TINY.encode())
    assert load_config(bom).name == "tiny"  # a UTF-8 byte-order mark is fine
    big = tmp_path / "big.toml"
    big.write_bytes(TINY.encode() + b"#" * MAX_BYTES)
    with pytest.raises(ConfigError, match="a config file is at most"):
        load_config(big)
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)
    with pytest.raises(FileNotFoundError, match="study config not found"):
        load_config(tmp_path / "none.toml")


def test_yaml_alias_bomb_is_refused_without_expanding(tmp_path: Path) -> None:
    # 9 levels of 9 aliases: about 387 million values once expanded, from ~400 bytes
    lines = ['l0: &l0 ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 10):
        lines.append(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size < 1024
    with pytest.raises(ConfigError, match=f"more than {MAX_VALUES:,} values"):
        load_config(path)


def test_yaml_aliases_within_bounds_still_work(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("study: {name: s}\ndata: {name: lattice}\nmodel: &m {name: staged}\n"
                    "grid: {fusion: [{label: a, model: *m}]}\n")
    assert load_config(path).fusion[0].model == {"name": "staged"}


@pytest.mark.parametrize("text, message", [
    ("study: &a {name: x, d: *a}\n", "study.d: refers to itself"),
    ("a: &a [*a]\n", "a[0]: refers to itself"),
    ("a: " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),
    ("study: {name: x}\nstudy: {name: y}\n", "found key 'study' twice"),
    ("a: " + "[" * 70 + "]" * 70 + "\n", "nested more than 64 levels deep"),
])
def test_yaml_shapes_that_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value)


def test_deep_toml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(path)


# ---- values that pass the structural check but would fail every run ---------------------------

def _check(tmp_path: Path, extra: str = "", **subs: str) -> str:
    from fuselab.study.plan import check_plan

    text = TINY
    for old, new in subs.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "c.toml"
    path.write_text(text + extra)
    cfg = load_config(path)
    with pytest.raises(ConfigError) as info:
        check_plan(cfg, expand(cfg))
    return str(info.value)


def test_training_noise_on_a_modality_the_data_lacks(tmp_path: Path) -> None:
    msg = _check(tmp_path, "[grid]\ntrain_snr = [{}, { audio = 1.0 }]\n")
    assert msg.startswith("grid.fusion[0] ('concat · train_snr=audio=1.0') -> train: ")
    assert "unknown modality 'audio'; 'lattice' has ['x1', 'x2']" in msg


def test_a_metric_the_task_does_not_report(tmp_path: Path) -> None:
    msg = _check(tmp_path, "", **{"epochs = 1": 'epochs = 1\nmetric = "acc7"'})
    assert "-> train: " in msg and "'acc7' is not reported for classification" in msg


def test_cuda_without_cuda(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    msg = _check(tmp_path, '[execution]\ndevice = "cuda"\n')
    assert msg.startswith("execution.device: 'cuda' asked but")


def test_a_model_too_large_for_memory_names_variant_and_size(tmp_path: Path) -> None:
    msg = _check(tmp_path, "", **{"hidden = [8] }, x2": "hidden = [100000000000] }, x2"})
    assert msg.startswith("grid.fusion[0] ('concat') -> model: the model has ")
    assert "parameters (" in msg and "more than the" in msg and "of memory available" in msg


def test_a_dataset_too_large_for_memory(tmp_path: Path) -> None:
    msg = _check(tmp_path, "", **{"train = 64": "train = 100000000000000"})
    assert msg.startswith("data: dataset 'lattice' does not fit in memory")


def test_a_grid_too_large_to_be_a_study_is_refused_before_expanding() -> None:
    from fuselab.study.grid import MAX_RUNS, grid_size

    values = list(range(1000))
    raw = _raw(grid__fusion=[{"op": ["a", "b"], "depth": values}], study__seeds=values)
    cfg = parse_config(raw)
    assert grid_size(cfg) == 2 * 1000 * 1000 > MAX_RUNS
    with pytest.raises(ConfigError, match=r"^grid: expands to 2,000,000 runs"):
        expand(cfg)
    small = parse_config(_raw(grid__fusion=[{"op": ["a", "b"], "depth": [1, 2, 3]},
                                            {"label": "x"}], study__seeds=[0, 1]))
    assert grid_size(small) == len(expand(small)) == (6 + 1) * 2


def test_overrides_meet_the_same_checks(tmp_path: Path) -> None:
    from fuselab.study.overrides import load_overrides

    cfg = tmp_path / "c.toml"
    cfg.write_text(TINY)
    with pytest.raises(ConfigError, match=r"^train\.lr: expected a finite number"):
        load_config(cfg, {"train.lr": float("inf")})
    with pytest.raises(ConfigError, match=r"^study\.name: expected a name"):
        load_config(cfg, {"study.name": "../elsewhere"})
    smoke = tmp_path / "smoke.toml"
    smoke.write_bytes('"study.description" = "r\xe9sum\xe9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_overrides(smoke)
