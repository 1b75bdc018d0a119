"""The Multimodal Transformer (MulT; Tsai et al. 2019) as one fusion operator."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fuselab.fusion.attention import check_heads
from fuselab.fusion.base import FusionOp
from fuselab.fusion.masks import Masks, check_masks, last_valid, masked_mean
from fuselab.fusion.mult_layers import MulTEncoder
from fuselab.fusion.options import require_modalities
from fuselab.fusion.registry import register

POOLS = ("last", "mean")


def _positive(where: str, name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")


@register("mult")
class MulTFusion(FusionOp):
    """The whole MulT: temporal convolutions, crossmodal transformers, self-attention, output.

    1. Every modality: a bias-free ``Conv1d(D_m -> width, kernel_size)`` over time.
    2. For every target ``t`` and source ``s ≠ t``: a crossmodal transformer
       (:class:`~fuselab.fusion.mult_layers.MulTEncoder`, ``layers`` layers) whose queries are
       ``t``'s steps and whose keys/values are ``s``'s (``M (M - 1)`` transformers).
    3. Per target: its ``M - 1`` outputs concatenated over features (``(M - 1) width``) and a
       self-attention transformer (``self_layers`` layers, default ``max(layers, 3)`` as in the
       authors' code) over that sequence; pooled to one vector: the last valid step
       (``pool="last"``, MulT) or the mean of the valid steps.
    4. The ``M`` pooled vectors concatenated (``M (M - 1) width``), a residual block
       ``h + W_2 ReLU(W_1 h)`` and the output projection to ``out_dim``.

    Choices where paper and code differ or are silent (fuselab's): the authors' code skips the
    convolution when ``D_m = width`` (here it is always applied); it masks "future" steps by
    default, which the paper does not describe (here every valid step is attended); its
    positional index skips steps whose first feature is exactly 0 (here positions are ``1..T``).
    One ``dropout`` is used for the attention weights, residual branches, FFN and embeddings.

    Padding (``masks``, ``True`` = padding, see ``fusion.masks``) is meant at the end of a
    sequence: padded inputs are zeroed before the convolution (so a kernel wider than 1 sees the
    zeros it would see past the end of the unpadded sequence), padded steps are never attended
    to, and pooling uses valid steps only, so a padded batch gives the unpadded results.

    Args:
        in_dims: ``{modality: D_m}``, at least two modalities.
        out_dim: output width.
        width: model width per modality (MulT: 30).
        num_heads: attention heads (a divisor of ``width``; MulT: 5).
        num_layers: crossmodal layers (MulT: 5). self_layers: self-attention layers
            (``max(num_layers, 3)``). ``layers=`` is the deprecated spelling of ``num_layers``.
        kernel_size: odd temporal kernel size (MulT's code: 1).
        pool: ``last`` or ``mean``. dropout: see above.

    Shapes:
        ``{m: (B, T_m, D_m)}`` (``T_m`` may differ) -> ``(B, out_dim)``; vectors ``{m: (B, D_m)}``
        are sequences of one step. ``masks``: ``{m: (B, T_m)}`` bool.
    """

    #: Consumes whole sequences and returns one vector per sample, so a model cannot run it per
    #: position (``fuselab.models.merge.PositionMerge`` refuses it).
    pools_sequences = True

    def __init__(
        self,
        in_dims: Mapping[str, int],
        out_dim: int,
        width: int = 30,
        num_heads: int = 5,
        num_layers: int = 5,
        self_layers: int | None = None,
        kernel_size: int = 1,
        pool: str = "last",
        dropout: float = 0.0,
        *,
        layers: int | None = None,
    ) -> None:
        super().__init__(in_dims, out_dim)
        where = "MulTFusion"
        require_modalities(where, in_dims)
        if layers is not None:  # one config vocabulary: num_layers / num_heads everywhere
            warnings.warn(f"{where}: 'layers' is deprecated, use 'num_layers' (the old name will "
                          "be removed)", DeprecationWarning, stacklevel=2)
            num_layers = layers
        layers = num_layers
        self_layers = max(layers, 3) if self_layers is None else self_layers
        for name, value in (("width", width), ("num_layers", layers), ("self_layers", self_layers),
                            ("kernel_size", kernel_size)):
            _positive(where, name, value)
        if kernel_size % 2 == 0:
            raise ValueError(f"{where}: kernel_size must be odd (same-length output), "
                             f"got {kernel_size}")
        check_heads(where, width, num_heads, label="width")
        if pool not in POOLS:
            raise ValueError(f"{where}: pool must be one of {POOLS}, got {pool!r}")
        self.width, self.pool, self.kernel_size = width, pool, kernel_size
        self.temporal = nn.ModuleDict({
            m: nn.Conv1d(d, width, kernel_size, padding=kernel_size // 2, bias=False)
            for m, d in in_dims.items()
        })
        self.cross = nn.ModuleDict({
            f"{s}_to_{t}": MulTEncoder(width, num_heads, layers, dropout)
            for t in self.modalities for s in self.modalities if s != t
        })
        memory = (len(in_dims) - 1) * width
        self.memory = nn.ModuleDict({
            t: MulTEncoder(memory, num_heads, self_layers, dropout) for t in self.modalities
        })
        combined = len(in_dims) * memory
        self.proj1 = nn.Linear(combined, combined)
        self.proj2 = nn.Linear(combined, combined)
        self.out = nn.Linear(combined, out_dim)
        self.drop = nn.Dropout(dropout)

    def _conv(self, m: str, x: Tensor, pad: Tensor | None) -> Tensor:
        """Step 1 for modality ``m``: ``(B, T, D_m)`` -> ``(B, T, width)``."""
        if pad is not None:
            x = x.masked_fill(pad.unsqueeze(-1), 0.0)
        conv = self.temporal[m]
        assert isinstance(conv, nn.Conv1d)
        weight = conv.weight  # (width, D_m, kernel_size)
        if self.kernel_size == 1:  # a per-step matrix product: no transposes to channels-first
            return F.linear(x, weight.squeeze(-1))
        return F.conv1d(x.transpose(1, 2), weight, padding=self.kernel_size // 2).transpose(1, 2)

    def forward(self, inputs: Mapping[str, Tensor], masks: Masks | None = None) -> Tensor:
        self.check_inputs(inputs, same_length=False)
        check_masks(masks, inputs, "MulTFusion")
        vector = inputs[self.modalities[0]].dim() == 2
        xs = {m: inputs[m].unsqueeze(1) if vector else inputs[m] for m in self.modalities}
        pads = {m: masks.get(m) if masks is not None else None for m in self.modalities}
        h = {m: self._conv(m, xs[m], pads[m]) for m in self.modalities}
        pooled = []
        for t in self.modalities:
            cross = [self.cross[f"{s}_to_{t}"](h[t], h[s], pads[s])
                     for s in self.modalities if s != t]
            mem = self.memory[t](torch.cat(cross, dim=-1), None, pads[t])
            pad = pads[t]
            if self.pool == "mean":
                pooled.append(mem.mean(1) if pad is None else masked_mean(mem, pad))
            else:
                pooled.append(mem[:, -1] if pad is None else last_valid(mem, pad))
        last = torch.cat(pooled, dim=-1)
        last = last + self.proj2(self.drop(F.relu(self.proj1(last))))
        out: Tensor = self.out(last)
        return out
