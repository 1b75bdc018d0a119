"""Forward+backward time of every fusion operator, and ratios to peer libraries' modules.

Usage::

    python benchmarks/fusion_ops.py                       # batch 256, widths 64,32 and 512,512
    python benchmarks/fusion_ops.py --compare-python /tmp/benchvenv/bin/python \
        --multibench /tmp/multibench_fusions.py --mult-repo /tmp/mult_repo
    python benchmarks/fusion_ops.py --repeats 5 --widths 64,32 --no-table   # quick peer check

Every timing is over one forward plus ``out.sum().backward()`` with inputs that require grad (as
behind trainable encoders), 2 threads. Vector operators fuse ``{"image": (B, D1), "audio": (B,
D2)} -> (B, --out-dim)``; ``nlgate``/``mult`` get sequences ``(B, --seq-len, D_m)``; ``late``
fuses ``(B, out_dim)`` logits; ``msaf``/``mmtm`` get ``(B, D_m, 8, 8)`` maps.

Peers (``fusion_peers.py``: PyTorch, MultiBench, the MulT authors' model, TorchMultimodal,
fusilli) are timed by a worker (``--worker``; in the ``--compare-python`` venv when given, where
the packages are installed) that alternates peer and fuselab call by call in one process, so the
ratio ``fuselab / peer`` (< 1: fuselab faster) is measured in one run, with fuselab's input checks on
(the default) and off (``fl.fusion.set_input_checks(False)``). Where the parametrisations
correspond, it first copies the peer's weights into the fuselab operator and checks that both give
the same output. FLOPs: ``torch.utils.flop_counter`` over one forward + backward; the fraction of
peak divides the achieved rate by a float32 ``--matmul``² matrix product timed in the same process.
Results: tables on stdout, JSON in ``benchmarks/out/fusion_ops.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from fusion_peers import PEERS, Context, Pair, Sizes, load_file
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

import fuselab as fl
from train import matmul_gflops

OUT = Path(__file__).resolve().parent / "out" / "fusion_ops.json"
MAP_SIDE = 8  # spatial size of the feature maps given to msaf/mmtm
SEQUENCE_OPS = ("nlgate", "mult")


def fuselab_case(
    name: str, widths: tuple[int, int], args: argparse.Namespace
) -> tuple[nn.Module, dict[str, Tensor]]:
    """Build operator ``name`` at ``widths`` and random inputs for it."""
    dims = {"image": widths[0], "audio": widths[1]}
    gen = torch.Generator().manual_seed(0)
    b = args.batch
    if name in ("msaf", "mmtm"):
        op = fl.fusion.build(name, in_channels=dims)
        shape = (MAP_SIDE, MAP_SIDE)
        return op, {m: torch.randn(b, c, *shape, generator=gen) for m, c in dims.items()}
    if name == "late":
        dims = {m: args.out_dim for m in dims}
    op = fl.fusion.build(name, in_dims=dims, out_dim=args.out_dim)
    steps = (args.seq_len,) if name in SEQUENCE_OPS else ()
    return op, {m: torch.randn(b, *steps, d, generator=gen) for m, d in dims.items()}


def run_fuselab(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for widths in args.widths:
        for name in args.ops or fl.fusion.available():
            torch.manual_seed(0)
            op, inputs = fuselab_case(name, widths, args)
            leaves = {m: x.detach().requires_grad_(True) for m, x in inputs.items()}
            times = []
            for i in range(args.warmup + args.repeats):
                op.zero_grad(set_to_none=True)
                for x in leaves.values():
                    x.grad = None
                start = time.perf_counter()
                _total(op(leaves)).backward()
                if i >= args.warmup:
                    times.append(time.perf_counter() - start)
            seconds = statistics.median(times)
            flops = fwd_bwd_flops(op, inputs)
            rows.append({"operator": name, "widths": list(widths),
                         "params": fl.fusion.count_parameters(op), "fwd_bwd_ms": seconds * 1e3,
                         "fwd_bwd_flops": flops, "gflops_per_s": flops / seconds / 1e9})
            print(f"  {name:<16} {widths!s:<11} {seconds * 1e3:9.2f} ms "
                  f"{flops / 1e9:8.3f} GFLOP", flush=True)
    return rows


def sdpa_flops(query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> int:
    """Forward FLOPs of CPU scaled-dot-product attention: ``Q Kᵀ`` and ``A V``."""
    lead, tq, d = math.prod(query[:-2]), query[-2], query[-1]
    return 4 * lead * tq * key[-2] * d


def sdpa_backward_flops(grad: Any, query: Any, key: Any, value: Any, *a: Any, **k: Any) -> int:
    """Backward FLOPs of CPU SDPA: ``dV``, ``dA``, ``dQ``, ``dK`` (twice the forward)."""
    return 2 * sdpa_flops(query, key, value)


# FlopCounterMode knows the CUDA attention kernels only; on CPU SDPA lowers to these.
FLOPS: dict[Any, Any] = {}
if hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu"):
    FLOPS[torch.ops.aten._scaled_dot_product_flash_attention_for_cpu] = sdpa_flops
    FLOPS[torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward] = (
        sdpa_backward_flops
    )


def fwd_bwd_flops(fn: Callable[[dict[str, Tensor]], Any], inputs: dict[str, Tensor]) -> int:
    """FLOPs of one forward + backward (``torch.utils.flop_counter``; matmuls/convs/attention)."""
    leaves = {m: x.detach().requires_grad_(True) for m, x in inputs.items()}
    with FlopCounterMode(display=False, custom_mapping=FLOPS) as counter:
        _total(fn(leaves)).backward()
    return int(counter.get_total_flops())


def _total(out: Any) -> Tensor:
    return sum(v.sum() for v in out.values()) if isinstance(out, dict) else out.sum()


def time_pair(pair: Pair, repeats: int, warmup: int) -> tuple[list[float], ...]:
    """Per-call seconds of the peer, of fuselab and of fuselab with its input checks off
    (``fl.fusion.set_input_checks(False)``), alternating call by call (and rotating which goes
    first), so that load changes on the shared machine hit all three."""
    leaves = {m: x.detach().requires_grad_(True) for m, x in pair.inputs.items()}
    ours = list(pair.ours.parameters())
    sides = [  # (call, its trainable tensors, input checks on)
        (pair.call, [*pair.peer_module.parameters(), *pair.peer_tensors], True),
        (pair.ours, ours, True),
        (pair.ours, ours, False),
    ]
    times: list[list[float]] = [[] for _ in sides]
    try:
        for i in range(warmup + repeats):
            for j in (i % 3, (i + 1) % 3, (i + 2) % 3):
                fn, tensors, checked = sides[j]
                fl.fusion.set_input_checks(checked)
                for t in [*tensors, *leaves.values()]:
                    t.grad = None
                start = time.perf_counter()
                _total(fn(leaves)).backward()
                if i >= warmup:
                    times[j].append(time.perf_counter() - start)
    finally:
        fl.fusion.set_input_checks(True)
    return tuple(times)


def _same_output(pair: Pair) -> bool | None:
    if pair.sync is None:
        return None
    pair.sync()
    with torch.no_grad():
        a, b = pair.call(pair.inputs), pair.ours(pair.inputs)
    a = a.reshape(b.shape)
    return bool(torch.allclose(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max())))


def _context(args: argparse.Namespace) -> Context:
    warnings.filterwarnings("ignore", category=UserWarning)  # MultiBench's deprecated inits
    mb = load_file(args.multibench, "multibench_fusions") if args.multibench else None
    return Context(multibench=mb, mult_repo=args.mult_repo)


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Time every peer beside its fuselab counterpart in this process."""
    ctx = _context(args)
    peaks = [matmul_gflops(args.matmul, 5)]
    rows = []
    for widths in args.widths:
        for factory in PEERS:
            if args.peers and factory.__name__ not in args.peers:
                continue
            sizes = Sizes(widths, args.out_dim, args.batch, args.seq_len)
            base = {"factory": factory.__name__, "widths": list(widths)}
            torch.manual_seed(0)
            try:
                pair = factory(sizes, ctx)
            except (ImportError, LookupError) as err:
                rows.append({**base, "unavailable": f"{type(err).__name__}: {err}"})
                continue
            same = _same_output(pair)
            peer_t, our_t, unchecked_t = time_pair(pair, args.repeats, args.warmup)
            ratios = sorted(o / p for o, p in zip(our_t, peer_t, strict=True))
            flops = fwd_bwd_flops(pair.ours, pair.inputs)
            ours_s = statistics.median(our_t)
            rows.append({
                **base, "peer": pair.peer, "fuselab": pair.fuselab, "maths": pair.maths,
                "same_output": same, "note": pair.note,
                "peer_ms": statistics.median(peer_t) * 1e3, "fuselab_ms": ours_s * 1e3,
                "ratio_fuselab_over_peer": statistics.median(our_t) / statistics.median(peer_t),
                "unchecked_ms": statistics.median(unchecked_t) * 1e3,
                "ratio_unchecked_over_peer": (statistics.median(unchecked_t)
                                              / statistics.median(peer_t)),
                "paired_ratio_quartiles": [ratios[len(ratios) // 4], ratios[3 * len(ratios) // 4]],
                "peer_flops": fwd_bwd_flops(pair.call, pair.inputs),
                "fuselab_flops": flops, "fuselab_gflops_per_s": flops / ours_s / 1e9,
            })
            print(f"  {pair.fuselab:<26} {widths!s:<11} {rows[-1]['ratio_fuselab_over_peer']:.2f}x"
                  f"  vs {pair.peer}", file=sys.stderr, flush=True)
    peaks.append(matmul_gflops(args.matmul, 5))
    peak = max(peaks)
    for r in rows:
        if "fuselab_gflops_per_s" in r:
            r["fuselab_fraction_of_peak"] = r["fuselab_gflops_per_s"] / peak
    return {"matmul_peak_gflops": peak, "matmul_peak_runs": peaks, "rows": rows}


def run_compare(args: argparse.Namespace) -> dict[str, Any]:
    """The peer worker in ``--compare-python`` (a subprocess), or in this process."""
    if not args.compare_python:
        return run_worker(args)
    cmd = [args.compare_python, str(Path(__file__).resolve()), "--worker",
           "--batch", str(args.batch), "--out-dim", str(args.out_dim), "--seq-len",
           str(args.seq_len), "--repeats", str(args.repeats), "--warmup", str(args.warmup),
           "--threads", str(args.threads), "--matmul", str(args.matmul),
           "--widths", *(f"{a},{b}" for a, b in args.widths)]
    for flag in ("multibench", "mult_repo"):
        if getattr(args, flag):
            cmd += [f"--{flag.replace('_', '-')}", getattr(args, flag)]
    if args.peers:
        cmd += ["--peers", *args.peers]
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False, timeout=7200)
    except (OSError, subprocess.TimeoutExpired) as err:
        return {"rows": [{"unavailable": f"could not run {args.compare_python}: {err}"}]}
    if proc.returncode != 0:
        return {"rows": [{"unavailable": f"worker failed with exit code {proc.returncode}"}]}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _widths(text: str) -> tuple[int, int]:
    a, b = text.split(",")
    return int(a), int(b)


def print_tables(args: argparse.Namespace, rows: list[dict[str, Any]],
                 compare: dict[str, Any]) -> None:
    if rows:
        print(f"\n{'operator':<16} " + " ".join(f"{w!s:>12}" for w in args.widths) + "  (ms)")
        for name in dict.fromkeys(r["operator"] for r in rows):
            cells = [next(r["fwd_bwd_ms"] for r in rows
                          if r["operator"] == name and tuple(r["widths"]) == w)
                     for w in args.widths]
            print(f"{name:<16} " + " ".join(f"{c:12.2f}" for c in cells))
    if not compare:
        return
    peak = compare.get("matmul_peak_gflops")
    print(f"\nfuselab / peer time (same process, alternating calls; < 1: fuselab faster); "
          f"matmul peak {peak or float('nan'):.1f} GFLOP/s")
    for r in compare["rows"]:
        if "unavailable" in r:
            print(f"  {r.get('factory', '')} {r.get('widths', '')}: {r['unavailable']}")
            continue
        q1, q3 = r["paired_ratio_quartiles"]
        same = {True: "same output", False: "OUTPUT DIFFERS", None: r["maths"]}[r["same_output"]]
        print(f"  {r['fuselab']:<26} {r['widths']!s:<11} {r['ratio_fuselab_over_peer']:5.2f}x "
              f"[{q1:.2f}-{q3:.2f}] unchecked {r['ratio_unchecked_over_peer']:5.2f}x "
              f"{r['fuselab_ms']:9.2f} vs {r['peer_ms']:9.2f} ms  "
              f"{r['fuselab_flops'] / 1e9:7.3f} GFLOP {100 * r['fuselab_fraction_of_peak']:5.1f}% "
              f"peak  {r['peer']} ({same})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--widths", type=_widths, nargs="+", default=[(64, 32), (512, 512)])
    p.add_argument("--out-dim", type=int, default=128)
    p.add_argument("--seq-len", type=int, default=16, help="steps of nlgate/mult sequences")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--matmul", type=int, default=2048, help="side of the peak-rate matmul")
    p.add_argument("--ops", nargs="*", help="subset of operators (default: all)")
    p.add_argument("--no-table", action="store_true", help="peers only, no per-operator table")
    p.add_argument("--compare-python", help="python of the venv with torchmultimodal/fusilli")
    p.add_argument("--multibench", help="a copy of MultiBench's fusions/common_fusions.py")
    p.add_argument("--mult-repo", help="a copy of the MulT repository (src/, modules/)")
    p.add_argument("--peers", nargs="*", help="subset of fusion_peers.PEERS factories by name")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(run_worker(args)))
        return 0

    print(f"fwd+bwd, batch {args.batch}, out_dim {args.out_dim}, median of {args.repeats}")
    rows = [] if args.no_table else run_fuselab(args)
    compare = run_compare(args)
    print_tables(args, rows, compare)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {k: getattr(args, k) for k in ("batch", "out_dim", "seq_len", "repeats", "warmup",
                                          "threads", "matmul")}
    meta.update(widths=[list(w) for w in args.widths], torch=torch.__version__,
                machine=platform.machine(), python=sys.version.split()[0])
    args.out.write_text(json.dumps({"meta": meta, "operators": rows, "compare": compare},
                                   indent=1))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
