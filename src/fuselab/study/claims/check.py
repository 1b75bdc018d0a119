"""Config-time checks of claims beyond their structure, so a wrong claim fails before any run.

* :func:`check_claim_variants` (at grid expansion): the variants exist, run the evaluation, and
  a factor trend's variants carry distinct values of the factor;
* :func:`check_claim_records` (in the up-front check): the evaluation records the metric and the
  condition keys that ``where`` / ``exclude`` / ``x`` name, judged from what the dry run of every
  evaluation actually recorded (plus the records a run adds itself: ``curve``, and the
  cross-run ``robustness``, derived from the dry records as the real ones are).
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from fuselab.study.claims.schema import Claim
from fuselab.study.claims.values import NOT_CONDITIONS
from fuselab.study.errors import ConfigError

Record = Mapping[str, Any]


def _hint(name: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(names), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _where_is(claim: Claim, variant: str) -> str:
    if isinstance(claim.left, tuple) and variant in claim.left:
        return f"{claim.path}.left[{claim.left.index(variant)}]"
    return f"{claim.path}.left" if variant == claim.left else f"{claim.path}.right"


def check_claim_variants(claims: Sequence[Claim], specs: Sequence[Any]) -> None:
    """``ConfigError`` naming ``claims[i].left`` etc. when a claim cannot be read from this grid.

    ``specs`` are the expanded :class:`~fuselab.study.grid.RunSpec` s (``variant``, ``factors``,
    ``config["evaluate"]``).
    """
    by_name = {s.variant: s for s in specs}
    names = list(by_name)
    for claim in claims:
        if claim.right is not None and claim.right == claim.left:
            raise ConfigError(f"{claim.path}.right", f"the same variant as left ({claim.left!r})")
        for v in claim.variants:
            if v not in by_name:
                raise ConfigError(_where_is(claim, v), f"no variant named {v!r}{_hint(v, names)}; "
                                                       f"variants: {names}")
            evals = [*by_name[v].config.get("evaluate", {}), "curve"]
            if claim.evaluation not in evals:
                raise ConfigError(f"{claim.path}.evaluation",
                                  f"variant {v!r} does not run evaluation {claim.evaluation!r}; "
                                  f"it records {sorted(evals)}")
        if claim.factor is not None:
            _check_factor(claim, by_name)


def _check_factor(claim: Claim, by_name: Mapping[str, Any]) -> None:
    assert claim.factor is not None
    values = {}
    for v in claim.lefts:
        factors = by_name[v].factors
        if claim.factor not in factors:
            raise ConfigError(f"{claim.path}.x", f"variant {v!r} has no factor "
                                                 f"{claim.factor!r}; its factors: {factors}")
        values[v] = factors[claim.factor]
    if len(set(map(repr, values.values()))) < len(values):
        raise ConfigError(f"{claim.path}.left", f"the variants must differ in factor "
                                                f"{claim.factor!r}, got {values}")
    if claim.order is not None:
        missing = [x for x in values.values() if x not in claim.order]
        if missing:
            raise ConfigError(f"{claim.path}.order", f"factor values {missing} are not listed; "
                                                     f"order = {list(claim.order)}")


def derived_records(dry_runs: Sequence[Sequence[Record]]) -> dict[str, list[Record]]:
    """Evaluation -> records of the dry runs (one record list per dry-run model), plus the
    ``curve`` records training writes (``train_loss``, ``val_loss``, ``val_<test metric>`` per
    ``epoch``) and the cross-run ``robustness`` records (a run's dry ``snr_curve`` against
    itself: the metric and condition names are what matter here)."""
    out: dict[str, list[Record]] = {}
    for recs in dry_runs:
        for r in recs:
            out.setdefault(str(r["evaluation"]), []).append(r)
        tests = sorted({str(r["metric"]) for r in recs if r["evaluation"] == "test"})
        out.setdefault("curve", []).extend(
            {"evaluation": "curve", "metric": m, "value": 0.0, "epoch": 0}
            for m in ("train_loss", "val_loss", *(f"val_{t}" for t in tests)))
        curves = [dict(r) for r in recs if r["evaluation"] == "snr_curve"]
        if curves:
            from fuselab.evaluate import robustness_records

            # curves robustness cannot read are reported by the study's own robustness step
            with contextlib.suppress(ValueError):
                out.setdefault("robustness", []).extend(
                    robustness_records(curves, curves, baseline="baseline"))
    return out


def check_claim_records(claims: Sequence[Claim], dry: Mapping[str, Sequence[Record]]) -> None:
    """``ConfigError`` naming ``claims[i].metric`` (or ``.where.KEY``, ``.x``) when the claim's
    evaluation does not record that metric or condition in the dry runs ``dry``
    (evaluation -> records, see :func:`derived_records`)."""
    for claim in claims:
        recs = dry.get(claim.evaluation)
        if not recs:
            continue  # an evaluation whose dry run records nothing (checked at grid expansion)
        metrics = sorted({str(r["metric"]) for r in recs})
        if claim.metric not in metrics:
            raise ConfigError(f"{claim.path}.metric",
                              f"evaluation {claim.evaluation!r} records no metric "
                              f"{claim.metric!r}{_hint(claim.metric, metrics)}; it records "
                              f"{metrics}")
        keys = sorted({k for r in recs if r["metric"] == claim.metric for k in r}
                      - set(NOT_CONDITIONS))
        named = [(f"where.{k}", k) for k in claim.where] + \
                [(f"exclude.{k}", k) for k in claim.exclude]
        if claim.x is not None and claim.factor is None:
            named.append(("x", claim.x))
        for where, key in named:
            if key not in keys:
                raise ConfigError(f"{claim.path}.{where}",
                                  f"{claim.evaluation!r} records of {claim.metric!r} have no "
                                  f"condition {key!r}{_hint(key, keys)}; their conditions: {keys}")
