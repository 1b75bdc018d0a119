"""Whether fuselab owns the running process (stdlib only, so the CLI can say so cheaply).

The ``fuselab`` command and the study's worker processes call :func:`own_process`; a user's
notebook or service never does. Process-wide settings that would surprise a host program (the
heap setting of :mod:`fuselab.train.memory`) are applied by default only in owned processes.
"""

from __future__ import annotations

_owned: list[bool] = []


def own_process() -> None:
    """Declare that fuselab owns this process (call it first thing in an entry point)."""
    if not _owned:
        _owned.append(True)


def process_owned() -> bool:
    """Whether :func:`own_process` was called in this process."""
    return bool(_owned)
