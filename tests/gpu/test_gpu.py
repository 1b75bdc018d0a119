"""fuselab on a CUDA device: every model family trains and evaluates there and agrees with the CPU.

The whole module is skipped, with the reason, when no CUDA device is usable. ``benchmarks/gpu.sh``
runs it on a GPU machine. ``FUSELAB_TEST_DEVICE=cpu`` runs it against the CPU instead, as a dry
run of the test code on a machine without a GPU; its CPU-vs-device comparisons are then trivially
equal, and the CUDA-only checks skip.

Tolerance of "same results" (:data:`RTOL`, :data:`ATOL`): float32 with TF32 off (a TF32 matmul
keeps a 10-bit mantissa, ~1e-3 relative error, by design), so the device and the CPU differ only
by the order of floating-point sums in their convolution / matmul kernels: outputs within
``rtol = 1e-4, atol = 1e-5``; gradients, which sum over the batch once more, ``rtol = 1e-3``.
"""

from __future__ import annotations

import copy
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import fuselab.evaluate as ev
import fuselab.models as fm
from fuselab import data
from fuselab import device as D
from fuselab.data import MultimodalDataset
from fuselab.train import TrainConfig, fit, score_split
from fuselab.train.trainer import Trainer

try:
    DEVICE = D.resolve_device(os.environ.get("FUSELAB_TEST_DEVICE", "cuda"))
except D.DeviceError as e:
    pytest.skip(f"no CUDA device: {e}", allow_module_level=True)
ON_CUDA = DEVICE.type == "cuda"
cuda_only = pytest.mark.skipif(not ON_CUDA, reason="checks CUDA behaviour (a CPU dry run)")

RTOL, ATOL, GRAD_RTOL = 1e-4, 1e-5, 1e-3
SHAPES = {"image": (1, 12, 12), "audio": (1, 16, 10)}
ENC = {m: {"type": "lenet", "kernels": [3, 3], "channels": 4} for m in SHAPES}
LATE = [{"at": "late", "operator": "concat"}]
#: family -> model config (the AV-MNIST-shaped families) or "vqa" (the token-fusion transformer)
FAMILIES: dict[str, dict[str, Any]] = {
    "staged late": {"name": "staged", "encoders": ENC, "fusion": LATE},
    "staged early": {"name": "staged", "encoders": ENC, "fusion": [
        {"at": "early", "operator": "concat", "adapter": "resize", "trunk": "audio"}]},
    "staged msaf": {"name": "staged", "encoders": ENC, "fusion": [
        {"at": {"image": "conv1", "audio": "conv1"}, "operator": "msaf",
         "options": {"reduction": 1}}, *LATE]},
    "pro-fusion": {"name": "staged", "encoders": ENC, "fusion": LATE,
                   "progressive": {"steps": 2, "context_dim": 4}},
    "c-lstm": {"name": "clstm", "fusion_layer": "initial", "units": 3, "hidden": 8},
    "token fusion": {"name": "token_fusion", "num_layers": 2, "d_model": 16, "num_heads": 2,
                     "ff_dim": 32, "decoder_layers": 1, "dropout": 0.0, "patch_size": 4,
                     "fusion_spec": {"0": ["question"], "1": ["image"]},
                     "pad_id": 0, "bos_id": 1, "eos_id": 2},
}


@pytest.fixture(autouse=True)
def _exact_float32() -> Iterator[None]:
    """No TF32 (see the module docstring), restored afterwards."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def avmnist_like(n: int, seed: int) -> MultimodalDataset:
    """Image / spectrogram-shaped inputs whose label is carried by both modalities."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    image = torch.rand(n, *SHAPES["image"], generator=g) + y[:, None, None, None] * 0.5
    audio = torch.randn(n, *SHAPES["audio"], generator=g) + y[:, None, None, None].float()
    return MultimodalDataset({"image": image, "audio": audio}, y, num_classes=3, name="av")


def splits(family: str) -> dict[str, MultimodalDataset]:
    if family == "token fusion":
        return data.load_splits("vqa", sizes={"train": 64, "val": 32, "test": 32},
                                image_size=16)
    return {"train": avmnist_like(96, 0), "val": avmnist_like(48, 1), "test": avmnist_like(48, 2)}


def build(family: str, ds: MultimodalDataset) -> nn.Module:
    torch.manual_seed(0)
    n = int(ds.num_classes or 0)
    return fm.build(copy.deepcopy(FAMILIES[family]), input_shapes=ds.shapes, num_outputs=n)


def call(model: nn.Module, x: dict[str, Tensor], y: Tensor, ds: MultimodalDataset) -> Tensor:
    return model(x, y) if ds.task == "generation" else model(x)


FAST = TrainConfig(epochs=2, batch_size=32, lr=0.003, progress=False)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_trains_and_evaluates_on_the_device(family: str) -> None:
    s = splits(family)
    model = build(family, s["train"]).to(DEVICE)
    r = fit(model, s["train"], s["val"], FAST)
    assert r.steps == 2 * math.ceil(len(s["train"]) / 32)
    assert all(math.isfinite(h["train_loss"]) for h in r.history)
    assert {p.device.type for p in model.parameters()} == {DEVICE.type}
    scores = score_split(model, s["test"])
    assert all(math.isfinite(v) for v in scores.values())
    if s["test"].task == "classification":
        recs = ev.snr_curves(model, s["test"], [None, 1.0], batch_size=16)
        assert recs and all(0.0 <= r["value"] <= 1.0 for r in recs)
    cost = {r["metric"]: r["value"] for r in ev.cost(model, s["test"], throughput_batch=8,
                                                      train_batch=8, repeats=2, warmup=1)}
    assert cost["latency_ms_b1"] > 0 and cost["peak_memory_mb"] > 0


