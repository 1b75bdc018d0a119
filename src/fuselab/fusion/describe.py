"""A table of every registered operator with its parameter count at given input sizes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fuselab.fusion.base import FeatureMapOp, count_parameters
from fuselab.fusion.registry import OPERATORS


def describe(in_dims: Mapping[str, int], out_dim: int) -> list[dict[str, Any]]:
    """One row per operator: name, kind (vector/feature-map), parameters, one-line summary.

    Vector operators are built with ``in_dims``/``out_dim``; feature-map operators with
    ``in_channels=in_dims`` (and their default block/reduction settings). An operator class may
    define ``example_kwargs(in_dims, out_dim) -> dict`` to say how it is built at these sizes
    (``late`` takes ``out_dim`` logits from every modality). Operators that cannot be built at
    these sizes (e.g. ``bilinear`` with three modalities) get ``params=None`` and the reason as
    summary.
    """
    rows = []
    for name in OPERATORS.available():
        factory = OPERATORS.get(name)
        is_map = isinstance(factory, type) and issubclass(factory, FeatureMapOp)
        doc = (factory.__doc__ or "").strip().splitlines()
        summary = doc[0] if doc else ""
        example = getattr(factory, "example_kwargs", None)
        if example is not None:
            kwargs: dict[str, Any] = dict(example(dict(in_dims), out_dim))
        elif is_map:
            kwargs = {"in_channels": dict(in_dims)}
        else:
            kwargs = {"in_dims": dict(in_dims), "out_dim": out_dim}
        try:
            params: int | None = count_parameters(factory(**kwargs))
        except (ValueError, TypeError) as err:
            params, summary = None, f"not buildable here: {err}"
        rows.append(
            {
                "name": name,
                "kind": "feature-map" if is_map else "vector",
                "params": params,
                "summary": summary,
            }
        )
    return rows
