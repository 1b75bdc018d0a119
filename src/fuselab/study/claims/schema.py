"""The ``[[claims]]`` tables of a study config: structure, types and per-rule keys.

A claim compares variants on stored records (docs/study.md, "Claims")::

    [[claims]]
    name = "initial >= fc on >= 80% of SNR cells"
    source = "paper 000 Fig. 1"
    paper = "initial always >= fc"
    left = "initial"
    right = "fc"
    evaluation = "snr_grid"
    metric = "accuracy"
    rule = "cells_ge"
    fraction = 0.8

Everything here is checked when the config is read; that the variants exist is checked at grid
expansion (:func:`fuselab.study.claims.check.check_claim_variants`) and that the evaluation
records the metric and conditions, against the up-front dry runs
(:func:`fuselab.study.claims.check.check_claim_records`). Errors name ``claims[i].key``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fuselab import _validate as c
from fuselab.study.errors import ConfigError
from fuselab.study.evaluate_table import EVALUATIONS
from fuselab.study.store import LEGACY_METRICS

#: Records a run stores besides its evaluations: training curves (``train_loss``, ``val_*``).
EXTRA_EVALUATIONS = ("curve",)
#: rule -> keys only that rule reads.
RULE_KEYS: dict[str, tuple[str, ...]] = {
    "mean_ge": ("significant",),
    "mean_gt": ("significant",),
    "cells_ge": ("fraction",),
    "trend": ("x", "order", "sign", "significant"),
    "equals": ("value", "rel_tol"),
    "between": ("min", "max"),
}
#: rule -> whether ``right`` is required (True), optional (None) or not allowed (False).
RIGHT: dict[str, bool | None] = {"mean_ge": True, "mean_gt": True, "cells_ge": True,
                                 "trend": False, "equals": False, "between": None}
_COMMON = ("name", "source", "paper", "left", "right", "evaluation", "metric", "where", "exclude",
           "rule", "tol", "min_seeds")
#: A ``where``/``exclude`` value ``"clean"`` matches a condition stored as None (original input).
CLEAN = "clean"

Scalar = str | int | float


@dataclass(frozen=True)
class Claim:
    """One validated ``[[claims]]`` entry; ``index`` is its position (``claims[index]``).

    ``left`` is a variant name, or a tuple of names for a trend across a factor; ``right`` a
    variant name, a constant, or None.
    """

    index: int
    name: str
    source: str
    rule: str
    left: str | tuple[str, ...]
    evaluation: str
    metric: str
    right: str | float | None = None
    paper: str | float | None = None
    where: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    exclude: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    tol: float = 0.0
    min_seeds: int = 1
    significant: bool = False
    fraction: float = 1.0
    x: str | None = None
    order: tuple[Any, ...] | None = None
    sign: str | None = None
    value: float | None = None
    rel_tol: float = 0.0
    min: float | None = None
    max: float | None = None

    @property
    def path(self) -> str:
        return f"claims[{self.index}]"

    @property
    def lefts(self) -> tuple[str, ...]:
        return self.left if isinstance(self.left, tuple) else (self.left,)

    @property
    def variants(self) -> tuple[str, ...]:
        """Every variant the claim reads (left ones, then right if it names one)."""
        return self.lefts + ((self.right,) if isinstance(self.right, str) else ())

    @property
    def factor(self) -> str | None:
        """The grid factor of a ``trend`` with ``x = "factor:<name>"``."""
        return self.x[len("factor:"):] if self.x and self.x.startswith("factor:") else None


def parse_claims(value: Any) -> list[Claim]:
    """Validate the ``[[claims]]`` list (``[]`` when absent); names must be unique."""
    claims = [_claim(v, i) for i, v in enumerate(c.items(value, "claims", allow_empty=True))]
    seen: dict[str, int] = {}
    for cl in claims:
        if cl.name in seen:
            raise ConfigError(f"{cl.path}.name", f"{cl.name!r} is also the name of "
                                                 f"claims[{seen[cl.name]}]; names must be unique")
        seen[cl.name] = cl.index
    return claims


def _claim(value: Any, index: int) -> Claim:
    where = f"claims[{index}]"
    t = c.table(value, where)
    all_keys = list(dict.fromkeys(_COMMON + tuple(k for ks in RULE_KEYS.values() for k in ks)))
    c.known_keys(t, all_keys, where)
    for key in ("name", "source", "left", "evaluation", "metric", "rule"):
        if key not in t:
            raise ConfigError(f"{where}.{key}", "missing required key")
    rule = c.string(t["rule"], f"{where}.rule", RULE_KEYS)
    for key in t:
        owners = [r for r, ks in RULE_KEYS.items() if key in ks]
        if owners and rule not in owners:
            raise ConfigError(f"{where}.{key}", f"only read by rule {' / '.join(owners)}, not by "
                                                f"this claim's rule {rule!r}")
    evaluation = c.string(t["evaluation"], f"{where}.evaluation",
                          [*EVALUATIONS, *EXTRA_EVALUATIONS])
    kw: dict[str, Any] = {
        "index": index, "rule": rule, "evaluation": evaluation,
        "name": c.string(t["name"], f"{where}.name"),
        "source": c.string(t["source"], f"{where}.source"),
        # An old config's claim reads the metric under its new name, as the store reads old
        # records (fuselab.study.store.LEGACY_METRICS).
        "metric": LEGACY_METRICS.get(m := c.string(t["metric"], f"{where}.metric"), m),
        "left": _left(t, where, rule), "right": _right(t, where, rule),
        "paper": _paper(t.get("paper"), f"{where}.paper"),
        "where": _conditions(t.get("where", {}), f"{where}.where"),
        "exclude": _conditions(t.get("exclude", {}), f"{where}.exclude"),
        "tol": c.number(t.get("tol", 0.0), f"{where}.tol", 0.0),
        "min_seeds": c.integer(t.get("min_seeds", 1), f"{where}.min_seeds", 1),
        "significant": c.boolean(t.get("significant", False), f"{where}.significant"),
    }
    kw.update(_rule_options(t, where, rule))
    return Claim(**kw)


def _left(t: dict[str, Any], where: str, rule: str) -> str | tuple[str, ...]:
    left = t["left"]
    factor = rule == "trend" and str(t.get("x", "")).startswith("factor:")
    if isinstance(left, list):
        if not factor:
            raise ConfigError(f"{where}.left", "a list of variants is only read by rule 'trend' "
                                               "with x = \"factor:<name>\"; give one variant name")
        names = tuple(c.string(v, f"{where}.left[{i}]") for i, v in
                      enumerate(c.items(left, f"{where}.left")))
        if len(names) < 2 or len(set(names)) != len(names):
            raise ConfigError(f"{where}.left", f"expected >= 2 distinct variants, got {list(names)}")
        return names
    if factor:
        raise ConfigError(f"{where}.left", "x = \"factor:<name>\" reads a list of variants in x "
                                           f"order, got {c.type_name(left)} {left!r}")
    return c.string(left, f"{where}.left")


def _right(t: dict[str, Any], where: str, rule: str) -> str | float | None:
    need = RIGHT[rule]
    if "right" not in t:
        if need:
            raise ConfigError(f"{where}.right", f"missing: rule {rule!r} compares left with a "
                                                "variant name or a number")
        return None
    if need is False:
        raise ConfigError(f"{where}.right", f"rule {rule!r} reads left only; remove 'right'")
    r = t["right"]
    if isinstance(r, str):
        return c.string(r, f"{where}.right")
    return c.number(r, f"{where}.right")


def _paper(value: Any, where: str) -> str | float | None:
    if value is None or isinstance(value, str):
        return value
    return c.number(value, where)


def _conditions(value: Any, where: str) -> dict[str, tuple[Any, ...]]:
    out: dict[str, tuple[Any, ...]] = {}
    for key, v in c.table(value, where).items():
        vals = v if isinstance(v, list) else [v]
        for i, x in enumerate(c.items(vals, f"{where}.{key}")):
            if isinstance(x, bool) or not isinstance(x, (str, int, float)):
                raise ConfigError(f"{where}.{key}" + (f"[{i}]" if isinstance(v, list) else ""),
                                  f"expected a string or number, got {c.type_name(x)} {x!r}")
        out[key] = tuple(None if x == CLEAN else x for x in vals)
    return out


def _rule_options(t: dict[str, Any], where: str, rule: str) -> dict[str, Any]:
    if rule == "cells_ge":
        frac = c.number(t.get("fraction", 1.0), f"{where}.fraction", 0.0)
        if frac > 1:
            raise ConfigError(f"{where}.fraction", f"expected a fraction in [0, 1], got {frac}")
        return {"fraction": frac}
    if rule == "trend":
        for key in ("x", "sign"):
            if key not in t:
                raise ConfigError(f"{where}.{key}", "missing: rule 'trend' needs x (a condition "
                                                    "key or \"factor:<name>\") and sign")
        out: dict[str, Any] = {"x": c.string(t["x"], f"{where}.x"),
                               "sign": c.string(t["sign"], f"{where}.sign", ("+", "-"))}
        if "order" in t:
            order = c.items(t["order"], f"{where}.order")
            out["order"] = tuple(None if v == CLEAN else v for v in order)
        return out
    if rule == "equals":
        if "value" not in t:
            raise ConfigError(f"{where}.value", "missing: rule 'equals' compares with value")
        return {"value": c.number(t["value"], f"{where}.value"),
                "rel_tol": c.number(t.get("rel_tol", 0.0), f"{where}.rel_tol", 0.0)}
    if rule == "between":
        if "min" not in t and "max" not in t:
            raise ConfigError(f"{where}.min", "rule 'between' needs min, max or both")
        lo = None if "min" not in t else c.number(t["min"], f"{where}.min")
        hi = None if "max" not in t else c.number(t["max"], f"{where}.max")
        if lo is not None and hi is not None and lo > hi:
            raise ConfigError(f"{where}.max", f"max {hi} is below min {lo}")
        return {"min": lo, "max": hi}
    return {}
