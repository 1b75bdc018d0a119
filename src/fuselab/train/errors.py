"""Exceptions a study runner catches to record a run as failed with a readable message."""

from __future__ import annotations


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the run stopped before the optimizer step.

    Attributes:
        step: 1-based global optimizer step at which the loss was non-finite.
        epoch: 1-based epoch of that step.
        loss: the offending loss value (``nan``, ``inf`` or ``-inf``).
        last_finite_loss: the loss of the previous step, ``None`` when the first step failed.
    """

    def __init__(self, step: int, epoch: int, loss: float, last_finite_loss: float | None) -> None:
        self.step = step
        self.epoch = epoch
        self.loss = loss
        self.last_finite_loss = last_finite_loss
        last = "none (first step)" if last_finite_loss is None else f"{last_finite_loss:.6g}"
        super().__init__(
            f"training loss became {loss} at step {step} (epoch {epoch}); "
            f"last finite loss: {last}. Lower the learning rate or check the inputs for NaN/inf."
        )

    def __reduce__(self):  # type: ignore[no-untyped-def]
        # Keeps the attributes when the error crosses a process boundary (Ray, multiprocessing).
        return (type(self), (self.step, self.epoch, self.loss, self.last_finite_loss))


class CheckpointMismatchError(ValueError):
    """A checkpoint does not belong to the given config or model (names the differing keys)."""
