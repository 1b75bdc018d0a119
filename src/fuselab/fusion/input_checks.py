"""The switch for the operators' input checks: on by default, off for the last microseconds.

Every operator validates its inputs on each call (names, shapes, dtypes, devices; see
:mod:`fuselab.fusion.base`). Calls whose inputs match the last ones that passed cost ~5 us; on
calls of ~0.2 ms (an operator at (64, 32) on a CPU) or in a GPU model whose step is bound by
Python overhead, that is a few percent. As with ``torch.distributions``' ``validate_args``, the
checks can be switched off; then a wrong input fails inside torch, or is broadcast silently.

    fl.fusion.set_input_checks(False)          # from here on, in this process
    with fl.fusion.set_input_checks(False):    # only inside the block
        ...
"""

from __future__ import annotations

from types import TracebackType

_enabled = True


def input_checks_enabled() -> bool:
    """Whether the operators check their inputs (the default: ``True``)."""
    return _enabled


class set_input_checks:  # lower case: called like a function, as torch.set_grad_enabled
    """Switch the operators' input checks on or off; as a context manager, restore on exit.

    Like ``torch.set_grad_enabled``: calling it sets the switch for the process (all threads);
    ``with set_input_checks(False):`` restores the previous setting when the block ends.
    """

    def __init__(self, enabled: bool) -> None:
        if not isinstance(enabled, bool):
            raise TypeError(f"set_input_checks: expected True or False, got {enabled!r}")
        global _enabled
        self.previous = _enabled
        _enabled = enabled

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        global _enabled
        _enabled = self.previous
