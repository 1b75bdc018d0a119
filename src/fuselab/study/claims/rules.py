"""The comparison rules ``mean_ge``, ``mean_gt``, ``cells_ge``, ``equals`` and ``between``.

Each takes a claim whose variants all have enough finished runs (checked by
:func:`fuselab.study.claims.evaluate.evaluate_claim`) and the claim's matching records per seed,
and returns its :class:`~fuselab.study.claims.verdict.Verdict`. The trend rule is in
:mod:`fuselab.study.claims.trend`.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

from fuselab._stats import Stat, fmt_number, fmt_stat, summarize
from fuselab.study.claims.schema import Claim
from fuselab.study.claims.stats import t_test
from fuselab.study.claims.values import PerSeed, cell_label, cell_means, run_means
from fuselab.study.claims.verdict import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, Verdict

Matching = Mapping[str, Mapping[int, list[Mapping[str, Any]]]]


def _stat(values: PerSeed) -> Stat:
    s = summarize(values.values())
    assert s is not None  # every side has >= 1 finite value (checked by the caller)
    return s


def _num(x: float, metric: str) -> str:
    return fmt_number(x, metric)


def _right_side(claim: Claim, matching: Matching) -> tuple[PerSeed | float, Stat | float]:
    if isinstance(claim.right, str):
        seeds = run_means(matching[claim.right])
        return seeds, _stat(seeds)
    assert claim.right is not None
    return float(claim.right), float(claim.right)


def _details(left: PerSeed, right: PerSeed | float, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"left_seeds": dict(left)}
    if isinstance(right, dict):
        out["right_seeds"] = dict(right)
    else:
        out["right_constant"] = right
    return {**out, **extra}


def mean_rule(claim: Claim, matching: Matching) -> Verdict:
    """``mean_ge``: mean(left) >= mean(right) - tol; ``mean_gt``: mean(left) > mean(right) + tol;
    with ``significant``, a one-sided t-test at 95 % decides (inside the spread: inconclusive)."""
    assert isinstance(claim.left, str)
    m = claim.metric
    left = run_means(matching[claim.left])
    ls = _stat(left)
    right, rs = _right_side(claim, matching)
    r_mean = rs.mean if isinstance(rs, Stat) else rs
    diff = ls.mean - r_mean
    gt = claim.rule == "mean_gt"
    shift = -claim.tol if gt else claim.tol  # the rule holds when diff + shift > 0 (>= for ge)
    ok = diff + shift > 0 if gt else diff + shift >= 0
    r_text = fmt_stat(rs, m) if isinstance(rs, Stat) else _num(rs, m)
    value = f"{fmt_stat(ls, m)} vs {r_text} (difference {diff:+.3g})"
    margin = f" {'+' if gt else '-'} tol {claim.tol:g}" if claim.tol else ""
    op = (">" if ok else "<=") if gt else (">=" if ok else "<")
    reason = f"mean {_num(ls.mean, m)} {op} {_num(r_mean, m)}{margin}"
    details = _details(left, right, difference=diff)
    verdict = HOLDS if ok else DOES_NOT_HOLD
    if claim.significant:
        test = t_test(left, right, shift)
        if test is None:
            return Verdict(claim, INCONCLUSIVE, f"{reason}, but the significance test needs >= 2 "
                                                "seeds per side", value, ls, rs, details)
        details["test"] = {"kind": test.kind, "t": test.t, "df": test.df, "crit": test.crit}
        if test.t > test.crit:
            verdict, reason = HOLDS, f"{reason}, significant ({test.describe()})"
        elif test.t < -test.crit:
            verdict, reason = DOES_NOT_HOLD, f"{reason}, significant ({test.describe()})"
        else:
            verdict = INCONCLUSIVE
            reason = f"{reason}, inside the seed spread ({test.describe()})"
    return Verdict(claim, verdict, reason, value, ls, rs, details)


def cells_rule(claim: Claim, matching: Matching) -> Verdict:
    """Per condition cell, mean over seeds; holds when left >= right - tol on at least
    ``fraction`` of the cells both sides have."""
    assert isinstance(claim.left, str)
    left = cell_means(matching[claim.left])
    right = cell_means(matching[claim.right]) if isinstance(claim.right, str) else None
    const = None if isinstance(claim.right, str) or claim.right is None else float(claim.right)
    cells = [c for c in left if right is None or c in right]
    one_sided = len(left) + (len(right) if right is not None else len(left)) - 2 * len(cells)
    if not cells:
        return Verdict(claim, INCONCLUSIVE, f"no condition cell has records of both "
                                            f"{claim.left!r} and {claim.right!r}")
    rows: list[dict[str, Any]] = []
    per_seed_ok: dict[int, list[bool]] = {}
    for cell in cells:
        lm = statistics.fmean(left[cell].values())
        rvals = right[cell] if right is not None else None
        rm = statistics.fmean(rvals.values()) if rvals is not None else float(const or 0.0)
        rows.append({"cell": dict(cell), "label": cell_label(cell), "left": lm, "right": rm,
                     "ok": lm >= rm - claim.tol})
        for seed, lv in left[cell].items():
            if rvals is None or seed in rvals:
                rv = rvals[seed] if rvals is not None else rm
                per_seed_ok.setdefault(seed, []).append(lv >= rv - claim.tol)
    n_ok = sum(r["ok"] for r in rows)
    frac = n_ok / len(rows)
    per_seed = {s: sum(v) / len(v) for s, v in per_seed_ok.items()}
    spread = summarize(per_seed.values()) if len(per_seed) > 1 else None
    value = f"{frac:.0%} of {len(rows)} cells"
    if spread is not None and spread.std is not None:
        value += f" (per seed {spread.mean:.0%} ± {spread.std:.0%})"
    tol = f" - tol {claim.tol:g}" if claim.tol else ""
    right_name = claim.right if isinstance(claim.right, str) else f"{const:g}"
    reason = (f"{claim.left} >= {right_name}{tol} on {n_ok} of {len(rows)} cells ({frac:.0%}); "
              f"the claim needs {claim.fraction:.0%}")
    failing = [r["label"] for r in rows if not r["ok"]]
    if failing:
        reason += f"; fails at {'; '.join(failing[:3])}" + (" ..." if len(failing) > 3 else "")
    if one_sided:
        reason += f" ({one_sided} cells recorded on one side only are not compared)"
    verdict = HOLDS if frac >= claim.fraction - 1e-12 else DOES_NOT_HOLD
    return Verdict(claim, verdict, reason, value, summarize([frac]), None,
                   {"cells": rows, "fraction": frac, "per_seed": per_seed})


def equals_rule(claim: Claim, matching: Matching) -> Verdict:
    """The left mean equals ``value`` within ``max(tol, rel_tol * |value|)``."""
    assert isinstance(claim.left, str) and claim.value is not None
    m = claim.metric
    left = run_means(matching[claim.left])
    ls = _stat(left)
    allowed = max(claim.tol, claim.rel_tol * abs(claim.value))
    gap = ls.mean - claim.value
    # float rounding of exact counts (params, FLOPs) must not break an exact claim
    ok = abs(gap) <= allowed + 1e-12 * max(1.0, abs(claim.value))
    within = f" within {_num(allowed, m)}" if allowed else " exactly"
    reason = (f"mean {_num(ls.mean, m)} {'equals' if ok else 'differs from'} "
              f"{_num(claim.value, m)}{within}" + ("" if ok else f" (off by {gap:+.4g})"))
    return Verdict(claim, HOLDS if ok else DOES_NOT_HOLD, reason, fmt_stat(ls, m), ls,
                   claim.value, _details(left, claim.value, allowed=allowed))


def between_rule(claim: Claim, matching: Matching) -> Verdict:
    """The left mean (minus right's, paired by seed when possible) lies in [min, max]."""
    assert isinstance(claim.left, str)
    m = claim.metric
    left = run_means(matching[claim.left])
    ls = _stat(left)
    right: PerSeed | float | None = None
    rs: Stat | float | None = None
    q = ls
    what = "mean"
    if claim.right is not None:
        right, rs = _right_side(claim, matching)
        what = "mean difference"
        if isinstance(right, dict) and set(right) == set(left):
            q = _stat({s: left[s] - right[s] for s in left})
        else:
            r_mean = rs.mean if isinstance(rs, Stat) else float(rs)
            q = Stat(ls.mean - r_mean, None, ls.n)
    lo, hi = claim.min, claim.max
    ok = (lo is None or q.mean >= lo) and (hi is None or q.mean <= hi)
    bounds = f"[{'-inf' if lo is None else _num(lo, m)}, {'inf' if hi is None else _num(hi, m)}]"
    reason = f"{what} {_num(q.mean, m)} is {'inside' if ok else 'outside'} {bounds}"
    details: dict[str, Any] = {"left_seeds": dict(left), "quantity": q.mean, "min": lo, "max": hi}
    if right is not None:
        details = _details(left, right, **details)
    return Verdict(claim, HOLDS if ok else DOES_NOT_HOLD, reason, fmt_stat(q, m), ls, rs, details)
