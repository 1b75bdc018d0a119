"""Prediction heads: an MLP from a fused vector to the outputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from fuselab._validate import fraction, int_list, known_keys

HEAD_KEYS = ("hidden", "dropout")


class MLPHead(nn.Module):
    """``(B, in_dim) -> (B, out_dim)``: linear layers of widths ``hidden`` with ReLU (+ dropout)."""

    def __init__(self, in_dim: int, hidden: list[int], out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU(), nn.Dropout(dropout)]
            d = h
        layers.append(nn.Linear(d, out_dim))
        self.net = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def with_input(self, in_dim: int) -> MLPHead:
        """A freshly initialised head of the same hidden widths and dropout taking ``in_dim``."""
        linears = [m for m in self.net if isinstance(m, nn.Linear)]
        drops = [m.p for m in self.net if isinstance(m, nn.Dropout)]
        return MLPHead(in_dim, [m.out_features for m in linears[:-1]], self.out_dim,
                       drops[0] if drops else 0.0)


def parse_head(cfg: Any, where: str) -> tuple[list[int], float]:
    """``(hidden, dropout)`` of a ``head`` table (default: one linear layer, no dropout)."""
    if cfg is None:
        return [], 0.0
    if not isinstance(cfg, Mapping):
        raise ValueError(f"{where}: expected a table with keys {list(HEAD_KEYS)}, got {cfg!r}")
    known_keys(cfg, HEAD_KEYS, where)
    hidden = int_list(cfg.get("hidden", []), f"{where}.hidden", allow_empty=True)
    return hidden, fraction(cfg.get("dropout", 0.0), f"{where}.dropout")
