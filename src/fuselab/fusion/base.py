"""Base classes of every fusion operator, which validate their inputs on every call.

Two families:

* :class:`FusionOp` — vector operators. Input: ``dict[str, Tensor]`` with one tensor per modality of
  shape ``(B, D_m)`` (or ``(B, T, D_m)`` for operators with ``accepts_sequences``, applied per step
  with one common ``T``). Output: ``(B, out_dim)`` (or ``(B, T, out_dim)``).
* :class:`FeatureMapOp` — feature-map operators (MSAF, MMTM). Input: per-modality tensors
  ``(B, C_m, *spatial_m)``; spatial sizes may differ between modalities. Output: a dict of tensors of
  the same shapes (recalibrated features).

Bad input raises ``ValueError``/``TypeError`` whose message names the modality, what was expected
and what arrived; nothing is broadcast or truncated silently. Every operator's ``check_inputs``
refuses: a non-dict container, a non-tensor or non-floating value, a dtype or device other than
the operator's parameters' (mixed precision is left to autocast: under ``torch.autocast`` the
dtype is not checked), and empty maps or sequences (a zero-size spatial/time dim, whose average
would be NaN). An empty batch (``B = 0``) is valid and gives an empty output. The helpers and the
switch that turns the checks off are in :mod:`fuselab.fusion.checks`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from fuselab.fusion import checks
from fuselab.fusion.checks import (
    check_batch_sizes,
    check_dtype_and_device,
    check_floating,
    check_modality_names,
    check_not_empty,
)


def _signature(inputs: Mapping[str, Tensor]) -> list[tuple] | None:
    """``(name, shape, dtype, device)`` of every input, or ``None`` for anything but a dict of
    tensors (which then always gets the full check)."""
    if type(inputs) is not dict:
        return None
    try:
        return [(n, x.shape, x.dtype, x.device) for n, x in inputs.items()]
    except AttributeError:  # not a tensor: the full check says which modality
        return None


def _forget_after_load(module: nn.Module, _keys: object) -> None:
    module._forget_checked()  # type: ignore[operator]


class FusionOp(nn.Module):
    """Vector fusion operator: ``{m: (B, D_m)} -> (B, out_dim)``.

    Args:
        in_dims: feature width ``D_m`` of every modality, by name.
        out_dim: width of the fused output.

    Attributes:
        accepts_sequences: also accept ``(B, T, D_m)`` inputs (one common ``T``), applied per step.
    """

    accepts_sequences: bool = True

    def __init__(self, in_dims: Mapping[str, int], out_dim: int) -> None:
        super().__init__()
        if not in_dims:
            raise ValueError(f"{type(self).__name__}: in_dims must name at least one modality")
        for name, d in in_dims.items():
            if not isinstance(d, int) or isinstance(d, bool) or d <= 0:
                raise ValueError(
                    f"{type(self).__name__}: in_dims[{name!r}] must be a positive int, got {d!r}"
                )
        if not isinstance(out_dim, int) or out_dim <= 0:
            raise ValueError(
                f"{type(self).__name__}: out_dim must be a positive int, got {out_dim!r}"
            )
        self.in_dims: dict[str, int] = dict(in_dims)
        self.out_dim = out_dim
        self._forget_checked()
        self.register_load_state_dict_post_hook(_forget_after_load)

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality names in declaration order (the order used for concatenation)."""
        return tuple(self.in_dims)

    # The full check costs ~30 us a call (more than the products of a small operator), so the
    # signature of the last inputs that passed it is kept and equal inputs skip it: names,
    # shapes, dtypes and devices, ``same_length`` and, for inputs that passed only because
    # autocast was on (``check_dtype_and_device`` says so), that it still is. Whatever can
    # change the parameters' dtype or device (`.to()`, `load_state_dict`) forgets it. The
    # comparison is kept to a few C calls: right after a backward pass Python runs from cold
    # caches, where each attribute read costs ~1 us.
    def _forget_checked(self) -> None:
        self.__dict__["_checked"] = None

    def _apply(self, fn: Any, recurse: bool = True) -> Any:
        self._forget_checked()
        return super()._apply(fn, recurse)

    def check_inputs(self, inputs: Mapping[str, Tensor], same_length: bool = True) -> None:
        """Validate names, dtypes, ranks, widths and batch/sequence sizes of ``inputs``.

        ``same_length=False`` lets sequence inputs differ in ``T`` (cross-modal attention).
        Nothing is checked while :func:`~fuselab.fusion.set_input_checks` is off.
        """
        if not checks._enabled:
            return
        if torch.compiler.is_compiling():  # under torch.compile the checks become guards
            self._full_check(inputs, same_length)
            return
        sig = _signature(inputs)
        last = self.__dict__.get("_checked")  # .get: a module unpickled from before it
        if (
            sig is not None
            and last is not None
            and sig == last[0]
            and same_length == last[1]
            and (last[2] is None or torch.is_autocast_enabled(last[2]))
        ):
            return
        autocast_kind = self._full_check(inputs, same_length)
        if sig is not None:
            self.__dict__["_checked"] = (sig, same_length, autocast_kind)

    def _full_check(self, inputs: Mapping[str, Tensor], same_length: bool) -> str | None:
        """The checks; returns the device type whose autocast let a dtype through, if any."""
        where = type(self).__name__
        check_modality_names(inputs, self.in_dims, where)
        ranks = (2, 3) if self.accepts_sequences else (2,)
        for name, d in self.in_dims.items():
            x = inputs[name]
            check_floating(name, x, where)
            if x.dim() not in ranks:
                want = f"(B, {d})" + (f" or (B, T, {d})" if self.accepts_sequences else "")
                raise ValueError(
                    f"{where}: modality {name!r}: expected shape {want}, got {tuple(x.shape)}"
                )
            if x.shape[-1] != d:
                raise ValueError(
                    f"{where}: modality {name!r}: expected feature width {d}, "
                    f"got shape {tuple(x.shape)}"
                )
            check_not_empty(name, x, range(1, x.dim() - 1), "sequence", where)
        check_batch_sizes(inputs, where)
        autocast_kind = check_dtype_and_device(self, inputs, where)
        ranks_seen = {inputs[m].dim() for m in self.in_dims}
        if len(ranks_seen) > 1:
            shapes = {m: tuple(inputs[m].shape) for m in self.in_dims}
            raise ValueError(f"{where}: mix of vector and sequence inputs: {shapes}")
        if ranks_seen == {3} and same_length:
            lengths = {m: inputs[m].shape[1] for m in self.in_dims}
            if len(set(lengths.values())) > 1:
                raise ValueError(f"{where}: sequence length mismatch between modalities: {lengths}")
        return autocast_kind

    def extra_repr(self) -> str:
        return f"in_dims={self.in_dims}, out_dim={self.out_dim}"


