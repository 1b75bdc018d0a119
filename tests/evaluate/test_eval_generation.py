"""Evaluations of generation models: exact match via generate(), token modalities, cost.

``LookupVQA`` is a hand-built generation model with known answers: an "img" question (type 0) is
answered by the sign of the image mean (token 3 or 4), a "txt" question (type 1) by copying its
second token. Without the image it guesses token 3, so exactly the positive-image "img" samples
are lost; without the question it emits only padding.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import fuselab.evaluate as ev
from fuselab.data import MultimodalDataset
from fuselab.evaluate._common import exact_hits
from fuselab.tasks import task_loss
from fuselab.train.metrics import exact_match

PAD, EOS, V, D = 0, 2, 8, 6


def vqa_like(n: int = 40) -> MultimodalDataset:
    """Types alternate img/txt; img samples alternate positive/negative images."""
    kind = torch.arange(n) % 2  # 0 img, 1 txt
    sign = torch.where((torch.arange(n) // 2) % 2 == 0, 1.0, -1.0)
    image = sign[:, None, None, None] * torch.ones(n, 1, 2, 2)
    word = 5 + torch.arange(n) % 3
    question = torch.stack([kind + 3, word, torch.full((n,), PAD)], 1)
    answer = torch.where(kind == 0, torch.where(sign > 0, 4, 3), word)
    labels = torch.stack([answer, torch.full((n,), EOS), torch.full((n,), PAD)], 1)
    return MultimodalDataset(
        {"image": image, "question": question},
        labels,
        task="generation",
        num_classes=V,
        source_ids={"question": ["img" if k == 0 else "txt" for k in kind.tolist()]},
        meta={"pad_id": PAD, "eos_id": EOS, "needs_image": {"img": True, "txt": False}},
        name="vqa_like",
    )


class LookupVQA(nn.Module):
    modalities = ("image", "question")
    task = "generation"
    supports_missing_modalities = True

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(V, D)
        self.proj = nn.Linear(D, V)  # the only FLOPs: 2 * L * D * V per sample

    def forward(self, inputs: dict[str, Tensor], labels: Tensor) -> Tensor:
        shifted = torch.cat([torch.ones_like(labels[:, :1]), labels[:, :-1]], 1)
        return self.proj(self.embed(shifted) + inputs["image"].mean((1, 2, 3))[:, None, None])

    def generate(self, inputs: dict[str, Tensor], max_len: int) -> Tensor:
        if "question" not in inputs:
            return torch.full((inputs["image"].shape[0], max_len), PAD)
        q = inputs["question"]
        guess = torch.full_like(q[:, 0], 3)
        if "image" in inputs:
            guess = torch.where(inputs["image"].mean((1, 2, 3)) > 0, 4, 3)
        answer = torch.where(q[:, 0] == 3, guess, q[:, 1])
        out = torch.full((q.shape[0], max_len), PAD)
        out[:, 0], out[:, 1] = answer, EOS
        return out


def test_exact_hits_agree_with_the_training_metric() -> None:
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        pred = torch.randint(-1, 4, (32, 5), generator=g)
        target = torch.randint(0, 4, (32, 4), generator=g)
        target[::3, :2] = pred[::3, :2].clamp_min(0)  # make some equal
        hits = exact_hits(pred, target, EOS, PAD)
        assert float(hits.float().mean()) == pytest.approx(
            exact_match(pred, target, eos_id=EOS, pad_id=PAD)
        )
    # padding, generation length and tokens after eos do not matter
    a = torch.tensor([[5, 0, 6, 2, 7, 7]])
    b = torch.tensor([[5, 6, 2]])
    assert bool(exact_hits(a, b, EOS, PAD)[0]) and not bool(exact_hits(a, b[:, :1], EOS, PAD)[0])


def test_missing_modalities_exact_match_and_token_rule() -> None:
    ds, model = vqa_like(), LookupVQA()
    recs = ev.missing_modalities(model, ds, train=ds)
    got = {(r["modality"], r["mode"]): r["value"] for r in recs}
    assert all(r["metric"] == "exact_match" for r in recs)
    # a quarter of the samples are img questions with a positive image: lost without it
    assert got == {
        ("none", "none"): 1.0,
        ("image", "zero"): 0.75,
        ("image", "mean"): 0.75,  # training mean image is 0
        ("image", "drop"): 0.75,
        ("question", "drop"): 0.0,  # token ids: no zero / mean record
    }


def test_snr_curves_noise_the_image_only_and_refuse_tokens() -> None:
    ds, model = vqa_like(200), LookupVQA()
    recs = ev.snr_curves(model, ds, snrs=[None, 1e-4])
    assert [(r["modality"], r["snr"]) for r in recs] == [("image", None), ("image", 1e-4)]
    clean, noisy = (r["value"] for r in recs)
    assert clean == 1.0
    assert 0.55 < noisy < 0.95  # img questions near chance, txt questions still right
    with pytest.raises(ValueError, match=r"'question' of 'vqa_like' holds torch.int64 token ids"):
        ev.snr_curves(model, ds, modalities=["question"])
    with pytest.raises(ValueError, match=r"exactly 2 modalities, got \['image'\]"):
        ev.snr_grid(model, ds)
    with pytest.raises(ValueError, match=r"snr\['question'\].*token ids"):
        ev.missing_modalities(model, ds, modes=["drop"], snr={"question": 1.0})
    with pytest.raises(ValueError, match="emap: needs a classification or regression"):
        ev.emap(model, ds)


def test_by_type_with_and_without_the_image() -> None:
    ds, model = vqa_like(), LookupVQA()
    recs = ev.test_by_type(model, ds, drop=["image"])
    got = {(r["question_type"], r["dropped"]): (r["value"], r["needs_image"]) for r in recs}
    assert got == {
        ("img", "none"): (1.0, 1),
        ("txt", "none"): (1.0, 0),
        ("img", "image"): (0.5, 1),
        ("txt", "image"): (1.0, 0),
    }
    with pytest.raises(ValueError, match=r"no source_ids\['kind'\].*\['question'\]"):
        ev.test_by_type(model, ds, source="kind")
    model.supports_missing_modalities = False  # type: ignore[misc]
    with pytest.raises(ValueError, match="does not support missing modalities"):
        ev.test_by_type(model, ds, drop=["image"])


def test_cost_times_the_teacher_forced_pass() -> None:
    ds, model = vqa_like(), LookupVQA()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    raw = ev.cost(model, ds, throughput_batch=16, train_batch=8, repeats=2, warmup=1)
    recs = {r["metric"]: r["value"] for r in raw}
    # named after what was measured: the batch each speed was timed at is in the record
    sizes = {r["metric"]: r.get("batch_size") for r in raw}
    assert sizes["throughput"] == 16 and sizes["train_samples_per_s"] == 8
    assert recs["flops_per_sample"] == 2 * 3 * D * V  # L = 3 label positions
    assert recs["params"] == V * D + D * V + V
    for key in ("latency_ms_b1", "latency_ms_generate_b1", "throughput",
                "train_samples_per_s"):
        assert recs[key] > 0
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_generation_loss_ignores_padding() -> None:
    ds = vqa_like()
    loss = task_loss(ds.task, pad_id=ds.meta["pad_id"])
    logits = torch.randn(4, 3, V)
    labels = torch.tensor([[4, 2, 0]] * 4)
    changed = logits.clone()
    changed[:, 2] = torch.randn(4, V)  # only the pad position differs
    assert float(loss(logits, labels)) == pytest.approx(float(loss(changed, labels)))
    assert float(loss(logits, labels)) == pytest.approx(
        float(nn.functional.cross_entropy(logits[:, :2].flatten(0, 1), labels[:, :2].flatten()))
    )


class OneLayer(nn.Module):
    """``{x: (B, n, 8)} -> (B, 2)`` through one ``nn.TransformerEncoderLayer`` (fused in eval)."""

    modalities = ("x",)

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0,
                                                batch_first=True)

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        return self.layer(inputs["x"])[:, 0, :2]


def test_flops_count_the_fused_transformer_layer() -> None:
    n, d, ff = 5, 8, 16
    linear = n * (3 * d * d + d * d + 2 * d * ff)  # qkv, out projection, feed-forward
    attention = 2 * n * n * d  # q k^T and weights @ v
    flops = ev.flops_per_sample(OneLayer(), {"x": torch.randn(3, n, d)})
    assert flops == 2 * (linear + attention)
    assert torch.backends.mha.get_fastpath_enabled()  # restored afterwards


class QueryPool(nn.Module):
    """Learned queries attend over ``x (B, n, 8)`` (as token fusion's attention pooling)."""

    modalities = ("x",)

    def __init__(self) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(2, 8))
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        x = inputs["x"]
        q = self.queries.unsqueeze(0).expand(x.shape[0], -1, -1)
        return self.attn(q, x, x, need_weights=False)[0][:, 0, :2]


def test_flops_of_parameter_queries_are_counted() -> None:
    n, d, k = 5, 8, 2
    macs = k * d * d + 2 * n * d * d + 2 * k * n * d + k * d * d  # q, k/v, attention, out
    model = QueryPool().train()
    assert ev.flops_per_sample(model, {"x": torch.randn(3, n, d)}) == 2 * macs
    assert model.training  # mode restored
