"""Checkpoints: atomic write, weights_only load, refusal of another config or model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from train_helpers import tiny_model

from fuselab.train import CheckpointMismatchError, TrainConfig, load_checkpoint, save_checkpoint


def test_roundtrip_restores_weights_config_and_metrics(tmp_path: Path) -> None:
    src, dst = tiny_model(seed=0), tiny_model(seed=1)
    cfg = TrainConfig(lr=0.01, train_snr={"a": 0.5})
    path = save_checkpoint(tmp_path / "m.pt", src, config=cfg, metrics={"accuracy": 0.9})
    ckpt = load_checkpoint(path, dst, config=cfg)
    assert ckpt.metrics == {"accuracy": 0.9} and ckpt.model_class == "TinyLate"
    assert TrainConfig.from_dict(ckpt.config) == cfg
    for (k, a), b in zip(src.state_dict().items(), dst.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    # The payload is plain tensors and values: the safe loader reads it directly.
    assert torch.load(path, weights_only=True)["format"] == "fuselab-checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temp file left behind


def test_refuses_checkpoint_from_another_config(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", tiny_model(), config=TrainConfig(lr=0.01))
    with pytest.raises(CheckpointMismatchError, match=r"another config.*lr: checkpoint has 0.01, expected 0.1"):
        load_checkpoint(path, tiny_model(), config=TrainConfig(lr=0.1))
    # Runtime-only keys (progress bar, threads) do not make it another config.
    load_checkpoint(path, tiny_model(), config=TrainConfig(lr=0.01, progress=False, threads=1))


def test_refuses_weights_of_another_architecture(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", tiny_model(out=3))
    with pytest.raises(CheckpointMismatchError, match=r"'head.weight' has shape \(3, 32\).*expects \(5, 32\)"):
        load_checkpoint(path, tiny_model(out=5))


def test_failed_write_keeps_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_model()
    path = save_checkpoint(tmp_path / "m.pt", model, metrics={"epoch": 1})

    def broken_save(obj: object, fh: object) -> None:
        fh.write(b"partial")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, metrics={"epoch": 2})
    monkeypatch.undo()
    assert load_checkpoint(path).metrics == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_rejects_files_that_are_not_checkpoints(tmp_path: Path) -> None:
    bad = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, bad)
    with pytest.raises(CheckpointMismatchError, match="not a fuselab checkpoint"):
        load_checkpoint(bad)
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize("content", [b"", b"garbage" * 20, b"PK\x03\x04truncated zip"])
def test_garbage_files_get_a_clear_message_without_unsafe_advice(tmp_path: Path,
                                                                 content: bytes) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content)
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(bad)
    msg = str(info.value)
    assert msg.startswith(f"checkpoint {str(bad)!r}: ")
    assert "weights_only" not in msg and "\n" not in msg  # torch's advice would run the file


def test_a_pickle_of_arbitrary_objects_is_never_unpickled(tmp_path: Path) -> None:
    import pickle

    bad = tmp_path / "evil.pt"
    bad.write_bytes(pickle.dumps(Path("/x")))  # any class: loading it would call its code
    with pytest.raises(CheckpointMismatchError, match="holds objects other than tensors"):
        load_checkpoint(bad)


def test_a_damaged_payload_names_the_missing_part(tmp_path: Path) -> None:
    bad = tmp_path / "half.pt"
    torch.save({"format": "fuselab-checkpoint", "version": 1, "config": {}}, bad)
    with pytest.raises(CheckpointMismatchError, match="'state_dict' is missing"):
        load_checkpoint(bad)
