"""The parent's side of the trials: ask the sampler for a design while the budget lasts, tell
Optuna each outcome, and keep trials recoverable when a process dies.

:class:`TrialSource` is an iterator of :class:`~fuselab.study.worker.RunTask` for the study
backends, which take the next task only when a worker is free, so the sampler sees every result
that was in by then. The budget (``search.trials``) counts trials that finished (complete,
pruned, or failed with an error) or are running, over every process sharing the database.

Recovery after ``kill -9``: each trial carries its owner (host and study directory). A search
starting on a directory whose lock it now holds fails the trials a dead process of it left
running (all of them when the database is the directory's own SQLite file, the owner's on a
shared server) and queues each again with the same parameters (Optuna's
``RetryHeartbeatStaleTrialCallback``, at most ``execution.max_retries`` times); a queued trial
is the next one asked for. Trials of other processes sharing a database server are covered by
Optuna's heartbeat: a trial without one for ``GRACE_S`` seconds is failed and queued again by
whichever process asks next.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

from fuselab.search import optuna_setup as setup
from fuselab.search.config import SearchConfig
from fuselab.search.space import describe, resolve, suggest
from fuselab.study.errors import ConfigError
from fuselab.study.worker import Outcome, RunTask

#: ``make_task(number, config, trial_id) -> RunTask`` builds the task of a sampled trial.
MakeTask = Callable[[int, dict[str, Any], int], RunTask]


class Heartbeat:
    """Records the heartbeat of every trial in flight every ``HEARTBEAT_S`` seconds."""

    def __init__(self, storage: Any) -> None:
        self.storage = storage
        self.ids: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="optuna-heartbeat")
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(setup.HEARTBEAT_S):
            for trial_id in list(self.ids):
                self.storage.record_heartbeat(trial_id)

    def add(self, trial_id: int) -> None:
        self.storage.record_heartbeat(trial_id)
        self.ids.add(trial_id)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _retry(max_retry: int) -> Any:
    return setup.optuna().storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)


def requeue_orphans(study: Any, owner: str, max_retry: int, *, exclusive: bool) -> int:
    """Fail the trials left running by a dead process of this search directory and queue them
    again; returns how many. ``exclusive``: the database is this directory's own SQLite file,
    so every running trial is an orphan. On a shared server, a trial is ours by its ``owner``;
    one killed before it was tagged (moments after it was asked) is taken once it is older
    than ``GRACE_S`` (a live process tags it at once)."""
    import datetime

    op = setup.optuna()
    now = datetime.datetime.now()
    grace = datetime.timedelta(seconds=setup.GRACE_S)
    n = 0
    for t in study.get_trials(deepcopy=False, states=(op.trial.TrialState.RUNNING,)):
        tag = t.user_attrs.get("owner")
        untagged_dead = tag is None and t.datetime_start is not None and \
            now - t.datetime_start > grace
        if exclusive or tag == owner or untagged_dead:
            study.tell(t.number, state=op.trial.TrialState.FAIL, skip_if_finished=True)
            with setup.quiet():
                _retry(max_retry)(study, t)
            n += 1
    return n


def counted(study: Any) -> int:
    """Trials that use up the budget: finished (complete, pruned, failed with an error) or
    running; a trial failed because its process died does not count (it is queued again)."""
    s = setup.optuna().trial.TrialState
    return sum(t.state in (s.COMPLETE, s.PRUNED, s.RUNNING)
               or (t.state == s.FAIL and "error" in t.user_attrs)
               for t in study.get_trials(deepcopy=False))


class TrialSource:
    """Iterator of trial tasks (ask) with :meth:`tell` for their outcomes; see the module doc."""

    def __init__(self, study: Any, storage: Any, cfg: SearchConfig, base: dict[str, Any],
                 metric: str, owner: str, make_task: MakeTask) -> None:
        self.study, self.cfg, self.base, self.owner = study, cfg, base, owner
        self.make_task = make_task
        self.metric = metric
        self.objectives = [f"val_{metric}"] + ([cfg.search.cost] if cfg.search.cost else [])
        self.live: dict[str, Any] = {}
        self.names: dict[str, str] = {}
        self.asked = 0
        self.heartbeat = Heartbeat(storage)
        self._state = setup.optuna().trial.TrialState

    def __iter__(self) -> TrialSource:
        return self

    def __next__(self) -> RunTask:
        while True:
            with setup.quiet():
                setup.optuna().storages.fail_stale_trials(self.study)
            if counted(self.study) >= self.cfg.search.trials:
                raise StopIteration
            with setup.quiet():
                trial = self.study.ask()
            self.heartbeat.add(trial._trial_id)  # Optuna keeps the id private
            trial.set_user_attr("owner", self.owner)
            self.asked += 1
            design = suggest(trial, self.cfg.search.space)
            try:
                config = resolve(self.base, self.cfg.search.space, design)
            except ConfigError as e:  # a combination the up-front check could not see
                trial.set_user_attr("error", f"invalid design {describe(design)}: {e}")
                self.study.tell(trial, state=self._state.FAIL)
                self.heartbeat.ids.discard(trial._trial_id)
                continue
            trial.set_user_attr("config", config)
            task = self.make_task(trial.number, config, trial._trial_id)
            self.live[task.run_id] = trial
            self.names[task.run_id] = f"trial {trial.number} · {describe(design)}"
            return task

    def tell(self, out: Outcome) -> str:
        """Record ``out`` in its trial; returns the trial's state (``complete``/``pruned``/
        ``fail``)."""
        trial = self.live.pop(out.run_id)
        self.heartbeat.ids.discard(trial._trial_id)
        trial.set_user_attr("metrics", dict(out.metrics))
        trial.set_user_attr("duration_s", out.duration_s)
        trial.set_user_attr("curve", [[r["epoch"], r["value"]] for r in out.records
                                      if r.get("evaluation") == "curve"
                                      and r.get("metric") == f"val_{self.metric}"])
        values = [float(out.metrics.get(k, math.nan)) for k in self.objectives]
        if out.status != "done":
            trial.set_user_attr("error", out.error or "failed")
            state = self._state.FAIL
        elif out.metrics.get("pruned"):
            state = self._state.PRUNED
        elif not all(math.isfinite(v) for v in values):
            trial.set_user_attr("error", f"non-finite objective {dict(zip(self.objectives, values, strict=True))}")
            state = self._state.FAIL
        else:
            self.study.tell(trial, values, skip_if_finished=True)
            return "complete"
        self.study.tell(trial, state=state, skip_if_finished=True)
        return str(state.name).lower()

    def abandon(self) -> None:
        """Fail the trials in flight (the search is interrupted) and queue them again."""
        for trial in list(self.live.values()):
            self.study.tell(trial, state=self._state.FAIL, skip_if_finished=True)
            frozen = self.study.get_trials(deepcopy=False)[trial.number]
            with setup.quiet():
                _retry(self.cfg.study.execution.max_retries)(self.study, frozen)
        self.live.clear()

    def close(self) -> None:
        self.heartbeat.close()
