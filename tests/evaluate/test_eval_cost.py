"""Cost: exact parameter and FLOP counts, timings that are positive, model left untouched."""

from __future__ import annotations

import math

import pytest
import torch
from eval_cases import AdditiveModel, additive_dataset
from torch import Tensor, nn

import fuselab.evaluate as ev
from fuselab.data import MultimodalDataset

METRICS = {
    "params",
    "fusion_params",
    "flops_per_sample",
    "latency_ms_b1",
    "throughput",
    "train_samples_per_s",
    "peak_memory_mb",
}


class WideModel(nn.Module):
    """``{x: (B, 512), y: (B, 3)} -> (B, 10)`` with a 3 -> 3 "fusion" layer."""

    modalities = ("x", "y")

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(512, 2048), nn.ReLU(), nn.Linear(2048, 10))
        self.fusion = nn.Linear(3, 3)
        self.out = nn.Linear(13, 10)

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        return self.out(torch.cat([self.enc(inputs["x"]), self.fusion(inputs["y"])], 1))

    def fusion_parameters(self):
        return self.fusion.parameters()


def _wide_dataset(n: int) -> MultimodalDataset:
    g = torch.Generator().manual_seed(0)
    return MultimodalDataset(
        {"x": torch.randn(n, 512, generator=g), "y": torch.randn(n, 3, generator=g)},
        torch.randint(0, 10, (n,), generator=g),
        num_classes=10,
    )


def test_exact_counts_on_additive_model() -> None:
    recs = ev.cost(AdditiveModel(), additive_dataset(20), repeats=2, warmup=1)
    timed_at = {"throughput": 256, "train_samples_per_s": 64}  # the default batches
    assert all(
        r["evaluation"] == "cost"
        and set(r) == {"evaluation", "metric", "value"} | ({"batch_size"} if r["metric"] in timed_at else set())
        and r.get("batch_size") == timed_at.get(r["metric"])
        for r in recs
    )
    got = {r["metric"]: r["value"] for r in recs}
    assert "fusion_params" not in got  # the toy model has no fusion_parameters()
    # g: 5*8+8 + 8*4+4, h: 3*8+8 + 8*4+4
    assert got["params"] == 152
    # 2 FLOPs per multiply-add: 2 * (5*8 + 8*4 + 3*8 + 8*4)
    assert got["flops_per_sample"] == 256


def test_wide_model_timings_memory_and_model_untouched() -> None:
    model = WideModel().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recs = ev.cost(model, _wide_dataset(100), repeats=3, warmup=1, train_batch=256)
    got = {r["metric"]: r["value"] for r in recs}
    assert set(got) == METRICS
    assert got["fusion_params"] == 12
    assert got["params"] == 512 * 2048 + 2048 + 2048 * 10 + 10 + 12 + 13 * 10 + 10
    assert got["flops_per_sample"] == 2 * (512 * 2048 + 2048 * 10 + 3 * 3 + 13 * 10)
    for m in ("latency_ms_b1", "throughput", "train_samples_per_s"):
        assert math.isfinite(got[m]) and got[m] > 0
    # Bytes of tensors (the profiler's count, not the allocator's): a training step at batch 256
    # holds at least the first layer's output and its ReLU (2 MiB each), and at most every
    # layer's output and its gradient plus one parameter-sized gradient temporary.
    mib, batch = 2**20, 256
    acts = batch * (2048 + 2048 + 10 + 3 + 13 + 10) * 4
    params = sum(p.numel() for p in model.parameters()) * 4
    assert 2 * batch * 2048 * 4 / mib <= got["peak_memory_mb"] <= (params + 2 * acts) / mib
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="train_batch must be a positive int"):
        ev.cost(AdditiveModel(), additive_dataset(5), train_batch=0)
    with pytest.raises(ValueError, match="needs modality 'b'"):
        ev.cost(AdditiveModel(), additive_dataset(5).select(["a"]))

    class Wrong(AdditiveModel):
        def forward(self, inputs: dict[str, Tensor]) -> Tensor:
            return super().forward(inputs)[:, :3]

    with pytest.raises(ValueError, match="does not match the label space"):
        ev.cost(Wrong(), additive_dataset(5))


@pytest.mark.parametrize("option, value", [("repeats", 10**14), ("warmup", -1),
                                           ("warmup", 10**9), ("throughput_batch", 10**12)])
def test_unbounded_options_are_refused_before_any_work(option: str, value: int) -> None:
    # a typo such as repeats = 10**14 would otherwise time the model until the end of days
    with pytest.raises(ValueError, match=f"cost: {option} must be"):
        ev.cost(AdditiveModel(), additive_dataset(5), **{option: value})
