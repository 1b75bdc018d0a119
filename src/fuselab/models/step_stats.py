"""One set of BatchNorm running statistics per unroll step of a model run R times per forward.

Progressive Fusion runs every encoder ``R`` times per forward pass: first with no context
(``c_0 = 0``), then with the fed-back context, so the activations after the injection point have a
different distribution at every step. In training, BatchNorm normalises each step with that
step's batch statistics; its *running* statistics, though, average all steps, so at evaluation
every step is normalised with a mixture that matches none of them. :class:`StepStats` keeps one
set per step: the BatchNorm layers' own buffers serve the last step (so a model with ``R = 1``, or
the last step's features, is unchanged), and copies held here serve steps ``0 .. R-2``; the sets
are swapped in by reference for the duration of a step, so training updates the right set.

    stats = StepStats(model, steps=3)        # finds every BatchNorm that tracks statistics
    for r in range(3):
        with stats.step(r):                   # the model's BatchNorm layers now use set r
            ...
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

#: The buffers of a BatchNorm layer that hold its running statistics.
STAT_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


class StepStats(nn.Module):
    """Running statistics of ``model``'s BatchNorm layers for steps ``0 .. steps-2``.

    Args:
        model: the module run once per step; its BatchNorm layers with ``track_running_stats``
            are found at construction (layers added later are not covered).
        steps: unroll steps ``R >= 1``; ``R = 1`` holds nothing.

    The buffers are named ``s{step}_{layer}_{buffer}`` and travel with ``state_dict``/``.to()``.
    """

    def __init__(self, model: nn.Module, steps: int) -> None:
        super().__init__()
        self.steps = steps
        # a plain list, not submodules: the layers belong to ``model``
        self.norms: list[_BatchNorm] = [
            m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
        for r in range(steps - 1):
            for i, bn in enumerate(self.norms):
                for name in STAT_BUFFERS:
                    self.register_buffer(f"s{r}_{i}_{name}", getattr(bn, name).detach().clone())

    @contextmanager
    def step(self, r: int) -> Iterator[None]:
        """Give the BatchNorm layers step ``r``'s statistics until the block ends."""
        if r >= self.steps - 1 or not self.norms:
            yield
            return
        self._swap(r)
        try:
            yield
        finally:
            self._swap(r)

    def _swap(self, r: int) -> None:
        for i, bn in enumerate(self.norms):
            for name in STAT_BUFFERS:
                key = f"s{r}_{i}_{name}"
                held = getattr(self, key)
                setattr(self, key, getattr(bn, name))
                setattr(bn, name, held)

    def extra_repr(self) -> str:
        return f"steps={self.steps}, layers={len(self.norms)}"
