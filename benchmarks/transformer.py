"""Token-fusion transformer cost: training steps/second vs fusion layer and pooling length.

Thesis 004, Figures 17-18: fusing the image later (fewer layers see its tokens) and pooling its
tokens harder must both make training faster. Every configuration is a small random model on a
synthetic VQA-shaped batch (image (3, S, S) -> (S/4)^2 patch tokens, like ViT's 196; question of
16 token ids; 3-token answers). A step is forward + backward + Adam. Configurations are timed
round-robin (one timed block of steps each, repeated) so a load change on a shared machine hits all
of them alike; the figure is the median over repeats. FLOPs per step (torch.utils.flop_counter)
are exact and load-independent.

    python benchmarks/transformer.py            # full size: 6 layers, 196 image tokens, batch 16
    python benchmarks/transformer.py --quick    # reduced size, to check that it runs

Writes benchmarks/out/transformer.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import fuselab.models as models

VOCAB, Q_LEN, A_LEN = 64, 16, 3


def make_model(args: argparse.Namespace, fuse_at: int, pooled: int | None) -> torch.nn.Module:
    cfg: dict[str, Any] = {
        "name": "token_fusion", "num_layers": args.layers, "d_model": args.d_model,
        "num_heads": 4, "decoder_layers": args.decoder_layers, "dropout": 0.0,
        "fusion_spec": {"0": ["question", "image"]} if fuse_at == 0
        else {"0": ["question"], str(fuse_at): ["image"]},
    }  # fmt: skip
    if pooled is not None:
        cfg.update(pooling=args.pooling, pooled={"image": pooled})
    torch.manual_seed(0)
    shapes = {"image": (3, args.image, args.image), "question": (Q_LEN,)}
    return models.build(cfg, input_shapes=shapes, num_outputs=VOCAB)


def make_batch(args: argparse.Namespace) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = {
        "image": torch.randn(args.batch, 3, args.image, args.image, generator=g),
        "question": torch.randint(3, VOCAB, (args.batch, Q_LEN), generator=g),
    }
    return x, torch.randint(3, VOCAB, (args.batch, A_LEN), generator=g)


class Stepper:
    """One configuration: model, optimizer, and a timed block of training steps."""

    def __init__(self, model: torch.nn.Module, x: dict[str, torch.Tensor], y: torch.Tensor):
        self.model, self.x, self.y = model.train(), x, y
        self.opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        self.times: list[float] = []

    def step(self) -> None:
        logits = self.model(self.x, self.y)
        loss = F.cross_entropy(logits.flatten(0, 1), self.y.flatten())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def timed(self, steps: int) -> None:
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        self.times.append((time.perf_counter() - start) / steps)

    def flops(self) -> int:
        with FlopCounterMode(display=False) as counter:
            self.step()
        return int(counter.get_total_flops())


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    n_img = (args.image // 4) ** 2
    # the thesis's fusion points 0, 6, 11, 12 of a 12-layer encoder: 0, L/2, L-1, L (L = late)
    layers = sorted({0, args.layers // 2, args.layers - 1, args.layers})
    pools = [p for p in (n_img, args.mid_pool, 1) if p <= n_img]
    configs: list[tuple[str, int, int | None]] = [("fusion_layer", k, None) for k in layers]
    configs += [("pooled_tokens", 0, p if p < n_img else None) for p in pools]
    x, y = make_batch(args)
    steppers = {c: Stepper(make_model(args, c[1], c[2]), x, y) for c in configs}
    for s in steppers.values():  # warm-up: allocator, autograd graph, Adam state
        s.timed(1)
        s.times.clear()
    for _ in range(args.repeats):
        for s in steppers.values():
            s.timed(args.steps)
    rows = []
    for (study, layer, pooled), s in steppers.items():
        sec = statistics.median(s.times)
        model = s.model
        rows.append({
            "study": study, "fusion_layer": layer,
            "image_tokens": pooled if pooled is not None else n_img,
            "pooling": args.pooling if pooled is not None else "none",
            "steps_per_s": 1.0 / sec, "step_ms": 1000 * sec,
            "flops_per_step": s.flops(),
            "tokens_per_layer": model.sequence_lengths(),
            "params": sum(p.numel() for p in model.parameters()),
            "fusion_params": sum(p.numel() for p in model.fusion_parameters()),
        })  # fmt: skip
    for study in ("fusion_layer", "pooled_tokens"):
        group = [r for r in rows if r["study"] == study]
        base = group[0]
        for r in group:
            r["speedup_vs_first"] = r["steps_per_s"] / base["steps_per_s"]
            r["flops_ratio_vs_first"] = r["flops_per_step"] / base["flops_per_step"]
    checks = {
        "later_fusion_faster": _increasing([r for r in rows if r["study"] == "fusion_layer"]),
        "stronger_pooling_faster": _increasing([r for r in rows if r["study"] == "pooled_tokens"]),
    }
    return {
        "benchmark": "transformer",
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        "rows": rows,
        "checks": checks,
    }


def _increasing(group: list[dict[str, Any]]) -> dict[str, bool]:
    speeds = [r["steps_per_s"] for r in group]
    flops = [r["flops_per_step"] for r in group]
    return {
        "steps_per_s_increasing": all(a < b for a, b in itertools.pairwise(speeds)),
        "flops_decreasing": all(a > b for a, b in itertools.pairwise(flops)),
    }


def print_table(result: dict[str, Any]) -> None:
    head = (
        f"{'study':<14}{'layer':>6}{'img tok':>8}{'pool':>6}{'steps/s':>9}{'speedup':>9}"
        f"{'GFLOP/step':>11}{'flop ratio':>11}  tokens per layer"
    )
    print(head)
    print("-" * len(head))
    for r in result["rows"]:
        print(
            f"{r['study']:<14}{r['fusion_layer']:>6}{r['image_tokens']:>8}{r['pooling']:>6}"
            f"{r['steps_per_s']:>9.2f}{r['speedup_vs_first']:>8.2f}x"
            f"{r['flops_per_step'] / 1e9:>11.3f}{r['flops_ratio_vs_first']:>11.3f}  "
            f"{r['tokens_per_layer']}"
        )
    for name, check in result["checks"].items():
        print(f"check {name}: {check}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=6, help="encoder layers L")
    p.add_argument("--decoder-layers", type=int, default=2)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--image", type=int, default=56, help="image side; (side/4)^2 patch tokens")
    p.add_argument("--mid-pool", type=int, default=14, help="intermediate pooled length")
    p.add_argument("--pooling", default="mean", choices=["mean", "max", "attention"])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=3, help="steps per timed block")
    p.add_argument("--repeats", type=int, default=7, help="timed blocks per configuration")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--quick", action="store_true", help="reduced size: 4 layers, 64 image tokens")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "transformer.json")
    args = p.parse_args()
    if args.quick:
        args.layers, args.image, args.mid_pool = 4, 32, 8
        args.batch, args.repeats = 8, 5
    result = run(args)
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
