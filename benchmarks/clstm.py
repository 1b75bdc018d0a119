"""C-LSTM speed: the batched / in-place implementation vs the step-by-step one it replaced.

Both run the *same* model object (same weights): ``new`` is ``model.run`` (input-to-gate terms of
every step batched outside the recurrent loop, in-place gate updates without autograd; see
``fuselab.models.clstm.cell``), ``old`` is the loop of commit 248e445, loaded from
``tests/models/test_clstm.py::reference_run`` (the tests' equality oracle, so the benchmark times
exactly what the test compares). ``--mode train``: forward + cross-entropy + backward;
``--mode eval``: one forward under ``torch.no_grad`` (the SNR grid's workload). Inputs are random
AV-MNIST shaped tensors (image (1, 28, 28), audio (1, 201, T)). The two take turns every round
(paired, so machine load hits both alike); the figures are the median time of each and the
median of the per-round ratios old / new.

    python benchmarks/clstm.py --units 8 --hidden 32             # study size (examples/clstm.toml)
    python benchmarks/clstm.py --units 8 --hidden 32 --mode eval --batch 256
    python benchmarks/clstm.py --units 64 --time-pool 1 --rounds 2   # paper size (minutes on CPU)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

import fuselab.models as fm

ROOT = Path(__file__).resolve().parents[1]


def load_reference() -> Any:
    spec = importlib.util.spec_from_file_location("clstm_ref", ROOT / "tests/models/test_clstm.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.reference_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default="initial,second,visual-only,audio-only")
    ap.add_argument("--units", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--time-pool", type=int, default=6)
    ap.add_argument("--frames", type=int, default=90, help="spectrogram frames T")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--mode", choices=["train", "eval"], default="train")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    reference = load_reference()
    shapes = {"image": (1, 28, 28), "audio": (1, 201, args.frames)}
    gen = torch.Generator().manual_seed(0)
    x = {m: torch.randn(args.batch, *s, generator=gen) for m, s in shapes.items()}
    y = torch.randint(0, 10, (args.batch,), generator=gen)
    rows = []
    print(f"units={args.units} hidden={args.hidden} time_pool={args.time_pool} T={args.frames} "
          f"batch={args.batch} mode={args.mode} threads={args.threads} rounds={args.rounds}")
    print(f"{'variant':12} {'old ms':>9} {'new ms':>9} {'old/new':>8}")
    for variant in args.variants.split(","):
        model = fm.build({"name": "clstm", "fusion_layer": variant, "units": args.units,
                          "hidden": args.hidden, "time_pool": args.time_pool},
                         input_shapes=shapes, num_outputs=10)
        impls = {"old": lambda m=model: reference(m, x, False), "new": lambda m=model: m.run(x, False)}
        times: dict[str, list[float]] = {"old": [], "new": []}
        for r in range(args.rounds + 1):  # round 0 warms up
            for name, fn in impls.items():
                model.zero_grad(set_to_none=True)
                t0 = time.perf_counter()
                if args.mode == "train":
                    F.cross_entropy(fn(), y).backward()
                else:
                    with torch.no_grad():
                        fn()
                if r:
                    times[name].append(time.perf_counter() - t0)
        ratio = statistics.median(o / n for o, n in zip(times["old"], times["new"], strict=True))
        row = {"variant": variant, "old_ms": 1e3 * statistics.median(times["old"]),
               "new_ms": 1e3 * statistics.median(times["new"]), "speedup": ratio}
        rows.append(row)
        print(f"{variant:12} {row['old_ms']:9.1f} {row['new_ms']:9.1f} {ratio:8.2f}")
    if args.out:
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                        "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
