"""Study runner benchmark: one study run with 1 and then 2 local workers, side by side.

Reports, per worker count, the study wall time, the up-front check, the sum of the runs' own
durations (training + evaluation inside the worker, :attr:`Outcome.duration_s`), and:

* runner overhead per run (1 worker) = (study wall time - sum of the runs' durations) / runs,
  also as a percentage of the mean run duration (target: <= 2 %);
* speed-up 1 -> 2 workers = wall(1) / wall(2) (target on 2 cores: >= 1.7x);
* the 1-minute load average before and after each study: other jobs on the machine take cores
  from the workers, which shows in both figures.

Default: ``examples/quickstart.toml`` (README's first command) with its first ``--seeds`` seeds
(9 runs per seed). ``--example avmnist`` runs ``examples/avmnist.toml`` at a reduced budget.

    python benchmarks/study.py                        # quickstart, 2 seeds (18 runs)
    python benchmarks/study.py --seeds 5 --repeats 2  # the whole quickstart, twice
    python benchmarks/study.py --example avmnist --data-dir ../shared/data --pairs 512
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from fuselab.study import open_store, parse_config, run_study

ROOT = Path(__file__).resolve().parents[1]


def quickstart_config(seeds: int) -> dict[str, Any]:
    raw = tomllib.loads((ROOT / "examples" / "quickstart.toml").read_text())
    raw["study"]["seeds"] = raw["study"]["seeds"][:seeds]
    return raw


def avmnist_config(pairs: int, epochs: int) -> dict[str, Any]:
    """The AV-MNIST example with a small data/training budget and light evaluations."""
    raw = tomllib.loads((ROOT / "examples" / "avmnist.toml").read_text())
    raw["study"]["seeds"] = [0]
    raw["data"]["options"]["pairs"] = {"train": pairs, "val": max(64, pairs // 8),
                                       "test": max(64, pairs // 4)}
    raw["train"]["epochs"] = epochs
    raw["train"].pop("patience", None)  # a fixed budget: every run trains `epochs` epochs
    raw["grid"]["train_snr"] = [{}]
    for v in raw["grid"]["fusion"]:
        v.pop("evaluate", None)
    raw["evaluate"] = {"test": True, "snr_curve": {"snrs": ["clean", 1, 0.25]},
                       "robustness": True, "cost": {"repeats": 2, "warmup": 1}}
    raw["execution"]["threads_per_run"] = 1
    return raw


def one_study(raw: dict[str, Any], workers: int, data_dir: str | None) -> dict[str, float]:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        s = run_study(parse_config(raw), Path(tmp) / "study", workers=workers,
                      data_dir=data_dir, progress=False)
        runs = open_store(Path(tmp) / "study", readonly=True).runs()
    if s.failed:
        errors = {r["variant"]: r["error"] for r in runs if r["status"] == "failed"}
        raise RuntimeError(f"{s.failed} runs failed: {errors}")
    run_sum = sum(r["duration_s"] or 0.0 for r in runs)
    return {"wall_s": s.wall_s, "run_sum_s": run_sum, "runs": len(runs), "check_s": s.check_s,
            "load_before": load_before, "load_after": os.getloadavg()[0]}


def summarise(workers: int, reps: list[dict[str, float]]) -> dict[str, Any]:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in reps)

    n = int(reps[0]["runs"])
    wall, run_sum = med("wall_s"), med("run_sum_s")
    row: dict[str, Any] = {"workers": workers, "runs": n, "wall_s": wall, "run_sum_s": run_sum,
                           "check_s": med("check_s"), "mean_run_s": run_sum / n,
                           "load": [[r["load_before"], r["load_after"]] for r in reps]}
    if workers == 1:
        row["overhead_per_run_s"] = (wall - run_sum) / n
        row["overhead_pct"] = 100 * (wall - run_sum) / run_sum
    else:  # how busy the workers were: 1.0 = every worker trained all the time
        row["worker_utilisation"] = run_sum / (workers * wall)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--example", choices=("quickstart", "avmnist"), default="quickstart")
    ap.add_argument("--seeds", type=int, default=2, help="quickstart: its first N seeds")
    ap.add_argument("--data-dir", default=None, help="dataset root (avmnist)")
    ap.add_argument("--pairs", type=int, default=512, help="avmnist: training pairs per run")
    ap.add_argument("--epochs", type=int, default=1, help="avmnist: epochs per run")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "study.json"))
    args = ap.parse_args()
    if args.example == "quickstart":
        raw = quickstart_config(args.seeds)
    else:
        raw = avmnist_config(args.pairs, args.epochs)
        args.data_dir = args.data_dir or str(ROOT.parent / "shared" / "data")
    results: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    for _ in range(args.repeats):
        for workers in (1, 2):  # interleaved, so both see the same machine load
            r = one_study(raw, workers, args.data_dir)
            results[workers].append(r)
            print(f"  {workers} worker(s): wall {r['wall_s']:.1f} s, check {r['check_s']:.1f} s, "
                  f"sum of runs {r['run_sum_s']:.1f} s, load {r['load_before']:.1f}/"
                  f"{r['load_after']:.1f}", flush=True)  # a long study shows each as it ends
    rows = {w: summarise(w, reps) for w, reps in results.items()}
    ratio = rows[1]["wall_s"] / rows[2]["wall_s"]
    print(f"examples/{args.example}.toml: {rows[1]['runs']} runs, median of {args.repeats}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'workers':>7}  {'wall (s)':>9}  {'check (s)':>9}  {'sum of runs (s)':>15}  "
          f"{'mean run (s)':>12}  {'overhead/run':>16}  {'load avg before/after':>22}")
    for r in rows.values():
        ovh = (f"{r['overhead_per_run_s']:.2f} s {r['overhead_pct']:.1f}%" if r["workers"] == 1
               else f"util {r['worker_utilisation']:.2f}")
        load = ", ".join(f"{a:.1f}/{b:.1f}" for a, b in r["load"])
        print(f"{r['workers']:>7}  {r['wall_s']:>9.1f}  {r['check_s']:>9.1f}  "
              f"{r['run_sum_s']:>15.1f}  {r['mean_run_s']:>12.2f}  {ovh:>16}  {load:>22}")
    print(f"speed-up 1 -> 2 workers: {ratio:.2f}x")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": vars(args), "rows": list(rows.values()),
                               "speedup_2_workers": ratio}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