def _outputs_and_grads(model: nn.Module, ds: MultimodalDataset,
                       device: torch.device) -> tuple[Tensor, dict[str, Tensor]]:
    model = copy.deepcopy(model).to(device).eval()  # eval: no dropout / batch-statistics noise
    x, y = next(ds.batches(16, device=device))
    out = call(model, x, y, ds)
    loss = out.float().square().mean()
    loss.backward()
    grads = {k: p.grad.cpu() for k, p in model.named_parameters() if p.grad is not None}
    return out.detach().cpu(), grads


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_cpu_and_device_give_the_same_outputs_and_gradients(family: str) -> None:
    ds = splits(family)["test"]
    model = build(family, ds)
    out_cpu, grads_cpu = _outputs_and_grads(model, ds, torch.device("cpu"))
    out_dev, grads_dev = _outputs_and_grads(model, ds, DEVICE)
    torch.testing.assert_close(out_dev, out_cpu, rtol=RTOL, atol=ATOL)
    assert grads_dev.keys() == grads_cpu.keys() and grads_cpu
    for k in grads_cpu:
        torch.testing.assert_close(grads_dev[k], grads_cpu[k], rtol=GRAD_RTOL, atol=ATOL,
                                   msg=lambda m, k=k: f"gradient of {k}: {m}")


def test_snr_evaluation_sees_the_same_noise_on_both_devices() -> None:
    """Evaluations draw noise on the CPU and move the batches: one model, two devices, same
    accuracies (up to samples whose logits tie within the tolerance)."""
    ds = avmnist_like(96, 3)
    model = build("staged late", ds)
    fit(model, avmnist_like(96, 0), None, FAST)
    snrs = [None, 1.0, 0.25]
    cpu = ev.snr_curves(copy.deepcopy(model), ds, snrs, batch_size=32)
    dev = ev.snr_curves(copy.deepcopy(model).to(DEVICE), ds, snrs, batch_size=32)
    assert [r["value"] for r in dev] == pytest.approx([r["value"] for r in cpu], abs=1 / 96)


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_mixed_precision_training_is_finite(precision: str) -> None:
    s = splits("staged late")
    model = build("staged late", s["train"]).to(DEVICE)
    t = Trainer(model, s["train"], s["val"], FAST.replace(precision=precision), False)
    assert (t.scaler is not None) == (precision == "float16")
    r = fit(model, s["train"], s["val"], FAST.replace(precision=precision))
    assert all(math.isfinite(h["train_loss"]) and math.isfinite(h["val_loss"]) for h in r.history)
    assert next(model.parameters()).dtype == torch.float32


def test_torch_compile_trains_and_matches_eager() -> None:
    s = splits("staged late")
    model = build("staged late", s["train"]).to(DEVICE)
    r = fit(model, s["train"], s["val"], FAST.replace(compile=True))
    assert all(math.isfinite(h["train_loss"]) for h in r.history)
    model.eval()
    x, _ = next(s["test"].batches(16, device=DEVICE))
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model)(x), model(x), rtol=RTOL, atol=ATOL)


@cuda_only
def test_pinned_non_blocking_copies_arrive_intact() -> None:
    """Many back-to-back non-blocking copies whose pinned staging buffers are dropped at once:
    the caching host allocator must not reuse a buffer before its copy has run."""
    g = torch.Generator().manual_seed(0)
    sources = [torch.randn(64, 1, 201, 40, generator=g) for _ in range(12)]
    moved = [D.move_tensor(x, DEVICE) for x in sources]
    D.synchronize(DEVICE)
    for src, dst in zip(sources, moved, strict=True):
        assert dst.device.type == "cuda" and torch.equal(dst.cpu(), src)


@cuda_only
def test_peak_memory_comes_from_the_cuda_allocator() -> None:
    ds = splits("staged late")["test"]
    model = build("staged late", ds).to(DEVICE)
    cost = {r["metric"]: r["value"] for r in ev.cost(model, ds, throughput_batch=8,
                                                      train_batch=32, repeats=2, warmup=1)}
    grads = sum(p.numel() * p.element_size() for p in model.parameters())
    # a training step allocates at least every parameter's gradient
    assert cost["peak_memory_mb"] * 2**20 >= grads


@cuda_only
def test_conv_stages_never_call_the_native_kernels_on_cuda(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The fused conv-stage op's native kernels take host pointers only: on CUDA the stages
    must take the aten path without ever asking for the kernel library."""
    from fuselab.ops import native

    def refuse() -> Any:
        raise AssertionError("native CPU kernels requested during a CUDA run")

    monkeypatch.setattr(native, "library", refuse)
    for family in ("staged late", "staged msaf", "pro-fusion", "staged early"):
        s = splits(family)
        model = build(family, s["train"]).to(DEVICE)
        fit(model, s["train"], s["val"], FAST.replace(max_steps=2))
        score_split(model, s["test"])


def test_a_study_runs_on_the_device(tmp_path: Path) -> None:
    """The tiny lattice study of tests/study (late vs low-rank fusion; test, SNR curve and
    robustness evaluations) with ``execution.device`` set to the device."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "study"))
    from test_study_execute import _cfg

    from fuselab.study import load_config, open_store, run_study

    cfg = load_config(_cfg(tmp_path), {"execution.device": str(DEVICE)})
    summary = run_study(cfg, tmp_path / "s", workers=0, progress=False)
    assert summary.done == summary.total == 2
    store = open_store(tmp_path / "s")
    try:
        assert all(math.isfinite(r["metrics"]["test_accuracy"]) for r in store.runs())
    finally:
        store.close()
