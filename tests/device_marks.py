"""Prove, without a GPU, that model inputs reach the model through :mod:`fuselab.device`.

:func:`mark_moves` makes :func:`fuselab.device.move_tensor` (which :func:`~fuselab.device.move`
and :meth:`MultimodalDataset.batches` with ``device`` call) return a :class:`Moved` tensor.
``Moved`` is a plain tensor subclass, so every torch op on it returns ``Moved`` again: slices,
noise and transforms of a moved batch stay marked. :func:`guard` makes a model refuse any input
tensor that is not marked, at ``forward`` and at the other entry points evaluations call. On a
GPU, an input that skipped the move would be a CPU tensor reaching a CUDA model.
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from fuselab import device as D

ENTRY_POINTS = ("unimodal_features", "step_features", "step_logits", "generate")


class Moved(torch.Tensor):
    """A tensor that went through ``fuselab.device.move_tensor`` (or was computed from one)."""


def mark_moves(monkeypatch: pytest.MonkeyPatch) -> None:
    real = D.move_tensor
    monkeypatch.setattr(D, "move_tensor",
                        lambda x, device: real(x, device).as_subclass(Moved))


def unmoved(value: Any, where: str = "input") -> list[str]:
    """Paths of the tensors in ``value`` (nested dicts/sequences) that are not :class:`Moved`."""
    if isinstance(value, Tensor):
        return [] if isinstance(value, Moved) else [where]
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in unmoved(v, f"{where}[{k!r}]")]
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [p for i, v in enumerate(value) for p in unmoved(v, f"{where}[{i}]")]
    return []


def _check(what: str, args: tuple[Any, ...]) -> None:
    bad = unmoved(list(args))
    if bad:
        raise AssertionError(f"{what} got tensors that did not go through fuselab.device: {bad}")


def guard(model: nn.Module) -> nn.Module:
    """``model``, refusing unmoved inputs at ``forward`` and :data:`ENTRY_POINTS` (kept by
    ``copy.deepcopy``: the wrappers are bound methods, which deepcopy rebinds to the copy)."""
    model.register_forward_pre_hook(lambda mod, args: _check(f"{type(mod).__name__}.forward", args))
    for name in ENTRY_POINTS:
        if callable(getattr(model, name, None)):
            def entry(self: nn.Module, *args: Any, _name: str = name, **kwargs: Any) -> Any:
                _check(f"{type(self).__name__}.{_name}", args)
                return getattr(type(self), _name)(self, *args, **kwargs)

            setattr(model, name, types.MethodType(entry, model))
    return model
