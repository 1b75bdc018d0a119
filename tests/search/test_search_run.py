"""Searches that run: the lattice lookup search finds early fusion, validation only, pruning in
worker processes, kill -9 and resume, two objectives, the written study config and the CLI."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fake_trials import HERE, write_search

from fuselab.search import run_search
from fuselab.search.results import read_search
from fuselab.study import StudyDirError, expand, load_config, open_store, run_study

# TPE after 3 random trials explores the unseen categories: over sampler seeds 0-39 a
# simulation with these scores found early fusion within 8 trials every time (the default 10
# random startup trials missed it for 3 of 40 seeds, seed 0 among them).
DEPTH = """
[search]
trials = 8
top_k = 2
pruner = "none"
sampler_options = { n_startup_trials = 3 }
enqueue = [{ depth = "late" }]          # the hand-written baseline first

[search.space.depth]
choices = ["early", "late", "decision"]

[search.space.op]
choices = ["late"]
when = { depth = "decision" }
"""


class Trap:
    """A split that must never be touched: any use fails the run."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the search touched the test split (.{name})")

    def __len__(self) -> int:
        raise AssertionError("the search touched the test split (len)")


def test_lattice_search_finds_early_fusion_on_validation_only(
        tmp_path: Path, lookup_npz: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fuselab.data
    import fuselab.study.evaluate_table as evaluations
    import fuselab.study.execute as execute

    real = fuselab.data.load_splits

    def trapped(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {**real(*args, **kwargs), "test": Trap()}

    def no_evaluation(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a search trial ran an evaluation")

    execute._SPLIT_CACHE.clear()
    monkeypatch.setattr(fuselab.data, "load_splits", trapped)
    monkeypatch.setattr(evaluations, "run_evaluation", no_evaluation)
    monkeypatch.setattr(execute, "run_evaluation", no_evaluation)
    cfg = write_search(tmp_path / "depth.toml", lookup_npz, DEPTH)
    out = tmp_path / "search"
    s = run_search(cfg, out, workers=0, progress=False, check=False)
    monkeypatch.undo()
    execute._SPLIT_CACHE.clear()

    data = read_search(out)
    assert s.states == {"complete": 8} and len(data.trials) == 8
    assert data.trials[0]["params"] == {"depth": "late"}  # enqueued first
    by_depth: dict[str, list[float]] = {}
    for t in data.trials:
        by_depth.setdefault(t["params"]["depth"], []).append(t["values"][0])
        assert not any(k.startswith("test_") for k in t["metrics"]), t["metrics"]
        assert t["curve"] and all(epoch in (1, 2, 3, 4) for epoch, _ in t["curve"])
    assert "early" in by_depth, by_depth
    # known answer (fake_trials docstring): early fusion wins by a wide margin
    others = [v for d, vs in by_depth.items() if d != "early" for v in vs]
    assert min(by_depth["early"]) > max(others) + 0.05, by_depth
    assert data.chosen[0]["params"]["depth"] == "early"

    # the written study config loads and expands to the chosen designs, one run per seed
    best = load_config(s.best_config)
    assert best.name == "tiny-best" and best.seeds == [0, 1]
    labels = [c["label"] for c in data.chosen]
    assert len(labels) == 2 and [v.label for v in best.fusion] == labels
    specs = expand(best)
    assert sorted({r.variant for r in specs}) == sorted(labels) and len(specs) == 4
    for c in data.chosen:
        run = next(r for r in specs if r.variant == c["label"])
        assert run.config["model"] == c["config"]["model"]
        assert run.factors == c["params"]
    # and it runs unchanged as a study, on the test split this time
    summary = run_study(s.best_config, tmp_path / "final", workers=0, progress=False)
    assert summary.done == 4
    store = open_store(tmp_path / "final")
    variant = {r["run_id"]: r["variant"] for r in store.runs()}
    acc: dict[str, list[float]] = {}
    for r in store.records():
        if r["evaluation"] == "test" and r["metric"] == "accuracy":
            acc.setdefault(variant[r["run_id"]], []).append(r["value"])
    assert sorted(acc) == sorted(labels) and all(len(v) == 2 for v in acc.values())
    first, second = (sum(acc[c["label"]]) / 2 for c in data.chosen)
    assert first > second  # the early design also wins on the held-out test split


PRUNE = """
[search]
trials = 5
top_k = 1
pruner = "median"
pruner_options = {{ n_startup_trials = 2, n_warmup_steps = 0 }}
enqueue = [{{ score = 0.9 }}, {{ score = 0.8 }}, {{ score = 0.7 }}, {{ score = 0.95 }},
           {{ score = 0.1 }}]

[search.space.score]
path = "model.score"
choices = [0.9, 0.8, 0.7, 0.95, 0.1]

[search.space.sleep]
path = "model.sleep"
choices = [{sleep}]
"""


def _fake(name: str = "fake_trial") -> Any:
    import fake_trials

    return getattr(fake_trials, name)


def test_median_pruner_stops_a_trial_below_the_median(tmp_path: Path, lookup_npz: Path) -> None:
    cfg = write_search(tmp_path / "p.toml", lookup_npz, PRUNE.format(sleep=0.0), epochs=3)
    s = run_search(cfg, tmp_path / "s", workers=0, progress=False, check=False,
                   run_fn=_fake())
    data = read_search(tmp_path / "s")
    states = {t["params"]["score"]: t["state"] for t in data.trials}
    # median of the two startup trials at epoch 1 is 0.85: 0.7 and 0.1 are pruned there
    assert states == {0.9: "complete", 0.8: "complete", 0.7: "pruned", 0.95: "complete",
                      0.1: "pruned"}
    for t in data.trials:
        assert t["intermediate"] == {e: t["params"]["score"] for e in
                                     range(1, 2 if t["state"] == "pruned" else 4)}
    assert s.states == {"complete": 3, "pruned": 2}
    assert [c["params"]["score"] for c in data.chosen] == [0.95]


def test_worker_processes_report_to_the_reattached_trial(tmp_path: Path,
                                                          lookup_npz: Path) -> None:
    cfg = write_search(tmp_path / "p.toml", lookup_npz, PRUNE.format(sleep=0.0), epochs=3)
    run_search(cfg, tmp_path / "s", workers=2, progress=False, check=False, run_fn=_fake())
    data = read_search(tmp_path / "s")
    optuna = pytest.importorskip("optuna")
    from fuselab.search.results import storage_url

    study = optuna.load_study(study_name="tiny", storage=storage_url(tmp_path / "s"))
    pids = {t.user_attrs["worker_pid"] for t in study.trials}
    assert os.getpid() not in pids and len(data.trials) == 5
    for t in data.trials:  # every epoch reached the storage from the worker process
        assert t["state"] in ("complete", "pruned") and t["intermediate"]
        assert len(t["intermediate"]) == (3 if t["state"] == "complete" else
                                          t["metrics"]["pruned_at_epoch"])


KILL_SCRIPT = """
import sys
sys.path.insert(0, {here!r})
import fake_trials
from fuselab.search import run_search
if __name__ == "__main__":
    run_search({cfg!r}, {out!r}, workers=1, progress=False, check=False,
               run_fn=fake_trials.fake_trial)
"""


def _states(db: Path) -> dict[str, int]:
    if not db.is_file():
        return {}
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return dict(con.execute("SELECT state, count(*) FROM trials GROUP BY state"))
        finally:
            con.close()
    except sqlite3.OperationalError:  # tables not created yet
        return {}


def test_kill_9_then_resume_keeps_every_finished_trial(tmp_path: Path,
                                                       lookup_npz: Path) -> None:
    optuna = pytest.importorskip("optuna")
    from fuselab.search.results import storage_url

    search = PRUNE.format(sleep=0.4).replace('pruner = "median"', 'pruner = "none"').replace(
        "pruner_options = { n_startup_trials = 2, n_warmup_steps = 0 }\n", "")
    cfg = write_search(tmp_path / "k.toml", lookup_npz, search, epochs=3)
    out = tmp_path / "search"
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT.format(here=str(HERE), cfg=str(cfg), out=str(out)))
    proc = subprocess.Popen([sys.executable, str(script)])
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        states = _states(out / "results.sqlite")
        if states.get("COMPLETE", 0) >= 2 and states.get("RUNNING", 0) == 1:
            time.sleep(0.5)  # into the trial's training (1.2 s)
            break
        assert proc.poll() is None, "the search ended before it could be killed"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    def trials() -> list[Any]:
        return optuna.load_study(study_name="tiny", storage=storage_url(out)).trials

    before = {t.number: (t.state.name, t.values, t.params) for t in trials()}
    done = {n: v for n, v in before.items() if v[0] == "COMPLETE"}
    running = {n: v for n, v in before.items() if v[0] == "RUNNING"}
    assert 2 <= len(done) < 5 and len(running) == 1, before

    with pytest.raises(StudyDirError, match="use --resume"):
        run_search(cfg, out, workers=0, progress=False, check=False, run_fn=_fake())
    s = run_search(cfg, out, workers=0, progress=False, check=False, run_fn=_fake(),
                   resume=True)
    assert s.requeued == 1
    after = trials()
    for n, (state, values, params) in done.items():  # finished trials kept as they were
        assert (after[n].state.name, after[n].values, after[n].params) == (state, values, params)
    killed = after[next(iter(running))]
    assert killed.state.name == "FAIL" and "error" not in killed.user_attrs
    retried = [t for t in after if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retried) == 1 and retried[0].state.name == "COMPLETE"
    assert killed.params.items() <= retried[0].params.items()  # the same design again
    complete = [t for t in after if t.state.name == "COMPLETE"]
    assert len(complete) == 5 and s.states == {"complete": 5, "fail": 1}
    assert sorted(t.params["score"] for t in complete) == [0.1, 0.7, 0.8, 0.9, 0.95]


PARETO = """
[search]
trials = 4
top_k = 1
cost = "params"
enqueue = [{ design = "a" }, { design = "b" }, { design = "c" }, { design = "d" }]

[search.space.design]
path = "model.fake"
choices = [{ score = 0.9, cost = 100.0 }, { score = 0.8, cost = 10.0 },
           { score = 0.7, cost = 50.0 }, { score = 0.6, cost = 1.0 }]
labels = ["a", "b", "c", "d"]
"""


def test_two_objectives_write_the_pareto_front(tmp_path: Path, lookup_npz: Path) -> None:
    cfg = write_search(tmp_path / "two.toml", lookup_npz, PARETO, epochs=2)
    s = run_search(cfg, tmp_path / "s", workers=0, progress=False, check=False,
                   run_fn=_fake())
    data = read_search(tmp_path / "s")
    assert data.directions == ["maximize", "minimize"]
    assert data.objectives == ["val_accuracy", "params"]
    by_number = {t["number"]: t["params"]["design"] for t in data.trials}
    # c (0.7, 50) is dominated by b (0.8, 10); a, b, d are each best on one side of the front
    assert sorted(by_number[n] for n in data.pareto) == ["a", "b", "d"]
    chosen = {c["params"]["design"]: c["reasons"] for c in s.chosen}
    assert chosen == {"a": ["rank 1 by val_accuracy", "Pareto front"], "b": ["Pareto front"],
                      "d": ["Pareto front"]}
    text = s.best_config.read_text()
    assert "# trial 0: val_accuracy 0.9, params 100 (rank 1 by val_accuracy; Pareto front)" in text
    assert [v.label for v in load_config(s.best_config).fusion] == [
        c["label"] for c in s.chosen]

    from fuselab.report import build_report

    paths = build_report(tmp_path / "s")
    html = paths["html"].read_text()
    for section in ("chosen-section", "history", "trials-section", "environment"):
        assert f'<section id="{section}">' in html
    names = sorted(p.name for p in paths["figures"].iterdir())
    assert any(n.endswith("_search_pareto.png") for n in names)
    assert any(n.endswith("_search_history.png") for n in names)


def test_cli_search_report_and_refusal(tmp_path: Path, lookup_npz: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from fuselab.cli import main

    cfg = write_search(tmp_path / "c.toml", lookup_npz, DEPTH.replace("trials = 8", "trials = 2"),
                       epochs=1)
    out = tmp_path / "s"
    rc = main(["search", str(cfg), "--out", str(out), "--workers", "0", "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "2 trials (2 complete)" in text and f"best designs: {out / 'best.toml'}" in text
    assert (out / "report.html").is_file() and (out / "config.toml").is_file()
    assert main(["report", str(out)]) == 0
    assert "Optimisation history" in (out / "report.html").read_text()
    assert main(["search", str(cfg), "--out", str(out), "--workers", "0", "--quiet"]) == 2
    assert "already holds 2 trials" in capsys.readouterr().err
    # more trials for the same search: --set the budget and resume
    rc = main(["search", str(cfg), "--out", str(out), "--workers", "0", "--quiet", "--resume",
               "--set", "search.trials=3", "--no-report"])
    assert rc == 0 and "3 trials (3 complete); 1 run now" in capsys.readouterr().out
    bad = write_search(tmp_path / "bad.toml", lookup_npz,
                       '[search]\ntrials = 2\n[search.space.lr]\npath = "train.lr"\nlow = 0\n'
                       'high = 1\nlog = true\n')
    assert main(["search", str(bad), "--out", str(tmp_path / "b")]) == 2
    assert capsys.readouterr().err.startswith("fuselab: error: search.space.lr.low: ")
