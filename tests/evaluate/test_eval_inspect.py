"""Inspection: MSAF attention per class, C-LSTM step activations, Pro-Fusion linear probes."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import fuselab.evaluate as ev
import fuselab.fusion as ff
from fuselab.data import MultimodalDataset
from fuselab.fusion import FeatureMapOp


class ToyMSAF(FeatureMapOp):
    """Attention = per-channel spatial mean, in blocks of 2 channels: ``{m: (B, C_m / 2, 2)}``."""

    def __init__(self) -> None:
        super().__init__({"a": 4, "b": 2})

    def attention(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        return {m: x.mean(2).view(x.shape[0], -1, 2) for m, x in inputs.items()}

    def forward(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        att = self.attention(inputs)
        return {m: x * att[m].reshape(x.shape[0], -1, 1) for m, x in inputs.items()}


class ToyMSAFModel(nn.Module):
    modalities = ("a", "b")

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleDict({"msaf": ToyMSAF()})
        self.head = nn.Linear(6, 3)

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        y = self.blocks["msaf"]({"a": inputs["a"], "b": inputs["b"]})
        return self.head(torch.cat([y["a"].mean(2), y["b"].mean(2)], 1))


def _maps(n: int) -> MultimodalDataset:
    g = torch.Generator().manual_seed(0)
    return MultimodalDataset(
        {"a": torch.randn(n, 4, 3, generator=g), "b": torch.randn(n, 2, 5, generator=g)},
        torch.arange(n) % 3,
        num_classes=3,
    )


def test_msaf_attention_summed_per_modality_and_averaged_per_class() -> None:
    ds = _maps(30)
    recs = ev.msaf_attention(ToyMSAFModel(), ds, batch_size=7)
    assert all(
        set(r) == {"evaluation", "metric", "value", "modality", "class", "module"} for r in recs
    )
    got = {(r["module"], r["modality"], r["class"]): r["value"] for r in recs}
    assert len(got) == 2 * 3
    for m, x in ds.modalities.items():
        per_sample = x.mean(2).sum(1)  # sum over blocks and channels of the spatial means
        for c in range(3):
            want = float(per_sample[ds.labels == c].mean())
            assert got[("blocks.msaf", m, c)] == pytest.approx(want, abs=1e-6)


def test_msaf_attention_on_the_real_operator() -> None:
    assert "msaf" in ff.available()
    op = ff.build("msaf", in_channels={"a": 4, "b": 2}, block_channel=2, reduction=1)

    class M(nn.Module):
        modalities = ("a", "b")

        def __init__(self) -> None:
            super().__init__()
            self.fuse = op
            self.head = nn.Linear(6, 3)

        def forward(self, inputs: dict[str, Tensor]) -> Tensor:
            y = self.fuse(dict(inputs))
            return self.head(torch.cat([y["a"].mean(2), y["b"].mean(2)], 1))

    ds = _maps(12)
    model = M().eval()
    recs = ev.msaf_attention(model, ds)
    with torch.no_grad():
        att = op.attention(dict(ds.modalities))
    for r in recs:
        a = att[r["modality"]].reshape(12, -1).sum(1)
        assert r["value"] == pytest.approx(float(a[ds.labels == r["class"]].mean()), abs=1e-5)


def test_msaf_attention_needs_an_msaf_module() -> None:
    with pytest.raises(ValueError, match="has no MSAF module"):
        ev.msaf_attention(nn.Linear(2, 2), _maps(3))


class ToyCLSTM(nn.Module):
    """``step_logits``: class scores accumulate audio frames over time on top of an image prior."""

    modalities = ("audio", "image")

    def step_logits(self, inputs: dict[str, Tensor]) -> Tensor:
        audio, image = inputs["audio"], inputs["image"]  # (B, T, 2), (B, 2)
        return image[:, None, :] + audio.cumsum(1)

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        return self.step_logits(inputs)[:, -1]


def _clstm_data(n: int = 6, t: int = 5) -> MultimodalDataset:
    g = torch.Generator().manual_seed(1)
    return MultimodalDataset(
        {"audio": torch.randn(n, t, 2, generator=g), "image": torch.randn(n, 2, generator=g)},
        torch.arange(n) % 2,
        num_classes=2,
    )


def test_clstm_activations_follow_step_logits() -> None:
    ds = _clstm_data()
    model = ToyCLSTM()
    recs = ev.clstm_activations(model, ds, samples=[1, 4], seed=2)
    assert len(recs) == 2 * 4 * 5 * 2  # samples x default scenarios x steps x classes
    assert set(recs[0]) == {
        "evaluation", "metric", "value", "step", "class", "sample", "snr_audio", "snr_image",
    }  # fmt: skip
    clean = model.step_logits({m: x[[1, 4]] for m, x in ds.modalities.items()})
    for r in recs:
        if r["snr_audio"] is None and r["snr_image"] is None:
            row = 0 if r["sample"] == 1 else 1
            assert r["value"] == pytest.approx(float(clean[row, r["step"], r["class"]]))
    # the noisy scenario equals step_logits on the dataset's own noisy batch for that seed
    sub = ds.subset([1, 4])
    gen = torch.Generator().manual_seed(2)
    noisy_in, _ = next(sub.batches(2, snr={"audio": 0.5, "image": 0.5}, noise_generator=gen))
    noisy = model.step_logits(noisy_in)
    got = {
        (r["sample"], r["step"], r["class"]): r["value"]
        for r in recs
        if r["snr_audio"] == 0.5 and r["snr_image"] == 0.5
    }
    assert got[(4, 3, 1)] == pytest.approx(float(noisy[1, 3, 1]))
    assert got[(4, 3, 1)] != pytest.approx(float(clean[1, 3, 1]))


def test_clstm_bad_input() -> None:
    with pytest.raises(TypeError, match="no step_logits"):
        ev.clstm_activations(nn.Linear(2, 2), _clstm_data())
    with pytest.raises(ValueError, match="samples"):
        ev.clstm_activations(ToyCLSTM(), _clstm_data(), samples=[6])
    with pytest.raises(ValueError, match=r"scenarios\[0\]"):
        ev.clstm_activations(ToyCLSTM(), _clstm_data(), scenarios=[{"audio": 0.0}])


class ToyProFusion(nn.Module):
    """Step 1: both representations carry only noise; step 2: ``a``'s carries the label."""

    modalities = ("a", "b")

    def step_features(self, inputs: dict[str, Tensor]) -> list[dict[str, Tensor]]:
        a, b = inputs["a"], inputs["b"]
        return [{"a": b, "b": b}, {"a": a, "b": b}]

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        return inputs["a"][:, :3]


