"""Data pipeline benchmark: AV-MNIST build/load time, noisy batches per second, feature cache.

Measures, on one machine in one run:
  * cold build of the AV-MNIST training split (fresh cache dir: decode + verify + cache) and warm
    load (median of repeats) at ``--pairs`` training pairs (60k as in the issue);
  * batches per second delivered by ``ds.batches(256, shuffle=True, snr=...)`` with on-the-fly
    white noise on the waveform and the image plus the spectrogram, and clean; beside the
    training step time (forward + backward + Adam) of the LeNet late-fusion model at the same
    batch size, so "data is not the bottleneck" is a ratio measured side by side;
  * epoch time of a frozen encoder with and without :class:`fuselab.data.FeatureCache`;
  * build time of the synthetic lattice task (4000 / 1000 / 1000 samples), median.

    python benchmarks/data.py                       # full size (60k pairs)
    python benchmarks/data.py --pairs 6000 --batches 10 --cache-samples 1024   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

import fuselab.data as fd

LENET_LATE = {
    "name": "staged",
    "encoders": {"image": {"preset": "avmnist_image"}, "audio": {"preset": "avmnist_audio"}},
    "fusion": [{"at": "late", "operator": "concat"}],
    "head": {"hidden": [100]},
}


def timed(fn, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def batch_rate(ds, batches: int, snr) -> float:
    g = torch.Generator().manual_seed(0)
    it = ds.batches(
        256, shuffle=True, generator=g, snr=snr, noise_generator=torch.Generator().manual_seed(1)
    )
    next(it)  # warm-up (allocator, FFT plans)
    t = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches / (time.perf_counter() - t)


def train_step_time(ds, steps: int) -> float | None:
    try:
        import fuselab.models as fm

        model = fm.build(LENET_LATE, input_shapes=ds.shapes, num_outputs=10)
    except Exception as e:  # the models package may not offer this config in every checkout
        print(f"(LeNet late fusion unavailable: {e})")
        return None
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x, y = next(ds.batches(256, shuffle=True, generator=torch.Generator().manual_seed(0)))

    def step() -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    step()
    return timed(step, steps)[0]


def feature_cache_ratio(ds, samples: int, tmp: Path) -> dict[str, float]:
    """Epoch time over ``samples`` spectrograms: frozen CNN encoder, uncached vs cached."""
    torch.manual_seed(0)
    enc = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 5, padding=2),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(4),
        torch.nn.Flatten(),
    ).eval()
    sub = ds.subset(torch.arange(samples))
    batches = [
        (x["audio"], [str(i) for i in range(s, s + len(y))])
        for s, (x, y) in zip(range(0, samples, 256), sub.batches(256), strict=False)
    ]
    cache = fd.CachedEncoder(enc, fd.FeatureCache(tmp / "features.sqlite"))

    def plain() -> None:
        with torch.no_grad():
            for x, _ in batches:
                enc(x)

    def cached() -> None:
        for x, ids in batches:
            cache(x, ids)

    first, _ = timed(cached, 1)  # computes and stores
    no_cache, _ = timed(plain, 3)
    with_cache, _ = timed(cached, 3)
    return {
        "samples": samples,
        "epoch_uncached_s": no_cache,
        "epoch_first_cached_s": first,
        "epoch_cached_s": with_cache,
        "speedup": no_cache / with_cache,
        "encoder_rows_after_first_epoch": cache.cache.stats["misses"] - samples,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default=os.environ.get("FUSELAB_DATA", "../shared/data"))
    p.add_argument("--pairs", type=int, default=60000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--cache-samples", type=int, default=4096)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--out", default=str(Path(__file__).parent / "out" / "data.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    opts = {"root": args.data_root, "split": "train", "pairs": args.pairs}
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = Path(tmp) / "cache"
        build_s, _ = timed(lambda: fd.load("avmnist", cache_dir=cache_dir, **opts), 1)
        load_s, load_all = timed(
            lambda: fd.load("avmnist", cache_dir=cache_dir, **opts), args.repeats
        )
        ds = fd.load("avmnist", cache_dir=cache_dir, **opts)
        noisy = batch_rate(ds, args.batches, {"audio": 0.5, "image": 0.25})
        clean = batch_rate(ds, args.batches, None)
        step = train_step_time(ds, args.steps)
        fc = feature_cache_ratio(ds, min(args.cache_samples, len(ds)), Path(tmp))
    lattice_s, _ = timed(lambda: fd.load_splits(
        "lattice", sizes={"train": 4000, "val": 1000, "test": 1000}), args.repeats)
    res = {
        "pairs": args.pairs,
        "threads": args.threads,
        "build_cold_s": build_s,
        "load_warm_s": load_s,
        "load_warm_all_s": load_all,
        "batches_per_s_noisy_b256": noisy,
        "batches_per_s_clean_b256": clean,
        "lenet_late_train_step_s_b256": step,
        "data_time_over_step_time": None if step is None else (1 / noisy) / step,
        "feature_cache": fc,
        "lattice_build_6000_s": lattice_s,
    }
    rows = [
        ("AV-MNIST build, cold (s)", f"{build_s:.2f}"),
        ("AV-MNIST load, warm, median (s)", f"{load_s:.3f}"),
        ("batches/s, b256, noise audio 0.5 + image 0.25", f"{noisy:.1f}"),
        ("batches/s, b256, clean", f"{clean:.1f}"),
        ("LeNet late-fusion train step, b256 (s)", "n/a" if step is None else f"{step:.3f}"),
        (
            "noisy batch time / train step time",
            "n/a" if step is None else f"{(1 / noisy) / step:.2f}",
        ),
        (
            f"frozen-encoder epoch, {fc['samples']} samples, uncached (s)",
            f"{fc['epoch_uncached_s']:.3f}",
        ),
        ("same epoch from FeatureCache (s)", f"{fc['epoch_cached_s']:.3f}"),
        ("FeatureCache speed-up (uncached / cached)", f"{fc['speedup']:.1f}x"),
        ("lattice build, 4000 / 1000 / 1000 samples, median (s)", f"{lattice_s:.3f}"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"AV-MNIST data pipeline, {args.pairs} training pairs, {args.threads} threads")
    for k, v in rows:
        print(f"  {k:<{width}}  {v:>10}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
