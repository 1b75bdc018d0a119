"""Study runner benchmark: examples/avmnist.toml at a reduced budget with 1 and 2 workers.

Reports the study wall time per worker count (median of ``--repeats``), the 1 -> 2 worker speed-up
ratio measured side by side in this run, and the runner's own overhead per run: study wall time
minus the sum of the runs' own durations, divided by the number of runs (1 worker), with and
without the up-front check (data loaded once, every model built and every evaluation tried once);
the rest is worker start-up (spawn + imports + data load in the worker) and database writes.

    python benchmarks/study.py --data-dir ../shared/data             # reduced budget
    python benchmarks/study.py --pairs 2000 --epochs 2 --repeats 3   # larger
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import tomllib

from fuselab.study import open_store, parse_config, run_study

ROOT = Path(__file__).resolve().parents[1]


def reduced_config(pairs: int, epochs: int, variants: int | None) -> dict[str, Any]:
    """The AV-MNIST example with a small data/training budget and light evaluations."""
    raw = tomllib.loads((ROOT / "examples" / "avmnist.toml").read_text())
    raw["study"]["seeds"] = [0]
    raw["data"]["options"]["pairs"] = {"train": pairs, "val": max(64, pairs // 8),
                                       "test": max(64, pairs // 4)}
    raw["train"]["epochs"] = epochs
    raw["train"].pop("patience", None)  # a fixed budget: every run trains `epochs` epochs
    raw["grid"]["train_snr"] = [{}]
    if variants is not None:
        raw["grid"]["fusion"] = raw["grid"]["fusion"][:variants]
    for v in raw["grid"]["fusion"]:
        v.pop("evaluate", None)
    raw["evaluate"] = {"test": True, "snr_curve": {"snrs": ["clean", 1, 0.25]},
                       "robustness": True, "cost": {"repeats": 2, "warmup": 1}}
    raw["execution"]["threads_per_run"] = 1
    return raw


def one_study(raw: dict[str, Any], workers: int, data_dir: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        s = run_study(parse_config(raw), Path(tmp) / "study", workers=workers,
                      data_dir=data_dir, progress=False)
        runs = open_store(Path(tmp) / "study", readonly=True).runs()
    if s.failed:
        errors = {r["variant"]: r["error"] for r in runs if r["status"] == "failed"}
        raise RuntimeError(f"{s.failed} runs failed: {errors}")
    run_sum = sum(r["duration_s"] or 0.0 for r in runs)
    return {"wall_s": s.wall_s, "run_sum_s": run_sum, "runs": len(runs), "check_s": s.check_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--pairs", type=int, default=512, help="training pairs per run")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--variants", type=int, default=None, help="first N grid.fusion entries")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "study.json"))
    args = ap.parse_args()
    raw = reduced_config(args.pairs, args.epochs, args.variants)
    results: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    for _ in range(args.repeats):
        for workers in (1, 2):  # interleaved, so both see the same machine load
            results[workers].append(one_study(raw, workers, args.data_dir))
    rows = {}
    for workers, reps in results.items():
        wall = statistics.median(r["wall_s"] for r in reps)
        run_sum = statistics.median(r["run_sum_s"] for r in reps)
        check = statistics.median(r["check_s"] for r in reps)
        n = int(reps[0]["runs"])
        one = workers == 1
        rows[workers] = {"workers": workers, "runs": n, "wall_s": wall, "run_sum_s": run_sum,
                         "check_s": check,
                         "overhead_per_run_s": (wall - run_sum) / n if one else None,
                         "overhead_per_run_excl_check_s":
                             (wall - run_sum - check) / n if one else None}
    ratio = rows[1]["wall_s"] / rows[2]["wall_s"]
    print(f"examples/avmnist.toml reduced: {rows[1]['runs']} runs, {args.pairs} train pairs, "
          f"{args.epochs} epoch(s), median of {args.repeats}")
    print(f"{'workers':>7}  {'wall (s)':>9}  {'check (s)':>9}  {'sum of runs (s)':>15}  "
          f"{'overhead/run (s)':>16}  {'excl. check (s)':>15}")
    for r in rows.values():
        ovh = "-" if r["overhead_per_run_s"] is None else f"{r['overhead_per_run_s']:.2f}"
        exc = ("-" if r["overhead_per_run_excl_check_s"] is None
               else f"{r['overhead_per_run_excl_check_s']:.2f}")
        print(f"{r['workers']:>7}  {r['wall_s']:>9.1f}  {r['check_s']:>9.1f}  "
              f"{r['run_sum_s']:>15.1f}  {ovh:>16}  {exc:>15}")
    print(f"speed-up 1 -> 2 workers: {ratio:.2f}x")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": vars(args), "rows": list(rows.values()),
                               "speedup_2_workers": ratio}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
