"""Ray backend: every run is a Ray task with its resources; results stream back to the parent.

``ray`` is an optional extra (``pip install 'fuselab[ray]'``), imported only here. The parent
(driver) stays the single writer of the results store: tasks return :class:`Outcome` objects,
collected with ``ray.wait`` as they finish. A task whose worker process dies (node lost, OOM kill,
``os._exit``) is resubmitted by Ray up to ``max_retries`` times; exceptions inside a run are
already turned into failed outcomes by :func:`run_task` and are not retried.

Per-epoch progress is not streamed from Ray workers (only start and finish of each run).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fuselab._process import own_process
from fuselab.study.worker import Outcome, Pending, RunFn, RunTask, run_task


def _remote_run(task: RunTask, run_fn: RunFn) -> Outcome:
    own_process()  # a Ray worker runs fuselab's tasks: retain_memory="auto" applies here
    return run_task(task, run_fn, lambda ev: None)


def run_ray(
    tasks: Iterable[RunTask],
    run_fn: RunFn,
    *,
    address: str | None = None,
    max_retries: int = 1,
    num_gpus: float = 0.0,
    init_kwargs: dict[str, Any] | None = None,
    stop: Callable[[], bool] = lambda: False,
    max_in_flight: int | None = None,
) -> Iterator[dict[str, Any] | Outcome]:
    """Submit the tasks to Ray (connecting to ``address``, or reusing a running ``ray.init``).

    Runs are submitted as the cluster has room for them (its CPUs / threads per run, read again
    at every submission so an autoscaled cluster fills up) and at most ``max_in_flight`` at a
    time; ``tasks`` is read only then, after the outcomes before were yielded. Once ``stop()``
    is true no further run is submitted and the ones in flight finish. Closing the generator
    early cancels them.
    """
    try:
        import ray
    except ImportError as e:
        raise RuntimeError(f"--backend ray needs Ray: pip install 'fuselab[ray]' ({e})") from e
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False,
                 **(init_kwargs or {}))
    remote = ray.remote(_remote_run)
    todo = Pending(tasks)
    refs: dict[Any, RunTask] = {}
    try:
        while todo or refs:
            while not stop() and (max_in_flight is None or len(refs) < max_in_flight):
                task = todo.next()
                if task is None:
                    break
                room = max(1, int(ray.cluster_resources().get("CPU", 1) // max(1, task.threads)))
                if len(refs) >= room:
                    todo.retry([task])
                    break
                ref = remote.options(num_cpus=task.threads, num_gpus=num_gpus,
                                     max_retries=max_retries,
                                     retry_exceptions=False).remote(task, run_fn)
                refs[ref] = task
                yield {"kind": "start", "run_id": task.run_id}
            if not refs:
                return
            done, _ = ray.wait(list(refs), num_returns=1, timeout=1.0)
            for ref in done:
                task = refs.pop(ref)
                try:
                    yield ray.get(ref)
                except Exception as e:  # retries exhausted: the worker kept dying
                    yield Outcome(task.run_id, "failed",
                                  error=f"Ray task failed after {max_retries} retries: "
                                        f"{type(e).__name__}: {str(e)[:500]}")
    except BaseException:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise
