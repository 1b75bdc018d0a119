"""A search's trials as plain data (dicts and lists, no Optuna objects), for the written study
config, the report and ``fuselab show``.

    data = read_search("runs/search_avmnist")       # a search directory or a database URL
    data.trials[0] == {"number": 0, "state": "complete", "values": [0.91], "params": {...},
                       "curve": [[1, 0.62], ...], "metrics": {...}, "config": {...},
                       "duration_s": 41.0, "error": None}
    data.pareto, data.importances, data.directions, data.objectives, data.params
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fuselab.search import optuna_setup as setup

#: Study user attribute holding the objectives' names (``val_accuracy``, a cost metric).
OBJECTIVES_ATTR = "objectives"


@dataclass
class SearchData:
    """Everything the search stored, read back.

    Attributes:
        name: the search (Optuna study) name.
        directions: ``"maximize"`` / ``"minimize"`` per objective.
        objectives: objective names, e.g. ``["val_accuracy", "flops_per_sample"]``.
        trials: one dict per trial in number order (see the module docstring).
        pareto: numbers of the Pareto-optimal complete trials (one objective: the best trial).
        params: ``{name: {"kind": "categorical"|"int"|"float", "log": bool, "choices": [...]}}``.
        importances: per objective ``{param: importance}`` (Optuna's default evaluator,
            PED-ANOVA; normalised to sum 1) or ``None`` when it cannot be computed.
        importance_note: why importances are missing, if they are.
        config: the search config as stored (``read_search`` only).
        chosen: the designs written to best.toml (``read_search`` only; see search.export).
        environment: where and how the search last ran (``read_search`` only).
    """

    name: str
    directions: list[str]
    objectives: list[str]
    trials: list[dict[str, Any]]
    pareto: list[int]
    params: dict[str, dict[str, Any]]
    importances: list[dict[str, float] | None] = field(default_factory=list)
    importance_note: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    chosen: list[dict[str, Any]] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)

    def complete(self) -> list[dict[str, Any]]:
        return [t for t in self.trials if t["state"] == "complete"]


def storage_url(study_dir: str | Path) -> str:
    """The database URL of a search directory (``store.json`` names a server; the password is
    hidden there and ``$FUSELAB_DB_URL`` gives the full URL, as for studies)."""
    from fuselab.study.store import DB_NAME, URL_FILE

    path = Path(study_dir)
    if (path / URL_FILE).is_file():
        return os.environ.get("FUSELAB_DB_URL") or json.loads((path / URL_FILE).read_text())["url"]
    return setup.sqlite_url(path / DB_NAME)


def read_search(study_dir_or_url: str | Path, name: str | None = None) -> SearchData:
    """Read a search from its directory (or database URL with ``name``)."""
    from fuselab.study.store import open_store

    target = os.fspath(study_dir_or_url)
    store = open_store(target, readonly=True)
    try:
        study = store.study()
    finally:
        store.close()
    url = target if "://" in target else storage_url(target)
    from fuselab.search.export import choose

    data = read_trials(url, name or study.get("name", ""))
    data.config = study.get("config", {})
    data.environment = study.get("environment") or {}
    data.chosen = choose(data, int(data.config.get("search", {}).get("top_k", 3)))
    return data


def read_trials(url: str, name: str) -> SearchData:
    """Read the Optuna study ``name`` from the database ``url``."""
    op = setup.optuna()
    storage = setup.storage(url)
    try:
        with setup.quiet():
            study = op.load_study(study_name=name, storage=storage)
        frozen = study.get_trials(deepcopy=False)
        directions = [d.name.lower() for d in study.directions]
        objectives = list(study.user_attrs.get(OBJECTIVES_ATTR, [f"objective {i}" for i in
                                                                  range(len(directions))]))
        trials = [_trial(t) for t in frozen]
        pareto = [t.number for t in study.best_trials] if any(
            t["state"] == "complete" for t in trials) else []
        importances, note = _importances(op, study, trials)
        return SearchData(name=name, directions=directions, objectives=objectives,
                          trials=trials, pareto=pareto, params=_params(frozen),
                          importances=importances, importance_note=note)
    finally:
        storage.engine.dispose()


def _trial(t: Any) -> dict[str, Any]:
    start, end = t.datetime_start, t.datetime_complete
    duration = t.user_attrs.get("duration_s")
    if duration is None and start is not None and end is not None:
        duration = (end - start).total_seconds()
    return {
        "number": t.number, "state": t.state.name.lower(),
        "values": None if t.values is None else [float(v) for v in t.values],
        "params": dict(t.params), "curve": [list(p) for p in t.user_attrs.get("curve", [])],
        "intermediate": {int(k): float(v) for k, v in t.intermediate_values.items()},
        "metrics": dict(t.user_attrs.get("metrics", {})), "config": t.user_attrs.get("config"),
        "duration_s": duration, "error": t.user_attrs.get("error"),
    }


def _params(frozen: list[Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for t in frozen:
        for name, d in t.distributions.items():
            if name in out:
                continue
            kind = type(d).__name__.replace("Distribution", "").lower()
            info: dict[str, Any] = {"kind": kind, "log": bool(getattr(d, "log", False))}
            if kind == "categorical":
                info["choices"] = list(d.choices)
            out[name] = info
    return out


def _importances(op: Any, study: Any, trials: list[dict[str, Any]],
                 ) -> tuple[list[dict[str, float] | None], str]:
    n_objectives = len(study.directions)
    done = [t for t in trials if t["state"] == "complete"]
    varied = {k for t in done for k in t["params"]
              if len({json.dumps(u["params"].get(k)) for u in done}) > 1}
    if len(done) < 3 or not varied:
        return [None] * n_objectives, (f"importances need 3 complete trials with varied "
                                       f"parameters; this search has {len(done)}")
    out: list[dict[str, float] | None] = []
    notes: list[str] = []
    for i, direction in enumerate(study.directions):
        # PED-ANOVA ranks parameters by how they reach *low* target values
        sign = -1.0 if direction.name == "MAXIMIZE" else 1.0
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # Optuna's doubts about few trials go in the note
            with setup.quiet():
                imp = op.importance.get_param_importances(
                    study, target=lambda t, i=i, sign=sign: sign * t.values[i])
        notes += [str(w.message) for w in caught if str(w.message) not in notes]
        out.append({k: float(v) for k, v in imp.items()})
    return out, " ".join(f"Optuna: {n}" for n in notes)
