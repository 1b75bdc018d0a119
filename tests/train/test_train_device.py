"""``fit`` on the model's device and in mixed precision, checked on the CPU.

* Every batch ``fit`` feeds the model (training steps, the output probe, validation, gradient-
  blending measurements, noisy batches) went through :mod:`fuselab.device` (``device_marks``),
  so on a GPU none is a CPU tensor reaching a CUDA model.
* ``MultimodalDataset.batches(device=...)`` moves the raw rows before noise and ``transform``.
* ``precision``: the forward pass runs in bfloat16 / float16; float16, and only float16, scales
  the loss with a ``GradScaler`` on every step.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import Tensor
from train_helpers import TinyLate, make_classification

from device_marks import guard, mark_moves
from fuselab.train import TrainConfig, fit
from fuselab.train.trainer import Trainer

FAST = TrainConfig(epochs=3, batch_size=32, lr=0.01, progress=False)


def test_fit_feeds_the_model_only_moved_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    train, val = make_classification(96, 0), make_classification(40, 1)
    torch.manual_seed(0)
    model = guard(TinyLate({"a": 4, "b": 6}, 3))
    mark_moves(monkeypatch)
    cfg = FAST.replace(epochs=2, train_snr={"a": 2.0}, grad_blend="online")
    r = fit(model, train, val, cfg)
    assert r.steps == 2 * 3 and all(k in r.best for k in ("accuracy", "loss"))


def test_batches_move_raw_rows_before_noise_and_transform() -> None:
    ds = make_classification(10, 0)
    seen: list[torch.device] = []

    def transform(batch: dict[str, Tensor]) -> dict[str, Tensor]:
        seen.extend(x.device for x in batch.values())
        return batch

    ds = dataclasses.replace(ds, transform=transform)
    x, y = next(ds.batches(4, device="meta"))
    assert seen and {d.type for d in seen} == {"meta"}
    assert y.device.type == "meta" and {v.device.type for v in x.values()} == {"meta"}
    x, y = next(ds.batches(4))  # without a device the data stays where it is
    assert y.device.type == "cpu" and seen[-1].type == "cpu"


def _head_dtypes(model: TinyLate) -> list[torch.dtype]:
    dtypes: list[torch.dtype] = []
    model.head.register_forward_hook(lambda mod, args, out: dtypes.append(out.dtype))
    return dtypes


@pytest.mark.parametrize(("precision", "dtype"), [("float32", torch.float32),
                                                  ("bfloat16", torch.bfloat16),
                                                  ("float16", torch.float16)])
def test_precision_sets_the_forward_dtype_and_float16_alone_scales_the_loss(
        precision: str, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    scaled: list[float] = []
    real_scale = torch.amp.GradScaler.scale

    def scale(self: torch.amp.GradScaler, outputs: Tensor) -> Tensor:
        scaled.append(float(outputs.detach()))
        return real_scale(self, outputs)  # type: ignore[no-any-return]

    monkeypatch.setattr(torch.amp.GradScaler, "scale", scale)
    train, val = make_classification(160, 0), make_classification(80, 1)
    torch.manual_seed(0)
    model = TinyLate({"a": 4, "b": 6}, 3)
    dtypes = _head_dtypes(model)
    r = fit(model, train, val, FAST.replace(precision=precision, epochs=4))
    # the first forward is fit's float32 output-shape probe; every step and validation follow
    assert dtypes[0] == torch.float32 and set(dtypes[1:]) == {dtype}
    assert model.head.weight.dtype == torch.float32  # the weights stay float32
    assert len(scaled) == (r.steps if precision == "float16" else 0)
    # the clusters are well separated: every precision learns them
    assert r.best["accuracy"] >= 0.9
    assert r.history[-1]["train_loss"] < r.history[0]["train_loss"]


def test_only_float16_gets_a_scaler_and_an_offline_restart_resets_it() -> None:
    train, val = make_classification(96, 0), make_classification(40, 1)
    for precision in ("float32", "bfloat16"):
        t = Trainer(TinyLate({"a": 4, "b": 6}, 3), train, val, FAST.replace(precision=precision),
                    False)
        assert t.scaler is None
    t = Trainer(TinyLate({"a": 4, "b": 6}, 3), train, val,
                FAST.replace(precision="float16", grad_blend="offline"), False)
    assert t.scaler is not None
    first = t.scaler
    t.offline_weights(None)  # the trial epoch steps the scaler; the real run starts afresh
    assert t.scaler is not first and t.scaler.get_scale() == 2.0**16  # GradScaler's init_scale


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'precision': expected one of \['float32', 'bfloat16', "
                                         r"'float16'\], got 'float8'"):
        TrainConfig(precision="float8")
