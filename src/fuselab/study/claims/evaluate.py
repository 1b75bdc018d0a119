"""Verdicts of a study's claims from its stored runs and records (no model is ever run).

    from fuselab.study.claims import claims_of, evaluate_claims, count_verdicts
    store = open_store("runs/avmnist", readonly=True)
    verdicts = evaluate_claims(claims_of(store.study()), store.runs(), store.records())
    print(count_verdicts(verdicts))          # "3 hold, 1 does not hold, 1 inconclusive"

Pure functions over the store's plain data (docs/architecture.md), importable by the report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fuselab.study.claims.rules import between_rule, cells_rule, equals_rule, mean_rule
from fuselab.study.claims.schema import Claim, parse_claims
from fuselab.study.claims.trend import trend_rule
from fuselab.study.claims.values import StoreView
from fuselab.study.claims.verdict import INCONCLUSIVE, Verdict


def claims_of(study: Mapping[str, Any]) -> list[Claim]:
    """The claims of a stored study (``store.study()``): its config's ``[[claims]]``, validated
    as at load time (``ConfigError`` naming ``claims[i].key``); ``[]`` when it declares none."""
    config = study.get("config") or {}
    return parse_claims(config.get("claims", []) if isinstance(config, Mapping) else [])


def evaluate_claims(claims: Sequence[Claim], runs: Sequence[Mapping[str, Any]],
                    records: Iterable[Mapping[str, Any]]) -> list[Verdict]:
    """One verdict per claim, in order, from ``store.runs()`` and ``store.records()``."""
    view = StoreView(runs, records)
    return [evaluate_claim(c, view) for c in claims]


def _filters(claim: Claim) -> str:
    parts = [f"where {dict(claim.where)}" if claim.where else "",
             f"exclude {dict(claim.exclude)}" if claim.exclude else ""]
    text = " and ".join(p for p in parts if p)
    return f" ({text})" if text else ""


def evaluate_claim(claim: Claim, view: StoreView) -> Verdict:
    """The verdict of one claim; ``inconclusive`` when a variant has too few finished runs."""
    matching = {v: view.matching(claim, v) for v in claim.variants}
    # a trend over a condition checks its runs per x level instead
    need = claim.min_seeds if claim.rule != "trend" or claim.factor else 1
    for v in claim.variants:
        n = len(matching[v])
        if n < need:
            runs = view.runs_of.get(v, [])
            known = "" if v in view.all_variants else " (no such variant in this study)"
            return Verdict(claim, INCONCLUSIVE,
                           f"too few runs: {v!r}{known} has {n} finished run(s) with "
                           f"{claim.evaluation}/{claim.metric} records{_filters(claim)} of "
                           f"{len(runs)} finished, min_seeds = {need}")
    if claim.rule in ("mean_ge", "mean_gt"):
        return mean_rule(claim, matching)
    if claim.rule == "cells_ge":
        return cells_rule(claim, matching)
    if claim.rule == "trend":
        return trend_rule(claim, matching, view)
    if claim.rule == "equals":
        return equals_rule(claim, matching)
    return between_rule(claim, matching)
