"""Make the tutorials' figures and printed outputs from real runs of their scripts.

    python docs/tutorials/make_figures.py                      # every tutorial (~15 min, 2 cores)
    python docs/tutorials/make_figures.py quickstart own-data  # some of them

Each tutorial script runs exactly as the page tells a reader to run it (a subprocess, from the
repository root, into ``runs/tutorials/<name>``); what it prints goes to
``docs/tutorials/figures/<tutorial>-output.txt``, the report figures the page shows are copied
to ``docs/tutorials/figures/<tutorial>-<what>.png`` (re-encoded with a 256-colour palette to keep
each under 100 KB) and report tables it shows to ``<tutorial>-<what>.txt``. An interrupted quickstart run continues where it stopped.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "docs" / "tutorials" / "scripts"
FIGURES = REPO / "docs" / "tutorials" / "figures"
RUNS = Path("runs") / "tutorials"
MAX_BYTES = 100_000


@dataclass
class Tutorial:
    """One tutorial: its script's arguments, its study directory, the figures it shows."""

    script: str
    args: list[str]
    study: Path
    figures: dict[str, str] = field(default_factory=dict)   # page figure name -> report figure
    resumable: bool = False   # pass --resume when the study exists (an interrupted run)
    report: bool = False      # the script prints a leaderboard only: build the report after it
    fresh: Path | None = None  # removed first: a finished study refuses a plain re-run
    tables: dict[str, str] = field(default_factory=dict)    # page table name -> report section


QUICKSTART = RUNS / "quickstart"
TUTORIALS: dict[str, Tutorial] = {
    "quickstart": Tutorial(
        "quickstart.py", ["--budget", "docs", "--out", str(QUICKSTART)], QUICKSTART,
        {"accuracy-vs-d": "_accuracy_vs_d.png"}, resumable=True),
    "reading-a-report": Tutorial(
        "reading_report.py", ["--budget", "docs", "--out", str(QUICKSTART)], QUICKSTART,
        {"claim-early-vs-late": "_claim_1.png", "claim-trend": "_claim_3.png",
         "robustness": "robustness_curves", "probes": "probe_accuracy"}),
    "own-data": Tutorial(
        "own_data.py", ["--out", str(RUNS / "own-data")], RUNS / "own-data" / "study",
        {"training-curves": "training_curves"}, report=True, fresh=RUNS / "own-data",
        tables={"missing-modalities": "Missing modalities"}),
    "custom-operator": Tutorial(
        "custom_operator.py", ["--out", str(RUNS / "max-fusion")], RUNS / "max-fusion",
        {"accuracy-vs-cost": "accuracy_vs_cost"}, report=True, fresh=RUNS / "max-fusion"),
}
# the reading-a-report page names its figures "report-*"
PREFIX = {"reading-a-report": "report"}


def report_figure(study: Path, key: str) -> Path:
    """The one figure of ``study``'s report whose name contains ``key``."""
    found = sorted(p for p in (REPO / study / "figures").glob("*.png") if key in p.name)
    if len(found) != 1:
        have = sorted(p.name for p in (REPO / study / "figures").glob("*.png"))
        raise SystemExit(f"{study}: expected one report figure matching {key!r}, "
                         f"found {[p.name for p in found]}; figures: {have}")
    return found[0]


def report_table(study: Path, heading: str) -> str:
    """The Markdown table (and its caption) of the report section titled ``heading``."""
    text = (REPO / study / "report.md").read_text(encoding="utf-8")
    part = text.split(f"\n## {heading}\n", 1)
    if len(part) != 2:
        raise SystemExit(f"{study}/report.md has no section {heading!r}")
    lines = part[1].split("\n## ", 1)[0].splitlines()
    table = [ln for ln in lines if ln.startswith("|")]
    caption = [ln for ln in lines if ln.startswith("*")]
    return "\n".join([*table, "", *caption]) + "\n"


def save_small(src: Path, dest: Path) -> None:
    """Copy a PNG with a 256-colour palette (report figures are line plots and heatmaps)."""
    with Image.open(src) as img:
        img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(
            dest, optimize=True)
    if dest.stat().st_size > MAX_BYTES:
        raise SystemExit(f"{dest}: {dest.stat().st_size:,} bytes, over {MAX_BYTES:,}")


def run(cmd: list[str]) -> str:
    """Run ``python cmd...`` from the repository root; its stdout, or exit with its output."""
    print("$ python", " ".join(cmd), flush=True)
    done = subprocess.run([sys.executable, *cmd], cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def make(name: str, figures_only: bool = False) -> None:
    t = TUTORIALS[name]
    if not figures_only:
        args = list(t.args)
        if t.resumable and (REPO / t.study / "results.sqlite").exists():
            args.append("--resume")
        if t.fresh is not None and (REPO / t.fresh).exists():
            shutil.rmtree(REPO / t.fresh)
        out = run([str((SCRIPTS / t.script).relative_to(REPO)), *args])
        FIGURES.mkdir(parents=True, exist_ok=True)
        (FIGURES / f"{name}-output.txt").write_text(out, encoding="utf-8")
        print(out)
    if t.report:
        run(["-m", "fuselab.cli", "report", str(t.study)])  # = fuselab report DIR
    for label, heading in t.tables.items():
        dest = FIGURES / f"{name}-{label}.txt"   # Markdown, included by the page (snippets)
        dest.write_text(report_table(t.study, heading), encoding="utf-8")
        print(f"wrote {dest.relative_to(REPO)}")
    for label, key in t.figures.items():
        dest = FIGURES / f"{PREFIX.get(name, name)}-{label}.png"
        save_small(report_figure(t.study, key), dest)
        print(f"wrote {dest.relative_to(REPO)} ({dest.stat().st_size:,} bytes)")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("tutorials", nargs="*", help=f"default: all of {list(TUTORIALS)}")
    p.add_argument("--figures-only", action="store_true",
                   help="copy the figures of the studies already in runs/tutorials (no runs)")
    args = p.parse_args(argv)
    names = args.tutorials or list(TUTORIALS)
    unknown = sorted(set(names) - set(TUTORIALS))
    if unknown:
        p.error(f"unknown tutorial {unknown[0]!r}; known: {list(TUTORIALS)}")
    for name in names:
        make(name, args.figures_only)


if __name__ == "__main__":
    main()
