"""The ``trend`` rule: the sign of a least-squares slope of the metric against x.

x is a condition key of the records (``step``, ``snr``, ``epoch``: one variant, ``left``) or
``"factor:<name>"`` (a grid factor: ``left`` lists the variants). A level's x is its value when
every level is a number, else its position: in ``order`` when given, else numbers ascending,
then strings in first-seen order, then ``clean`` (None, the un-noised input: the highest SNR).
The line is fitted through every finished run's value (x, value); with the same seeds at every
level this is the line through the seed means. ``significant``: inconclusive unless
|slope| >= 2 standard errors.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

from fuselab._stats import is_number, summarize
from fuselab.study.claims.schema import Claim
from fuselab.study.claims.stats import fit_line
from fuselab.study.claims.values import PerSeed, StoreView, cell_means, rank_levels, run_means
from fuselab.study.claims.verdict import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, Verdict

Matching = Mapping[str, Mapping[int, list[Mapping[str, Any]]]]


def _levels(claim: Claim, matching: Matching, view: StoreView) -> dict[Any, PerSeed]:
    """``{level: {seed: value}}`` in the order the levels were found."""
    if claim.factor is not None:
        return {view.factor(v, claim.factor): run_means(matching[v]) for v in claim.lefts}
    assert isinstance(claim.left, str) and claim.x is not None
    x = claim.x
    return cell_means(matching[claim.left], key=lambda r: r.get(x))


def _positions(claim: Claim, levels: list[Any]) -> tuple[dict[Any, float], str | None]:
    """x of each level, or a reason why the levels cannot be placed."""
    if claim.order is not None:
        missing = [lv for lv in levels if lv not in claim.order]
        if missing:
            return {}, f"x levels {missing} are not listed in order = {list(claim.order)}"
        return {lv: float(claim.order.index(lv)) for lv in levels}, None
    if all(is_number(lv) for lv in levels):
        return {lv: float(lv) for lv in levels}, None
    if claim.factor is not None:  # variants listed in x order
        return {lv: float(i) for i, lv in enumerate(levels)}, None
    return {lv: float(i) for i, lv in enumerate(rank_levels(levels))}, None


def trend_rule(claim: Claim, matching: Matching, view: StoreView) -> Verdict:
    """See the module docstring."""
    if claim.factor is not None:
        found = {v: view.factor(v, claim.factor) for v in claim.lefts}
        if None in found.values() or len(set(found.values())) < len(found):
            return Verdict(claim, INCONCLUSIVE, f"the variants need distinct values of factor "
                                                f"{claim.factor!r}, they have {found}")
    by_level = _levels(claim, matching, view)
    thin = {lv: len(s) for lv, s in by_level.items() if len(s) < claim.min_seeds}
    if thin:
        return Verdict(claim, INCONCLUSIVE, f"too few runs at x levels {thin} "
                                            f"(min_seeds = {claim.min_seeds})")
    xs, problem = _positions(claim, list(by_level))
    if problem is not None:
        return Verdict(claim, INCONCLUSIVE, problem)
    if len(by_level) < 2:
        return Verdict(claim, INCONCLUSIVE, f"a trend needs >= 2 x levels, the records have "
                                            f"{list(by_level)}")
    points = [(xs[lv], v) for lv, seeds in by_level.items() for v in seeds.values()]
    line = fit_line(points)
    levels: list[dict[str, Any]] = sorted(
        ({"x": xs[lv], "label": "clean" if lv is None else str(lv),
          "mean": statistics.fmean(s.values()),
          "std": statistics.stdev(s.values()) if len(s) > 1 else None, "n": len(s)}
         for lv, s in by_level.items()), key=lambda d: float(d["x"]))
    up = claim.sign == "+"
    ok = line.slope > claim.tol if up else line.slope < -claim.tol
    se = f" ± {line.se:.2g} (SE)" if line.se is not None else ""
    value = f"slope {line.slope:+.3g}{se} over {len(levels)} levels"
    tol = f" {'>' if up else '<'} {'' if up else '-'}tol {claim.tol:g}" if claim.tol else ""
    reason = (f"slope {line.slope:+.3g} is {'positive' if line.slope > 0 else 'not positive'}"
              if up else
              f"slope {line.slope:+.3g} is {'negative' if line.slope < 0 else 'not negative'}")
    reason += tol + f" ({levels[0]['label']} -> {levels[-1]['label']}: "
    reason += f"{levels[0]['mean']:.4g} -> {levels[-1]['mean']:.4g})"
    verdict = HOLDS if ok else DOES_NOT_HOLD
    if claim.significant:
        if line.se is None:
            verdict, reason = INCONCLUSIVE, reason + "; a standard error needs >= 3 runs"
        elif abs(line.slope) < 2 * line.se:
            verdict = INCONCLUSIVE
            reason += f"; |slope| < 2 standard errors ({2 * line.se:.2g})"
    stat = summarize([line.slope])
    details = {"levels": levels, "points": points, "slope": line.slope,
               "intercept": line.intercept, "se": line.se,
               "x": claim.x}
    return Verdict(claim, verdict, reason, value, stat, None, details)
