"""Progressive Fusion (paper 001): late-fused context fed back into the unimodal encoders.

For a base model ``P(F(G_1(x_1), ..., G_K(x_K)))`` (eq. 7-9 of paper 001)::

    c_0 = 0
    G^_i(x_i, c) = G_i(x_i (+) W_i(c))          # (+): "add" or "concat" (extra input channels)
    c_t = E(F(G^_1(x_1, c_{t-1}), ..., G^_K(x_K, c_{t-1})))     t = 1 .. R
    y   = P(F(...)) of step R                   readout "fused" (the authors' pseudo-code)
    y   = P(c_R)                                readout "context" (eq. 9)

``W_i`` and ``E`` are linear maps without bias, shared across steps; gradients flow through all R
steps. With ``zero_init`` the ``W_i`` start at zero, so every step repeats the base computation and
the output equals the base model's. ``mode="iterative"`` is the ablation of paper 001 Table 5 /
Figure 12: ``c^i_t = E_i(G^_i(x_i, c^i_{t-1}))`` feeds each encoder its own features, no
cross-modal path.

The base must expose ``modalities``, ``unimodal_features(inputs, inject)``, ``fuse``, ``predict``,
``fused_dim``, ``feature_dims``, ``injection_points(at)``, ``widened(extra)`` and
``fusion_parameters()``: late-style staged models and the C-LSTM ``fc`` model do.
``readout="context"`` also needs ``P`` to be an :class:`MLPHead` at ``base.head`` (late staged
models merged at ``late``): it is replaced by a head of the same widths on ``context_dim`` inputs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from torch import Tensor, nn

from fuselab._validate import choice, flag, known_keys, pos_int
from fuselab.models.head import MLPHead
from fuselab.models.shapes import Shape, broadcast_channels, concat_channels
from fuselab.models.step_stats import StepStats

PROTOCOL = ("unimodal_features", "fuse", "predict", "injection_points", "widened",
            "feature_dims", "fused_dim", "modalities", "fusion_parameters")
PROGRESSIVE_KEYS = ("steps", "context_dim", "inject", "channels", "zero_init", "mode", "at",
                    "readout", "norm_stats")


class ProgressiveFusion(nn.Module):
    """Unroll a late-style model ``steps`` times with back-projected context.

    Args:
        base: a late-style model (see module docstring). With ``inject="concat"`` a widened copy
            of it is made (same weights, extra input channels); with ``"add"`` it is used as is.
        steps: unroll steps ``R >= 1`` (``R = 1`` is the base model).
        context_dim: width of ``c_t``.
        inject: ``"concat"`` (``W_i(c)`` as ``channels`` extra channels, constant over space/time)
            or ``"add"`` (``W_i(c)`` reshaped to the injected tensor and added).
        zero_init: back-projections ``W_i`` start at zero (output equals the base's).
        mode: ``"progressive"`` or ``"iterative"``.
        at: where ``W_i(c)`` enters every branch: ``"input"`` or a stage name / count.
        channels: extra channels for ``inject="concat"``.
        readout: ``"fused"`` (predict from ``F(...)`` of step R) or ``"context"`` (eq. 9:
            predict from ``c_R = E(F(...))``; ``mode="progressive"`` only).
        norm_stats: BatchNorm running statistics of the base: ``"shared"`` by all steps (the
            same layers run R times, as in the authors' code) or ``"per_step"`` (one set per
            step, :class:`~fuselab.models.step_stats.StepStats`; the paper is silent).

    Shapes: ``{m: (B, *shape_m)} -> (B, num_outputs)``; ``step_features(inputs)`` -> one
    ``{m: (B, feature_dims[m])}`` per step.
    """

    def __init__(
        self,
        base: nn.Module,
        steps: int = 2,
        context_dim: int = 64,
        inject: str = "concat",
        zero_init: bool = False,
        mode: str = "progressive",
        at: str | int = "input",
        channels: int = 4,
        readout: str = "fused",
        norm_stats: str = "shared",
        where: str = "progressive",
    ) -> None:
        super().__init__()
        missing = [a for a in PROTOCOL if not hasattr(base, a)]
        if missing:
            raise TypeError(f"{where}: ProgressiveFusion needs a late-style base model of the form "
                            f"P(F(G_1(x_1), ..., G_K(x_K))) (a staged model fused at 'late' or "
                            f"'decision', or the C-LSTM 'fc' model); {type(base).__name__} lacks "
                            f"{missing[0]!r}")
        self.steps = pos_int(steps, f"{where}.steps")
        self.context_dim = pos_int(context_dim, f"{where}.context_dim")
        self.inject = choice(inject, f"{where}.inject", ("concat", "add"))
        self.mode = choice(mode, f"{where}.mode", ("progressive", "iterative"))
        self.zero_init = flag(zero_init, f"{where}.zero_init")
        self.channels = pos_int(channels, f"{where}.channels")
        self.readout = choice(readout, f"{where}.readout", ("fused", "context"))
        self.norm_stats = choice(norm_stats, f"{where}.norm_stats", ("shared", "per_step"))
        points: dict[str, tuple[int, Shape]] = base.injection_points(at, f"{where}.at")  # type: ignore[operator]
        self.points = points
        if self.inject == "concat":
            base = base.widened({m: (k, self.channels) for m, (k, _) in points.items()})  # type: ignore[operator]
        if self.readout == "context":
            base = _context_readout(base, self.mode, self.inject, self.context_dim, where)
        self.base = base
        fdims: dict[str, int] = dict(base.feature_dims)  # type: ignore[arg-type]
        if self.mode == "progressive":
            self.context: nn.Module = nn.Linear(int(base.fused_dim), self.context_dim, bias=False)  # type: ignore[arg-type]
        else:
            self.context = nn.ModuleDict(
                {m: nn.Linear(fdims[m], self.context_dim, bias=False) for m in points}
            )
        # no bias: c = 0 must inject exactly nothing (paper: c = 0 implies F^(x, c) = F(x))
        self.back = nn.ModuleDict({
            m: nn.Linear(self.context_dim, self.channels if self.inject == "concat" else s.numel,
                         bias=False)
            for m, (_, s) in points.items()
        })
        if self.zero_init:
            for lin in self.back.values():
                nn.init.zeros_(lin.weight)  # type: ignore[arg-type]
        self.step_stats = StepStats(base, self.steps if self.norm_stats == "per_step" else 1)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.base.modalities)  # type: ignore[arg-type]

    @property
    def feature_dims(self) -> dict[str, int]:
        return dict(self.base.feature_dims)  # type: ignore[arg-type]

    def _injector(self, m: str, c: Tensor) -> Callable[[Tensor], Tensor]:
        shape = self.points[m][1]
        v = self.back[m](c)
        if self.inject == "add":
            return lambda x: x + v.reshape(x.shape)
        return lambda x: concat_channels(x, broadcast_channels(v, shape), shape.kind)

    def _unroll(self, inputs: Mapping[str, Tensor]) -> tuple[list[dict[str, Tensor]], Tensor]:
        first = inputs.get(self.modalities[0])
        if first is None:
            raise ValueError(f"ProgressiveFusion: missing modality {self.modalities[0]!r} "
                             f"(expected {list(self.modalities)}, got {sorted(inputs)})")
        zeros = first.new_zeros(first.shape[0], self.context_dim)
        ctx: dict[str, Tensor] = dict.fromkeys(self.points, zeros)
        history: list[dict[str, Tensor]] = []
        fused = zeros
        for r in range(self.steps):
            inject = {m: (self.points[m][0], self._injector(m, ctx[m])) for m in self.points}
            with self.step_stats.step(r):
                feats = self.base.unimodal_features(inputs, inject)  # type: ignore[operator]
                fused = self.base.fuse(feats)  # type: ignore[operator]
            history.append(feats)
            if self.mode == "progressive":
                c = self.context(fused)
                ctx = dict.fromkeys(self.points, c)
            else:
                ctx = {m: self.context[m](feats[m]) for m in self.points}  # type: ignore[index]
        return history, fused

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        _, fused = self._unroll(inputs)
        if self.readout == "context":
            fused = self.context(fused)  # c_R (paper eq. 9)
        return self.base.predict(fused)  # type: ignore[operator,no-any-return]

    def step_features(self, inputs: Mapping[str, Tensor]) -> list[dict[str, Tensor]]:
        """Unimodal features ``{m: (B, D_m)}`` of every unroll step (paper 001 Figure 13 probes)."""
        return self._unroll(inputs)[0]

    def unimodal_features(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The last step's unimodal features."""
        return self.step_features(inputs)[-1]

    def fusion_parameters(self) -> Iterator[nn.Parameter]:
        """The base's fusion parameters plus the context map ``E`` and back-projections ``W_i``."""
        yield from self.base.fusion_parameters()  # type: ignore[operator]
        yield from self.context.parameters()
        yield from self.back.parameters()

    def parameter_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        if hasattr(self.base, "parameter_counts"):
            counts.update(self.base.parameter_counts())  # type: ignore[operator]
        counts["total"] = sum(p.numel() for p in self.parameters())
        counts["fusion"] = sum(p.numel() for p in self.fusion_parameters())
        counts["backprojection"] = sum(
            p.numel() for p in [*self.context.parameters(), *self.back.parameters()]
        )
        return counts


def _context_readout(base: nn.Module, mode: str, inject: str, dim: int, where: str) -> nn.Module:
    """``base`` (a copy when it would be shared) with its head ``P`` taking ``c_R``, ``(B, dim)``."""
    if mode != "progressive":
        raise ValueError(f"{where}.readout: 'context' needs mode 'progressive' (the iterative "
                         f"ablation has one context per modality, no c_R), got mode {mode!r}")
    head = getattr(base, "head", None)
    if not isinstance(head, MLPHead):
        raise ValueError(f"{where}.readout: 'context' needs a base whose predictor is an MLP head "
                         f"(a staged model merged at 'late'); {type(base).__name__} has "
                         f"{type(head).__name__}")
    if inject == "add":  # "concat" wraps a widened copy already; never change the caller's model
        base = copy.deepcopy(base)
    base.head = head.with_input(dim)
    return base


def wrap_progressive(base: nn.Module, cfg: Any, where: str = "model.progressive") -> nn.Module:
    """Wrap ``base`` from a ``progressive`` config table."""
    if not isinstance(cfg, Mapping):
        raise ValueError(f"{where}: expected a table with keys {list(PROGRESSIVE_KEYS)}, got {cfg!r}")
    known_keys(cfg, PROGRESSIVE_KEYS, where)
    return ProgressiveFusion(base, **dict(cfg), where=where)


__all__ = ["ProgressiveFusion", "wrap_progressive"]
