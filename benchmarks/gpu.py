"""GPU check and figures in one command, sized for a 15-minute device lease (not yet run).

1. ``pytest tests/gpu``: every model family trains and evaluates on CUDA, CPU and GPU agree
   (float32, TF32 off), bfloat16 / float16 steps stay finite, ``torch.compile`` trains, pinned
   copies arrive intact, peak memory comes from the CUDA allocator, conv stages never reach the
   native CPU kernels.
2. ``examples/avmnist.toml`` on the GPU at a reduced budget (the ``--set`` overrides below),
   stopped at ``--budget-s`` (Ctrl-C, then the runs in flight get ``--grace-s`` to finish;
   finished runs are stored either way). Printed: wall time, runs done, training samples/s per
   run (the runs' ``train_samples_per_s``), the training step's peak tensor memory (the ``cost``
   evaluation, CUDA allocator) and the device's peak memory in use (``nvidia-smi``, all workers).

Figures go to stdout and ``--out`` (JSON)::

    PYTHONUNBUFFERED=1 PYTHONPATH=src python3 benchmarks/gpu.py --data-dir .gpudata
    PYTHONPATH=src python benchmarks/gpu.py --device cpu --skip-tests --budget-s 60 \\
        --set train.epochs=1 --set data.options.pairs='{train = 256, val = 64, test = 64}'
                                     # a dry run of the script on a machine without a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: The reduced budget of examples/avmnist.toml: one seed, 5 epochs (its other settings kept:
#: 20k / 2k / 5k pairs, both training-noise levels, every variant and evaluation); 8 runs share
#: the GPU, 2 CPU threads each (16 cores: batches are noised and featurised on the GPU in
#: training, on the CPU in the evaluations).
BUDGET = ["study.seeds=[0]", "train.epochs=5", "execution.workers=8",
          "execution.threads_per_run=2"]


class MemorySampler:
    """Peak ``memory.used`` (MiB) of GPU 0 from ``nvidia-smi``, sampled every 0.5 s."""

    def __init__(self) -> None:
        self.peak_mib: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        cmd = ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"]
        while not self._stop.wait(0.5):
            try:
                used = float(subprocess.run(cmd, capture_output=True, text=True, timeout=5,
                                            check=True).stdout.strip())
            except (OSError, subprocess.SubprocessError, ValueError):
                return
            self.peak_mib = used if self.peak_mib is None else max(self.peak_mib, used)

    def __enter__(self) -> MemorySampler:
        if shutil.which("nvidia-smi"):
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()


def run_tests(device: str) -> dict[str, Any]:
    env = {**os.environ, "FUSELAB_TEST_DEVICE": device}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "tests/gpu", "-q", "-rs",
                           "--durations=5", "-p", "no:cacheprovider"], cwd=ROOT, env=env)
    return {"returncode": proc.returncode, "wall_s": time.perf_counter() - t0}


def run_study(args: argparse.Namespace, study_dir: Path) -> dict[str, Any]:
    sets = [f"execution.device={args.device}", *BUDGET, *args.set]
    cmd = [sys.executable, "-m", "fuselab.cli", "study", str(ROOT / "examples" / "avmnist.toml"),
           "--out", str(study_dir), "--data-dir", args.data_dir, "--no-report", "--quiet"]
    for s in sets:
        cmd += ["--set", s]
    print("study:", " ".join(cmd[2:]), flush=True)
    t0 = time.perf_counter()
    with MemorySampler() as mem:
        proc = subprocess.Popen(cmd, cwd=ROOT)
        stopped = False
        try:
            proc.wait(timeout=args.budget_s)
        except subprocess.TimeoutExpired:
            stopped = True
            proc.send_signal(signal.SIGINT)  # finished runs are kept; in-flight ones may finish
            try:
                proc.wait(timeout=args.grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return {"overrides": sets, "wall_s": time.perf_counter() - t0, "stopped_at_budget": stopped,
            "returncode": proc.returncode, "device_peak_memory_mib": mem.peak_mib}


def summarize(study_dir: Path) -> dict[str, Any]:
    from fuselab.study import open_store

    if not (study_dir / "results.sqlite").exists():
        return {"runs_done": 0}
    store = open_store(study_dir, readonly=True)
    try:
        runs = store.runs()
    finally:
        store.close()
    done = [r for r in runs if r["status"] == "done"]
    out: dict[str, Any] = {"runs_total": len(runs), "runs_done": len(done),
                           "runs_failed": sum(r["status"] == "failed" for r in runs),
                           "errors": sorted({str(r["error"])[:200] for r in runs
                                             if r["status"] == "failed"})}
    for key in ("train_samples_per_s", "peak_memory_mb", "train_time_s", "test_accuracy"):
        values = [float(r["metrics"][key]) for r in done if key in r["metrics"]]
        if values:
            out[key] = {"mean": statistics.fmean(values), "min": min(values), "max": max(values)}
    out["run_duration_s"] = sum(float(r["duration_s"] or 0.0) for r in done)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--data-dir", default=os.environ.get("FUSELAB_DATA",
                                                         str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--budget-s", type=float, default=480.0,
                    help="stop the study after this many seconds (finished runs count)")
    ap.add_argument("--grace-s", type=float, default=45.0)
    ap.add_argument("--set", action="append", default=[], help="extra study overrides")
    ap.add_argument("--skip-tests", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out"))
    args = ap.parse_args()
    import torch

    env: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda,
                           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available()
                           else None, "cpus": os.cpu_count()}
    print("environment:", env, flush=True)
    result: dict[str, Any] = {"environment": env}
    if not args.skip_tests:
        result["tests"] = run_tests(args.device)
        print(f"tests/gpu: exit {result['tests']['returncode']} in "
              f"{result['tests']['wall_s']:.0f} s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        study_dir = Path(tmp) / "avmnist"
        result["study"] = run_study(args, study_dir)
        result["study"].update(summarize(study_dir))
    s = result["study"]
    print(f"avmnist on {args.device}: {s.get('runs_done', 0)} of {s.get('runs_total', '?')} runs "
          f"done ({s.get('runs_failed', 0)} failed) in {s['wall_s']:.0f} s wall"
          f"{' (stopped at the budget)' if s['stopped_at_budget'] else ''}")
    for key, label in (("train_samples_per_s", "training samples/s per run"),
                       ("peak_memory_mb", "training-step peak tensor memory (MiB)"),
                       ("test_accuracy", "test accuracy")):
        if key in s:
            v = s[key]
            print(f"  {label}: mean {v['mean']:.4g}, min {v['min']:.4g}, max {v['max']:.4g}")
    if s.get("device_peak_memory_mib") is not None:
        print(f"  device memory in use, peak (nvidia-smi, all workers): "
              f"{s['device_peak_memory_mib']:.0f} MiB")
    for e in s.get("errors", []):
        print(f"  failed run: {e}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {out / 'gpu.json'}")
    failed = result.get("tests", {}).get("returncode", 0) != 0 or s.get("runs_failed", 0) > 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
