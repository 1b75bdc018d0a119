"""fit: learning, best restore, determinism, early stopping, schedules, noise, errors, quiet mode."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from train_helpers import make_classification, make_regression, tiny_model

from fuselab.train import (
    CheckpointMismatchError,
    NonFiniteLossError,
    TrainConfig,
    fit,
    load_checkpoint,
    score_split,
)

FAST = TrainConfig(epochs=4, batch_size=32, lr=0.01, progress=False)


@pytest.fixture(scope="module")
def splits() -> tuple:
    return make_classification(240, 0), make_classification(120, 1, name="val")


def test_learns_and_restores_best_epoch(splits: tuple) -> None:
    train, val = splits
    model = tiny_model()
    result = fit(model, train, val, FAST, progress=False)
    assert result.best["accuracy"] >= 0.9
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    curve = [r["val_accuracy"] for r in result.history]
    assert result.max_metric == max(curve) and result.last_metric == curve[-1]
    assert result.best["accuracy"] == result.max_metric
    assert result.history[result.best_epoch - 1]["val_accuracy"] == result.max_metric
    # The model holds the best epoch's weights: re-scoring it reproduces the best metrics.
    again = score_split(model, val)
    assert again["accuracy"] == pytest.approx(result.best["accuracy"])
    assert again["loss"] == pytest.approx(result.best["loss"], rel=1e-5)
    assert result.samples_per_s > 0 and result.steps == 4 * 8
    recs = result.records()
    assert {"evaluation": "curve", "metric": "val_accuracy", "value": curve[0], "epoch": 1} in recs


def test_same_seed_same_metrics_other_seed_differs(splits: tuple) -> None:
    train, val = splits
    noisy = FAST.replace(train_snr={"a": 1.0})
    runs = [fit(tiny_model(), train, val, noisy.replace(seed=s)) for s in (7, 7, 8)]

    def curve(r):  # type: ignore[no-untyped-def]
        return [(h["train_loss"], h["val_loss"], h["val_accuracy"]) for h in r.history]

    assert curve(runs[0]) == curve(runs[1])
    assert curve(runs[0]) != curve(runs[2])


def test_train_snr_changes_training_and_rejects_unknown_modality(splits: tuple) -> None:
    train, val = splits
    clean = fit(tiny_model(), train, val, FAST)
    noisy = fit(tiny_model(), train, val, FAST.replace(train_snr={"a": 0.25, "b": 0.25}))
    assert noisy.history[0]["train_loss"] > clean.history[0]["train_loss"]
    with pytest.raises(ValueError, match=r"'train_snr': unknown modality 'audio'.*\['a', 'b'\]"):
        fit(tiny_model(), train, val, FAST.replace(train_snr={"audio": 1.0}))


def test_early_stopping_on_unlearnable_labels() -> None:
    train = make_classification(160, 0)
    val = make_classification(160, 1)
    # Shuffled validation labels: nothing generalizes, so the metric stops improving quickly.
    val.labels = val.labels[torch.randperm(160, generator=torch.Generator().manual_seed(0))]
    r = fit(tiny_model(), train, val, FAST.replace(epochs=30, patience=2, metric="loss"))
    assert r.stop_reason == "early_stopping"
    assert len(r.history) == r.best_epoch + 2 < 30
    assert r.best["loss"] == min(h["val_loss"] for h in r.history)


def test_max_steps_and_callback_stop(splits: tuple) -> None:
    train, val = splits
    r = fit(tiny_model(), train, val, FAST.replace(max_steps=11))
    assert r.steps == 11 and r.stop_reason == "max_steps" and len(r.history) == 2
    seen = []
    r = fit(tiny_model(), train, val, FAST, on_epoch=lambda row: seen.append(row) or row["epoch"] == 2)
    assert r.stop_reason == "callback" and [s["epoch"] for s in seen] == [1, 2]


def test_schedules_follow_their_formulas(splits: tuple) -> None:
    train, val = splits
    r = fit(tiny_model(), train, val, FAST.replace(schedule="step", step_size=2, gamma=0.5))
    assert [h["lr"] for h in r.history] == pytest.approx([0.01, 0.01, 0.005, 0.005])
    r = fit(tiny_model(), train, val, FAST.replace(schedule="cosine"))
    # Cosine over 32 steps, stepped per step: lr at the start of epoch e is the value after 8(e-1).
    want = [0.005 * (1 + torch.cos(torch.tensor(torch.pi * 8 * e / 32)).item()) for e in range(4)]
    assert [h["lr"] for h in r.history] == pytest.approx(want)


def test_regression_reports_mosi_metrics_and_l1_loss() -> None:
    train, val = make_regression(256, 0), make_regression(128, 1)
    r = fit(tiny_model({"a": 3, "b": 4}, out=1), train, val, FAST.replace(epochs=6, regression_loss="l1"))
    assert r.metric == "mse" and r.best["mse"] < 0.2 and r.best["pearson_r"] > 0.9
    assert {"acc2", "acc7", "f1", "mae"} <= set(r.best)
    assert r.max_metric == min(h["val_mse"] for h in r.history)


def test_checkpoint_holds_best_weights_and_config(tmp_path: Path, splits: tuple) -> None:
    train, val = splits
    model = tiny_model()
    path = tmp_path / "run" / "best.pt"
    r = fit(model, train, val, FAST, checkpoint_path=str(path))
    fresh = tiny_model(seed=5)
    ckpt = load_checkpoint(path, fresh, config=FAST)
    assert ckpt.metrics == r.best
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True))
    with pytest.raises(CheckpointMismatchError, match="epochs"):
        load_checkpoint(path, fresh, config=FAST.replace(epochs=5))


class NaNAfter(nn.Module):
    """TinyLate whose training forward turns into NaN at call ``k`` (1-based)."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.inner, self.k, self.calls = tiny_model(), k, 0
        self.modalities = self.inner.modalities

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        out = self.inner(inputs)
        if self.training:
            self.calls += 1
            if self.calls >= self.k:
                return out * float("nan")
        return out


