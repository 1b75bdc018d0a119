"""The real pipeline (data -> models -> train -> evaluate) on a tiny lattice study."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fuselab.study import (
    ConfigError,
    StoreError,
    expand,
    load_config,
    load_run_model,
    open_store,
    run_study,
)
from fuselab.study.plan import check_plan

TINY = """
[study]
name = "tiny"
seeds = [0]
baseline = "late"

[data]
name = "lattice"
options = {{ dim = 8, embed_dim = 8, sizes = {{ train = 96, val = 32, test = 32 }} }}

[model]
name = "staged"
# x2 first: a model concatenates features in the declared order, which the store must keep
encoders = {{ x2 = {{ type = "mlp", hidden = [4] }}, x1 = {{ type = "mlp", hidden = [3] }} }}
fusion = [ {{ at = "late", operator = "concat" }} ]

[train]
epochs = 2
batch_size = 32

[[grid.fusion]]
label = "late"
depth = "late"

[[grid.fusion]]
label = "{label}"
{extra}

[evaluate]
test = true
snr_curve = {{ snrs = ["clean", 1, 0.5] }}
robustness = true
"""


def _cfg(tmp_path: Path, label: str = "lowrank", extra: str = 'op = "lowrank"\n'
         'op_options = { out_dim = 4, rank = 2 }') -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(TINY.format(label=label, extra=extra))
    return p


def test_real_runs_record_metrics_matching_their_checkpoint(tmp_path: Path) -> None:
    from fuselab import data, models
    from fuselab.train import load_checkpoint, score_split

    cfg_path = _cfg(tmp_path)
    s = run_study(cfg_path, tmp_path / "study", workers=0, progress=False)
    assert (s.done, s.failed) == (2, 0)
    store = open_store(tmp_path / "study", readonly=True)
    splits = data.load_splits("lattice", dim=8, embed_dim=8,
                              sizes={"train": 96, "val": 32, "test": 32})
    for run in store.runs():
        recs = store.records(run["run_id"])
        kinds = {r["evaluation"] for r in recs}
        assert {"curve", "test", "snr_curve", "robustness"} <= kinds
        assert len([r for r in recs if r["evaluation"] == "curve" and
                    r["metric"] == "train_loss"]) == 2  # one per epoch
        # the recorded test accuracy is that of the published checkpoint's weights, in a model
        # rebuilt from the stored config (by hand and by load_run_model)
        torch.manual_seed(123)
        model = models.build(run["config"]["model"], input_shapes=splits["train"].shapes,
                             num_outputs=9)
        load_checkpoint(run["checkpoint_path"], model)
        acc = score_split(model, splits["test"])["accuracy"]
        assert run["metrics"]["test_accuracy"] == pytest.approx(acc)
        rebuilt = load_run_model(tmp_path / "study", run["run_id"])
        assert not rebuilt.training
        assert score_split(rebuilt, splits["test"])["accuracy"] == pytest.approx(acc)
        clean = [r for r in recs if r["evaluation"] == "snr_curve" and r["snr"] is None
                 and r["modality"] == "all"]
        assert clean[0]["value"] == pytest.approx(acc)
    late = next(r for r in store.runs() if r["variant"] == "late")
    own = [r for r in store.records(late["run_id"]) if r["evaluation"] == "robustness"
           and r["metric"] == "robust_auc"]
    assert own and all(r["value"] == 0.0 for r in own)  # the baseline against itself


def test_load_run_model_finds_a_moved_study_and_refuses_unfinished_runs(tmp_path: Path) -> None:
    s = run_study(_cfg(tmp_path), tmp_path / "study", workers=0, progress=False)
    assert s.done == 2
    (tmp_path / "study").rename(tmp_path / "moved")  # the store's checkpoint paths are stale now
    run = open_store(tmp_path / "moved", readonly=True).runs()[0]
    assert load_run_model(tmp_path / "moved", run["run_id"]) is not None
    with pytest.raises(StoreError, match="no run 'nope'"):
        load_run_model(tmp_path / "moved", "nope")
    (tmp_path / "moved" / "checkpoints" / f"{run['run_id']}.pt").unlink()
    with pytest.raises(StoreError, match=f"run '{run['run_id']}' .* has no checkpoint"):
        load_run_model(tmp_path / "moved", run["run_id"])


def test_up_front_check_names_the_grid_entry(tmp_path: Path) -> None:
    cfg = load_config(_cfg(tmp_path, "bad", 'op = ["sum", "no_such_op"]'))
    with pytest.raises(ConfigError) as info:
        check_plan(cfg, expand(cfg))
    assert info.value.path == "grid.fusion[1].op[1]"
    assert "unknown fusion operator 'no_such_op'; allowed: [" in str(info.value)
    assert "'concat'" in str(info.value)
    cfg = load_config(_cfg(tmp_path, "bad", 'depth = "middle"'))
    with pytest.raises(ConfigError) as info:
        check_plan(cfg, expand(cfg))
    assert info.value.path == "grid.fusion[1] ('bad') -> model"
    assert "middle" in str(info.value)
    cfg = load_config(_cfg(tmp_path, "bad", 'train = { optimizer = "rmsprop" }'))
    with pytest.raises(ConfigError, match=r"grid.fusion\[1\] -> train.*optimizer"):
        check_plan(cfg, expand(cfg))


def test_unknown_evaluation_option_is_rejected(tmp_path: Path) -> None:
    p = _cfg(tmp_path)
    p.write_text(p.read_text().replace('snr_curve = { snrs', 'snr_curve = { snrz'))
    cfg = load_config(p)
    with pytest.raises(ConfigError, match=r"evaluate.snr_curve.snrz: unknown option"):
        check_plan(cfg, expand(cfg))


def test_failing_evaluation_fails_the_run_naming_it(tmp_path: Path) -> None:
    p = _cfg(tmp_path, "late2", 'depth = "late"\nop = "sum"')
    p.write_text(p.read_text().replace(
        "robustness = true", 'robustness = true\nmissing_modality = { modes = ["bogus"] }'))
    # the up-front check tries every evaluation once on a few samples and refuses the study ...
    with pytest.raises(ConfigError, match=r"-> evaluate.missing_modality: fails on this model"):
        run_study(p, tmp_path / "study", workers=0, progress=False)
    # ... and without it, the runs fail after training with the evaluation named
    s = run_study(p, tmp_path / "study", workers=0, progress=False, check=False)
    assert s.failed == 2
    for run in open_store(tmp_path / "study", readonly=True).runs():
        assert "evaluate.missing_modality failed: ValueError" in run["error"]
        assert "bogus" in run["error"] and run["checkpoint_path"] is None


TINY_VQA = """
[study]
name = "tiny_vqa"
seeds = [0]

