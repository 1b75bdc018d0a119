"""Small transformer encoder (``transformer``): a token embedding stage + pre-norm encoder layers.

Stage ``embed`` turns the input into ``(B, N, d_model)`` tokens plus a learned position embedding:

* ``tokens = "frames"`` (default): a sequence ``(T, D)`` or a map read along its last axis
  (spectrogram ``(C, F, T)`` -> ``T`` frames of ``C*F`` values), linearly embedded;
* ``tokens = "patches"``: an image ``(C, H, W)`` cut into ``patch x patch`` patches (strided conv);
* a vector ``(D,)`` becomes ``D`` tokens of one value each.

Stages ``layer1..layerL``: ``nn.TransformerEncoderLayer`` (pre-norm, batch first), ``(B, N, d) ->
(B, N, d)``. Default readout: mean over tokens.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from fuselab._validate import choice, fraction, pos_int
from fuselab.models.encoders.base import Stage, StageSpec, register
from fuselab.models.encoders.sequence import frames_shape, to_frames
from fuselab.models.shapes import Shape


class EmbedStage(Stage):
    """Tokenize + position embedding: input -> ``(B, N, d_model)``."""

    def __init__(self, in_shape: Shape, d_model: int, tokens: str, patch: int, where: str) -> None:
        super().__init__()
        self.in_shape = in_shape
        self.tokens = tokens if in_shape.kind != "vec" else "values"
        if self.tokens == "patches":
            if in_shape.kind != "map" or len(in_shape.extent) != 2:
                raise ValueError(f"{where}.tokens: 'patches' expects an image (C, H, W), "
                                 f"got {in_shape}")
            h, w = in_shape.extent
            if h % patch or w % patch:
                raise ValueError(f"{where}.patch: {patch} must divide the image size {h}x{w}")
            self.embed: nn.Module = nn.Conv2d(in_shape.channels, d_model, patch, stride=patch)
            n = (h // patch) * (w // patch)
        elif self.tokens == "values":
            self.embed = nn.Linear(1, d_model)
            n = in_shape.dims[0]
        else:
            seq = frames_shape(in_shape, f"{where} stage 'embed'")
            self.embed = nn.Linear(seq.channels, d_model)
            n = seq.dims[0]
        self.pos = nn.Parameter(torch.zeros(1, n, d_model))
        nn.init.normal_(self.pos, std=0.02)
        self.out_shape = Shape("seq", (n, d_model))

    def forward(self, x: Tensor) -> Tensor:
        if self.tokens == "patches":
            tok = self.embed(x).flatten(2).transpose(1, 2)
        elif self.tokens == "values":
            tok = self.embed(x.unsqueeze(-1))
        else:
            tok = self.embed(to_frames(x, self.in_shape.kind))
        return tok + self.pos


class EncoderLayerStage(Stage):
    """One pre-norm transformer encoder layer on ``(B, N, d)`` tokens."""

    def __init__(self, in_shape: Shape, heads: int, ff_dim: int, dropout: float, where: str) -> None:
        super().__init__()
        if in_shape.kind != "seq":
            raise ValueError(f"{where}: expects tokens (N, d_model), got {in_shape}")
        d = in_shape.channels
        if d % heads:
            raise ValueError(f"{where}: num_heads={heads} must divide the token width {d}")
        self.in_shape = self.out_shape = in_shape
        self.layer = nn.TransformerEncoderLayer(
            d, heads, ff_dim, dropout, batch_first=True, norm_first=True
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


@register(
    "transformer",
    defaults={"d_model": 32, "num_layers": 2, "num_heads": 4, "ff_dim": 0, "dropout": 0.0, "patch": 4,
     "tokens": "frames", "readout": "mean"},
    sequence_inputs=True,
    # the token-fusion transformer's vocabulary (docs/transformer.md); old names still read
    aliases={"layers": "num_layers", "heads": "num_heads"},
)
def transformer(cfg: dict[str, Any], where: str) -> list[StageSpec]:
    """Small transformer encoder: ``embed`` + ``layer1..layerL``."""
    d = pos_int(cfg["d_model"], f"{where}.d_model")
    layers = pos_int(cfg["num_layers"], f"{where}.num_layers")
    heads = pos_int(cfg["num_heads"], f"{where}.num_heads")
    ff = pos_int(cfg["ff_dim"], f"{where}.ff_dim", 0) or 2 * d
    p = fraction(cfg["dropout"], f"{where}.dropout")
    patch = pos_int(cfg["patch"], f"{where}.patch")
    tokens = choice(cfg["tokens"], f"{where}.tokens", ("frames", "patches"))
    if d % heads:
        raise ValueError(f"{where}.num_heads: {heads} must divide d_model={d}")
    specs = [StageSpec("embed", lambda s: EmbedStage(s, d, tokens, patch, where))]

    def spec(i: int) -> StageSpec:
        name = f"layer{i + 1}"
        return StageSpec(name, lambda s: EncoderLayerStage(s, heads, ff, p, f"{where} stage {name!r}"))

    return specs + [spec(i) for i in range(layers)]
