"""Applying fusion operators to branches of any kind (feature maps, sequences, vectors).

* :class:`FeatureMapPoint` runs a ``FeatureMapOp`` on branches of mixed kinds by viewing each as
  channel-first (``seq (B, T, D) -> (B, D, T)``, ``vec (B, D) -> (B, D, 1)``) and back.
* :class:`PositionMerge` runs a vector ``FusionOp`` *per position* on branches that share an extent
  (equal spatial sizes / sequence lengths, after an optional ``resize`` adapter): channels are the
  operator's features, ``{m: (B, C_m, *S)} -> (B, out_dim, *S)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from fuselab import fusion
from fuselab.models.shapes import (
    Shape,
    from_channels_first,
    from_channels_last,
    resize,
    to_channels_first,
    to_channels_last,
)


def build_operator(name: str, where: str, **kwargs: Any) -> nn.Module:
    """``fuselab.fusion.build`` with errors prefixed by the config key of the fusion point."""
    try:
        return fusion.build(name, **kwargs)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{where}: operator {name!r} cannot be built with {kwargs}: {err}") from None


class FeatureMapPoint(nn.Module):
    """A feature-map operator on branches ``{m: (B, *shape_m)}``; returns the same shapes."""

    def __init__(self, name: str, shapes: Mapping[str, Shape], options: Mapping[str, Any],
                 where: str) -> None:
        super().__init__()
        self.kinds = {m: s.kind for m, s in shapes.items()}
        self.op = build_operator(
            name, where, in_channels={m: s.channels for m, s in shapes.items()}, **options
        )

    def forward(self, x: Mapping[str, Tensor]) -> dict[str, Tensor]:
        out = self.op({m: to_channels_first(x[m], k) for m, k in self.kinds.items()})
        return {m: from_channels_first(out[m], k) for m, k in self.kinds.items()}


def vector_out_dim(name: str, in_dims: Mapping[str, int], options: Mapping[str, Any]) -> int:
    """``options.out_dim``, else the sum of the widths for ``concat`` and the largest otherwise."""
    if "out_dim" in options:
        return int(options["out_dim"])
    return sum(in_dims.values()) if name == "concat" else max(in_dims.values())


class PositionMerge(nn.Module):
    """A vector operator applied per position to branches of one kind and (after resize) extent.

    Args:
        shapes: per-sample branch shapes at the merging point.
        target: the shape whose extent every branch is resized to (the trunk's).
        adapter: ``none`` (extents must agree) or ``resize``.

    Shapes: ``{m: (B, C_m, *S_m)}`` -> ``(B, out_dim, *S)`` (maps), ``{m: (B, T, D_m)} ->
    (B, T, out_dim)`` (sequences), ``{m: (B, D_m)} -> (B, out_dim)`` (vectors).
    """

    def __init__(self, name: str, shapes: Mapping[str, Shape], target: Shape, adapter: str,
                 options: Mapping[str, Any], where: str) -> None:
        super().__init__()
        kinds = {s.kind for s in shapes.values()}
        listing = ", ".join(f"{m!r} {s}" for m, s in shapes.items())
        if len(kinds) > 1:
            raise ValueError(f"{where}: cannot combine {listing} per position (different kinds); "
                             "set adapter to 'pool' (allowed: ['pool'])")
        extents = {s.extent for s in shapes.values()}
        if len(extents) > 1:
            if adapter != "resize":
                raise ValueError(f"{where}: cannot combine {listing} per position without an "
                                 "adapter; set adapter to one of ['pool', 'resize']")
            ranks = {len(e) for e in extents}
            if len(ranks) > 1:
                raise ValueError(f"{where}.adapter: 'resize' needs the same number of spatial "
                                 f"dims, got {listing}; allowed here: ['pool']")
        self.kind = target.kind
        self.extent = target.extent
        self.resize = len(extents) > 1
        in_dims = {m: s.channels for m, s in shapes.items()}
        out_dim = vector_out_dim(name, in_dims, options)
        self.op = build_operator(name, where, in_dims=in_dims, **{**options, "out_dim": out_dim})
        if self.kind != "vec" and (not getattr(self.op, "accepts_sequences", False)
                                   or getattr(self.op, "pools_sequences", False)):
            raise ValueError(f"{where}.operator: {name!r} cannot run per position on {listing}; "
                             "set adapter to 'pool' (allowed: ['pool'])")
        self.out_shape = target.with_channels(out_dim)
        self.modalities = tuple(shapes)

    def forward(self, x: Mapping[str, Tensor]) -> Tensor:
        parts = {}
        for m in self.modalities:
            t = resize(x[m], self.kind, self.extent) if self.resize else x[m]
            t = to_channels_last(t, self.kind)
            parts[m] = t.reshape(t.shape[0], -1, t.shape[-1]) if self.kind == "map" else t
        z = self.op(parts)
        if self.kind == "map":
            z = z.reshape(z.shape[0], *self.extent, z.shape[-1])
        return from_channels_last(z, self.kind)