[data]
name = "vqa"
options = { sizes = { train = 48, val = 16, test = 40 }, image_size = 16, seed = 0 }

[model]
name = "token_fusion"
num_layers = 2
d_model = 16
num_heads = 2
patch_size = 4
decoder_layers = 1
dropout = 0.0
allow_missing = true

[train]
epochs = 1
batch_size = 16

[[grid.fusion]]
label = "early"
model = { fusion_spec = { "0" = ["question", "image"] } }

[evaluate]
test = true
test_by_type = { drop = ["image"] }
missing_modality = { modes = ["drop"] }
snr_curve = { modalities = ["image"], snrs = ["clean", 0.5] }
cost = { throughput_batch = 8, train_batch = 8, repeats = 2, warmup = 1 }
"""


def test_generation_study_records_every_evaluation(tmp_path: Path) -> None:
    from fuselab import data

    p = tmp_path / "vqa.toml"
    p.write_text(TINY_VQA)
    s = run_study(p, tmp_path / "study", workers=0, progress=False)
    assert (s.done, s.failed) == (1, 0)
    store = open_store(tmp_path / "study", readonly=True)
    run = store.runs()[0]
    recs = store.records(run["run_id"])
    assert {"test", "test_by_type", "missing_modality", "snr_curve", "cost"} <= {
        r["evaluation"] for r in recs}
    assert "latency_ms_generate_b1" in run["metrics"]
    # per-type exact match, weighted by type counts, is the overall test exact match
    types = data.load_splits("vqa", sizes={"train": 48, "val": 16, "test": 40}, image_size=16,
                             seed=0)["test"].source_ids["question"]
    full = [r for r in recs if r["evaluation"] == "test_by_type" and r["dropped"] == "none"]
    assert {r["question_type"] for r in full} == set(types)
    weighted = sum(r["value"] * types.count(r["question_type"]) for r in full) / len(types)
    assert weighted == pytest.approx(run["metrics"]["test_exact_match"])
    assert {(r["modality"], r["mode"]) for r in recs if r["evaluation"] == "missing_modality"} \
        == {("none", "none"), ("image", "drop"), ("question", "drop")}
    clean = [r for r in recs if r["evaluation"] == "snr_curve" and r["snr"] is None]
    assert [r["modality"] for r in clean] == ["image"]
    assert clean[0]["value"] == pytest.approx(run["metrics"]["test_exact_match"])
