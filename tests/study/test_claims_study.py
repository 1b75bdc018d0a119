"""A whole (fake) study with claims: verdicts in the summary and at read time from the store,
the recorded environment, and the overrides file beside the config copy."""

from __future__ import annotations

from pathlib import Path

import pytest
from claims_fakes import claims_run, write_claims_study

from fuselab.study import load_config, open_store, run_study
from fuselab.study.claims import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, claims_of, evaluate_claims
from fuselab.study.overrides import load_overrides


def _run(cfg, out: Path, **kw):
    return run_study(cfg, out, run_fn=claims_run, check=False, workers=0, progress=False, **kw)


def test_true_and_false_claims_get_their_verdicts(tmp_path: Path) -> None:
    out = tmp_path / "s"
    s = _run(write_claims_study(tmp_path / "c.toml"), out, command="fuselab study c.toml")
    assert [(v.claim.name, v.verdict) for v in s.claims] == \
        [("strong beats weak", HOLDS), ("weak beats strong", DOES_NOT_HOLD)]
    store = open_store(out, readonly=True)
    # the same verdicts from the store alone (what the report and `show --claims` do)
    again = evaluate_claims(claims_of(store.study()), store.runs(), store.records())
    assert [v.verdict for v in again] == [HOLDS, DOES_NOT_HOLD]
    assert again[0].left.mean == s.claims[0].left.mean == pytest.approx(0.91)  # 0.9 + 0.01 * 1
    env = store.study()["environment"]
    assert env["command"] == "fuselab study c.toml" and env["invocations"] == 1
    assert env["torch_build"] in ("cpu",) or env["torch_build"].startswith("cuda")
    assert env["cpu_count"] >= 1 and env["python"].count(".") == 2 and env["host"]
    assert env["wall_s"] > 0 and env["total_wall_s"] == env["wall_s"]
    assert env["started_at"] <= env["finished_at"] and env["interrupted"] is False


def test_resume_adds_up_wall_time_and_rereads_the_claims(tmp_path: Path) -> None:
    out = tmp_path / "s"
    cfg = write_claims_study(tmp_path / "c.toml")
    _run(cfg, out)
    first = open_store(out, readonly=True).study()["environment"]
    # a third claim added afterwards: too few seeds -> inconclusive; run ids are unchanged
    write_claims_study(cfg, '\n[[claims]]\nname = "needs 5 seeds"\nsource = "x"\nleft = "strong"'
                            '\nright = "weak"\nevaluation = "test"\nmetric = "accuracy"\n'
                            'rule = "mean_gt"\nmin_seeds = 5\n')
    s = _run(cfg, out, resume=True)
    assert s.executed == 0 and [v.verdict for v in s.claims][-1] == INCONCLUSIVE
    assert "too few runs" in s.claims[-1].reason
    env = open_store(out, readonly=True).study()["environment"]
    assert env["invocations"] == 2
    assert env["total_wall_s"] == first["wall_s"] + env["wall_s"]
    assert len(claims_of(open_store(out, readonly=True).study())) == 3


def test_overrides_are_recorded_and_saved_beside_the_config(tmp_path: Path) -> None:
    out = tmp_path / "s"
    over = {"study.seeds": [0, 1], "model.acc": 0.95}
    cfg = load_config(write_claims_study(tmp_path / "c.toml"), over)
    s = _run(cfg, out)
    # two seeds are below the first claim's min_seeds = 3; weak (0.95) now beats strong (0.9)
    assert [v.verdict for v in s.claims] == [INCONCLUSIVE, HOLDS]
    assert s.total == 4 and load_overrides(out / "overrides.toml") == over
    assert open_store(out, readonly=True).study()["environment"]["overrides"] == over
    _run(load_config(tmp_path / "c.toml"), out, force=True)
    assert not (out / "overrides.toml").exists()
