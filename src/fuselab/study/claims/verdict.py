"""A claim's verdict: ``holds``, ``does not hold`` or ``inconclusive``, with its reason and the
numbers behind it (``details``, plain JSON-able data that the report plots)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fuselab._stats import Stat
from fuselab.study.claims.schema import Claim

HOLDS = "holds"
"""Verdict: the stored records show what the claim states."""
DOES_NOT_HOLD = "does not hold"
"""Verdict: the stored records contradict the claim."""
INCONCLUSIVE = "inconclusive"
"""Verdict: too few runs or records, or a difference inside the seed spread."""
VERDICTS = (HOLDS, DOES_NOT_HOLD, INCONCLUSIVE)
"""Every verdict, in report order."""


@dataclass
class Verdict:
    """What the stored records say about one claim.

    Attributes:
        claim: the claim as declared.
        verdict: one of :data:`VERDICTS`.
        reason: why, in one sentence (the comparison made, or what was missing).
        value: fuselab's value as text (e.g. ``"0.912 ± 0.004 vs 0.897 ± 0.010"``).
        left, right: mean ± std over seeds of each side (right: a constant or None).
        details: per-seed values, cells or trend points (what the claim's figure shows).
    """

    claim: Claim
    verdict: str
    reason: str
    value: str = "—"
    left: Stat | None = None
    right: Stat | float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (non-finite floats become None) for ``--format json``."""
        c = self.claim
        return _finite({
            "name": c.name, "source": c.source, "paper": c.paper, "rule": c.rule,
            "left": list(c.left) if isinstance(c.left, tuple) else c.left, "right": c.right,
            "evaluation": c.evaluation, "metric": c.metric, "verdict": self.verdict,
            "reason": self.reason, "value": self.value,
            "left_stat": _stat(self.left), "right_stat": _stat(self.right),
            "details": self.details,
        })


def _stat(s: Stat | float | None) -> Any:
    if isinstance(s, Stat):
        return {"mean": s.mean, "std": s.std, "n": s.n}
    return s


def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {str(k): _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def count_verdicts(verdicts: Iterable[Verdict]) -> str:
    """``"3 hold, 1 does not hold, 1 inconclusive"`` (only the verdicts that occur)."""
    vs = [v.verdict for v in verdicts]
    parts = []
    for name in VERDICTS:
        n = vs.count(name)
        if n:
            parts.append(f"{n} {'hold' if name == HOLDS and n != 1 else name}")
    return ", ".join(parts) or "none declared"
