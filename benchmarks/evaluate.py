"""Wall time of a full SNR-grid evaluation (paper 000's 10 x 10 grid) on the AV-MNIST test split.

    python benchmarks/evaluate.py                       # 10k test pairs, 10 x 10 grid
    python benchmarks/evaluate.py --pairs 500 --grid 3  # quick check

Model: the AV-MNIST LeNet late-fusion model (``fuselab.models``, concat, head [100]), untrained
(accuracy does not change the cost). Two ways, side by side in one run, on the same noise:

* ``direct``: one model pass of the test set per cell (``snr_grid(..., factorize=False)``);
* ``factorised``: the default for late fusion: each encoder runs once per (modality, SNR) and
  every cell only runs the fusion + head on cached features.

Per-cell time = grid wall time / cells. Also timed: the data side alone (noise on the
waveform/image + spectrogram for one cell, ``ds.batches`` without a model). Prints a table and
writes ``benchmarks/out/evaluate.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

import fuselab.data as fd
import fuselab.evaluate as ev
import fuselab.models as fm

LENET_LATE = {
    "name": "staged",
    "encoders": {"image": {"preset": "avmnist_image"}, "audio": {"preset": "avmnist_audio"}},
    "fusion": [{"at": "late", "operator": "concat"}],
    "head": {"hidden": [100]},
}


def _passes(mode: str, k: int) -> int:
    return k * k if mode == "direct" else 1 + 2 * (k - 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default=os.environ.get("FUSELAB_DATA", "../shared/data"))
    p.add_argument("--pairs", type=int, default=10000, help="test pairs (paper: 10k)")
    p.add_argument("--grid", type=int, default=10, help="first k levels of the default grid")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--repeats", type=int, default=1, help="repeats of the whole grid")
    p.add_argument("--skip-direct", action="store_true", help="only the factorised grid")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--out", default=str(Path(__file__).parent / "out" / "evaluate.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    ds = fd.load("avmnist", root=args.data_root, split="test", pairs=args.pairs)
    load_s = time.perf_counter() - t0
    model = fm.build(LENET_LATE, input_shapes=ds.shapes, num_outputs=10).eval()
    params = sum(q.numel() for q in model.parameters())
    levels = list(ev.DEFAULT_SNRS[: args.grid])

    walls: dict[str, list[float]] = {"direct": [], "factorised": []}
    values: dict[str, list[float]] = {}
    modes = ["factorised"] if args.skip_direct else ["direct", "factorised"]
    for _ in range(args.repeats):
        for mode in modes:
            start = time.perf_counter()
            recs = ev.snr_grid(
                model, ds, levels, batch_size=args.batch_size, factorize=mode == "factorised"
            )
            walls[mode].append(time.perf_counter() - start)
            values[mode] = [r["value"] for r in recs]
    gen = torch.Generator().manual_seed(0)
    c0 = time.perf_counter()
    for _batch in ds.batches(args.batch_size, snr={"audio": levels[-1]}, noise_generator=gen):
        pass
    data_s = time.perf_counter() - c0
    wall = {k: statistics.median(v) for k, v in walls.items() if v}
    cells = len(levels) ** 2

    result = {
        "benchmark": "evaluate.snr_grid",
        "dataset": f"avmnist test, {len(ds)} pairs, shapes {ds.shapes}",
        "model": f"LeNet late fusion (concat), {params} parameters",
        "grid": f"{len(levels)} x {len(levels)} (levels {levels})",
        "cells": cells,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "repeats": args.repeats,
        "load_s": load_s,
        "grid_wall_s_median": wall,
        "cell_s_median": {k: v / cells for k, v in wall.items()},
        "samples_per_s": {k: len(ds) * cells / v for k, v in wall.items()},
        "speedup_factorised_vs_direct": wall["direct"] / wall["factorised"]
        if "direct" in wall
        else None,
        "max_abs_accuracy_difference": max(
            abs(a - b) for a, b in zip(values["direct"], values["factorised"], strict=True)
        )
        if "direct" in values
        else None,
        "data_only_s_per_noisy_pass": data_s,
        # model passes over the test set: direct K^2; factorised 1 clean + 2 (K - 1) one-modality
        "extrapolated_10x10_10k_s": {
            k: v * _passes(k, 10) / _passes(k, len(levels)) * 10000 / len(ds)
            for k, v in wall.items()
        },
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "torch": torch.__version__,
    }
    print(f"{result['dataset']}; {result['model']}; grid {result['grid']}")
    print(
        f"{'mode':<11} {'grid wall s':>12} {'per cell s':>11} {'samples/s':>10} {'10x10 @10k s':>13}"
    )
    for k in wall:
        print(
            f"{k:<11} {wall[k]:>12.2f} {result['cell_s_median'][k]:>11.3f} "
            f"{result['samples_per_s'][k]:>10.0f} {result['extrapolated_10x10_10k_s'][k]:>13.0f}"
        )
    if result["speedup_factorised_vs_direct"] is not None:
        print(
            f"factorised / direct speedup: {result['speedup_factorised_vs_direct']:.2f}x, "
            f"max |accuracy difference| {result['max_abs_accuracy_difference']:.2e}"
        )
    print(f"data side alone (noise + spectrogram), one noisy pass: {data_s:.2f} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
