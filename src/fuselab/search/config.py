"""The typed search config: a study config whose ``[search]`` table replaces the ``[grid]``.

A search file has the study tables (``[study]``, ``[data]``, ``[model]``, ``[train]``,
``[evaluate]``, ``[execution]``; validated by :func:`fuselab.study.config.parse_config`, the same
error paths) plus::

    [search]
    trials = 40                       # budget: trials counted over every process sharing it
    cost = "flops_per_sample"         # optional second objective (minimised): a Pareto front
    sampler = "tpe"                   # tpe | nsga2 | random (+ sampler_options)
    pruner = "median"                 # median | percentile | hyperband | successive_halving | none
    top_k = 3                         # designs written to best.toml (plus the Pareto front)
    seed = 0                          # the sampler's seed
    train_seed = 0                    # every trial's training seed (default: study.seeds[0])
    enqueue = [{ depth = "late" }]    # designs tried first (e.g. the hand-written baseline)

    [search.space.depth]              # one table per parameter, sampled in file order
    choices = ["early", "late"]       # a name from the [[grid.fusion]] shorthands needs no path
    [search.space.lr]
    path = "train.lr"
    low = 1e-4
    high = 1e-2
    log = true
    [search.space.rank]
    path = "model.fusion[-1].options.rank"
    choices = [4, 16]
    when = { op = "lowrank" }         # sampled only when op is lowrank

The first objective is always the validation value of ``train.metric`` (``"auto"``: accuracy
for classification) at the best epoch; the test split is never evaluated during a search.
``study.seeds`` and ``[evaluate]`` are those of the study config the search writes at the end.
Errors name the path in the file (``search.space.lr.low``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fuselab import _validate as c
from fuselab.study.config import (
    SHORTHANDS,
    TOP_TABLES,
    StudyConfig,
    parse_config,
    read_config_file,
)
from fuselab.study.errors import ConfigError
from fuselab.study.execute import RUNNER_TRAIN_KEYS
from fuselab.study.overrides import apply_overrides

#: Second objectives: cost metrics of fuselab.evaluate.cost that a search minimises.
COST_METRICS = ("params", "fusion_params", "flops_per_sample", "latency_ms_b1", "peak_memory_mb")
SAMPLERS = ("tpe", "nsga2", "random")
PRUNERS = ("median", "percentile", "hyperband", "successive_halving", "none")
_SEARCH_KEYS = ("trials", "space", "cost", "cost_options", "sampler", "sampler_options", "pruner",
                "pruner_options", "top_k", "seed", "train_seed", "enqueue")
_PARAM_KEYS = ("path", "choices", "labels", "low", "high", "log", "step", "when")
_PATH = re.compile(r"^(model|train)(\.[A-Za-z0-9_-]+(\[-?\d+\])?)*$")
#: What a search config has instead of these study-config parts, for the error message.
_NOT_IN_SEARCH = {
    "grid": "a search config has no [grid]: its designs come from [search.space], and the "
            "study config it writes lists the chosen ones as [[grid.fusion]] entries",
    "claims": "claims compare named variants; put them in the study config the search writes",
}


@dataclass(frozen=True)
class Param:
    """One searched parameter: its values (``choices`` with scalar ``labels``, or a numeric
    range ``low``..``high``) set at ``paths`` of the run config, ``when`` its condition.

    A table value is merged into the table at its path (like a ``[[grid.fusion]]`` entry's
    ``model`` table); any other value replaces what is there. The path ``model`` (or ``train``)
    itself takes table choices only: ``{}`` changes nothing, ``{ progressive = {...} }`` adds.
    """

    name: str
    paths: list[str]
    choices: list[Any] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    #: ``{earlier parameter: [labels]}``: sampled only when each of them has one of its labels
    when: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"search.space.{self.name}"

    @property
    def categorical(self) -> bool:
        return bool(self.choices)

    @property
    def integer(self) -> bool:
        return not self.categorical and isinstance(self.low, int) and isinstance(self.high, int) \
            and (self.step is None or isinstance(self.step, int))

    def value(self, label: Any) -> Any:
        """The config value of a sampled label (a numeric parameter's label is its value)."""
        if not self.categorical:
            return label
        return copy.deepcopy(self.choices[self.labels.index(label)])


@dataclass(frozen=True)
class SearchSpec:
    """The validated ``[search]`` table (see the module docstring for each key)."""

    space: list[Param]
    trials: int
    cost: str | None = None
    cost_options: dict[str, Any] = field(default_factory=dict)
    sampler: str = "tpe"
    sampler_options: dict[str, Any] = field(default_factory=dict)
    pruner: str = "median"
    pruner_options: dict[str, Any] = field(default_factory=dict)
    top_k: int = 3
    seed: int = 0
    train_seed: int = 0
    enqueue: list[dict[str, Any]] = field(default_factory=list)

    @property
    def objectives(self) -> int:
        return 2 if self.cost else 1


@dataclass(frozen=True)
class SearchConfig:
    """A whole search: the study part (one base design, no grid) and the ``[search]`` table.

    ``raw`` is the file as parsed (overrides applied), ``[search]`` included.
    """

    study: StudyConfig
    search: SearchSpec
    raw: dict[str, Any]
    source: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.study.name


def load_search_config(path: str | Path, overrides: Mapping[str, Any] | None = None, *,
                       origin: str = "override") -> SearchConfig:
    """Read and validate a search file (``.toml``/``.yaml``); ``overrides`` as for studies."""
    p = Path(path)
    raw = read_config_file(p)
    if overrides:
        raw = apply_overrides(raw, overrides, tables=(*TOP_TABLES, "search"), origin=origin)
    cfg = parse_search_config(raw, source=p)
    return replace(cfg, overrides=dict(overrides or {}))


def parse_search_config(raw: Any, source: Path | None = None) -> SearchConfig:
    """Validate an already parsed search file."""
    top = c.table(raw, "")
    if "search" not in top:
        raise ConfigError("search", "missing required table (a search config needs "
                                    "[search] with trials and space; a study config runs with "
                                    "`fuselab study`)")
    for key, why in _NOT_IN_SEARCH.items():
        if key in top:
            raise ConfigError(key, why)
    study_raw = {k: v for k, v in top.items() if k != "search"}
    study = c.table(study_raw.get("study", {}), "study")
    if "baseline" in study:
        raise ConfigError("study.baseline", "a search has no variants to compare with; the study "
                                            "config it writes names its best design baseline "
                                            "when [evaluate] has robustness")
    # one placeholder variant: the base design, so the study validators (and expand) apply
    study_raw["grid"] = {"fusion": [{"label": "base"}]}
    cfg = parse_config(study_raw, source=source)
    spec = _search(top["search"], cfg)
    return SearchConfig(study=cfg, search=spec, raw=top, source=source)


def _search(value: Any, cfg: StudyConfig) -> SearchSpec:
    s = c.table(value, "search")
    c.known_keys(s, _SEARCH_KEYS, "search")
    for key in ("trials", "space"):
        if key not in s:
            raise ConfigError(f"search.{key}", "missing required key")
    space: list[Param] = []
    for name, p in c.table(s["space"], "search.space").items():
        space.append(_param(name, p, space))
    if not space:
        raise ConfigError("search.space", "expected at least one parameter")
    cost = s.get("cost")
    if cost is not None:
        cost = c.string(cost, "search.cost", COST_METRICS)
    if "cost_options" in s and cost is None:
        raise ConfigError("search.cost_options", "only read with search.cost")
    objectives = 2 if cost else 1
    sampler = c.string(s.get("sampler", "tpe" if objectives == 1 else "nsga2"), "search.sampler",
                       SAMPLERS)
    pruner = c.string(s.get("pruner", "median" if objectives == 1 else "none"), "search.pruner",
                      PRUNERS)
    if objectives == 2 and pruner != "none":
        raise ConfigError("search.pruner", f"got {pruner!r}, but Optuna prunes single-objective "
                                           "searches only; with search.cost use 'none'")
    if pruner == "none" and "pruner_options" in s:
        raise ConfigError("search.pruner_options", "pruner 'none' takes no options")
    spec = SearchSpec(
        space=space,
        trials=c.integer(s["trials"], "search.trials", 1),
        cost=cost,
        cost_options=c.table(s.get("cost_options", {}), "search.cost_options"),
        sampler=sampler,
        sampler_options=c.table(s.get("sampler_options", {}), "search.sampler_options"),
        pruner=pruner,
        pruner_options=c.table(s.get("pruner_options", {}), "search.pruner_options"),
        top_k=c.integer(s.get("top_k", 3), "search.top_k", 1),
        seed=c.integer(s.get("seed", 0), "search.seed", 0),
        train_seed=c.integer(s.get("train_seed", cfg.seeds[0]), "search.train_seed", 0),
    )
    enqueue = [_design(d, f"search.enqueue[{i}]", space) for i, d in
               enumerate(c.items(s.get("enqueue", []), "search.enqueue", allow_empty=True))]
    return replace(spec, enqueue=enqueue)


def _param(name: str, value: Any, earlier: list[Param]) -> Param:
    where = f"search.space.{name}"
    p = c.table(value, where)
    c.known_keys(p, _PARAM_KEYS, where)
    paths = _paths(name, p, where)
    when = _when(p.get("when", {}), f"{where}.when", earlier)
    if "choices" in p:
        for key in ("low", "high", "log", "step"):
            if key in p:
                raise ConfigError(f"{where}.{key}", "a parameter has either choices or a "
                                                    "numeric range (low, high), not both")
        choices = c.items(p["choices"], f"{where}.choices")
        if any(x in ("model", "train") for x in paths):
            for i, v in enumerate(choices):  # merged into the whole table, never replacing it
                if not isinstance(v, dict):
                    raise ConfigError(f"{where}.choices[{i}]", f"a choice for path {paths} is "
                                                               "a table merged into it (e.g. {} "
                                                               f"for no change), got {v!r}")
                owned = sorted(set(v) & set(RUNNER_TRAIN_KEYS)) if "train" in paths else []
                if owned:
                    raise ConfigError(f"{where}.choices[{i}]", f"sets {owned}, which the "
                                                               "runner sets")
        labels = _labels(p, choices, where)
        return Param(name, paths, choices=choices, labels=labels, when=when)
    if "labels" in p:
        raise ConfigError(f"{where}.labels", "labels name choices; a numeric range has none")
    if any(x in ("model", "train") for x in paths):
        raise ConfigError(f"{where}.path", f"{paths}: a whole table takes table choices, not a "
                                           "numeric range")
    for key in ("low", "high"):
        if key not in p:
            raise ConfigError(f"{where}.{key}", "missing: give choices = [...] or a numeric "
                                                "range low, high (log, step optional)")
    low, high = (_num(p[k], f"{where}.{k}") for k in ("low", "high"))
    if not low < high:
        raise ConfigError(f"{where}.high", f"expected high > low = {low}, got {high}")
    log = c.boolean(p.get("log", False), f"{where}.log")
    if log and low <= 0:
        raise ConfigError(f"{where}.low", f"a log-scale range needs low > 0, got {low}")
    step = None if "step" not in p else _num(p["step"], f"{where}.step")
    if step is not None and (step <= 0 or log):
        why = "log-scale ranges take no step" if log else f"expected a step > 0, got {step}"
        raise ConfigError(f"{where}.step", why)
    return Param(name, paths, low=low, high=high, log=log, step=step, when=when)


def _num(value: Any, where: str) -> int | float:
    c.number(value, where)
    return value  # type: ignore[no-any-return]  # int stays int: an integer range


def _paths(name: str, p: dict[str, Any], where: str) -> list[str]:
    if "path" not in p:
        if name in SHORTHANDS:
            return [SHORTHANDS[name][1]]
        raise ConfigError(f"{where}.path", "missing: a dotted config path such as 'train.lr' "
                                           "(or name the parameter after a [[grid.fusion]] "
                                           f"shorthand: {sorted(SHORTHANDS)})")
    raw = p["path"] if isinstance(p["path"], list) else [p["path"]]
    paths = [c.string(x, f"{where}.path") for x in c.items(raw, f"{where}.path")]
    for path in paths:
        if not _PATH.match(path):
            raise ConfigError(f"{where}.path", f"expected 'model.KEY...' or 'train.KEY...' "
                                               f"(list indices as [i]), got {path!r}; data "
                                               "options are not searched: they change the "
                                               "validation set the trials are compared on")
        key = [*path.split("."), ""][1].split("[")[0]
        if path.startswith("train.") and key in RUNNER_TRAIN_KEYS:
            raise ConfigError(f"{where}.path", f"{path!r} is set by the runner "
                                               f"({list(RUNNER_TRAIN_KEYS)}); trials train with "
                                               "search.train_seed")
    return paths


def _labels(p: dict[str, Any], choices: list[Any], where: str) -> list[Any]:
    scalar = (str, int, float, bool)
    if "labels" not in p:
        for i, v in enumerate(choices):
            if not isinstance(v, scalar):
                raise ConfigError(f"{where}.choices[{i}]", f"is a {c.type_name(v)}; give "
                                                           "labels = [...], one scalar name per "
                                                           "choice")
        labels = list(choices)
    else:
        labels = c.items(p["labels"], f"{where}.labels")
        if len(labels) != len(choices):
            raise ConfigError(f"{where}.labels", f"expected {len(choices)} labels (one per "
                                                 f"choice), got {len(labels)}")
        for i, lab in enumerate(labels):
            if not isinstance(lab, scalar):
                raise ConfigError(f"{where}.labels[{i}]", f"expected a scalar, got {lab!r}")
    seen: set[str] = set()
    for i, lab in enumerate(labels):
        key = repr(lab)
        if key in seen:
            what = "labels" if "labels" in p else "choices"
            raise ConfigError(f"{where}.{what}[{i}]", f"duplicate {lab!r}: every choice needs "
                                                      "its own label")
        seen.add(key)
    return labels


def _when(value: Any, where: str, earlier: list[Param]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    names = [q.name for q in earlier]
    for name, want in c.table(value, where).items():
        if name not in names:
            raise ConfigError(f"{where}.{name}", f"no earlier parameter {name!r}; a condition "
                                                 f"names a parameter declared above it: {names}")
        q = earlier[names.index(name)]
        if not q.categorical:
            raise ConfigError(f"{where}.{name}", f"{name!r} is a numeric range; conditions "
                                                 "name choices of a categorical parameter")
        wanted = want if isinstance(want, list) else [want]
        for lab in c.items(wanted, f"{where}.{name}"):
            if lab not in q.labels:
                raise ConfigError(f"{where}.{name}", f"{lab!r} is not a label of {name!r}; "
                                                     f"its labels: {q.labels}")
        out[name] = list(wanted)
    return out


def _design(value: Any, where: str, space: list[Param]) -> dict[str, Any]:
    """A design to try first: ``{parameter: label (or a value in its range)}``; parameters it
    leaves out are sampled (Optuna's ``enqueue_trial``)."""
    d = c.table(value, where)
    by_name = {p.name: p for p in space}
    c.known_keys(d, by_name, where)
    for p in space:
        active = all(d.get(q) in labs for q, labs in p.when.items())
        if not active:
            if p.name in d:
                raise ConfigError(f"{where}.{p.name}", f"not sampled in this design: its "
                                                       f"condition {p.when} does not hold")
            continue
        if p.name not in d:
            continue
        v = d[p.name]
        if p.categorical:
            if v not in p.labels:
                raise ConfigError(f"{where}.{p.name}", f"{v!r} is not a label; labels: "
                                                       f"{p.labels}")
        else:
            x = c.number(v, f"{where}.{p.name}")
            assert p.low is not None and p.high is not None
            if not p.low <= x <= p.high:
                raise ConfigError(f"{where}.{p.name}", f"{v} is outside [{p.low}, {p.high}]")
    return d
