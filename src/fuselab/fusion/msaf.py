"""Multimodal Split Attention Fusion (Su et al., paper 002 section 3)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fuselab.fusion.base import FeatureMapOp
from fuselab.fusion.registry import register

LAYOUTS = ("channels_first", "sequence")
BLOCK_DROPOUT_MODES = ("factor", "authors")


class MSAFBlock(nn.Module):
    """Join + highlight of one MSAF module: pooled descriptors -> per-block factors.

    Args:
        num_blocks: ``{m: |B_m|}`` blocks per modality.
        block_channel: ``C``, channels per block.
        reduction: ``r``; the joint representation has ``C' = floor(C / r)`` features.
        lam: suppression power ``lambda``: factors are ``lambda + (1 - lambda) A``.
        block_dropout: BlockDropout probability ``p`` (training only).
        block_dropout_mode: ``"factor"`` or ``"authors"``, see :class:`MSAF`.

    Shapes:
        ``{m: (B, |B_m| * C)}`` zero-padded channel means -> ``{m: (B, |B_m|, C)}`` factors
        (in training with BlockDropout: the factors times the mask, or times its square).
    """

    def __init__(
        self,
        num_blocks: Mapping[str, int],
        block_channel: int,
        reduction: int,
        lam: float,
        block_dropout: float,
        block_dropout_mode: str = "factor",
    ) -> None:
        super().__init__()
        self.num_blocks = dict(num_blocks)
        self.block_channel = block_channel
        self.lam = lam
        self.block_dropout = block_dropout
        self.block_dropout_mode = block_dropout_mode
        reduced = block_channel // reduction
        self.join = nn.Sequential(
            nn.Linear(block_channel, reduced), nn.BatchNorm1d(reduced), nn.ReLU()
        )
        # The |B| per-block FCs W_m^i (C' -> C) of equation 3, stacked into one matrix.
        self.highlight = nn.Linear(reduced, sum(self.num_blocks.values()) * block_channel)

    def keep_mask(self, batch: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        """BlockDropout mask ``(B, |B|)``: 0 with probability ``p``, else ``1 / (1 - p)``."""
        keep = torch.rand(batch, sum(self.num_blocks.values()), dtype=dtype, device=device)
        return (keep >= self.block_dropout).to(dtype) / (1.0 - self.block_dropout)

    def forward(self, pooled: Mapping[str, Tensor]) -> dict[str, Tensor]:
        c = self.block_channel
        first = next(iter(pooled.values()))
        mask = (
            self.keep_mask(first.shape[0], first.dtype, first.device)
            if self.training and self.block_dropout > 0
            else None
        )
        # Equation 1 with the pooling first: GAP is linear, so sum-then-pool == pool-then-sum
        # (and masking a block's mean == the mean of the masked block).
        g: Tensor | None = None
        start = 0
        for m, n in self.num_blocks.items():
            blocks = pooled[m].unflatten(-1, (n, c))  # (B, |B_m|, C)
            if mask is not None and self.block_dropout_mode == "authors":
                blocks = blocks * mask[:, start : start + n, None]  # dropped before the join
            start += n
            d = blocks.sum(dim=-2)  # D_m, (B, C)
            g = d if g is None else g + d
        assert g is not None
        z = self.join(g)  # equation 2 + BatchNorm + ReLU
        logits = self.highlight(z).unflatten(-1, (-1, c))  # (B, |B|, C), equation 3
        factor = self.lam + (1.0 - self.lam) * torch.softmax(logits, dim=1)  # eqs. 4-5
        if mask is not None:
            # "authors": the output is (mask * block) * mask * factor, the mask applied twice.
            scale = mask if self.block_dropout_mode == "factor" else mask * mask
            factor = factor * scale.unsqueeze(-1)
        return dict(
            zip(self.num_blocks, factor.split(list(self.num_blocks.values()), dim=1), strict=True)
        )


@register("msaf")
class MSAF(FeatureMapOp):
    """Multimodal Split Attention Fusion: channel blocks of all modalities compete per channel.

    Split each modality into ``|B_m| = ceil(C_m / C)`` blocks of ``C`` channels (the last one
    zero-padded), join (sum the blocks, global average pool, sum over modalities, FC with
    reduction ``r`` + BatchNorm + ReLU), highlight (one FC per block, softmax across all blocks
    of all modalities, per channel) and rescale every block by ``lambda + (1 - lambda) A``.

    BlockDropout (training only; eval mode never masks): per sample, a mask over all blocks of
    all modalities is 0 with probability ``p`` and ``1/(1-p)`` otherwise. ``block_dropout_mode``
    says where it acts:

    * ``"factor"`` (default, fuselab's choice): only the factors are masked; the join sees every
      block, and a kept block is scaled by ``factor / (1-p)``.
    * ``"authors"``: as paper 002 section 3.1 and the authors' code: the blocks are masked
      *before* the join (the joint descriptor sees only kept blocks, each scaled by ``1/(1-p)``)
      and the same mask is applied again with the factor on the output, so a kept block leaves
      scaled by ``factor / (1-p)^2``.

    Sequence variant (``segments=q > 1``): the time axis is cut into ``q`` segments of
    ``floor(T_m / q)`` frames, the remainder frames joining the last segment (the paper's
    "extra segment combined with the second last one"; the authors' code agrees while
    ``T_m mod q < floor(T_m / q)``); every segment has its own MSAF block.

    Args:
        in_channels: ``{m: C_m}``.
        block_channel: ``C`` (default ``max(1, min_m C_m // 2)``, the paper's advice).
        reduction: ``r``, so the joint representation has ``floor(C / r)`` features.
        lam: suppression power ``lambda`` in ``[0, 1]``; ``1`` returns the input unchanged.
        block_dropout: BlockDropout probability ``p`` in ``[0, 1)``.
        block_dropout_mode: ``"factor"`` or ``"authors"`` (above).
        layout: ``"channels_first"`` — ``(B, C_m, *spatial_m)`` with any number (>= 1) of
            spatial/time dims, time (for segments) is dim 2 — or ``"sequence"`` — ``(B, T_m, C_m)``.
        segments: ``q``, number of time segments with separate blocks.

    Shapes:
        ``{m: (B, C_m, *spatial_m)}`` or ``{m: (B, T_m, C_m)}`` -> the same shapes.
        :meth:`attention`: ``{m: (B, |B_m|, C)}`` (``(B, q, |B_m|, C)`` when ``q > 1``).
    """

    def __init__(
        self,
        in_channels: Mapping[str, int],
        block_channel: int | None = None,
        reduction: int = 4,
        lam: float = 0.0,
        block_dropout: float = 0.0,
        layout: str = "channels_first",
        segments: int = 1,
        block_dropout_mode: str = "factor",
    ) -> None:
        super().__init__(in_channels)
        if block_channel is None:
            block_channel = max(1, min(self.in_channels.values()) // 2)
        if not isinstance(block_channel, int) or block_channel <= 0:
            raise ValueError(f"MSAF: block_channel must be a positive int, got {block_channel!r}")
        if not isinstance(reduction, int) or reduction <= 0 or block_channel // reduction < 1:
            raise ValueError(
                f"MSAF: reduction must be a positive int with block_channel // reduction >= 1 "
                f"(block_channel={block_channel}), got {reduction!r}"
            )
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"MSAF: lam must be in [0, 1], got {lam!r}")
        if not 0.0 <= block_dropout < 1.0:
            raise ValueError(f"MSAF: block_dropout must be in [0, 1), got {block_dropout!r}")
        if block_dropout_mode not in BLOCK_DROPOUT_MODES:
            raise ValueError(
                f"MSAF: block_dropout_mode must be one of {BLOCK_DROPOUT_MODES}, "
                f"got {block_dropout_mode!r}"
            )
        if layout not in LAYOUTS:
            raise ValueError(f"MSAF: layout must be one of {LAYOUTS}, got {layout!r}")
        if not isinstance(segments, int) or segments <= 0:
            raise ValueError(f"MSAF: segments must be a positive int, got {segments!r}")
        self.block_channel = block_channel
        self.reduction = reduction
        self.lam = float(lam)
        self.block_dropout = float(block_dropout)
        self.block_dropout_mode = block_dropout_mode
        self.layout = layout
        self.segments = segments
        self.num_blocks = {m: math.ceil(c / block_channel) for m, c in self.in_channels.items()}
        self.blocks = nn.ModuleList(
            MSAFBlock(
                self.num_blocks,
                block_channel,
                reduction,
                self.lam,
                self.block_dropout,
                block_dropout_mode,
            )
            for _ in range(segments)
        )

    def _check(self, inputs: Mapping[str, Tensor]) -> None:
        sequence = self.layout == "sequence"
        self.check_inputs(inputs, min_rank=3, channels_last=sequence)
        if self.segments > 1:
            for m, x in inputs.items():
                t = x.shape[1 if sequence else 2]
                if t < self.segments:
                    raise ValueError(
                        f"MSAF: modality {m!r}: {self.segments} segments need at least "
                        f"{self.segments} time steps, got shape {tuple(x.shape)}"
                    )

    def _bounds(self, t: int) -> list[tuple[int, int]]:
        step = t // self.segments
        ends = [step * (s + 1) for s in range(self.segments - 1)] + [t]
        return [(step * s, e) for s, e in enumerate(ends)]

    def _channels_last(self, x: Tensor) -> Tensor:
        """``(B, T, *rest, C)`` view: time (dim 2 of channels-first input) right after batch."""
        return x if self.layout == "sequence" else x.movedim(1, -1)

    def _pooled(self, x: Tensor, channels: int) -> Tensor:
        """Zero-padded per-segment channel means ``(B, q, |B_m| * C)``."""
        if self.segments == 1 and self.layout == "channels_first":
            # Fast path: no channels-last copy of the whole map.
            return F.pad(
                x.flatten(2).mean(dim=-1).unsqueeze(1), (0, -channels % self.block_channel)
            )
        xc = self._channels_last(x)
        means = [xc[:, s:e].flatten(1, -2).mean(dim=1) for s, e in self._bounds(xc.shape[1])]
        pad = -channels % self.block_channel
        return F.pad(torch.stack(means, dim=1), (0, pad))

    def _factors(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Recalibration factors ``{m: (B, q, |B_m|, C)}``."""
        pooled = {m: self._pooled(inputs[m], c) for m, c in self.in_channels.items()}
        per_segment = [
            block({m: p[:, s] for m, p in pooled.items()}) for s, block in enumerate(self.blocks)
        ]
        return {m: torch.stack([f[m] for f in per_segment], dim=1) for m in self.in_channels}

    def forward(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        self._check(inputs)
        factors = self._factors(inputs)
        out = {}
        for m, c in self.in_channels.items():
            x = inputs[m]
            f = factors[m].flatten(2)[..., :c]  # (B, q, C_m): padded channels dropped here
            if self.segments == 1:
                shape = (x.shape[0], c, *([1] * (x.dim() - 2)))
                out[m] = x * (f if self.layout == "sequence" else f[:, 0].reshape(shape))
                continue
            xc = self._channels_last(x)
            bounds = self._bounds(xc.shape[1])
            seg = torch.cat(
                [torch.full((e - s,), i, dtype=torch.long) for i, (s, e) in enumerate(bounds)]
            )
            seg = seg.to(x.device)
            per_step = f[:, seg]  # (B, T, C_m)
            scaled = xc * per_step.reshape(*per_step.shape[:2], *([1] * (xc.dim() - 3)), c)
            out[m] = scaled if self.layout == "sequence" else scaled.movedim(-1, 1)
        return out

    @contextmanager
    def _eval(self) -> Iterator[None]:
        modes = [mod.training for mod in self.modules()]
        self.eval()
        try:
            yield
        finally:
            for mod, mode in zip(self.modules(), modes, strict=True):
                mod.training = mode

    def attention(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Eval-mode factors ``lambda + (1 - lambda) A`` per block: ``{m: (B, |B_m|, C)}``.

        BatchNorm uses its running statistics and BlockDropout is off, whatever the module's
        mode (which is left unchanged). With ``segments > 1``: ``{m: (B, q, |B_m|, C)}``. The
        last block of a modality includes its zero-padded channels.
        """
        self._check(inputs)
        with self._eval():
            factors = self._factors(inputs)
        if self.segments == 1:
            return {m: f[:, 0] for m, f in factors.items()}
        return factors

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, block_channel={self.block_channel}, "
            f"reduction={self.reduction}, lam={self.lam}, block_dropout={self.block_dropout}, "
            f"block_dropout_mode={self.block_dropout_mode!r}, layout={self.layout!r}, "
            f"segments={self.segments}"
        )
