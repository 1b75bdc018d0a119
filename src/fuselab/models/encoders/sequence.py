"""Recurrent and MLP encoders: ``lstm``, ``gru`` (one stage per layer) and ``mlp``.

Recurrent stages take sequences ``(B, T, D)``; a channel-first map is read as frames along its
*last* axis, so a spectrogram ``(B, C, F, T)`` becomes ``(B, T, C*F)`` (a ``(B, C, T)`` signal
becomes ``(B, T, C)``). Output ``(B, T, hidden_i)``; default readout: last step.

MLP stages flatten their input: ``(B, *dims) -> (B, hidden_i)`` (linear -> ReLU -> dropout).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from fuselab._validate import fraction, int_list
from fuselab.models.encoders.base import Stage, StageSpec, register
from fuselab.models.shapes import Shape


def frames_shape(in_shape: Shape, where: str) -> Shape:
    """The sequence a recurrent / attention stage sees for ``in_shape``."""
    if in_shape.kind == "seq":
        return in_shape
    if in_shape.kind == "map":
        *rest, t = in_shape.dims
        n = 1
        for d in rest:
            n *= d
        return Shape("seq", (t, n))
    raise ValueError(f"{where}: expects a sequence (T, D) or a map whose last axis is time, "
                     f"got {in_shape}")


def to_frames(x: Tensor, kind: str) -> Tensor:
    """``(B, C, ..., T) -> (B, T, C*...)`` for maps; sequences pass through."""
    if kind != "map":
        return x
    return x.movedim(-1, 1).flatten(2)


class RNNStage(Stage):
    """One LSTM / GRU layer: ``(B, T, D) -> (B, T, hidden)`` (maps are read as frames first)."""

    def __init__(self, in_shape: Shape, hidden: int, cell: str, where: str) -> None:
        super().__init__()
        self.in_shape = in_shape
        seq = frames_shape(in_shape, where)
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(seq.channels, hidden, batch_first=True)
        self.out_shape = Shape("seq", (seq.dims[0], hidden))

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(to_frames(x, self.in_shape.kind))
        return out


def _rnn_plan(cfg: dict[str, Any], where: str, cell: str) -> list[StageSpec]:
    hidden = int_list(cfg["hidden"], f"{where}.hidden")

    def spec(i: int) -> StageSpec:
        name = f"rnn{i + 1}"
        return StageSpec(name, lambda s: RNNStage(s, hidden[i], cell, f"{where} stage {name!r}"))

    return [spec(i) for i in range(len(hidden))]


@register("lstm", defaults={"hidden": [64]}, sequence_inputs=True)
def lstm(cfg: dict[str, Any], where: str) -> list[StageSpec]:
    """Stacked LSTM encoder, one stage per layer."""
    return _rnn_plan(cfg, where, "lstm")


@register("gru", defaults={"hidden": [64]}, sequence_inputs=True)
def gru(cfg: dict[str, Any], where: str) -> list[StageSpec]:
    """Stacked GRU encoder, one stage per layer."""
    return _rnn_plan(cfg, where, "gru")


class LinearStage(Stage):
    """Flatten -> linear -> ReLU -> dropout: ``(B, *dims) -> (B, hidden)``."""

    def __init__(self, in_shape: Shape, hidden: int, dropout: float) -> None:
        super().__init__()
        self.in_shape = in_shape
        self.fc = nn.Linear(in_shape.numel, hidden)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dropout)
        self.out_shape = Shape("vec", (hidden,))

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.act(self.fc(x.flatten(1))))


@register("mlp", defaults={"hidden": [64, 64], "dropout": 0.0})
def mlp(cfg: dict[str, Any], where: str) -> list[StageSpec]:
    """Multi-layer perceptron encoder, one stage per hidden layer."""
    hidden = int_list(cfg["hidden"], f"{where}.hidden")
    p = fraction(cfg["dropout"], f"{where}.dropout")

    def spec(i: int) -> StageSpec:
        return StageSpec(f"fc{i + 1}", lambda s: LinearStage(s, hidden[i], p))

    return [spec(i) for i in range(len(hidden))]
