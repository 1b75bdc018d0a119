"""The fused BatchNorm -> ReLU -> max-pool op, forward + backward, at the AV-MNIST LeNet's stage
shapes (batch 128, channels-last): against the textbook module chain and, optionally, against
another implementation of ``bn_relu_maxpool`` in a file (e.g. an earlier version)::

    python benchmarks/bn_relu_op.py
    git show <rev>:src/fuselab/ops/bn_relu_pool.py > /tmp/old_op.py
    python benchmarks/bn_relu_op.py --against /tmp/old_op.py     # before / after a change

Calls alternate (A, B, B, A, ...) in one process so load drift hits both alike; each figure is
the median of the per-pair time ratios. Writes ``benchmarks/out/bn_relu_op.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fuselab.ops import bn_relu_maxpool

SHAPES = [(128, 6, 201, 90), (128, 12, 101, 45), (128, 6, 28, 28)]  # audio conv1/conv2, image conv1
Op = Callable[[Tensor, nn.Module, int], Tensor]


def textbook(y: Tensor, bn: nn.Module, k: int) -> Tensor:
    return F.max_pool2d(F.relu(bn(y)), k, ceil_mode=True)


def load_op(path: str) -> Op:
    spec = importlib.util.spec_from_file_location("other_bn_relu_pool", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.bn_relu_maxpool  # type: ignore[no-any-return]


def step_time(op: Op, y0: Tensor) -> float:
    bn, y = nn.BatchNorm2d(y0.shape[1]), y0.clone().requires_grad_()
    t = time.perf_counter()
    out = op(y, bn, 2)
    out.backward(torch.ones_like(out))
    return time.perf_counter() - t


def compare(a: Op, b: Op, y0: Tensor, pairs: int) -> dict[str, float]:
    """Median times of ``a`` and ``b`` and the median of the per-pair ratios ``b / a``."""
    for _ in range(2):  # warm-up (and the native build)
        step_time(a, y0), step_time(b, y0)
    ta, tb = [], []
    for i in range(pairs):
        first, second = (a, b) if i % 2 == 0 else (b, a)
        t1, t2 = step_time(first, y0), step_time(second, y0)
        ta.append(t1 if first is a else t2)
        tb.append(t2 if first is a else t1)
    return {"a_ms": 1e3 * statistics.median(ta), "b_ms": 1e3 * statistics.median(tb),
            "ratio_b_over_a": statistics.median(y / x for x, y in zip(ta, tb, strict=True))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=20)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--against", help="a file defining another bn_relu_maxpool(y, norm, kernel)")
    p.add_argument("--out", default=str(Path(__file__).parent / "out" / "bn_relu_op.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rivals: dict[str, Op] = {"textbook": textbook}
    if args.against:
        rivals[f"other ({args.against})"] = load_op(args.against)
    results = []
    print(f"fused op, forward + backward, channels-last, {args.threads} threads")
    for shape in SHAPES:
        y0 = torch.randn(shape).contiguous(memory_format=torch.channels_last)
        for name, rival in rivals.items():
            r = compare(rival, bn_relu_maxpool, y0, args.pairs)
            results.append({"shape": shape, "rival": name, **r})
            print(f"  {shape!s:<20} {name:<24} {r['a_ms']:8.1f} ms   fused {r['b_ms']:8.1f} ms"
                  f"   fused / {name.split()[0]} = {r['ratio_b_over_a']:.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
