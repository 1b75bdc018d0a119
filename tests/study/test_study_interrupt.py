"""Ctrl-C on `fuselab study`, as a terminal sends it (SIGINT to the whole process group).

First Ctrl-C: no new run starts, the runs in flight finish and are recorded, exit 130. Second
Ctrl-C: the runs in flight are cancelled now (workers killed), exit 130. Either way --resume then
runs exactly the runs not finished, and no run is ever recorded twice. Stand-in runs log
``start``/``end`` lines, so each test knows which runs were in flight without timing anything.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fake_runs import HERE, traced_run, write_fake

from fuselab.study import open_store, run_study

SCRIPT = """
import signal
import sys
# A terminal's foreground job gets Ctrl-C. pytest itself may run as a background job (`cmd &`),
# whose ignored SIGINT every child inherits, and fuselab leaves an ignored SIGINT ignored.
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {here!r})
import fuselab.study as fs
from fake_runs import traced_run
real = fs.run_study
fs.run_study = lambda *a, **k: real(*a, run_fn=traced_run, check=False, **k)
from fuselab.cli import main
sys.exit(main(["study", {cfg!r}, "--out", {out!r}, "--workers", {workers!r}, "--no-report",
               "--quiet"]))
"""


class Study:
    """`fuselab study` in its own process group (as under a terminal), stderr collected live."""

    def __init__(self, tmp: Path, workers: int, sleep: float) -> None:
        self.cfg = write_fake(tmp / "fake.toml")
        self.out = tmp / "study"
        self.markers = tmp / "markers.txt"
        env = {**os.environ, "FAKE_MARKERS": str(self.markers), "FAKE_SLEEP": str(sleep)}
        code = SCRIPT.format(here=str(HERE), cfg=str(self.cfg), out=str(self.out),
                             workers=str(workers))
        self.proc = subprocess.Popen([sys.executable, "-c", code], env=env, text=True,
                                     stderr=subprocess.PIPE, start_new_session=True)
        self.err: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)

    def lines(self, kind: str) -> list[list[str]]:
        text = self.markers.read_text() if self.markers.exists() else ""
        return [ln.split()[1:] for ln in text.splitlines() if ln.startswith(kind + " ")]

    def wait_for(self, what, timeout: float = 90.0) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not what():
            assert self.proc.poll() is None, f"study ended early: {''.join(self.err)}"
            assert time.monotonic() < deadline, f"timed out; stderr: {''.join(self.err)}"
            time.sleep(0.05)

    def ctrl_c(self) -> None:
        os.killpg(self.proc.pid, signal.SIGINT)  # the terminal signals the whole group

    def finish(self, timeout: float = 120.0) -> int:
        """The exit code. Workers left alive after the parent exits stay for the test to see;
        the ``launch`` fixture kills whatever is left, a parent that timed out included."""
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the whole group: its workers too, even once the parent has exited."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def statuses(self) -> dict[str, str]:
        store = open_store(self.out, readonly=True)
        try:
            return {r["run_id"]: r["status"] for r in store.runs()}
        finally:
            store.close()


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[[int, float], Study]]:
    """Start a `Study`; whatever happens in the test, none of its processes outlives it."""
    started: list[Study] = []

    def start(workers: int, sleep: float) -> Study:
        started.append(Study(tmp_path, workers=workers, sleep=sleep))
        return started[-1]

    yield start
    for study in started:
        study.kill()


def _resume_and_check(study: Study, monkeypatch: pytest.MonkeyPatch, finished: set[str]) -> None:
    """--resume runs exactly the unfinished runs; every run then ends done, recorded once."""
    monkeypatch.setenv("FAKE_MARKERS", str(study.markers))
    monkeypatch.setenv("FAKE_SLEEP", "0")
    s = run_study(study.cfg, study.out, resume=True, run_fn=traced_run, check=False,
                  workers=0, progress=False)
    assert (s.skipped, s.done, s.failed) == (len(finished), 4, 0)
    ends = [e[0] for e in study.lines("end")]
    assert sorted(ends) == sorted(study.statuses())  # each run finished exactly once
    store = open_store(study.out, readonly=True)
    for rid in study.statuses():
        own = [r for r in store.records(rid) if r["evaluation"] != "robustness"]
        assert len(own) == 7  # 1 test record + 6 curve points, never duplicated


@pytest.mark.parametrize("workers", [2, 0])
def test_first_ctrl_c_lets_runs_in_flight_finish_and_records_them(
        launch: Callable[[int, float], Study], monkeypatch: pytest.MonkeyPatch,
        workers: int) -> None:
    study = launch(workers, 4.0)
    study.wait_for(lambda: study.lines("start"))
    study.ctrl_c()
    assert study.finish() == 130
    err = "".join(study.err)
    assert "no new run starts" in err and "stopped by Ctrl-C" in err
    started = {s[0] for s in study.lines("start")}
    ended = {e[0] for e in study.lines("end")}
    assert started == ended  # every run in flight ran to its end
    status = study.statuses()
    assert {r for r, s in status.items() if s == "done"} == started  # ... and was recorded
    assert {r for r, s in status.items() if s != "done"} == set(status) - started
    assert all(s == "pending" for r, s in status.items() if r not in started)
    assert len(started) < len(status)  # the remaining runs were not started
    _resume_and_check(study, monkeypatch, started)


@pytest.mark.parametrize("workers", [2, 0])
def test_second_ctrl_c_cancels_runs_in_flight(launch: Callable[[int, float], Study],
                                              monkeypatch: pytest.MonkeyPatch,
                                              workers: int) -> None:
    study = launch(workers, 600.0)  # runs that would outlast the test
    study.wait_for(lambda: study.lines("start"))
    study.ctrl_c()
    study.wait_for(lambda: "Ctrl-C again" in "".join(study.err))
    study.ctrl_c()
    assert study.finish() == 130
    assert "cancelled" in "".join(study.err)
    assert study.lines("end") == []  # nothing ran to its end ...
    started = {s[0] for s in study.lines("start")}
    status = study.statuses()
    # ... nor was recorded as finished: a run in flight is `running` (or still `pending` if
    # its start event had not reached the parent), never done or failed
    assert set(status.values()) <= {"running", "pending"}
    assert all(s == "pending" for r, s in status.items() if r not in started)
    for _, pid in study.lines("start"):  # no worker is left computing
        deadline = time.monotonic() + 30
        while _alive(int(pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(int(pid))
    _resume_and_check(study, monkeypatch, set())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie has exited
        return fh.read().split(") ")[-1][0] != "Z"


def test_a_second_ctrl_c_lets_a_store_write_finish_first() -> None:
    from fuselab.study.interrupt import FIRST, Cancelled, Interrupts

    # as in a terminal's foreground job (pytest itself may run with SIGINT ignored)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    notes: list[str] = []
    written: list[str] = []
    try:
        with Interrupts(notes.append) as intr:
            signal.raise_signal(signal.SIGINT)
            assert intr.stopping and notes == [FIRST]
            with pytest.raises(Cancelled), intr.deferred():
                signal.raise_signal(signal.SIGINT)
                written.append("whole")  # the write goes on; the Ctrl-C takes effect after it
            assert written == ["whole"]
            with pytest.raises(Cancelled):
                signal.raise_signal(signal.SIGINT)  # outside a write: at once
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)


def test_an_ignored_sigint_stays_ignored() -> None:
    from fuselab.study.interrupt import Interrupts

    before = signal.signal(signal.SIGINT, signal.SIG_IGN)  # e.g. a background job of a script
    try:
        with Interrupts(lambda m: None) as intr:
            signal.raise_signal(signal.SIGINT)
            assert not intr.stopping
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
