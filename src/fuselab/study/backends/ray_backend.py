"""Ray backend: every run is a Ray task with its resources; results stream back to the parent.

``ray`` is an optional extra (``pip install 'fuselab[ray]'``), imported only here. The parent
(driver) stays the single writer of the results store: tasks return :class:`Outcome` objects,
collected with ``ray.wait`` as they finish, each naming the node it ran on. A task whose worker
process or node dies (node lost, OOM kill, ``os._exit``) is resubmitted by Ray, on any node with
room, up to ``max_retries`` times; exceptions inside a run are already turned into failed
outcomes by :func:`run_task` and are not retried.

Per-epoch progress: workers push their ``epoch`` events, fire-and-forget, into a
``ray.util.queue.Queue`` actor pinned to the driver's node (so losing a worker node never loses
the queue); the driver drains it between waits and yields the events like the local backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fuselab._process import own_process
from fuselab.study.backends.todo import Todo
from fuselab.study.worker import Outcome, RunFn, RunTask, run_task

#: Most events taken from the queue per drain (the rest wait for the next one).
_DRAIN = 1000


def _remote_run(task: RunTask, run_fn: RunFn, events: Any) -> Outcome:
    import ray

    own_process()  # a Ray worker runs fuselab's tasks: retain_memory="auto" applies here
    node = ray.get_runtime_context().get_node_id()

    def report(ev: dict[str, Any]) -> None:
        # "start" is the driver's (at submission); a late one must not mark a finished run.
        if events is not None and ev.get("kind") == "epoch":
            events.actor.put_nowait.remote({**ev, "node": node})

    out = run_task(task, run_fn, report)
    out.node = node
    return out


def _event_queue(ray: Any) -> Any:
    from ray.util.queue import Queue
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    return Queue(actor_options={
        "num_cpus": 0,
        "scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=here, soft=False)})


def _drain(events: Any) -> list[dict[str, Any]]:
    import ray

    try:
        return list(ray.get(events.actor.get_nowait_batch.remote(
            min(_DRAIN, int(ray.get(events.actor.qsize.remote()))))))
    except Exception:  # the queue actor is gone: progress stops, results keep coming
        return []


def run_ray(
    tasks: Iterable[RunTask | None],
    run_fn: RunFn,
    *,
    address: str | None = None,
    max_retries: int = 1,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    init_kwargs: dict[str, Any] | None = None,
    stop: Callable[[], bool] = lambda: False,
    max_in_flight: int | None = None,
) -> Iterator[dict[str, Any] | Outcome]:
    """Submit the tasks to Ray (connecting to ``address``, or reusing a running ``ray.init``).

    Each run asks for ``num_cpus`` CPUs and ``num_gpus`` GPUs (a fraction below 1 shares a GPU).
    Runs are submitted as the cluster has room for them (read again at every submission, so an
    autoscaled cluster fills up and a lost node is no longer counted): once ``stop()`` is true no
    further run is submitted and the ones in flight finish. Closing the generator early cancels
    them. ``max_in_flight`` caps the runs submitted and not yet finished (a search asks its
    sampler for the next trial only when one finished).
    """
    try:
        import ray
    except ImportError as e:
        raise RuntimeError(f"--backend ray needs Ray: pip install 'fuselab[ray]' ({e})") from e
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False,
                 **(init_kwargs or {}))
    remote = ray.remote(_remote_run)
    events = _event_queue(ray)
    todo = Todo(tasks)
    refs: dict[Any, RunTask] = {}
    try:
        while True:
            cap = _room(ray, num_cpus, num_gpus)
            if max_in_flight is not None:
                cap = min(cap, max_in_flight)
            while len(refs) < cap and not stop():
                task = todo.pop()
                if task is None:
                    break
                ref = remote.options(num_cpus=num_cpus, num_gpus=num_gpus,
                                     max_retries=max_retries,
                                     retry_exceptions=False).remote(task, run_fn, events)
                refs[ref] = task
                yield {"kind": "start", "run_id": task.run_id}
            if not refs:
                if todo.done or stop():
                    break
                todo.idle()
                continue
            done, _ = ray.wait(list(refs), num_returns=1, timeout=0.5)
            yield from _drain(events)
            for ref in done:
                task = refs.pop(ref)
                try:
                    yield ray.get(ref)
                except Exception as e:  # retries exhausted: the worker kept dying
                    yield Outcome(task.run_id, "failed",
                                  error=f"Ray task failed after {max_retries} retries: "
                                        f"{type(e).__name__}: {str(e)[:500]}")
        yield from _drain(events)
    except BaseException:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise
    finally:
        ray.kill(events.actor)


def _room(ray: Any, num_cpus: float, num_gpus: float) -> int:
    """How many runs the cluster can hold at once (at least 1, so a run waits for a node)."""
    have = ray.cluster_resources()
    room = int(have.get("CPU", 0) // num_cpus) if num_cpus > 0 else 1 << 30
    if num_gpus > 0:
        room = min(room, int(have.get("GPU", 0) // num_gpus))
    return max(1, room)
