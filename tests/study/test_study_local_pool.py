"""The local worker pool: event order, shutdown of workers that will not exit, Ctrl-C immunity
of spawned workers, and errors that cross the process boundary."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fake_runs import HERE, chatty_run

from fuselab._registry import UnknownNameError
from fuselab._validate import ConfigError
from fuselab.study.backends.local import _warm_up, run_local
from fuselab.study.errors import StoreError, StudyDirError
from fuselab.study.worker import Outcome, RunTask
from fuselab.train.errors import NonFiniteLossError


def _tasks(n: int) -> list[RunTask]:
    return [RunTask(f"{i:016x}", "v", i, {"train": {}, "model": {}}) for i in range(n)]


def test_a_runs_events_all_arrive_before_its_outcome() -> None:
    # 40 events of 4 KB per run overflow the pipe: a queue with a feeder thread delivered
    # some of them after the outcome (and a late `start` set a finished run back to running).
    seen: dict[str, int] = {}
    order = []
    for item in run_local(_tasks(3), chatty_run, workers=2):
        if isinstance(item, Outcome):
            assert item.status == "done", item.error
            order.append(item.run_id)
            assert seen.get(item.run_id) == 41, f"{item.run_id}: {seen.get(item.run_id)} events"
        else:
            assert item["run_id"] not in order, f"event after the outcome: {item['kind']}"
            seen[item["run_id"]] = seen.get(item["run_id"], 0) + 1
    assert sorted(order) == [t.run_id for t in _tasks(3)]


def test_a_worker_that_cannot_exit_is_killed_after_the_grace_period() -> None:
    # In a child process with a deadline: before the fix, shutdown (and then the interpreter
    # exit) waited for such a worker forever.
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(HERE)!r})
        from fake_runs import lingering_run
        from fuselab.study.backends import local
        from fuselab.study.worker import Outcome, RunTask
        local.EXIT_GRACE_S = 1.0
        t0 = time.monotonic()
        tasks = [RunTask(f"{{i:016x}}", "v", i, {{"train": {{}}, "model": {{}}}}) for i in range(2)]
        out = [x for x in local.run_local(tasks, lingering_run, workers=2)
               if isinstance(x, Outcome)]
        assert [o.status for o in out] == ["done", "done"], out
        print(f"took {{time.monotonic() - t0:.1f}}")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert "took" in proc.stdout


def test_workers_spawned_inside_sigint_blocked_start_with_sigint_blocked(tmp_path: Path) -> None:
    # A fresh interpreter, so that multiprocessing's resource tracker is not running yet:
    # starting it (on the first queue) used to unblock SIGINT in the parent, and the workers
    # spawned after it died of the first Ctrl-C before their initializer could ignore it.
    code = textwrap.dedent("""
        import multiprocessing as mp
        from fuselab.study.interrupt import sigint_blocked

        def blocked_at_start(q):
            status = open("/proc/self/status").read()
            mask = next(ln for ln in status.splitlines() if ln.startswith("SigBlk:"))
            q.put(bool(int(mask.split()[1], 16) & 2))  # bit 1: SIGINT (2)

        if __name__ == "__main__":
            ctx = mp.get_context("spawn")
            with sigint_blocked():
                q = ctx.SimpleQueue()
                p = ctx.Process(target=blocked_at_start, args=(q,))
                p.start()
            print("blocked" if q.get() else "NOT blocked")
            p.join()
    """)
    script = tmp_path / "probe.py"  # a file: a spawned child imports its target from it
    script.write_text(code)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "blocked"


@pytest.mark.parametrize("error", [
    UnknownNameError("dataset", "nmist", ["mnist", "avmnist"], where="data.name"),
    ConfigError("grid.fusion[2].op", "expected a string"),
    NonFiniteLossError(3, 1, float("inf"), 0.5),
    StudyDirError("runs/x: in use"), StoreError("locked"),
])
def test_errors_survive_the_trip_to_the_parent_process(error: Exception) -> None:
    # An exception that cannot be unpickled breaks the whole worker pool (every run in it
    # fails with BrokenProcessPool), so fuselab's own errors must round-trip.
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error)
    assert str(back) == str(error)
    assert vars(back) == vars(error)


def test_a_warm_up_that_cannot_load_the_data_leaves_the_error_to_the_run() -> None:
    task = RunTask("0" * 16, "v", 0, {"data": {"name": "no-such-data", "options": {}}})
    _warm_up(task)  # no exception: the run meets the same error and records it
