"""Matplotlib plumbing for the report: Agg-backed figures, a consistent style, and a sink that
numbers and saves every figure as PNG.

Figures are built with the object API (``matplotlib.figure.Figure`` on an Agg canvas), never
``pyplot``, so rendering a report neither needs a display nor changes the caller's global backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fuselab.report.document import FigureRef

STYLE: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
}

#: Axis labels with units for the metric names of the record conventions.
METRIC_LABELS = {
    "accuracy": "accuracy (fraction correct)",
    "macro_f1": "macro F1",
    "mse": "MSE",
    "mae": "MAE",
    "pearson_r": "Pearson r",
    "exact_match": "exact match (fraction)",
    "params": "parameters (count)",
    "fusion_params": "fusion parameters (count)",
    "flops_per_sample": "FLOPs per sample",
    "latency_ms_b1": "latency at batch 1 (ms)",
    "throughput": "inference throughput (samples/s)",
    "train_samples_per_s": "training speed (samples/s)",
    "peak_memory_mb": "peak memory (MB)",
    "train_loss": "training loss",
    "emap_gap": "EMAP gap (accuracy)",
    "duration_s": "wall time (s)",
}


def metric_label(metric: str) -> str:
    """Readable axis label (with unit) for a metric name, ``test_``/``val_`` prefixes spelled out."""
    for prefix, word in (("test_", "test "), ("val_", "validation ")):
        if metric.startswith(prefix):
            return word + METRIC_LABELS.get(metric[len(prefix):], metric[len(prefix):])
    return METRIC_LABELS.get(metric, metric.replace("_", " "))


def new_figure(nrows: int, ncols: int, panel_w: float = 4.0, panel_h: float = 3.2,
               extra_w: float = 0.0) -> tuple[Figure, list[Any]]:
    """A figure with ``nrows x ncols`` axes (flattened list, row-major) on an Agg canvas."""
    fig = Figure(figsize=(panel_w * ncols + extra_w, panel_h * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, list(np.asarray(axes).ravel())


def style() -> Any:
    """Context manager applying the report's matplotlib style (rcParams are read as artists are
    created, so the whole figure-building phase runs inside it)."""
    import matplotlib

    return matplotlib.rc_context(STYLE)  # type: ignore[arg-type]


def colors(n: int) -> list[Any]:
    """``n`` distinguishable colours (tab10, then tab20 for larger sets)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


class FigureSink:
    """Saves figures as ``NN_<name>.png`` in one folder and remembers them in order."""

    def __init__(self, folder: Path, dpi: int = 110) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.dpi = dpi
        self.saved: list[FigureRef] = []

    def save(self, fig: Figure, name: str, caption: str) -> FigureRef:
        path = self.folder / f"{len(self.saved) + 1:02d}_{name}.png"
        fig.savefig(path, dpi=self.dpi, format="png")
        ref = FigureRef(path=path.resolve(), caption=caption)
        self.saved.append(ref)
        return ref


def legend_outside(fig: Figure, ax: Any, handles: Sequence[Any] | None = None) -> None:
    """Legend right of ``ax`` (long variant names do not cover the data)."""
    h, labels = ax.get_legend_handles_labels() if handles is None else (handles, None)
    if not h:
        return
    kwargs: dict[str, Any] = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "frameon": False}
    if labels is None:
        ax.legend(handles=h, **kwargs)
    else:
        ax.legend(h, labels, **kwargs)
