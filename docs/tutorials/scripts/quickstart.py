"""Tutorial 1 (docs/tutorials/quickstart.md): run the quickstart study, read its leaderboard.

    python docs/tutorials/scripts/quickstart.py                  # the study as examples/ has it
    python docs/tutorials/scripts/quickstart.py --budget tiny    # a few seconds (the docs test)

The budgets shrink the study with config overrides (``docs/study.md``, "Overrides"): ``full``
changes nothing, ``docs`` is the run the tutorial figures come from, ``tiny`` only checks that
this script still works.
"""

from __future__ import annotations

import argparse
from pathlib import Path

# --8<-- [start:run]
from fuselab.report import build_report, format_results_table, results_table
from fuselab.study import load_config, run_study

CONFIG = Path(__file__).resolve().parents[3] / "examples" / "quickstart.toml"


def run(out: Path, overrides: dict, workers: int | None = None, resume: bool = False) -> None:
    cfg = load_config(CONFIG, overrides=overrides)       # typed and validated
    summary = run_study(cfg, out, workers=workers, resume=resume, progress=False)
    print(f"{summary.done} of {summary.total} runs done, {summary.failed} failed")
    print(format_results_table(results_table(out)))     # what `fuselab show OUT` prints
    paths = build_report(out)                            # report.html, report.md, figures/
    print("report:", paths["html"])
# --8<-- [end:run]


BUDGETS: dict[str, dict] = {
    "full": {},
    # 2 of the 5 seeds, 20 of the 40 epochs: the run the tutorial figures come from
    "docs": {"study.seeds": [0, 1], "train.epochs": 20},
    # one seed, one epoch, a few samples: checks that this script still works, shows nothing
    "tiny": {"study.seeds": [0], "train.epochs": 1,
             "data.options.sizes": {"train": 256, "val": 64, "test": 64},
             "evaluate.snr_curve": {"snrs": ["clean", 10]},
             "evaluate.cost": {"repeats": 1, "warmup": 0, "throughput_batch": 8, "train_batch": 8},
             "grid.fusion[2].evaluate": {"inspect_probe": {"max_train": 64, "max_test": 64}}},
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", choices=sorted(BUDGETS), default="full")
    p.add_argument("--out", type=Path, default=Path("runs/quickstart"))
    p.add_argument("--workers", type=int, default=None, help="0: in-process (default: cores)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    args = p.parse_args(argv)
    run(args.out, BUDGETS[args.budget], args.workers, args.resume)


if __name__ == "__main__":
    main()
