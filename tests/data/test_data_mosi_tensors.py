"""MOSI-layout files (pickle only when trusted, restricted) and user tensors."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

import fuselab.data as fd


def _mosi_layout(rng: np.random.Generator) -> dict:
    out = {}
    for key, n in (("train", 12), ("valid", 5), ("test", 6)):
        audio = rng.normal(size=(n, 7, 5)).astype(np.float32)
        audio[0, 0, 0] = -np.inf  # as in the real COVAREP features
        out[key] = {
            "text": rng.normal(size=(n, 7, 4)).astype(np.float32),
            "audio": audio,
            "vision": rng.normal(size=(n, 7, 3)).astype(np.float32),
            "labels": rng.uniform(-3, 3, size=(n, 1, 1)).astype(np.float32),
            "id": np.array([[f"vid{i}", str(i)] for i in range(n)]),
        }
    return out


@pytest.fixture
def mosi_file(tmp_path):
    layout = _mosi_layout(np.random.default_rng(0))
    path = tmp_path / "mosi" / "mosi_data.pkl"
    path.parent.mkdir()
    path.write_bytes(pickle.dumps(layout))
    return path, layout


def test_mosi_pickle_needs_trust_and_then_loads(mosi_file, tmp_path):
    _, layout = mosi_file
    with pytest.raises(ValueError, match="trust_pickle=True"):
        fd.load("mosi", root=tmp_path, split="train")
    ds = fd.load("mosi", root=tmp_path, split="val", trust_pickle=True)
    assert ds.task == "regression" and ds.shapes == {
        "text": (7, 4),
        "audio": (7, 5),
        "vision": (7, 3),
    }
    assert torch.equal(ds.labels, torch.from_numpy(layout["valid"]["labels"][:, 0, 0]))
    assert torch.equal(ds.modalities["text"], torch.from_numpy(layout["valid"]["text"]))
    assert (
        float(ds.modalities["audio"][0, 0, 0]) == 0.0
        and torch.isfinite(ds.modalities["audio"]).all()
    )
    assert ds.source_ids["audio"][3] == "vid3/3"


def test_mosi_label_modes(mosi_file):
    path, layout = mosi_file
    y = layout["test"]["labels"][:, 0, 0]
    b = fd.load("mosi", path=path, split="test", trust_pickle=True, label_mode="binary_nonneg")
    assert b.labels.tolist() == (y >= 0).astype(int).tolist() and b.num_classes == 2
    s = fd.load("mosi", path=path, split="test", trust_pickle=True, label_mode="7class")
    assert s.labels.tolist() == (np.round(np.clip(y, -3, 3)) + 3).astype(int).tolist()
    with pytest.raises(ValueError, match="label_mode"):
        fd.load("mosi", path=path, split="test", trust_pickle=True, label_mode="5class")


def test_restricted_unpickler_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"train": Evil()}))
    with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle"):
        fd.load("mosi", path=path, trust_pickle=True)


def test_mosi_npz_needs_no_pickle(tmp_path):
    layout = _mosi_layout(np.random.default_rng(1))
    flat = {f"{s}/{k}": v for s, part in layout.items() for k, v in part.items() if k != "id"}
    np.savez(tmp_path / "mosi.npz", **flat)
    ds = fd.load("mosi", path=tmp_path / "mosi.npz", split="train", modalities=("text", "vision"))
    assert ds.names == ("text", "vision") and len(ds) == 12
    with pytest.raises(ValueError, match="lacks"):
        fd.load("mosei", path=tmp_path / "mosi.npz", modalities=("text", "smell"))


def test_tensors_in_memory_split_8_1_1_without_overlap():
    a = np.arange(100, dtype=np.float64)[:, None].repeat(3, 1)
    y = np.arange(100) % 4
    parts = fd.load_splits("tensors", data={"a": a, "b": torch.ones(100, 2)}, labels=y, seed=2)
    assert [len(p) for p in parts.values()] == [80, 10, 10]
    rows = [set(p.modalities["a"][:, 0].long().tolist()) for p in parts.values()]
    assert set.union(*rows) == set(range(100)) and sum(map(len, rows)) == 100
    tr = parts["train"]
    assert tr.modalities["a"].dtype == torch.float32 and tr.num_classes == 4
    assert torch.equal(tr.labels, tr.modalities["a"][:, 0].long() % 4)  # rows stay aligned


def test_tensors_from_files(tmp_path):
    save_file(
        {
            "train/x": np.ones((4, 2), np.float32),
            "train/labels": np.array([0, 1, 1, 0]),
            "test/x": np.zeros((2, 2), np.float32),
            "test/labels": np.array([1, 0]),
        },
        str(tmp_path / "d.safetensors"),
    )
    ds = fd.load("tensors", root=tmp_path, path="d.safetensors", split="test", num_classes=2)
    assert len(ds) == 2 and ds.labels.tolist() == [1, 0]
    with pytest.raises(ValueError, match="none for 'val'"):
        fd.load("tensors", root=tmp_path, path="d.safetensors", split="val")
    np.savez(tmp_path / "r.npz", x=np.ones((10, 3)), labels=np.linspace(0, 1, 10))
    reg = fd.load("tensors", path=tmp_path / "r.npz", task="regression")
    assert reg.task == "regression" and reg.labels.dtype == torch.float32 and len(reg) == 8


def test_tensors_bad_input_is_named():
    with pytest.raises(ValueError, match="modality 'b' has 3 samples, labels have 4"):
        fd.load("tensors", data={"a": np.ones((4, 1)), "b": np.ones((3, 1))}, labels=np.zeros(4))
    with pytest.raises(TypeError, match="classification labels must be integers"):
        fd.load("tensors", data={"a": np.ones((4, 1))}, labels=np.array([0.5, 1, 2, 3]))
    with pytest.raises(TypeError, match="modality 'a'"):
        fd.load("tensors", data={"a": [1, 2, 3, 4]}, labels=np.zeros(4))


def test_mosi_binary_drops_zero_labels_and_its_accuracy_is_acc2(tmp_path):
    from fuselab.train.metrics import acc2, accuracy

    layout = _mosi_layout(np.random.default_rng(1))
    y = np.round(layout["test"]["labels"][:, 0, 0])  # integer sentiments: some exactly 0
    y[[1, 4]] = 0.0
    layout["test"]["labels"] = y.reshape(-1, 1, 1).astype(np.float32)
    path = tmp_path / "mosi.pkl"
    path.write_bytes(pickle.dumps(layout))
    full = fd.load("mosi", path=path, split="test", trust_pickle=True)
    b = fd.load("mosi", path=path, split="test", trust_pickle=True, label_mode="binary")
    nonzero = np.flatnonzero(y != 0)
    assert len(b) == len(nonzero) == len(y) - int((y == 0).sum()) and b.meta["dropped_zero_labels"] >= 2
    assert b.labels.tolist() == (y[nonzero] > 0).astype(int).tolist()
    assert b.source_ids["text"] == [full.source_ids["text"][i] for i in nonzero]
    assert torch.equal(b.modalities["vision"], full.modalities["vision"][nonzero])
    # a regressor's Acc-2 on every sample = the accuracy of its sign on the binary split
    preds = torch.linspace(-2, 2, len(y))
    logits = torch.stack([-preds, preds], 1)[torch.from_numpy(nonzero)]
    assert acc2(preds, full.labels) == pytest.approx(accuracy(logits, b.labels))
