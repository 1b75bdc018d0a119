"""Checkpoints: ``state_dict`` + config + metrics, written atomically, read with ``weights_only``.

File content (a ``torch.save`` dict of tensors and plain values only, so loading never unpickles
arbitrary objects)::

    {"format": "fuselab-checkpoint", "version": 1, "model_class": "LateFusion",
     "state_dict": {...}, "config": {...}, "metrics": {...}, "extra": {...}}
"""

from __future__ import annotations

import os
import pickle
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from fuselab.train.config import RUNTIME_KEYS, TrainConfig
from fuselab.train.errors import CheckpointMismatchError

FORMAT = "fuselab-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    """A loaded checkpoint: model weights and the config/metrics it was saved with."""

    state_dict: dict[str, Tensor]
    config: dict[str, Any]
    metrics: dict[str, Any]
    model_class: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _plain_config(config: TrainConfig | Mapping[str, Any] | None) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, TrainConfig):
        return config.to_dict()
    if isinstance(config, Mapping):
        return dict(config)
    raise TypeError(f"checkpoint config: expected a TrainConfig or mapping, got {type(config).__name__}")


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module | Mapping[str, Tensor],
    *,
    config: TrainConfig | Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically: a temp file in the same folder, then ``os.replace``.

    A reader never sees a half-written file, and a crash mid-write leaves the old checkpoint.
    ``model`` may be a module or a ready ``state_dict``. Returns the final path.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(model, nn.Module):
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        model_class = type(model).__name__
    else:
        state = {k: v.detach().cpu() for k, v in model.items()}
        model_class = ""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model_class": model_class,
        "state_dict": state,
        "config": _plain_config(config),
        "metrics": dict(metrics or {}),
        "extra": dict(extra or {}),
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target


def _config_diff(stored: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    keys = sorted(set(stored) | set(expected))
    return [
        f"{k}: checkpoint has {stored.get(k, '<missing>')!r}, expected {expected.get(k, '<missing>')!r}"
        for k in keys
        if k not in RUNTIME_KEYS and stored.get(k, "<missing>") != expected.get(k, "<missing>")
    ]


def check_state_dict(model: nn.Module, state: Mapping[str, Tensor], where: str) -> None:
    """``CheckpointMismatchError`` naming the first missing/unexpected key or shape mismatch."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    if missing or extra:
        raise CheckpointMismatchError(
            f"{where}: weights do not fit {type(model).__name__}: "
            + (f"missing {missing[:3]} " if missing else "")
            + (f"unexpected {extra[:3]}" if extra else "")
        )
    for k, v in own.items():
        if tuple(v.shape) != tuple(state[k].shape):
            raise CheckpointMismatchError(
                f"{where}: parameter {k!r} has shape {tuple(state[k].shape)} in the checkpoint, "
                f"the model expects {tuple(v.shape)}"
            )


def _read(path: str | os.PathLike[str], where: str) -> Any:
    """``torch.load(weights_only=True)`` with errors that say what is wrong with the file.

    torch's own message for a file it cannot read safely advises ``weights_only=False``, which
    would execute whatever the file holds: fuselab never does that, so the advice is dropped.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # pickle-protocol notes on garbage
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointMismatchError(
            f"{where}: not a fuselab checkpoint (it is not a torch file, or it holds objects "
            "other than tensors and plain values, which fuselab never unpickles)") from None
    except (EOFError, RuntimeError, ValueError, OSError) as e:
        first = str(e).split(". ")[0].strip() or type(e).__name__
        raise CheckpointMismatchError(
            f"{where}: cannot be read (empty, truncated or corrupt file: {first})") from None


def load_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module | None = None,
    *,
    config: TrainConfig | Mapping[str, Any] | None = None,
) -> Checkpoint:
    """Read a checkpoint with ``torch.load(weights_only=True)``.

    Args:
        path: file written by :func:`save_checkpoint`.
        model: if given, its weights are checked against the checkpoint and loaded in place.
        config: if given, the checkpoint must have been saved with the same config (keys in
            ``RUNTIME_KEYS`` such as ``progress``/``threads`` are ignored); otherwise a
            :class:`CheckpointMismatchError` lists the differing keys.
    """
    where = f"checkpoint {os.fspath(path)!r}"
    if not Path(path).is_file():
        raise FileNotFoundError(f"{where}: no such file")
    payload = _read(path, where)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointMismatchError(f"{where}: not a fuselab checkpoint (format {FORMAT!r})")
    if payload.get("version") != VERSION:
        raise CheckpointMismatchError(
            f"{where}: checkpoint version {payload.get('version')!r}, this fuselab reads {VERSION}"
        )
    for key, kind in (("state_dict", dict), ("config", dict), ("metrics", dict)):
        if not isinstance(payload.get(key), kind):
            raise CheckpointMismatchError(f"{where}: damaged checkpoint: {key!r} is missing or "
                                          f"not a {kind.__name__}")
    ckpt = Checkpoint(
        state_dict=payload["state_dict"],
        config=payload["config"],
        metrics=payload["metrics"],
        model_class=payload.get("model_class", ""),
        extra=payload.get("extra", {}),
    )
    if config is not None:
        diff = _config_diff(ckpt.config, _plain_config(config))
        if diff:
            raise CheckpointMismatchError(
                f"{where} was saved with another config ({len(diff)} differing keys): "
                + "; ".join(diff[:5])
            )
    if model is not None:
        check_state_dict(model, ckpt.state_dict, where)
        model.load_state_dict(ckpt.state_dict)
    return ckpt
