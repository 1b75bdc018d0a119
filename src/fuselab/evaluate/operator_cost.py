"""Parameters and FLOPs of a feature-map fusion operator built at given sizes, without any model.

Papers state operator costs at sizes no trained model of a study has, e.g. paper 002 Figure 5:
MSAF vs MMTM on two modalities of shape ``(4, C, 3, 128, 128)`` for ``C`` from 64 to 1024 with
reduction 4. :func:`operator_cost` builds the named operator at each ``C`` (``in_channels =
{m: C}`` for every modality, plus ``options``) on the ``meta`` device — no memory is allocated and
nothing is computed — and records its parameter count and the FLOPs of one eval-mode forward pass
over the whole batch, counted by ``torch.utils.flop_counter`` exactly as :func:`cost` counts a
model (a multiply-add is 2 FLOPs; elementwise work, pooling and normalisation count 0).

The records do not depend on the run's model or data: in a study the evaluation is configured per
variant (``[[grid.fusion]] evaluate = { operator_cost = {...} }``) so that ``equals`` claims can
read exact counts from the store next to the trained runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from fuselab.evaluate._common import Record, record
from fuselab.evaluate.cost import flops_per_sample
from fuselab.fusion.base import FeatureMapOp, count_parameters
from fuselab.fusion.registry import OPERATORS


def _positive_ints(name: str, values: Sequence[int], min_len: int) -> list[int]:
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise ValueError(f"operator_cost: {name} must be a list of positive ints, got {values!r}")
    out = list(values)
    bad = [v for v in out if not isinstance(v, int) or isinstance(v, bool) or v <= 0]
    if bad or len(out) < min_len:
        raise ValueError(
            f"operator_cost: {name} must be a list of at least {min_len} positive int(s), "
            f"got {values!r}"
        )
    return out


def operator_cost(
    operator: str,
    channels: Sequence[int],
    *,
    spatial: Sequence[int] = (3, 128, 128),
    batch: int = 4,
    modalities: Sequence[str] = ("a", "b"),
    options: Mapping[str, Any] | None = None,
) -> list[Record]:
    """Parameters and FLOPs of feature-map operator ``operator`` at every channel count.

    Args:
        operator: a registered feature-map operator (``msaf``, ``mmtm``).
        channels: ``C`` values; every modality gets ``C`` channels.
        spatial: the spatial/time dims of every modality's map (the defaults are paper 002's).
        batch: batch size of the counted forward pass (paper 002 counts a batch of 4).
        modalities: modality names (two by default).
        options: further keyword arguments of the operator (e.g. ``{"reduction": 4}``).

    Returns:
        ``{"evaluation": "operator_cost", "metric": "params" | "flops", "value", "operator",
        "channels", "batch"}`` per channel count; ``flops`` is for the whole batch.
    """
    if not _is_map(operator):
        maps = sorted(n for n in OPERATORS.available() if _is_map(n))
        raise ValueError(
            f"operator_cost: {operator!r} is not a feature-map operator; supported: {maps}"
        )
    sizes = _positive_ints("channels", channels, 1)
    dims = _positive_ints("spatial", spatial, 1)
    if not isinstance(batch, int) or isinstance(batch, bool) or batch <= 0:
        raise ValueError(f"operator_cost: batch must be a positive int, got {batch!r}")
    names = list(modalities)
    if not names or len(set(names)) != len(names) or not all(isinstance(m, str) for m in names):
        raise ValueError(f"operator_cost: modalities must be distinct names, got {modalities!r}")
    extra = dict(options or {})
    if "in_channels" in extra:
        raise ValueError("operator_cost: options must not set in_channels (given by channels)")
    out = []
    for c in sizes:
        with torch.device("meta"):
            op = OPERATORS.build(operator, in_channels=dict.fromkeys(names, c), **extra)
            inputs = {m: torch.empty(batch, c, *dims) for m in names}
        flops = flops_per_sample(op, inputs) * batch
        for metric, value in (("params", count_parameters(op)), ("flops", round(flops))):
            out.append(
                record("operator_cost", metric, value, operator=operator, channels=c, batch=batch)
            )
    return out


def _is_map(name: str) -> bool:
    factory = OPERATORS.get(name)
    return isinstance(factory, type) and issubclass(factory, FeatureMapOp)
