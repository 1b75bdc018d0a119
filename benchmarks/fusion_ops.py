"""Forward+backward time of every fusion operator, and of TorchMultimodal/fusilli equivalents.

Usage::

    python benchmarks/fusion_ops.py                       # batch 256, widths 64,32 and 512,512
    python benchmarks/fusion_ops.py --compare-python /tmp/benchvenv/bin/python
    python benchmarks/fusion_ops.py --repeats 5 --widths 64,32   # quick check

Every timing is the median over ``--repeats`` runs (after ``--warmup`` runs) of one forward plus
``out.sum().backward()`` with inputs that require grad (as behind trainable encoders). Vector
operators fuse ``{"image": (B, D1), "audio": (B, D2)} -> (B, --out-dim)``; ``late`` fuses
``(B, out_dim)`` logits of each modality; the feature-map operators (``msaf``, ``mmtm``) get
``(B, D_m, 8, 8)`` maps with ``D_m`` channels.

The comparison packages live only in a separate virtual environment. ``--compare-python`` runs
this script there (``--worker``), which times each external module and its fuselab counterpart
side by side in the same process, so the ratio ``external / fuselab`` is measured in one run.
Results go to a table on stdout and to ``benchmarks/out/fusion_ops.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import fuselab as fl

OUT = Path(__file__).resolve().parent / "out" / "fusion_ops.json"
MAP_SIDE = 8  # spatial size of the feature maps given to msaf/mmtm


def time_fwd_bwd(
    fn: Callable[[dict[str, Tensor]], Any],
    module: nn.Module,
    inputs: dict[str, Tensor],
    repeats: int,
    warmup: int,
) -> float:
    """Median seconds of ``fn(inputs)`` + backward of the summed output."""
    leaves = {m: x.detach().requires_grad_(True) for m, x in inputs.items()}
    times = []
    for i in range(warmup + repeats):
        module.zero_grad(set_to_none=True)
        for x in leaves.values():
            x.grad = None
        start = time.perf_counter()
        out = fn(leaves)
        total = sum(v.sum() for v in out.values()) if isinstance(out, dict) else out.sum()
        total.backward()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def fuselab_case(
    name: str, widths: tuple[int, int], batch: int, out_dim: int
) -> tuple[nn.Module, dict[str, Tensor]]:
    """Build operator ``name`` at ``widths`` and random inputs for it."""
    dims = {"image": widths[0], "audio": widths[1]}
    gen = torch.Generator().manual_seed(0)
    if name in ("msaf", "mmtm"):
        op = fl.fusion.build(name, in_channels=dims)
        shape = (MAP_SIDE, MAP_SIDE)
        return op, {m: torch.randn(batch, c, *shape, generator=gen) for m, c in dims.items()}
    if name == "late":
        dims = {m: out_dim for m in dims}
    op = fl.fusion.build(name, in_dims=dims, out_dim=out_dim)
    return op, {m: torch.randn(batch, d, generator=gen) for m, d in dims.items()}


def run_fuselab(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for widths in args.widths:
        for name in args.ops or fl.fusion.available():
            torch.manual_seed(0)
            op, inputs = fuselab_case(name, widths, args.batch, args.out_dim)
            seconds = time_fwd_bwd(op, op, inputs, args.repeats, args.warmup)
            rows.append(
                {
                    "operator": name,
                    "widths": list(widths),
                    "params": fl.fusion.count_parameters(op),
                    "fwd_bwd_ms": seconds * 1e3,
                }
            )
            print(f"  {name:<16} {widths!s:<11} {seconds * 1e3:9.2f} ms", flush=True)
    return rows


def _external_pairs(widths: tuple[int, int], out_dim: int) -> list[dict[str, Any]]:
    """(external module, matching fuselab operator) pairs; unavailable packages say why."""
    dims = {"image": widths[0], "audio": widths[1]}
    pairs: list[dict[str, Any]] = []
    try:
        from torchmultimodal.modules.fusions.attention_fusion import AttentionFusionModule
        from torchmultimodal.modules.fusions.concat_fusion import ConcatFusionModule

        tmm_concat = ConcatFusionModule(projection=nn.Linear(sum(dims.values()), out_dim))
        pairs.append(
            {
                "external": "torchmultimodal ConcatFusionModule(+Linear)",
                "module": tmm_concat,
                "call": tmm_concat,
                "fuselab": "concat",
                "fuselab_kwargs": {},
                "note": "same operator: concatenation + linear projection",
            }
        )
        tmm_attn = AttentionFusionModule(dims, encoding_projection_dim=out_dim)
        pairs.append(
            {
                "external": "torchmultimodal AttentionFusionModule",
                "module": tmm_attn,
                "call": tmm_attn,
                "fuselab": "gated",
                "fuselab_kwargs": {"level": "modality"},
                "note": "same structure: modality-level gates from all modalities "
                "(softmax there, sigmoid here) times per-modality projections",
            }
        )
    except Exception as err:  # any import failure makes the package unavailable, with reason
        pairs.append({"external": "torchmultimodal", "unavailable": f"{type(err).__name__}: {err}"})
    try:
        from fusilli.fusionmodels.tabularfusion.concat_data import ConcatTabularData

        data_dims = {
            "mod1_dim": widths[0],
            "mod2_dim": widths[1],
            "mod3_dim": None,
            "img_dim": None,
        }
        fus = ConcatTabularData("regression", data_dims, None)
        fus.fused_layers = nn.Sequential(nn.Linear(sum(widths), out_dim))
        fus.calc_fused_layers()

        def fusilli_call(x: dict[str, Tensor], model: nn.Module = fus) -> Tensor:
            return model(x["image"], x["audio"])

        pairs.append(
            {
                "external": "fusilli ConcatTabularData(fused_layers=Linear)",
                "module": fus,
                "call": fusilli_call,
                "fuselab": "concat",
                "fuselab_kwargs": {},
                "note": f"concatenation + Linear(-> {out_dim}); fusilli adds its "
                f"Linear({out_dim} -> 1) prediction head",
            }
        )
    except Exception as err:
        pairs.append({"external": "fusilli", "unavailable": f"{type(err).__name__}: {err}"})
    return pairs


def run_worker(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Time external modules beside their fuselab counterparts in this process."""
    rows = []
    for widths in args.widths:
        gen = torch.Generator().manual_seed(0)
        dims = {"image": widths[0], "audio": widths[1]}
        inputs = {m: torch.randn(args.batch, d, generator=gen) for m, d in dims.items()}
        for pair in _external_pairs(widths, args.out_dim):
            if "unavailable" in pair:
                rows.append(
                    {
                        "external": pair["external"],
                        "widths": list(widths),
                        "unavailable": pair["unavailable"],
                    }
                )
                continue
            ours = fl.fusion.build(
                pair["fuselab"], in_dims=dims, out_dim=args.out_dim, **pair["fuselab_kwargs"]
            )
            # Alternate the two so that a load spike on the shared machine hits both.
            ext_t, our_t = [], []
            for _ in range(3):
                ext_t.append(
                    time_fwd_bwd(pair["call"], pair["module"], inputs, args.repeats, args.warmup)
                )
                our_t.append(time_fwd_bwd(ours, ours, inputs, args.repeats, args.warmup))
            ext, mine = statistics.median(ext_t), statistics.median(our_t)
            rows.append(
                {
                    "external": pair["external"],
                    "fuselab": pair["fuselab"],
                    "widths": list(widths),
                    "external_ms": ext * 1e3,
                    "fuselab_ms": mine * 1e3,
                    "ratio_external_over_fuselab": ext / mine,
                    "external_params": sum(p.numel() for p in pair["module"].parameters()),
                    "fuselab_params": fl.fusion.count_parameters(ours),
                    "note": pair["note"],
                }
            )
    return rows


