"""Grid expansion: a :class:`StudyConfig` -> the list of :class:`RunSpec` it asks for.

The grid is ``fusion variants (each entry's list-valued shorthands expanded as a product)
x axes x train SNRs x seeds``. Every run's resolved config is plain JSON; its id is a hash of that
config, so the same run always has the same id and a resumed study recognises finished runs.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from typing import Any

from fuselab import _validate as c
from fuselab.study.claims.check import check_claim_variants
from fuselab.study.config import SHORTHANDS, StudyConfig
from fuselab.study.errors import ConfigError

#: Joins factor values into the human-readable variant name (``"late · concat"``).
SEP = " · "


@dataclass(frozen=True)
class RunSpec:
    """One run of the study.

    Attributes:
        run_id: 16 hex digits, sha256 of the canonical JSON of ``config``.
        variant: grid point without the seed, e.g. ``"late · concat"``.
        factors: grid coordinates, e.g. ``{"depth": "late", "operator": "concat"}``.
        seed: the run's seed.
        config: resolved run config ``{"data", "model", "train", "evaluate", "seed"}``.
        where: path of the ``[[grid.fusion]]`` entry it came from, for error messages.
    """

    run_id: str
    variant: str
    factors: dict[str, Any]
    seed: int
    config: dict[str, Any]
    where: str


def canonical_json(value: Any) -> str:
    """Key-sorted, whitespace-free JSON: equal configs give equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def config_hash(value: Any, length: int = 16) -> str:
    """First ``length`` hex digits of the sha256 of :func:`canonical_json`."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]


def _fmt(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={_fmt(v)}" for k, v in value.items()) or "clean"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _factor_value(value: Any) -> str | int | float | bool | None:
    """Factors are scalars (the report groups by them); tables become a short string."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return _fmt(value)


#: More runs than this is a typo (a product of long lists), not a study: refused before expanding.
MAX_RUNS = 100_000


def grid_size(cfg: StudyConfig) -> int:
    """The number of runs :func:`expand` would produce, computed without expanding."""
    per_variant = sum(math.prod(len(v) for v in variant.shorthands.values())
                      for variant in cfg.fusion)
    return (per_variant * math.prod(len(a.values) for a in cfg.axes) * len(cfg.train_snrs)
            * len(cfg.seeds))


def expand(cfg: StudyConfig) -> list[RunSpec]:
    """Every run of the study, in a stable order; duplicate grid points raise ``ConfigError``."""
    size = grid_size(cfg)
    if size > MAX_RUNS:
        raise ConfigError("grid", f"expands to {size:,} runs (variants x axes x train SNRs x "
                                  f"seeds); a study holds at most {MAX_RUNS:,}")
    base = {
        "data": {"name": cfg.data.name, "options": copy.deepcopy(cfg.data.options)},
        "model": copy.deepcopy(cfg.model),
        "train": copy.deepcopy(cfg.train),
        "evaluate": copy.deepcopy(cfg.evaluate),
    }
    runs: list[RunSpec] = []
    seen: dict[str, str] = {}
    for variant in cfg.fusion:
        keys = list(variant.shorthands)
        for combo in itertools.product(*(variant.shorthands[k] for k in keys)):
            point = dict(zip(keys, combo, strict=True))
            for axis_idx in itertools.product(*(range(len(a.values)) for a in cfg.axes)):
                for snr in cfg.train_snrs:
                    resolved, factors, name = _resolve(cfg, base, variant, point, axis_idx, snr)
                    for seed in cfg.seeds:
                        run_cfg = copy.deepcopy(resolved)
                        run_cfg["seed"] = seed
                        run_id = config_hash(run_cfg)
                        if run_id in seen:
                            raise ConfigError(
                                variant.where,
                                f"variant {name!r} (seed {seed}) duplicates the run from "
                                f"{seen[run_id]}; every grid point must differ",
                            )
                        seen[run_id] = variant.where
                        runs.append(RunSpec(run_id, name, dict(factors), seed, run_cfg,
                                            variant.where))
    names = {r.variant for r in runs}
    by_name: dict[tuple[str, int], RunSpec] = {}
    for r in runs:
        other = by_name.setdefault((r.variant, r.seed), r)
        if other is not r:
            raise ConfigError(r.where, f"variant name {r.variant!r} is also used by "
                                       f"{other.where}; give the entries distinct 'label's")
    if cfg.baseline is not None and cfg.baseline not in names and not _baseline_prefix(cfg, runs):
        raise ConfigError("study.baseline", f"no variant named {cfg.baseline!r}; "
                                            f"variants: {sorted(names)}")
    check_claim_variants(cfg.claims, runs)
    return runs


def _baseline_prefix(cfg: StudyConfig, runs: list[RunSpec]) -> bool:
    """With axes, the baseline may name the fusion part only (``"late"`` for ``"late · d=4"``)."""
    return any(baseline_part(r.variant, cfg) == cfg.baseline for r in runs)


def baseline_part(variant: str, cfg: StudyConfig) -> str:
    """The fusion part of a variant name, i.e. without the axis and train-SNR suffixes."""
    extra = len(cfg.axes) + (1 if len(cfg.train_snrs) > 1 else 0)
    parts = variant.split(SEP)
    return SEP.join(parts[: len(parts) - extra]) if extra else variant


def _resolve(
    cfg: StudyConfig,
    base: dict[str, Any],
    variant: Any,
    point: dict[str, Any],
    axis_idx: tuple[int, ...],
    snr: dict[str, float],
) -> tuple[dict[str, Any], dict[str, Any], str]:
    resolved = copy.deepcopy(base)
    resolved["model"] = c.deep_merge(resolved["model"], variant.model)
    resolved["train"] = c.deep_merge(resolved["train"], variant.train)
    resolved["evaluate"] = c.deep_merge(resolved["evaluate"], variant.evaluate)
    resolved["evaluate"] = {k: v for k, v in resolved["evaluate"].items() if v is not None}
    factors: dict[str, Any] = {k: _factor_value(v) for k, v in variant.factors.items()}
    for key, value in point.items():
        factor, path = SHORTHANDS[key]
        c.set_path(resolved, path, copy.deepcopy(value), f"{variant.where}.{key}")
        if factor is not None:
            factors[factor] = _factor_value(value)
    if variant.label:
        # a labelled entry that expands to several points names them by what varies
        parts = [variant.label] + [_fmt(v) for k, v in point.items()
                                   if len(variant.shorthands[k]) > 1]
    else:
        parts = [_fmt(v) for v in factors.values()]
    if not factors:
        factors["fusion"] = variant.label
    for axis, i in zip(cfg.axes, axis_idx, strict=True):
        for path in axis.paths:
            c.set_path(resolved, path, copy.deepcopy(axis.values[i]), f"grid.axes.{axis.name}.path")
        label = axis.labels[i]
        factors[axis.name] = _factor_value(label)
        parts.append(f"{axis.name}={_fmt(label)}")
    if snr:
        resolved["train"]["train_snr"] = dict(snr)
    if len(cfg.train_snrs) > 1:
        factors["train_snr"] = _fmt(snr)
        parts.append(f"train_snr={_fmt(snr)}")
    return resolved, factors, SEP.join(parts)
