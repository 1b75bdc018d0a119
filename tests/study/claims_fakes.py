"""A stand-in run function and study config whose claims have known verdicts.

Every run's numbers follow from its config: test accuracy ``acc + 0.01 * seed``; an SNR grid
over ``snr_a`` x ``snr_b`` that rises with both SNRs; an SNR curve falling by ``slope`` per
noisier level; ``params`` as configured. So "strong beats weak" holds by construction and
"weak beats strong" does not.
"""

from __future__ import annotations

from pathlib import Path

from fuselab.study.worker import Reporter, RunResult, RunTask

GRID_SNRS = (0.5, 1.0, None)


def quality(snr: float | None) -> float:
    return 1.0 if snr is None else snr / (1.0 + snr)


def claims_run(task: RunTask, ckpt: Path | None, report: Reporter) -> RunResult:
    m = task.config["model"]
    acc = float(m["acc"]) + 0.01 * task.seed
    recs = [{"evaluation": "test", "metric": "accuracy", "value": acc, "split": "test"}]
    for sa in GRID_SNRS:
        for sb in GRID_SNRS:
            recs.append({"evaluation": "snr_grid", "metric": "accuracy", "snr_a": sa, "snr_b": sb,
                         "value": acc * (0.5 + 0.25 * quality(sa) + 0.25 * quality(sb))})
    for i, snr in enumerate((None, 1.0, 0.5, 0.25)):
        recs.append({"evaluation": "snr_curve", "metric": "accuracy", "modality": "a",
                     "snr": snr, "value": acc - float(m.get("slope", 0.1)) * i})
    recs.append({"evaluation": "cost", "metric": "params", "value": float(m.get("params", 100))})
    return RunResult({"test_accuracy": acc}, recs, None)


CLAIMS_TOML = """
[study]
name = "claims-fake"
seeds = [0, 1, 2]

[data]
name = "none"

[model]
name = "fake"
acc = 0.6

[[grid.fusion]]
label = "weak"

[[grid.fusion]]
label = "strong"
model = { acc = 0.9, params = 250 }

[evaluate]
test = true
snr_grid = true
snr_curve = true
cost = true

[[claims]]
name = "strong beats weak"
source = "constructed (true)"
paper = 0.3
left = "strong"
right = "weak"
evaluation = "test"
metric = "accuracy"
rule = "mean_gt"
significant = true
min_seeds = 3

[[claims]]
name = "weak beats strong"
source = "constructed (false)"
paper = "weak >= strong"
left = "weak"
right = "strong"
evaluation = "test"
metric = "accuracy"
rule = "mean_ge"
"""


def write_claims_study(path: Path, extra: str = "") -> Path:
    path.write_text(CLAIMS_TOML + extra)
    return path