def run_compare(args: argparse.Namespace) -> list[dict[str, Any]]:
    cmd = [
        args.compare_python,
        str(Path(__file__).resolve()),
        "--worker",
        "--batch",
        str(args.batch),
        "--out-dim",
        str(args.out_dim),
        "--repeats",
        str(args.repeats),
        "--warmup",
        str(args.warmup),
        "--threads",
        str(args.threads),
        "--widths",
        *(f"{a},{b}" for a, b in args.widths),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=3600)
    except (OSError, subprocess.TimeoutExpired) as err:
        return [{"external": "all", "unavailable": f"could not run {args.compare_python}: {err}"}]
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:]
        return [{"external": "all", "unavailable": f"worker failed: {' | '.join(tail)}"}]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _widths(text: str) -> tuple[int, int]:
    a, b = text.split(",")
    return int(a), int(b)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--widths", type=_widths, nargs="+", default=[(64, 32), (512, 512)])
    p.add_argument("--out-dim", type=int, default=128)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ops", nargs="*", help="subset of operators (default: all)")
    p.add_argument("--compare-python", help="python of the venv with torchmultimodal/fusilli")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(run_worker(args)))
        return 0

    print(f"fwd+bwd, batch {args.batch}, out_dim {args.out_dim}, median of {args.repeats}")
    rows = run_fuselab(args)
    compare = run_compare(args) if args.compare_python else []

    print(f"\n{'operator':<16} " + " ".join(f"{w!s:>12}" for w in args.widths) + "  (ms)")
    for name in dict.fromkeys(r["operator"] for r in rows):
        cells = [
            next(r["fwd_bwd_ms"] for r in rows if r["operator"] == name and tuple(r["widths"]) == w)
            for w in args.widths
        ]
        print(f"{name:<16} " + " ".join(f"{c:12.2f}" for c in cells))
    if compare:
        print("\nexternal module vs fuselab (same process, same inputs)")
        for r in compare:
            if "unavailable" in r:
                print(f"  {r['external']} {r.get('widths', '')}: unavailable ({r['unavailable']})")
            else:
                print(
                    f"  {r['external']:<48} {r['widths']!s:<11} {r['external_ms']:8.2f} ms vs "
                    f"{r['fuselab']} {r['fuselab_ms']:8.2f} ms  ratio "
                    f"{r['ratio_external_over_fuselab']:.2f}"
                )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "batch": args.batch,
        "widths": [list(w) for w in args.widths],
        "out_dim": args.out_dim,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "python": sys.version.split()[0],
    }
    args.out.write_text(json.dumps({"meta": meta, "operators": rows, "compare": compare}, indent=1))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
