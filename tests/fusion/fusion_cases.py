"""Tiny build arguments and inputs for every registered operator, shared by the generic tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

DIMS = {"image": 3, "audio": 2}


def vec(
    dims: dict[str, int], batch: int, dtype: torch.dtype, gen: torch.Generator
) -> dict[str, Tensor]:
    return {m: torch.randn(batch, d, dtype=dtype, generator=gen) for m, d in dims.items()}


@dataclass
class Case:
    """How to build one operator at tiny sizes and feed it."""

    name: str
    kwargs: dict[str, Any]
    make: Callable[[int, torch.dtype, torch.Generator], dict[str, Tensor]]
    eval_mode: bool = False  # BatchNorm/dropout ops are compared in eval mode
    id: str = field(default="")

    def __post_init__(self) -> None:
        self.id = self.id or self.name


def _vector(
    name: str, id: str = "", dims: dict[str, int] | None = None, out: int = 4, **kw: Any
) -> Case:
    d = dims or DIMS
    return Case(name, {"in_dims": d, "out_dim": out, **kw}, lambda b, t, g: vec(d, b, t, g), id=id)


CASES: list[Case] = [
    _vector("concat", out=4),
    _vector("sum"),
    _vector("product"),
    _vector("tensor"),
    _vector("lowrank", rank=2),
    _vector("gated", id="gated-modality", level="modality"),
    _vector("gated", id="gated-feature", level="feature"),
    _vector("late", id="late-mean", dims={"a": 3, "b": 3}, out=3, mode="mean"),
    _vector("late", id="late-weighted", dims={"a": 3, "b": 3}, out=3, mode="weighted"),
    _vector("late", id="late-product", dims={"a": 3, "b": 3}, out=3, mode="product"),
    _vector("late", id="late-vote", dims={"a": 3, "b": 3}, out=3, mode="vote"),
    _vector("late", id="late-mult", dims={"a": 3, "b": 3}, out=3, mode="multiplicative"),
    _vector("bilinear"),
    _vector("mcb", out=8),
    _vector("attention", num_heads=2),
    _vector("cross_attention", id="cross-vector", dims={"a": 3, "b": 2, "c": 2}, num_heads=2),
    Case(
        "cross_attention",
        {"in_dims": {"a": 3, "b": 2}, "out_dim": 4, "target": "b", "num_heads": 2},
        lambda b, t, g: {
            "a": torch.randn(b, 5, 3, dtype=t, generator=g),
            "b": torch.randn(b, 2, 2, dtype=t, generator=g),
        },
        id="cross-sequence",
    ),
    _vector("nlgate", id="nlgate-vector", dims={"a": 3, "b": 2, "c": 2}, scaled=True),
    Case(
        "nlgate",
        {"in_dims": {"a": 3, "b": 2}, "out_dim": 4, "query": "b"},
        lambda b, t, g: {
            "a": torch.randn(b, 5, 3, dtype=t, generator=g),
            "b": torch.randn(b, 4, 2, dtype=t, generator=g),
        },
        id="nlgate-sequence",
    ),
    _vector("multiplicative", id="mi-matrix", out=5, form="matrix"),
    _vector("multiplicative", id="mi-vector", out=2, form="vector"),
    _vector("multiplicative", id="mi-scalar", out=3, form="scalar", target="image"),
    _vector("multiplicative", id="mi-matrix3D", dims={"a": 3, "b": 2, "c": 2}, out=3),
    _vector("deepset", id="deepset-sum", dims={"a": 3, "b": 2, "c": 4}),
    _vector("deepset", id="deepset-mean", pool="mean", normalize="none", width=3, hidden=5),
    _vector("deepset", id="deepset-max", pool="max", normalize="modality"),
    _vector("deepset", id="deepset-attention", dims={"a": 3, "b": 2, "c": 4}, pool="attention"),
    Case(
        "mult",
        {
            "in_dims": {"a": 3, "b": 2, "c": 2},
            "out_dim": 3,
            "width": 4,
            "num_heads": 2,
            "num_layers": 1,
            "self_layers": 1,
            "kernel_size": 3,
        },
        lambda b, t, g: {
            "a": torch.randn(b, 4, 3, dtype=t, generator=g),
            "b": torch.randn(b, 3, 2, dtype=t, generator=g),
            "c": torch.randn(b, 5, 2, dtype=t, generator=g),
        },
        id="mult",
    ),
    _vector("shift", id="shift-norm"),
    _vector("shift", id="shift-raw", dims={"a": 4, "b": 2, "c": 3}, norm=False, beta=0.5),
    Case(
        "msaf",
        {"in_channels": {"video": 5, "audio": 3}, "block_channel": 2, "reduction": 2, "lam": 0.2},
        lambda b, t, g: {
            "video": torch.randn(b, 5, 2, 3, 2, dtype=t, generator=g),
            "audio": torch.randn(b, 3, 4, dtype=t, generator=g),
        },
        eval_mode=True,
        id="msaf-maps",
    ),
    Case(
        "msaf",
        {
            "in_channels": {"text": 4, "audio": 3, "video": 2},
            "block_channel": 2,
            "reduction": 1,
            "layout": "sequence",
            "segments": 2,
        },
        lambda b, t, g: {
            "text": torch.randn(b, 5, 4, dtype=t, generator=g),
            "audio": torch.randn(b, 4, 3, dtype=t, generator=g),
            "video": torch.randn(b, 3, 2, dtype=t, generator=g),
        },
        eval_mode=True,
        id="msaf-sequence",
    ),
    Case(
        "mmtm",
        {"in_channels": {"video": 4, "audio": 3}},
        lambda b, t, g: {
            "video": torch.randn(b, 4, 2, 2, 3, dtype=t, generator=g),
            "audio": torch.randn(b, 3, 5, dtype=t, generator=g),
        },
        id="mmtm",
    ),
]