def test_nan_loss_stops_with_step_and_last_finite_loss(splits: tuple) -> None:
    train, val = splits
    losses: list[float] = []
    ref = fit(tiny_model(), train, val, FAST.replace(epochs=2))
    assert ref.steps == 16
    model = NaNAfter(k=11)
    with pytest.raises(NonFiniteLossError) as err:
        fit(model, train, val, FAST.replace(epochs=2), on_epoch=lambda row: losses.append(row["train_loss"]))
    e = err.value
    assert (e.step, e.epoch) == (11, 2) and e.loss != e.loss  # NaN
    assert e.last_finite_loss is not None and e.last_finite_loss > 0
    assert "step 11 (epoch 2)" in str(e) and f"{e.last_finite_loss:.6g}" in str(e)
    assert isinstance(e, FloatingPointError)


def test_bad_model_output_and_missing_modality_are_clear(splits: tuple) -> None:
    train, val = splits
    with pytest.raises(ValueError, match=r"output shape \(8, 5\) does not match the label space.*\(8, 3\)"):
        fit(tiny_model(out=5), train, val, FAST)
    with pytest.raises(ValueError, match=r"needs modality 'c'.*\['a', 'b'\]"):
        fit(tiny_model({"a": 4, "c": 6}), train, val, FAST)
    with pytest.raises(ValueError, match=r"'metric': 'mse' is not reported for classification"):
        fit(tiny_model(), train, val, FAST.replace(metric="mse"))


def test_progress_bar_and_quiet_mode(capfd: pytest.CaptureFixture[str], splits: tuple) -> None:
    train, val = splits
    fit(tiny_model(), train, val, FAST.replace(epochs=1), progress=False)
    assert capfd.readouterr().err == ""
    fit(tiny_model(), train, val, FAST.replace(epochs=1, progress=True), progress=True)
    assert "train" in capfd.readouterr().err


@pytest.mark.parametrize(("config_on", "arg", "shown"), [
    (True, None, True), (False, None, False),   # default: the config key is the switch
    (False, True, True), (True, False, False),  # an explicit argument overrides it
])
def test_one_progress_switch(capfd: pytest.CaptureFixture[str], splits: tuple,
                             config_on: bool, arg: bool | None, shown: bool) -> None:
    train, val = splits
    fit(tiny_model(), train, val, FAST.replace(epochs=1, progress=config_on), progress=arg)
    assert ("train" in capfd.readouterr().err) is shown


def test_run_settings_apply_during_fit_and_are_restored(splits: tuple) -> None:
    train, val = splits
    seen = []

    def probe(row: dict) -> None:
        seen.append((torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()))

    before = (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads(),
              torch.utils.deterministic.fill_uninitialized_memory, torch.random.get_rng_state())
    fit(tiny_model(), train, val, FAST.replace(epochs=1, threads=1), on_epoch=probe)
    assert seen == [(True, 1)]
    after = (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads(),
             torch.utils.deterministic.fill_uninitialized_memory, torch.random.get_rng_state())
    assert after[:3] == before[:3] and torch.equal(after[3], before[3])


def test_mosi_metric_on_non_mosi_labels_is_a_clear_error() -> None:
    train, val = make_regression(64, 0, scale=10.0), make_regression(32, 1, scale=10.0)
    with pytest.raises(ValueError, match=r"'metric': 'acc2' is not reported.*\['loss', 'mae', 'mse', 'pearson_r'\]"):
        fit(tiny_model({"a": 3, "b": 4}, out=1), train, val, FAST.replace(metric="acc2", epochs=1))


@pytest.mark.parametrize("mode", ["train", "clean"])
def test_validation_runs_at_the_training_snr_with_fixed_noise(splits: tuple, mode: str) -> None:
    train, val = splits
    snr = {"a": 0.25, "b": 0.25}
    cfg = FAST.replace(epochs=1, train_snr=snr, val_snr=mode, seed=3)
    model = tiny_model()
    result = fit(model, train, val, cfg)
    noisy = score_split(model, val, snr=snr, seed=3 + 7)
    clean = score_split(model, val)
    # The recorded validation loss is exactly the one of the chosen input distribution ...
    expected = noisy if mode == "train" else clean
    assert result.history[0]["val_loss"] == pytest.approx(expected["loss"], rel=1e-6)
    # ... which differs between noisy and clean inputs, and the noise is the same on every call.
    assert noisy["loss"] != pytest.approx(clean["loss"], rel=1e-3)
    assert score_split(model, val, snr=snr, seed=10) == noisy
    assert score_split(model, val, snr=snr, seed=11) != noisy
    # deprecated spellings (one release): same numbers, with a warning
    with pytest.warns(DeprecationWarning, match=r"noise_seed=\.\.\.\) is deprecated"):
        assert score_split(model, val, snr=snr, noise_seed=10) == noisy
    from fuselab.train import evaluate_split
    from fuselab.train.evaluation import score_split as old_module_score_split

    assert old_module_score_split is score_split
    with pytest.warns(DeprecationWarning, match="evaluate_split is deprecated"):
        assert evaluate_split(model, val, snr=snr, seed=10) == noisy
    with pytest.raises(ValueError, match="val_snr"):
        FAST.replace(val_snr="noisy")
