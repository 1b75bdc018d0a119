"""Fusion plans: parse and validate ``model.fusion`` (where modalities meet, and with what).

A plan is a list of fusion points; any number of feature-map points (``FeatureMapOp``: MSAF, MMTM)
followed by exactly one merging point (a vector ``FusionOp`` at ``early`` / stage ``k`` / ``late``,
or at ``decision``). Every error names the config key and the allowed values, at build time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fuselab import fusion
from fuselab._validate import choice, known_keys
from fuselab.fusion.base import FeatureMapOp

POINT_KEYS = ("at", "operator", "options", "adapter", "trunk")
ADAPTERS = ("none", "resize", "pool")


@dataclass
class FusionPoint:
    """One validated fusion point.

    ``stages[m]`` is the number of stages of modality ``m``'s encoder run before this point (0 =
    raw input); ``level`` is ``"stage"`` (early / after k stages), ``"late"`` or ``"decision"``.
    """

    where: str
    level: str
    stages: dict[str, int]
    operator: str
    options: dict[str, Any] = field(default_factory=dict)
    feature_map: bool = False
    adapter: str = "none"
    trunk: str | None = None

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.stages)


def is_feature_map_operator(name: str, where: str) -> bool:
    """Whether operator ``name`` is a ``FeatureMapOp``; ``UnknownNameError`` if unknown."""
    factory = fusion.OPERATORS.get(name, where=f"{where}.operator")
    return isinstance(factory, type) and issubclass(factory, FeatureMapOp)


def stage_index(value: Any, m: str, names: Sequence[str], key: str) -> int:
    allowed = f"0..{len(names)}, 'early', 'late' or a stage name of {m!r} {list(names)}"
    if isinstance(value, bool):
        raise ValueError(f"{key}: expected {allowed}, got {value!r}")
    if isinstance(value, int):
        if not 0 <= value <= len(names):
            raise ValueError(f"{key}: stage index {value} is past the depth of encoder {m!r} "
                             f"({len(names)} stages); allowed: {allowed}")
        return value
    if value == "early":
        return 0
    if value == "late":
        return len(names)
    if isinstance(value, str) and value in names:
        return list(names).index(value) + 1
    raise ValueError(f"{key}: unknown stage {value!r} for encoder {m!r}; allowed: {allowed}")


def _resolve_at(
    at: Any, stage_names: Mapping[str, Sequence[str]], key: str
) -> tuple[str, dict[str, int]]:
    if at in ("late", "decision"):
        return str(at), {m: len(n) for m, n in stage_names.items()}
    if isinstance(at, Mapping):
        unknown = [m for m in at if m not in stage_names]
        if unknown:
            raise ValueError(f"{key}: unknown modality {unknown[0]!r}; allowed: {list(stage_names)}")
        return "stage", {
            m: stage_index(at[m], m, stage_names[m], f"{key}.{m}") for m in stage_names if m in at
        }
    return "stage", {m: stage_index(at, m, n, key) for m, n in stage_names.items()}


def parse_plan(
    plan: Any,
    stage_names: Mapping[str, Sequence[str]],
    where: str = "model.fusion",
) -> tuple[list[FusionPoint], FusionPoint]:
    """Validate ``plan`` against the encoders' stage names; return (feature-map points, merge point).

    ``stage_names`` holds the encoders of the modalities the model uses, in order.
    """
    if not isinstance(plan, Sequence) or isinstance(plan, (str, bytes)) or not plan:
        raise ValueError(f"{where}: expected a non-empty list of fusion points "
                         f"(tables with keys {list(POINT_KEYS)}), got {plan!r}")
    points: list[FusionPoint] = []
    for i, raw in enumerate(plan):
        key = f"{where}[{i}]"
        if not isinstance(raw, Mapping):
            raise ValueError(f"{key}: expected a table with keys {list(POINT_KEYS)}, got {raw!r}")
        known_keys(raw, POINT_KEYS, key)
        for req in ("at", "operator"):
            if req not in raw:
                raise ValueError(f"{key}: missing required key {req!r}")
        feature_map = is_feature_map_operator(raw["operator"], key)
        level, stages = _resolve_at(raw["at"], stage_names, f"{key}.at")
        options = raw.get("options", {})
        if not isinstance(options, Mapping):
            raise ValueError(f"{key}.options: expected a table of operator arguments, got {options!r}")
        reserved = {"in_dims", "in_channels"} & set(options)
        if reserved:
            raise ValueError(f"{key}.options: {sorted(reserved)[0]!r} is filled in by the plan")
        adapter = choice(raw.get("adapter", "none"), f"{key}.adapter", ADAPTERS)
        trunk = raw.get("trunk")
        if trunk is not None and trunk not in stage_names:
            raise ValueError(f"{key}.trunk: unknown modality {trunk!r}; allowed: {list(stage_names)}")
        if feature_map and level == "decision":
            raise ValueError(f"{key}.at: feature-map operator {raw['operator']!r} cannot work at "
                             "'decision'; allowed: 'early', 'late', a stage index or name")
        if feature_map and (adapter != "none" or trunk is not None):
            raise ValueError(f"{key}: 'adapter'/'trunk' apply to vector operators only; "
                             f"{raw['operator']!r} is a feature-map operator")
        if not feature_map and level != "stage" and (adapter != "none" or trunk is not None):
            raise ValueError(f"{key}: 'adapter'/'trunk' apply to merges at 'early' or a stage; "
                             f"at {level!r} every branch is already a vector")
        if not feature_map and adapter == "pool" and trunk is not None:
            raise ValueError(f"{key}.trunk: with adapter 'pool' the head follows the merge "
                             "directly; no trunk runs (allowed adapters with a trunk: "
                             "['none', 'resize'])")
        if not feature_map and set(stages) != set(stage_names):
            missing = [m for m in stage_names if m not in stages]
            raise ValueError(f"{key}.at: a merging point needs every modality; missing "
                             f"{missing[0]!r} (modalities: {list(stage_names)})")
        points.append(FusionPoint(key, level, stages, raw["operator"], dict(options), feature_map,
                                  adapter, trunk))
    merges = [p for p in points if not p.feature_map]
    if len(merges) != 1:
        raise ValueError(f"{where}: needs exactly one merging point (a vector operator such as "
                         f"'concat' at 'early', a stage, 'late' or 'decision'); got {len(merges)}")
    merge = merges[0]
    if points[-1] is not merge:
        raise ValueError(f"{merge.where}: the merging point must be the last entry of {where}")
    fm = points[:-1]
    last: dict[str, int] = {}
    for p in fm:
        for m, k in p.stages.items():
            if k < last.get(m, 0):
                raise ValueError(f"{p.where}.at: stage {k} of {m!r} comes before stage {last[m]} "
                                 "of an earlier fusion point; order the points by depth")
            if k > merge.stages[m]:
                raise ValueError(f"{p.where}.at: stage {k} of {m!r} is after the merging point "
                                 f"{merge.where} (stage {merge.stages[m]})")
            last[m] = k
    return fm, merge


def drop_modalities(
    fm: list[FusionPoint], merge: FusionPoint, keep: Sequence[str]
) -> tuple[list[FusionPoint], FusionPoint]:
    """The plan restricted to ``keep``; cross-modal feature-map points left with one modality go."""
    out = []
    for p in fm:
        stages = {m: k for m, k in p.stages.items() if m in keep}
        if len(stages) >= 2:
            out.append(FusionPoint(p.where, p.level, stages, p.operator, p.options, True))
    stages = {m: k for m, k in merge.stages.items() if m in keep}
    trunk = merge.trunk if merge.trunk in keep else None
    return out, FusionPoint(merge.where, merge.level, stages, merge.operator, merge.options,
                            False, merge.adapter, trunk)
