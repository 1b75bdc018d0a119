"""The evaluations on fuselab's own model families (tiny AV-MNIST-shaped inputs)."""

from __future__ import annotations

import pytest
import torch

import fuselab.evaluate as ev
import fuselab.models as fm
from fuselab.data import MultimodalDataset
from fuselab.evaluate._cells import _check_factorisable

ENC = {
    "image": {"type": "lenet", "kernels": [5, 3], "channels": 4},
    "audio": {"type": "lenet", "kernels": [5, 3], "channels": 4},
}


def _data(n: int = 24) -> MultimodalDataset:
    g = torch.Generator().manual_seed(0)
    return MultimodalDataset(
        {
            "image": torch.rand(n, 1, 12, 12, generator=g),
            "audio": torch.randn(n, 1, 16, 8, generator=g),
        },
        torch.arange(n) % 4,
        num_classes=4,
    )


def _build(**config) -> torch.nn.Module:
    base = {"name": "staged", "encoders": ENC, "head": {"hidden": [8]}}
    return fm.build({**base, **config}, input_shapes=_data().shapes, num_outputs=4).eval()


def test_late_fusion_model_is_factorised_exactly() -> None:
    ds = _data()
    model = _build(fusion=[{"at": "late", "operator": "concat"}])
    assert _check_factorisable(model, ds) == (None, True)
    grid = [None, 1.0, 0.25]
    fast = ev.snr_grid(model, ds, grid, batch_size=10, factorize=True)
    direct = ev.snr_grid(model, ds, grid, batch_size=10, factorize=False)
    assert [r["value"] for r in fast] == pytest.approx([r["value"] for r in direct], abs=1 / 24)


def test_msaf_model_attention_and_no_factorisation() -> None:
    ds = _data()
    model = _build(
        fusion=[
            {
                "at": {"image": "conv1", "audio": "conv1"},
                "operator": "msaf",
                "options": {"reduction": 1},
            },
            {"at": "late", "operator": "concat"},
        ]
    )
    modules = ev.find_attention_modules(model)
    assert len(modules) == 1
    (name, op), *_ = modules.items()
    # a freshly initialised MSAF can be input-independent (all join ReLUs dead: then the model
    # *is* factorisable); positive weights on the positive post-ReLU maps keep the joint
    # representation alive, so the cross-modal recalibration is real
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in op.parameters():
            p.copy_(0.1 + torch.rand(p.shape, generator=g))
    assert "depend on the other modalities" in str(_check_factorisable(model, ds)[0])
    recs = ev.msaf_attention(model, ds)
    assert {(r["module"], r["modality"]) for r in recs} == {(name, "image"), (name, "audio")}
    assert {r["class"] for r in recs} == {0, 1, 2, 3}
    width = {m: op.in_channels[m] for m in ("image", "audio")}
    for r in recs:  # factors lie in (0, 1]: the sum is bounded by the padded channel count
        assert 0 < r["value"] <= width[r["modality"]] + op.block_channel


def test_progressive_fusion_probes_per_step() -> None:
    model = _build(
        fusion=[{"at": "late", "operator": "concat"}], progressive={"steps": 2, "context_dim": 4}
    )
    recs = ev.linear_probes(model, _data(16), train=_data(32))
    assert {(r["step"], r["modality"]) for r in recs} == {
        (1, "image"), (1, "audio"), (2, "image"), (2, "audio"),
    }  # fmt: skip
    assert all(0.0 <= r["value"] <= 1.0 for r in recs)


def test_clstm_step_activations() -> None:
    ds = _data(4)
    model = fm.build(
        {"name": "clstm", "fusion_layer": "initial", "units": 2, "hidden": 4},
        input_shapes=ds.shapes,
        num_outputs=4,
    ).eval()
    recs = ev.clstm_activations(model, ds, samples=[2])
    with torch.no_grad():
        clean = model.step_logits({m: x[[2]] for m, x in ds.modalities.items()})
    steps = clean.shape[1]
    assert len(recs) == 4 * steps * 4  # scenarios x steps x classes
    for r in recs:
        if r["snr_audio"] is None and r["snr_image"] is None:
            assert r["value"] == pytest.approx(float(clean[0, r["step"], r["class"]]), abs=1e-5)
