"""The search's result as an ordinary study config: the chosen designs as ``[[grid.fusion]]``.

``best.toml`` holds the search config's ``[study]`` (renamed ``<name>-best``, with
``study.seeds``), ``[data]``, ``[model]``, ``[train]``, ``[evaluate]`` and ``[execution]``, and one
``[[grid.fusion]]`` entry per chosen design: ``label = "trial 17"``, ``factors`` = the design's
parameters, and ``model`` / ``train`` tables holding what the design changes in the base (deep
merged by the study, as any entry). ``fuselab study best.toml`` then trains each design with
every seed and evaluates it on the test split, which the search never touched.

Chosen: the ``top_k`` best complete trials by the first objective (the validation metric) and,
with a cost objective, every trial on the Pareto front; trials with the same config once.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from fuselab.search.config import SearchConfig
from fuselab.search.results import SearchData
from fuselab.study.config import load_config
from fuselab.study.grid import canonical_json, expand
from fuselab.study.overrides import toml_key, toml_value

_TABLES = ("data", "model", "train", "evaluate", "execution")


def choose(data: SearchData, top_k: int) -> list[dict[str, Any]]:
    """The chosen designs, best first: ``{"number", "label", "values", "params", "config",
    "rank", "reasons"}`` (``rank``: by the first objective among distinct complete designs)."""
    sign = -1.0 if data.directions[0] == "maximize" else 1.0
    done = sorted(data.complete(), key=lambda t: (sign * t["values"][0], t["number"]))
    front = set(data.pareto) if len(data.directions) > 1 else set()
    chosen: list[dict[str, Any]] = []
    seen: set[str] = set()
    for t in done:
        key = canonical_json([t["config"]["model"], t["config"]["train"]])
        if key in seen:
            continue
        seen.add(key)
        rank = len(seen)
        reasons = [f"rank {rank} by {data.objectives[0]}"] if rank <= top_k else []
        if t["number"] in front:
            reasons.append("Pareto front")
        if reasons:
            chosen.append({"number": t["number"], "label": f"trial {t['number']}",
                           "values": t["values"], "params": t["params"], "config": t["config"],
                           "rank": rank, "reasons": reasons})
    return chosen


def changes(base: Any, new: Any) -> dict[str, Any]:
    """What ``new`` sets that ``base`` does not have: a table to deep-merge into ``base``
    (nested tables recurse, any other changed value is given whole)."""
    out: dict[str, Any] = {}
    for k, v in new.items():
        old = base.get(k) if isinstance(base, dict) else None
        if isinstance(v, dict) and isinstance(old, dict):
            sub = changes(old, v)
            if sub:
                out[k] = sub
        elif k not in base or old != v:
            out[k] = copy.deepcopy(v)
    return out


def study_document(cfg: SearchConfig, chosen: list[dict[str, Any]]) -> dict[str, Any]:
    """The written study config as a plain mapping."""
    raw = cfg.raw
    study: dict[str, Any] = {
        "name": f"{cfg.name}-best",
        "description": f"the {len(chosen)} designs chosen by search {cfg.name!r}, "
                       "compared on the test split",
        "seeds": list(cfg.study.seeds),
    }
    if "robustness" in cfg.study.evaluate:
        study["baseline"] = chosen[0]["label"]
    doc: dict[str, Any] = {"study": study}
    doc.update({k: copy.deepcopy(raw[k]) for k in _TABLES if k in raw})
    fusion = []
    for ch in chosen:
        entry: dict[str, Any] = {"label": ch["label"], "factors": dict(ch["params"])}
        for table in ("model", "train"):
            diff = changes(raw.get(table, {}), ch["config"][table])
            if diff:
                entry[table] = diff
        fusion.append(entry)
    doc["grid"] = {"fusion": fusion}
    return doc


def dump_study(doc: dict[str, Any], header: list[str], notes: list[str]) -> str:
    """``doc`` as TOML: a ``[table]`` per top-level key, ``[[grid.fusion]]`` entries each after
    its line of ``notes``."""
    lines = [f"# {h}" if h else "#" for h in header] + [""]
    for name, table in doc.items():
        if name == "grid":
            continue
        lines.append(f"[{name}]")
        lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items()]
        lines.append("")
    for entry, note in zip(doc["grid"]["fusion"], notes, strict=True):
        lines += [f"# {note}", "[[grid.fusion]]"]
        lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in entry.items()]
        lines.append("")
    return "\n".join(lines)


def _note(ch: dict[str, Any], data: SearchData) -> str:
    vals = ", ".join(f"{name} {v:.4g}" for name, v in zip(data.objectives, ch["values"],
                                                            strict=True))
    return f"trial {ch['number']}: {vals} ({'; '.join(ch['reasons'])})"


def write_best_config(cfg: SearchConfig, chosen: list[dict[str, Any]], data: SearchData,
                      path: Path) -> Path:
    """Write the study config of the ``chosen`` designs to ``path`` (atomically) and check that
    it loads and expands to exactly their model and train configs."""
    doc = study_document(cfg, chosen)
    n = len(data.trials)
    header = [
        f"Written by `fuselab search` from search {cfg.name!r}: {len(chosen)} of {n} trials,",
        f"chosen on the validation split ({data.objectives[0]}"
        + (f"; Pareto front with {data.objectives[1]}" if len(data.objectives) > 1 else "")
        + "). The test split was not used.",
        "Compare them on the test split, every seed:",
        f"  fuselab study {path} --data-dir DIR",
    ]
    text = dump_study(doc, header, [_note(ch, data) for ch in chosen])
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")  # load_config reads it by suffix
    tmp.write_text(text, encoding="utf-8")
    _verify(tmp, chosen)
    tmp.replace(path)
    return path


def _verify(path: Path, chosen: list[dict[str, Any]]) -> None:
    specs = {s.variant: s for s in expand(load_config(path))}
    for ch in chosen:
        spec = specs[ch["label"]]
        for table in ("model", "train"):
            if spec.config[table] != ch["config"][table]:
                raise RuntimeError(f"{path}: variant {ch['label']!r} expands to a {table} config "
                                   f"other than its trial's: {spec.config[table]} != "
                                   f"{ch['config'][table]}")
