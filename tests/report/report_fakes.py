"""A realistic fake study in the store's plain-data shape (study(), runs(), records()).

Six variants (depth early/stage-1/late x operator concat/gated) with two seeds each, one extra
failed run, one pending run, and every evaluation of the record conventions. Values are drawn from a
seeded RNG, so tests can recompute any expected aggregate from the returned data itself.
"""

from __future__ import annotations

import random
from typing import Any

DEPTHS = ("early", "stage-1", "late")
OPERATORS = ("concat", "gated")
SEEDS = (0, 1)
SNRS = (0.25, 0.5, 1.0, None)
FAILED_ERROR = (
    "Traceback (most recent call last):\n  File \"fit.py\", line 12, in step\n"
    "FloatingPointError: non-finite loss nan at step 37 (last finite loss 2.31) <script>x</script>"
)


def _variant(depth: str, op: str) -> str:
    return f"{depth} · {op}"


def make_study() -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(1234)
    study = {
        "name": "fake-avmnist",
        "created_at": "2026-11-25T21:00:00Z",
        "config": {"dataset": {"name": "avmnist"}},
    }
    runs: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    for d, depth in enumerate(DEPTHS):
        for o, op in enumerate(OPERATORS):
            for seed in SEEDS:
                run_id = f"run{d}{o}{seed}abcdef"
                base = 0.70 + 0.05 * (2 - d) + 0.02 * o  # earlier fusion scores higher
                acc = base + rng.uniform(-0.02, 0.02)
                params = 10_000 * (3 - d) + 500 * o
                runs.append({
                    "run_id": run_id, "status": "done", "variant": _variant(depth, op),
                    "factors": {"depth": depth, "operator": op}, "seed": seed,
                    "config": {"train_snr": {"audio": 0.5, "image": 0.25}},
                    "metrics": {"test_accuracy": acc, "test_macro_f1": acc - 0.01,
                                "params": float(params), "flops_per_sample": 2e6 * (3 - d),
                                "throughput": 5000.0 * (d + 1) + rng.uniform(0, 50)},
                    "error": None, "duration_s": 10.0 + rng.uniform(0, 5),
                    "checkpoint_path": f"/tmp/{run_id}.pt",
                })
                records += _run_records(rng, run_id, acc, d, depth, op)
    runs.append({
        "run_id": "runfailed0001", "status": "failed", "variant": _variant("late", "tensor"),
        "factors": {"depth": "late", "operator": "tensor"}, "seed": 0, "config": {},
        "metrics": {}, "error": FAILED_ERROR, "duration_s": 1.5, "checkpoint_path": None,
    })
    runs.append({
        "run_id": "runpending001", "status": "pending", "variant": _variant("late", "tensor"),
        "factors": {"depth": "late", "operator": "tensor"}, "seed": 1, "config": {},
        "metrics": {}, "error": None, "duration_s": None, "checkpoint_path": None,
    })
    # A failed run may leave partial records behind; the report must ignore them.
    records.append({"run_id": "runfailed0001", "evaluation": "curve", "metric": "train_loss",
                    "value": 99.0, "epoch": 0})
    return study, runs, records


def _run_records(rng: random.Random, run_id: str, acc: float, d: int, depth: str,
                 op: str) -> list[dict[str, Any]]:
    r: list[dict[str, Any]] = []

    def add(evaluation: str, metric: str, value: float, **cond: Any) -> None:
        r.append({"run_id": run_id, "evaluation": evaluation, "metric": metric,
                  "value": value, **cond})

    add("test", "accuracy", acc, split="test")
    for epoch in range(4):
        add("curve", "train_loss", 2.0 / (epoch + 1) + rng.uniform(0, 0.1), epoch=epoch)
        add("curve", "val_accuracy", acc * (0.7 + 0.1 * epoch), epoch=epoch)
    for sa in SNRS:
        for si in SNRS:
            qa = 1.0 if sa is None else sa / (1 + sa)
            qi = 1.0 if si is None else si / (1 + si)
            add("snr_grid", "accuracy", acc * (0.5 + 0.25 * qa + 0.25 * qi) - 0.01 * d,
                snr_audio=sa, snr_image=si)
    for mod in ("audio", "image"):
        for s in SNRS:
            q = 1.0 if s is None else s / (1 + s)
            add("snr_curve", "accuracy", acc * (0.6 + 0.4 * q), modality=mod, snr=s)
        add("robustness", "robust_auc", 0.02 * (1 - d) + rng.uniform(-0.005, 0.005),
            modality=mod, baseline="late · concat")
        add("robustness", "relative_robustness", acc * 0.8, modality=mod, baseline="late · concat")
    for mode in ("zero", "mean"):
        add("missing_modality", "accuracy", acc, modality="none", mode=mode)
        add("missing_modality", "accuracy", acc * 0.6, modality="audio", mode=mode)
        add("missing_modality", "accuracy", acc * 0.7, modality="image", mode=mode)
    emap = acc - 0.03 * (2 - d) - rng.uniform(0, 0.01)
    add("emap", "accuracy", acc, projection="full")
    add("emap", "accuracy", emap, projection="emap")
    add("emap", "emap_gap", acc - emap)
    add("cost", "params", 10_000.0 * (3 - d))
    if op == "gated":
        for module in (1, 2):
            for cls in range(3):
                for mod in ("audio", "image"):
                    add("inspect_msaf", "attention", rng.uniform(0.2, 1.0), modality=mod,
                        **{"class": cls}, module=module)
    if depth == "early":
        for sa, si in ((None, None), (0.25, None), (None, 0.25)):
            for step in range(6):
                for cls in range(3):
                    add("inspect_clstm", "activation", (cls + 1) * step / 6 + rng.uniform(0, 0.1),
                        step=step, snr_audio=sa, snr_image=si, sample=0, **{"class": cls})
    for step in range(3):
        for mod in ("audio", "image"):
            add("inspect_probe", "probe_accuracy", 0.5 + 0.1 * step + rng.uniform(0, 0.02),
                step=step, modality=mod)
    return r