def _probe_data(n: int, seed: int) -> MultimodalDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    a = 3 * nn.functional.one_hot(y, 4).float() + 0.3 * torch.randn(n, 4, generator=g)
    return MultimodalDataset({"a": a, "b": torch.randn(n, 4, generator=g)}, y, num_classes=3)


def test_linear_probes_per_step_and_modality() -> None:
    recs = ev.linear_probes(ToyProFusion(), _probe_data(150, 1), train=_probe_data(300, 0))
    assert all(set(r) == {"evaluation", "metric", "value", "step", "modality"} for r in recs)
    got = {(r["step"], r["modality"]): r["value"] for r in recs}
    assert set(got) == {(1, "a"), (1, "b"), (2, "a"), (2, "b")}
    assert got[(2, "a")] == 1.0
    assert got[(1, "a")] < 0.6 and got[(2, "b")] < 0.6


def test_linear_probes_old_argument_order_warns_and_matches() -> None:
    good = _probe_data(150, 1)
    shuffled = _probe_data(300, 0)
    shuffled = MultimodalDataset(dict(shuffled.modalities), shuffled.labels[torch.randperm(
        300, generator=torch.Generator().manual_seed(2))], num_classes=3)
    new = ev.linear_probes(ToyProFusion(), good, train=shuffled)
    with pytest.warns(DeprecationWarning, match=r"linear_probes\(model, train, test\) is deprecated"):
        old = ev.linear_probes(ToyProFusion(), shuffled, good)
    assert old == new
    # fitted on label noise, the probes score near chance even on the informative step
    assert max(r["value"] for r in new) < 0.6
    with pytest.raises(TypeError, match="needs train="):
        ev.linear_probes(ToyProFusion(), good)


def test_fit_probe_folds_standardisation() -> None:
    # separable along a feature 10^4 times smaller than another: needs the standardisation
    g = torch.Generator().manual_seed(0)
    y = torch.arange(60) % 2
    x = torch.randn(60, 3, generator=g)
    x[:, 1] = (2 * y - 1) * (1 + x[:, 1].abs())
    x = x * torch.tensor([100.0, 0.01, 1.0]) + 5
    probe = ev.fit_probe(x, y, 2)
    assert float((probe(x).argmax(1) == y).float().mean()) == 1.0


def test_linear_probes_need_step_features() -> None:
    with pytest.raises(TypeError, match="no step_features"):
        ev.linear_probes(ToyMSAFModel(), _maps(6), train=_maps(6))
