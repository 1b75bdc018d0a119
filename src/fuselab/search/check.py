"""The up-front check of a search, before any trial: every value of every parameter is tried.

Each choice (a numeric range: its low and high end) is set on the base design, with the
parameters its condition names set to a label that activates it; every design in
``search.enqueue`` is tried whole. Those configs go through the study's own check
(:func:`fuselab.study.plan.check_plan`): data loaded, each train table built, each model built and
run forward, and each evaluation of ``[evaluate]`` tried, so the study config the search writes
can run too. A problem names the parameter value it comes from
(``search.space.op.choices[2] ('op=tensor') -> model: ...``). Combinations of values are not
enumerated; one that fails at run time is a failed trial with its message.
"""

from __future__ import annotations

import copy
from typing import Any

from fuselab.search.config import Param, SearchConfig
from fuselab.search.space import describe, resolve
from fuselab.study.grid import RunSpec, config_hash, expand


def base_config(cfg: SearchConfig) -> dict[str, Any]:
    """The base design's run config (``data``, ``model``, ``train``, ``evaluate``, ``seed``),
    as the study grid would resolve it, seeded with ``search.train_seed``."""
    config = copy.deepcopy(expand(cfg.study)[0].config)
    config["seed"] = cfg.search.train_seed
    return config


def _activate(param: Param, space: list[Param]) -> dict[str, Any]:
    """Labels of the parameters ``param``'s condition names (recursively) that activate it."""
    design: dict[str, Any] = {}
    by_name = {p.name: p for p in space}
    todo = [param]
    while todo:
        p = todo.pop()
        for name, labels in p.when.items():
            design.setdefault(name, labels[0])
            todo.append(by_name[name])
    return design


def probe_designs(cfg: SearchConfig) -> list[tuple[str, dict[str, Any]]]:
    """``(where, design)`` for every parameter value and every enqueued design."""
    space = cfg.search.space
    out: list[tuple[str, dict[str, Any]]] = []
    for p in space:
        needed = _activate(p, space)
        if p.categorical:
            values = [(f"{p.where}.choices[{i}]", lab) for i, lab in enumerate(p.labels)]
        else:
            values = [(f"{p.where}.low", p.low), (f"{p.where}.high", p.high)]
        for where, value in values:
            out.append((where, {**needed, p.name: value}))
    out += [(f"search.enqueue[{i}]", dict(d)) for i, d in enumerate(cfg.search.enqueue)]
    return out


def probe_specs(cfg: SearchConfig) -> list[RunSpec]:
    """The run specs of :func:`probe_designs` (duplicates of an earlier config left out)."""
    base = base_config(cfg)
    specs: list[RunSpec] = []
    seen: set[str] = set()
    for where, design in probe_designs(cfg):
        config = resolve(base, cfg.search.space, design)
        run_id = config_hash(config)
        if run_id in seen:
            continue
        seen.add(run_id)
        specs.append(RunSpec(run_id, describe(design), dict(design), config["seed"], config,
                             where))
    return specs


def check_search(cfg: SearchConfig, data_root: str | None) -> None:
    """Raise :class:`~fuselab.study.errors.ConfigError` for the first value that cannot run."""
    from fuselab.search import optuna_setup
    from fuselab.study.plan import check_plan

    optuna_setup.check(cfg.search)
    if cfg.search.cost_options:
        from fuselab.study.errors import ConfigError
        from fuselab.study.evaluate_table import options

        try:
            options("cost", cfg.search.cost_options)
        except ConfigError as e:
            key = e.path.rsplit(".", 1)[-1]
            raise ConfigError(f"search.cost_options.{key}",
                              str(e).split(": ", 1)[-1]) from None
    check_plan(cfg.study, probe_specs(cfg), data_root=data_root)
