"""Claims: what a study should show, declared in its config and judged from stored records.

``[[claims]]`` tables are parsed by :mod:`.schema` (at config load), checked against the grid and
the up-front dry runs by :mod:`.check`, and judged by :mod:`.evaluate` (pure functions over
``store.runs()`` / ``store.records()``, so the report and ``fuselab show --claims`` call them
too). :mod:`.render` prints verdicts as a Markdown table or JSON. See docs/study.md, "Claims".
"""

from fuselab.study.claims.evaluate import claims_of, evaluate_claim, evaluate_claims
from fuselab.study.claims.schema import Claim, parse_claims
from fuselab.study.claims.verdict import (
    DOES_NOT_HOLD,
    HOLDS,
    INCONCLUSIVE,
    VERDICTS,
    Verdict,
    count_verdicts,
)

__all__ = [
    "DOES_NOT_HOLD",
    "HOLDS",
    "INCONCLUSIVE",
    "VERDICTS",
    "Claim",
    "Verdict",
    "claims_of",
    "count_verdicts",
    "evaluate_claim",
    "evaluate_claims",
    "parse_claims",
]
