"""The search space at work: sample a design from an Optuna trial, turn a design into a run.

A *design* is ``{parameter name: label}`` (a numeric parameter's label is its value) for the
parameters whose conditions hold; :func:`resolve` sets each one's value at its config paths of
the base run config, in the order the parameters are declared.
"""

from __future__ import annotations

import copy
from typing import Any

from fuselab import _validate as c
from fuselab.search.config import Param


def active(param: Param, design: dict[str, Any]) -> bool:
    """Whether ``param`` is sampled given the labels sampled before it."""
    return all(design.get(name) in labels for name, labels in param.when.items())


def suggest(trial: Any, space: list[Param]) -> dict[str, Any]:
    """Sample a design from an Optuna trial (``Trial``, or ``FixedTrial`` in tests)."""
    design: dict[str, Any] = {}
    for p in space:
        if not active(p, design):
            continue
        if p.categorical:
            design[p.name] = trial.suggest_categorical(p.name, p.labels)
        elif p.integer:
            design[p.name] = trial.suggest_int(p.name, p.low, p.high, step=p.step or 1,
                                               log=p.log)
        else:
            design[p.name] = trial.suggest_float(p.name, float(p.low), float(p.high),  # type: ignore[arg-type]
                                                 step=p.step, log=p.log)
    return design


def resolve(base: dict[str, Any], space: list[Param], design: dict[str, Any]) -> dict[str, Any]:
    """The run config of ``design``: a copy of ``base`` with each parameter's value set."""
    config = copy.deepcopy(base)
    for p in space:
        if p.name not in design:
            continue
        value = p.value(design[p.name])
        for path in p.paths:
            old = lookup(config, path)
            if isinstance(value, dict) and isinstance(old, dict):
                value_at = c.deep_merge(old, value)
            else:
                value_at = copy.deepcopy(value)
            c.set_path(config, path, value_at)
    return config


def lookup(config: dict[str, Any], dotted: str) -> Any:
    """The value at ``dotted`` (``model.fusion[-1].at``), or ``None`` where the path is absent."""
    node: Any = config
    for part in dotted.split("."):
        key, _, idx = part.partition("[")
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
        if idx:
            pos = int(idx.rstrip("]"))
            if not isinstance(node, list) or not -len(node) <= pos < len(node):
                return None
            node = node[pos]
    return node


def describe(design: dict[str, Any]) -> str:
    """``depth=late · lr=0.0012``: a design in one line (floats to 3 significant digits)."""
    def fmt(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    return " · ".join(f"{k}={fmt(v)}" for k, v in design.items()) or "base"
