"""Tutorial 4 (docs/tutorials/reading-a-report.md): add claims to the quickstart study, read the report.

    python docs/tutorials/scripts/quickstart.py               # tutorial 1 first: the runs
    python docs/tutorials/scripts/reading_report.py           # claims judged, nothing re-runs
    python docs/tutorials/scripts/reading_report.py --budget tiny --out DIR   # after tutorial 1's tiny run

Use the same ``--budget`` and ``--out`` as for tutorial 1: the budget is part of the config, and
a resumed study must be the same study.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from quickstart import BUDGETS, CONFIG  # tutorial 1's config and budgets (same folder)

# --8<-- [start:claims]
from fuselab.report import build_report
from fuselab.study import load_config, run_study

CLAIMS = Path(__file__).resolve().parent / "quickstart_claims.toml"


def judge(out: Path, budget: dict) -> None:
    # the quickstart config with the [[claims]] tables appended (TOML allows that)
    text = CONFIG.read_text(encoding="utf-8") + "\n" + CLAIMS.read_text(encoding="utf-8")
    config = out.with_name(f"{out.name}-claims.toml")
    config.write_text(text, encoding="utf-8")
    cfg = load_config(config, overrides=budget)
    summary = run_study(cfg, out, resume=True, progress=False)   # the runs are all done
    print(f"{summary.executed} runs executed")                    # 0: claims need no run
    for v in summary.claims:
        print(f"[{v.verdict}] {v.claim.name}: {v.value}\n    {v.reason}")
# --8<-- [end:claims]


# --8<-- [start:report]
def sections(out: Path) -> list[str]:
    paths = build_report(out)                    # report.html, report.md, figures/NN_*.png
    text = paths["md"].read_text(encoding="utf-8")
    return re.findall(r"^## (.+)$", text, flags=re.M)
# --8<-- [end:report]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", choices=sorted(BUDGETS), default="full")
    p.add_argument("--out", type=Path, default=Path("runs/quickstart"))
    args = p.parse_args(argv)
    judge(args.out, BUDGETS[args.budget])
    print("report sections:", ", ".join(sections(args.out)))


if __name__ == "__main__":
    main()
