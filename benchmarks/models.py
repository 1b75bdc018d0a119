"""Training-step cost of every fusion depth: AV-MNIST LeNets, the C-LSTM family, Pro-Fusion R=1..4.

One training step = forward + cross-entropy + backward + Adam step on a batch of random AV-MNIST
shaped inputs (image (1, 28, 28), audio (1, 201, T)). Every model of a family is timed in the same
rounds (interleaved, so machine load hits them alike); the figure is the median over rounds, and
each model is reported as a ratio to its family's late-fusion baseline measured in the same run
(LeNet late concat; C-LSTM ``fc``; Pro-Fusion: the LeNet late model it wraps). Pro-Fusion's cost
should grow linearly in R (paper 001 appendix Figure 9b): a least-squares line through the R=1..4
times (and through the FLOPs) is reported with its largest relative residual. FLOPs of one training
step (``torch.utils.flop_counter``, forward + backward) are machine-independent, so their ratios
hold even when the timings are disturbed by other load. The flop counter does not see the fused
LSTM/GRU kernels, so recurrent layers are added analytically: ``3 x 2 x gates x H (I + H) x B x T``
per layer (forward, and backward counted as twice the forward).

    python benchmarks/models.py                      # paper sizes (slow on CPU)
    python benchmarks/models.py --quick              # reduced sizes, proves the script works
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import fuselab.models as fm
from fuselab.train.memory import retain_freed_memory

IMAGE = {"preset": "avmnist_image"}
AUDIO = {"preset": "avmnist_audio"}


def lenet_variants(channels: int, head: list[int]) -> dict[str, dict[str, Any]]:
    enc = {"image": {**IMAGE, "channels": channels}, "audio": {**AUDIO, "channels": channels}}

    def staged(plan: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"name": "staged", "encoders": enc, "fusion": plan, "head": {"hidden": head}, **extra}

    out = {"late": staged([{"at": "late", "operator": "concat"}])}
    out["early"] = staged([{"at": "early", "operator": "concat", "adapter": "resize"}])
    for k in (1, 2, 3, 4):
        out[f"stage{k}"] = staged([{"at": k, "operator": "concat", "adapter": "resize"}])
    out["decision"] = staged([{"at": "decision", "operator": "late"}])
    out["late-lowrank"] = staged([{"at": "late", "operator": "lowrank",
                                   "options": {"out_dim": 64, "rank": 4}}])
    out["msaf-mid+late"] = staged([
        {"at": {"image": "conv2", "audio": "conv3"}, "operator": "msaf"},
        {"at": {"image": "conv4", "audio": "conv6"}, "operator": "msaf"},
        {"at": "late", "operator": "concat"},
    ])
    return out


def clstm_variants(units: int, hidden: int, time_pool: int) -> dict[str, dict[str, Any]]:
    base = {"name": "clstm", "units": units, "hidden": hidden, "time_pool": time_pool}
    return {layer: {**base, "fusion_layer": layer}
            for layer in ("fc", "initial", "second", "visual-only", "audio-only")}


def train_step(model: nn.Module, x: dict[str, torch.Tensor], y: torch.Tensor) -> Callable[[], None]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    return step


def rnn_train_flops(model: nn.Module, run: Callable[[], None]) -> float:
    """Analytic training FLOPs of the ``nn.LSTM`` / ``nn.GRU`` layers during ``run()``."""
    total = 0.0

    def hook(mod: nn.Module, inputs: tuple[torch.Tensor, ...], _out: Any) -> None:
        nonlocal total
        assert isinstance(mod, nn.RNNBase) and mod.batch_first
        b, t = inputs[0].shape[:2]
        gates = 4 if isinstance(mod, nn.LSTM) else 3
        for layer in range(mod.num_layers):
            i = mod.input_size if layer == 0 else mod.hidden_size
            total += 3 * 2 * gates * mod.hidden_size * (i + mod.hidden_size) * b * t

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.LSTM, nn.GRU))]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return total


def time_family(
    configs: dict[str, dict[str, Any]], shapes: dict[str, tuple[int, ...]], batch: int,
    repeats: int, warmup: int, seed: int,
) -> dict[str, dict[str, Any]]:
    """Median step time (interleaved rounds) and parameter counts of every config."""
    g = torch.Generator().manual_seed(seed)
    x = {m: torch.randn(batch, *s, generator=g) for m, s in shapes.items()}
    y = torch.randint(0, 10, (batch,), generator=g)
    steps, rows = {}, {}
    for name, cfg in configs.items():
        torch.manual_seed(seed)
        model = fm.build(cfg, input_shapes=shapes, num_outputs=10).train()
        counts = model.parameter_counts()  # type: ignore[operator]
        rows[name] = {"params": counts["total"], "fusion_params": counts["fusion"], "times": []}
        steps[name] = train_step(model, x, y)
        with FlopCounterMode(display=False) as counter:
            rnn = rnn_train_flops(model, steps[name])  # doubles as the first warm-up step
        rows[name]["train_gflops"] = (counter.get_total_flops() + rnn) / 1e9
        for _ in range(warmup - 1):
            steps[name]()
    for _ in range(repeats):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            rows[name]["times"].append(time.perf_counter() - t0)
    for row in rows.values():
        row["step_ms"] = 1000 * statistics.median(row.pop("times"))
    return rows


def with_ratios(rows: dict[str, dict[str, Any]], baseline: str, family: str) -> list[dict[str, Any]]:
    ref = rows[baseline]
    return [{"family": family, "variant": name, **row, "baseline": baseline,
             "time_ratio": row["step_ms"] / ref["step_ms"],
             "flops_ratio": row["train_gflops"] / ref["train_gflops"],
             "param_ratio": row["params"] / ref["params"]}
            for name, row in rows.items()]


def linearity(steps: list[int], cost: list[float]) -> dict[str, float]:
    """Least-squares ``cost = a + b R``; the largest residual relative to the measured cost."""
    n = len(steps)
    mx, my = sum(steps) / n, sum(cost) / n
    pairs = list(zip(steps, cost, strict=True))
    b = sum((r - mx) * (t - my) for r, t in pairs) / sum((r - mx) ** 2 for r in steps)
    a = my - b * mx
    worst = max(abs(t - (a + b * r)) / t for r, t in pairs)
    return {"intercept": a, "slope": b, "max_rel_residual": worst}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--frames", type=int, default=90, help="spectrogram frames T (AV-MNIST: ~90)")
    ap.add_argument("--channels", type=int, default=6, help="LeNet conv1 width (paper presets: 6)")
    ap.add_argument("--clstm-units", type=int, default=64)
    ap.add_argument("--clstm-hidden", type=int, default=128)
    ap.add_argument("--time-pool", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1, help="warm-up steps (>= 1: the FLOP count)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--families", default="lenet,clstm,profusion",
                    help="comma-separated subset of lenet, clstm, profusion")
    ap.add_argument("--quick", action="store_true",
                    help="reduced sizes: C-LSTM 8 units / 32 dense / time_pool 8, 3 repeats")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "models.json")
    args = ap.parse_args()
    if args.quick:  # reduced defaults; values given explicitly on the command line win
        for key, value in {"clstm_units": 8, "clstm_hidden": 32, "time_pool": 8, "repeats": 3}.items():
            if getattr(args, key) == ap.get_default(key):
                setattr(args, key, value)
    torch.set_num_threads(args.threads)
    # As under fit (TrainConfig.retain_memory): without it each step's page faults depend on
    # which model ran before, which would make the ratios order-dependent.
    retain_freed_memory()
    shapes = {"image": (1, 28, 28), "audio": (1, 201, args.frames)}
    common = dict(shapes=shapes, batch=args.batch, repeats=args.repeats, warmup=args.warmup,
                  seed=args.seed)
    families = set(args.families.split(","))
    unknown = families - {"lenet", "clstm", "profusion"}
    if unknown:
        ap.error(f"--families: unknown {sorted(unknown)}; allowed: lenet, clstm, profusion")
    lenet = lenet_variants(args.channels, [100])
    results: list[dict[str, Any]] = []
    if "lenet" in families:
        results += with_ratios(time_family(lenet, **common), "late", "lenet")  # type: ignore[arg-type]
    if "clstm" in families:
        clstm = clstm_variants(args.clstm_units, args.clstm_hidden, args.time_pool)
        results += with_ratios(time_family(clstm, **common), "fc", "clstm")  # type: ignore[arg-type]
    fit: dict[str, float] = {}
    flops_fit: dict[str, float] = {}
    if "profusion" in families:
        pro = {"late": lenet["late"]}
        for r in (1, 2, 3, 4):
            pro[f"profusion-R{r}"] = {**lenet["late"],
                                      "progressive": {"steps": r, "context_dim": 64}}
        pro["profusion-R2-add"] = {**lenet["late"], "progressive": {"steps": 2, "inject": "add"}}
        pro_rows = with_ratios(time_family(pro, **common), "late", "profusion")  # type: ignore[arg-type]
        results += pro_rows
        fit = linearity([1, 2, 3, 4], [row["step_ms"] for row in pro_rows[1:5]])
        flops_fit = linearity([1, 2, 3, 4], [row["train_gflops"] for row in pro_rows[1:5]])

    print(f"training step (fwd+bwd+Adam), batch {args.batch}, audio (1, 201, {args.frames}), "
          f"{args.threads} threads, median of {args.repeats}")
    print(f"{'family':<10} {'variant':<17} {'params':>9} {'fusion':>7} {'GFLOP':>8} {'step ms':>9} "
          f"{'x time':>7} {'x flops':>8} {'x params':>9}")
    for row in results:
        print(f"{row['family']:<10} {row['variant']:<17} {row['params']:>9} "
              f"{row['fusion_params']:>7} {row['train_gflops']:>8.2f} {row['step_ms']:>9.1f} "
              f"{row['time_ratio']:>7.2f} {row['flops_ratio']:>8.2f} {row['param_ratio']:>9.3f}")
    if fit:
        print(f"Pro-Fusion (R=1..4) step time ~ {fit['intercept']:.1f} + {fit['slope']:.1f} x R ms "
              f"(largest relative residual {fit['max_rel_residual']:.1%}); GFLOP ~ "
              f"{flops_fit['intercept']:.2f} + {flops_fit['slope']:.2f} x R "
              f"(largest relative residual {flops_fit['max_rel_residual']:.1%})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "torch": torch.__version__, "results": results, "profusion_linear_fit_ms": fit,
               "profusion_linear_fit_gflops": flops_fit}
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
