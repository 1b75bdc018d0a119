"""A tqdm progress bar over training steps showing loss, validation metric and samples/s."""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm.auto import tqdm


class Progress:
    """One bar for the whole run (``total`` optimizer steps); silent when ``enabled`` is False.

    Postfix updates are throttled to ~4 per second so the bar costs nothing measurable per step.
    """

    def __init__(self, total: int, enabled: bool, desc: str = "train") -> None:
        self.enabled = enabled
        self._bar: Any = (
            tqdm(total=total, desc=desc, unit="step", file=sys.stderr, dynamic_ncols=True, leave=False)
            if enabled
            else None
        )
        self._last = 0.0
        self._pending = 0
        self.metric: str = ""

    def step(self, loss: float, samples_per_s: float, epoch: int) -> None:
        if self._bar is None:
            return
        self._pending += 1
        now = time.perf_counter()
        if now - self._last < 0.25:
            return
        self._last = now
        self._bar.update(self._pending)
        self._pending = 0
        self._bar.set_postfix_str(
            f"ep {epoch} loss {loss:.4f}{self.metric} {samples_per_s:,.0f} samples/s", refresh=False
        )

    def set_metric(self, name: str, value: float) -> None:
        self.metric = f" val_{name} {value:.4f}"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.update(self._pending)
            self._bar.close()
