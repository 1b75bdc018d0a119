"""Record-level helpers for SNR grids: curves read off a grid, and difference grids.

Both work on stored records only (``{"evaluation": "snr_grid", "metric", "value", "snr_<a>",
"snr_<b>"}``), so they can be applied long after the models ran.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fuselab.evaluate._common import Record, record


def curves_from_grid(records: Sequence[Record]) -> list[Record]:
    """``snr_curve`` records read off a two-modality grid: its edges and its diagonal ("all").

    A modality's curve is the grid column where the other modality is original; ``"all"`` is the
    diagonal where both SNRs are equal (both grids must share values for it to be present).
    """
    grid = [r for r in records if r.get("evaluation") == "snr_grid"]
    if not grid:
        raise ValueError("curves_from_grid: no 'snr_grid' records given")
    keys = sorted(k for k in grid[0] if k.startswith("snr_"))
    if len(keys) != 2:
        raise ValueError(f"curves_from_grid: expected two snr_<modality> keys, got {keys}")
    a, b = keys
    out: list[Record] = []
    for key, other in ((a, b), (b, a)):
        for r in grid:
            if r[other] is None:
                out.append(
                    record("snr_curve", r["metric"], r["value"], modality=key[4:], snr=r[key])
                )
    out += [
        record("snr_curve", r["metric"], r["value"], modality="all", snr=r[a])
        for r in grid
        if r[a] == r[b]
    ]
    return out


def difference_grid(records: Sequence[Record], reference: Sequence[Record]) -> list[Record]:
    """Cell-wise ``model - reference`` of two SNR grids (paper 000 Figure 1, second row).

    Returns records like the inputs with ``evaluation="snr_grid_diff"`` (an analysis product, not
    one of the stored record kinds). The two grids must have the same cells and metric.
    """

    def index(rs: Sequence[Record], what: str) -> dict[tuple[tuple[str, Any], ...], Record]:
        cells = {}
        for r in rs:
            if r.get("evaluation") != "snr_grid":
                continue
            key = tuple(sorted((k, v) for k, v in r.items() if k.startswith("snr_")))
            cells[key] = r
        if not cells:
            raise ValueError(f"difference_grid: {what} holds no 'snr_grid' records")
        return cells

    mine, ref = index(records, "records"), index(reference, "reference")
    if set(mine) != set(ref):
        missing = sorted(set(mine) ^ set(ref), key=str)[:3]
        raise ValueError(f"difference_grid: the grids have different cells, e.g. {missing}")
    out = []
    for key, r in mine.items():
        if r["metric"] != ref[key]["metric"]:
            raise ValueError(
                f"difference_grid: metric {r['metric']!r} vs reference {ref[key]['metric']!r}"
            )
        out.append(
            record("snr_grid_diff", r["metric"], r["value"] - ref[key]["value"], **dict(key))
        )
    return out
