"""Training samples/s of the AV-MNIST LeNet late-fusion model: ``fuselab.train.fit`` vs a plain loop.

    python benchmarks/train.py                          # batch 128, 4 timed steps x 5 repeats
    python benchmarks/train.py --steps 2 --repeats 2    # quick check
    python benchmarks/train.py --compile                # also time torch.compile (slow to build)

Model: ``fuselab.models`` staged LeNet late fusion (presets ``avmnist_image`` / ``avmnist_audio``,
concat, head [100]). Data: the AV-MNIST train split (``steps x batch`` pairs), spectrograms
computed once, so every variant reads its batches from memory.

* ``plain loop`` (the baseline): eager PyTorch, SGD (momentum 0.9), NCHW float32, one batch at a
  time sliced from in-memory tensors, ``zero_grad`` / ``backward`` / ``step``, on the textbook
  model (every conv stage as ``Conv2d -> BatchNorm2d -> ReLU -> MaxPool2d`` modules:
  ``set_fused(model, False)``), with the allocator as a fresh Python process has it.
* ``fit ...``: ``fuselab.train.fit`` with the same SGD settings and one option changed per row.

The baseline runs in a worker process of its own (``--worker``): ``fit`` changes process-wide
malloc settings (``TrainConfig.retain_memory``, on by default where fuselab owns the process, as
this script's main process declares, like the ``fuselab`` command), which must not reach the
baseline. The worker
also times a plain loop on the fused model and ``fit`` without ``retain_memory``, to show what
each part is worth. Rows take turns step by step (baseline step, then one step of each other
row, ``steps x repeats`` times) so machine-load drift hits every row alike; samples/s = batch /
median step time; the speed-up is the median of the per-step ratios to the baseline step just
before. The ``fit`` rows step ``fit``'s own loop (``Trainer.train_epoch`` under ``fit``'s run
settings); one whole ``fit`` call per repeat checks them against ``FitResult.samples_per_s``.
FLOP rate: FLOPs of one training step (``torch.utils.flop_counter``, forward + backward) x
samples/s, as a fraction of a large float32 matmul's rate measured in the same run.
``torch.profiler`` shows where a ``fit`` epoch (defaults) spends its time. Writes
``benchmarks/out/train.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

import fuselab.data as fd
import fuselab.models as fm
from fuselab._process import own_process
from fuselab.data import precompute_transform
from fuselab.train import TrainConfig, fit
from fuselab.train.loop import run_settings
from fuselab.train.trainer import Trainer

LENET_LATE = {
    "name": "staged",
    "encoders": {"image": {"preset": "avmnist_image"}, "audio": {"preset": "avmnist_audio"}},
    "fusion": [{"at": "late", "operator": "concat"}],
    "head": {"hidden": [100]},
}
BASELINE = "plain loop"
Step = Callable[[], float]


def build_model(shapes: dict[str, tuple[int, ...]], seed: int, fused: bool = True) -> nn.Module:
    torch.manual_seed(seed)
    return fm.set_fused(fm.build(LENET_LATE, input_shapes=shapes, num_outputs=10), fused)


def plain_loop(model: nn.Module, x: dict[str, Tensor], y: Tensor, batch: int, lr: float) -> Step:
    """The baseline; returns a function running one optimizer step (returns its seconds)."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    n = y.shape[0]
    pos = [0]

    def one_step() -> float:
        s = pos[0]
        pos[0] = (s + batch) % n
        t0 = time.perf_counter()
        xb = {m: v[s : s + batch] for m, v in x.items()}
        loss = F.cross_entropy(model(xb), y[s : s + batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    one_step()  # warm-up
    return one_step


def fit_stepper(model: nn.Module, ds: fd.MultimodalDataset, cfg: TrainConfig) -> Step:
    """One optimizer step of ``fit``'s own loop (``Trainer.train_epoch`` over a one-batch
    dataset, under ``fit``'s run settings); returns its seconds. Stepping lets every row take
    turns step by step with the baseline, so load drift on a shared machine hits all alike."""
    one = ds.subset(range(cfg.batch_size))
    with run_settings(cfg):
        trainer = Trainer(model, one, None, cfg, False)

    def one_step() -> float:
        with run_settings(cfg):
            t0 = time.perf_counter()
            trainer.train_epoch(1, None)
            return time.perf_counter() - t0

    one_step()  # warm-up (and compilation, for compile rows)
    return one_step


def fit_whole(model: nn.Module, ds: fd.MultimodalDataset, cfg: TrainConfig) -> float:
    """``fit(...).samples_per_s`` of a real call (second epoch, after a warm-up epoch)."""
    r = fit(model, ds, None, cfg.replace(epochs=2), progress=False)
    return float(r.history[-1]["samples_per_s"])


def matmul_gflops(n: int, repeats: int) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


def step_flops(model: nn.Module, x: dict[str, Tensor], y: Tensor) -> float:
    with FlopCounterMode(display=False) as fc:
        F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return float(fc.get_total_flops())


def profile_fit(model: nn.Module, ds: fd.MultimodalDataset, cfg: TrainConfig, top: int) -> list[dict[str, Any]]:
    fit(model, ds, None, cfg.replace(epochs=1), progress=False)  # warm-up outside the trace
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fit(model, ds, None, cfg.replace(epochs=1), progress=False)
    events = [e for e in prof.key_averages() if e.key.startswith(("aten::", "fuselab::"))]
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [
        {"op": e.key, "self_ms": e.self_cpu_time_total / 1e3, "share": e.self_cpu_time_total / total,
         "calls": e.count}
        for e in events[:top]
    ]


def load(args: argparse.Namespace) -> tuple[fd.MultimodalDataset, fd.MultimodalDataset, float]:
    t0 = time.perf_counter()
    raw = fd.load("avmnist", root=args.data_root, split="train", pairs=args.steps * args.batch)
    return raw, precompute_transform(raw), time.perf_counter() - t0


def base_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(optimizer="sgd", lr=args.lr, momentum=0.9, batch_size=args.batch,
                       progress=False, threads=args.threads)


WORKER_ROWS = {
    BASELINE: "textbook conv stages, eager, NCHW fp32, SGD foreach, own process",
    "plain loop, fused stages": "same loop on the model as fuselab builds it",
    "fit, no retain_memory": "fit defaults without the heap setting (worker process)",
}


def worker(args: argparse.Namespace) -> None:
    """Rows that must run with the allocator of a fresh process; steps on request (stdin)."""
    _, ds, _ = load(args)
    x, y = next(ds.batches(len(ds)))
    steps = {
        BASELINE: plain_loop(build_model(ds.shapes, 0, fused=False), x, y, args.batch, args.lr),
        "plain loop, fused stages": plain_loop(build_model(ds.shapes, 0), x, y, args.batch, args.lr),
        "fit, no retain_memory": fit_stepper(build_model(ds.shapes, 0), ds,
                                             base_config(args).replace(retain_memory=False)),
    }
    print("ready", flush=True)
    for line in sys.stdin:
        name = line.strip()
        if name == "quit":
            break
        print(f"{steps[name]():.9f}", flush=True)


def remote_steps(args: argparse.Namespace) -> tuple[dict[str, Step], subprocess.Popen[str]]:
    cmd = [sys.executable, __file__, "--worker", "--data-root", args.data_root, "--batch",
           str(args.batch), "--steps", str(args.steps), "--lr", str(args.lr), "--threads",
           str(args.threads)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError("benchmark worker failed to start")

    def make(name: str) -> Step:
        def step() -> float:
            proc.stdin.write(name + "\n")  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
            return float(proc.stdout.readline())  # type: ignore[union-attr]
        return step

    return {name: make(name) for name in WORKER_ROWS}, proc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default=os.environ.get("FUSELAB_DATA", "../shared/data"))
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=4, help="timed steps per row per repeat")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--matmul", type=int, default=2048, help="side of the peak-rate matmul")
    p.add_argument("--compile", action="store_true", help="also time fit with torch.compile")
    p.add_argument("--no-profile", action="store_true")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", default=str(Path(__file__).parent / "out" / "train.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        worker(args)
        return

    remote, proc = remote_steps(args)  # before this process runs fit (and its heap setting)
    own_process()  # like the `fuselab` command: fit's default retain_memory="auto" is on here
    raw, ds, load_s = load(args)
    x, y = next(ds.batches(len(ds)))
    model = build_model(ds.shapes, 0, fused=False)
    flops = step_flops(model, {m: v[: args.batch] for m, v in x.items()}, y[: args.batch]) / args.batch
    print(f"model: staged LeNet late fusion; {ds.shapes}; {flops / 1e6:.1f} MFLOP per training sample")
    peak = [matmul_gflops(args.matmul, 5)]

    base = base_config(args)
    rows: dict[str, tuple[Step, str]] = {k: (remote[k], WORKER_ROWS[k]) for k in WORKER_ROWS}
    variants = {
        "fit": (base, ds, "defaults: fused conv stages, channels-last (auto), retain_memory"),
        "fit, NCHW": (base.replace(channels_last=False), ds, "channels_last=false"),
        "fit, STFT every batch": (base.replace(precompute_transforms=False), raw, "transforms not precomputed"),
        "fit bf16": (base.replace(precision="bfloat16"), ds, "CPU autocast bfloat16 (numerics change)"),
    }
    if args.compile:
        variants["fit compile"] = (base.replace(compile=True), ds,
                                   "torch.compile (inductor; textbook stages, it fuses them)")
    for name, (cfg, data, note) in variants.items():
        rows[name] = (fit_stepper(build_model(ds.shapes, 0), data, cfg), note)
    secs: dict[str, list[float]] = {k: [] for k in rows}
    whole: list[float] = []
    for r in range(args.repeats):
        for _ in range(args.steps):
            for name, (step, _) in rows.items():
                secs[name].append(step())
        # The end-to-end call, so the stepped rows can be checked against fit's own figure.
        whole.append(fit_whole(build_model(ds.shapes, 0), ds, base))
        print(f"repeat {r + 1}/{args.repeats} done", flush=True)
    peak.append(matmul_gflops(args.matmul, 5))
    peak_gflops = statistics.median(peak)
    proc.communicate("quit\n", timeout=60)

    results = []
    base_s = secs[BASELINE]
    print(f"\nmatmul peak ({args.matmul}^2 fp32): {peak_gflops:.1f} GFLOP/s; threads {args.threads}")
    print(f"{'variant':<36} {'samples/s':>10} {'vs plain':>9} {'GFLOP/s':>8} {'% peak':>7}  note")
    for name, (_, note) in rows.items():
        sps = args.batch / statistics.median(secs[name])
        # Speed-up: median over steps of the paired ratio (the baseline step run just before).
        ratio = statistics.median(b / s for b, s in zip(base_s, secs[name], strict=True))
        gf = sps * flops / 1e9
        results.append({"variant": name, "samples_per_s": sps, "speedup": ratio, "gflops": gf,
                        "fraction_of_peak": gf / peak_gflops, "step_s": secs[name], "note": note})
        print(f"{name:<36} {sps:>10.1f} {ratio:>8.2f}x {gf:>8.2f} {100 * gf / peak_gflops:>6.1f}%  {note}")
    whole_sps = statistics.median(whole)
    print(f"{'fit() whole call':<36} {whole_sps:>10.1f} {'':>9} "
          f"{whole_sps * flops / 1e9:>8.2f} {100 * whole_sps * flops / 1e9 / peak_gflops:>6.1f}%"
          "  FitResult samples/s")
    results.append({"variant": "fit() whole call", "samples_per_s": whole_sps,
                    "repeats": whole, "note": "FitResult.history[-1]['samples_per_s']"})

    prof: list[dict[str, Any]] = []
    if not args.no_profile:
        prof = profile_fit(build_model(ds.shapes, 0), ds, base, 12)
        print("\ntorch.profiler, one fit epoch (self CPU time of aten ops and fused ops):")
        for e in prof:
            print(f"  {e['op']:<44} {e['self_ms']:>9.1f} ms {100 * e['share']:>5.1f}%  x{e['calls']}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "train", "model": "fuselab.models staged LeNet late fusion",
        "shapes": {k: list(v) for k, v in ds.shapes.items()},
        "batch": args.batch, "steps": args.steps, "repeats": args.repeats, "threads": args.threads,
        "flops_per_sample": flops, "matmul_peak_gflops": peak_gflops, "matmul_peak_runs": peak,
        "data_load_s": load_s, "results": results, "profile": prof,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "torch": torch.__version__, "cpu_count": os.cpu_count()},
    }, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