class FeatureMapOp(nn.Module):
    """Feature-map operator: ``{m: (B, C_m, *spatial_m)} -> {m: same shape}``.

    Args:
        in_channels: channel count ``C_m`` of every modality, by name (dimension 1 of its tensor).
    """

    def __init__(self, in_channels: Mapping[str, int]) -> None:
        super().__init__()
        if not in_channels:
            raise ValueError(f"{type(self).__name__}: in_channels must name at least one modality")
        for name, c in in_channels.items():
            if not isinstance(c, int) or isinstance(c, bool) or c <= 0:
                raise ValueError(
                    f"{type(self).__name__}: in_channels[{name!r}] must be a positive int, got {c!r}"
                )
        self.in_channels: dict[str, int] = dict(in_channels)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.in_channels)

    def check_inputs(
        self, inputs: Mapping[str, Tensor], min_rank: int = 3, channels_last: bool = False
    ) -> None:
        """Validate names, dtypes, ranks (``>= min_rank``), channels and batch sizes.

        ``channels_last=True`` checks sequence inputs ``(B, T, C)`` (exactly rank 3, channels at
        the last dim) instead of ``(B, C, *spatial)``. Nothing is checked while
        :func:`~fuselab.fusion.set_input_checks` is off.
        """
        if not checks._enabled:
            return
        where = type(self).__name__
        check_modality_names(inputs, self.in_channels, where)
        for name, c in self.in_channels.items():
            x = inputs[name]
            check_floating(name, x, where)
            if channels_last and x.dim() != 3:
                raise ValueError(
                    f"{where}: modality {name!r}: expected a sequence of shape (B, T, {c}), "
                    f"got {tuple(x.shape)}"
                )
            if x.dim() < min_rank:
                raise ValueError(
                    f"{where}: modality {name!r}: expected shape (B, {c}, *spatial) with at least "
                    f"{min_rank} dims, got {tuple(x.shape)}"
                )
            dim = x.dim() - 1 if channels_last else 1
            if x.shape[dim] != c:
                raise ValueError(
                    f"{where}: modality {name!r}: expected {c} channels at dim {dim}, "
                    f"got shape {tuple(x.shape)}"
                )
            spatial = range(1, x.dim() - 1) if channels_last else range(2, x.dim())
            check_not_empty(name, x, spatial, "map (its average would be NaN)", where)
        check_batch_sizes(inputs, where)
        check_dtype_and_device(self, inputs, where)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}"


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (elements) of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


__all__ = [
    "FeatureMapOp",
    "FusionOp",
    "check_batch_sizes",
    "check_dtype_and_device",
    "check_floating",
    "check_modality_names",
    "check_not_empty",
    "count_parameters",
]
