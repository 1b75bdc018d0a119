"""Per-variant evaluations, progress/ETA, database URLs through the runner, optional loggers."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fake_runs import ok_run, write_fake

from fuselab.study import Outcome, expand, open_store, parse_config, run_study
from fuselab.study.progress import StudyProgress


def test_variant_evaluations_merge_into_that_variant_only() -> None:
    cfg = parse_config({
        "study": {"name": "s"}, "data": {"name": "d"}, "model": {"name": "m"},
        "evaluate": {"test": True, "snr_curve": {"snrs": [1]}},
        "grid": {"fusion": [{"label": "a"},
                            {"label": "b", "evaluate": {"inspect_probe": True,
                                                        "snr_curve": {"seed": 3}}},
                            {"label": "c", "evaluate": {"snr_curve": False}}]},
    })
    a, b, c = expand(cfg)
    assert a.config["evaluate"] == {"test": {}, "snr_curve": {"snrs": [1]}}
    assert b.config["evaluate"] == {"test": {}, "snr_curve": {"snrs": [1], "seed": 3},
                                    "inspect_probe": {}}
    assert c.config["evaluate"] == {"test": {}}  # false removes it for this variant only


def test_progress_counts_and_eta() -> None:
    ticks = iter([100.0, 110.0, 110.0, 130.0, 130.0])
    stream = io.StringIO()
    bar = StudyProgress(4, {"r1": "late · seed 0"}, stream=stream,
                        clock=lambda: next(ticks))  # starts at t = 100
    assert bar.eta_s() is None  # nothing finished: no estimate yet (and no clock read)
    bar.finished(Outcome("r1", "done", {"test_accuracy": 0.5}, duration_s=9.0))  # t = 110
    line = stream.getvalue()
    assert "[1 done, 0 failed, 3 remaining, ETA 30s] r1 late · seed 0: test_accuracy=0.5" in line
    bar.finished(Outcome("r2", "failed", error="boom"))
    assert bar.summary().startswith("1 done, 1 failed, 2 remaining")
    assert "FAILED: boom" in stream.getvalue()


def test_database_url_study_dir_points_to_it(tmp_path: Path) -> None:
    pytest.importorskip("sqlalchemy")
    url = f"sqlite:///{tmp_path / 'server.db'}"
    cfg = write_fake(tmp_path / "fake.toml")
    s = run_study(cfg, tmp_path / "study", run_fn=ok_run, check=False, workers=0,
                  progress=False, db_url=url)
    assert s.done == 4
    assert not (tmp_path / "study" / "results.sqlite").exists()
    assert (tmp_path / "study" / "store.json").is_file()
    runs = open_store(tmp_path / "study").runs()  # follows store.json to the database
    assert len(runs) == 4 and {r["status"] for r in runs} == {"done"}


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_rich_display_shows_epochs_and_finished_runs() -> None:
    stream = _Tty()
    bar = StudyProgress(2, {"r1": "late · seed 0", "r2": "early · seed 0"}, stream=stream)
    bar.event({"kind": "start", "run_id": "r1"})
    bar.event({"kind": "epoch", "run_id": "r1", "epoch": 1, "epochs": 3,
               "metrics": {"train_loss": 0.25}})
    assert "r1" in bar._tasks
    bar.finished(Outcome("r1", "done", {"test_accuracy": 0.75}, duration_s=2.0))
    assert "r1" not in bar._tasks  # its per-run bar is gone once it finished
    bar.close()
    import re

    out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())
    assert "test_accuracy=0.75" in out and "1 done, 0 failed, 1 remaining" in out
