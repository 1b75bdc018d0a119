"""Tutorial 5 (docs/tutorials/cluster.md): a study on Ray with its results in a database server.

    python docs/tutorials/scripts/cluster.py                  # local Ray, SQLite through a URL
    python docs/tutorials/scripts/cluster.py --budget tiny    # the docs test
    python docs/tutorials/scripts/cluster.py --address auto --db-url postgresql+psycopg://me@db/study

Needs ``pip install -e ".[ray,sql]"``. Without ``--address`` Ray starts on this machine (what
``fuselab study CONFIG --backend ray`` does); ``--address auto`` joins the cluster this machine is
part of. Without ``--db-url`` the results go to a SQLite file *through a database URL*, the code
path a PostgreSQL server takes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

# --8<-- [start:run]
from fuselab.report import format_results_table, results_table
from fuselab.study import load_config, open_store, run_study

CONFIG = Path(__file__).resolve().parents[3] / "examples" / "quickstart.toml"


def run(out: Path, overrides: dict, address: str | None, db_url: str) -> None:
    cfg = load_config(CONFIG, overrides=overrides)
    summary = run_study(cfg, out, backend="ray", address=address, db_url=db_url,
                        progress=False)                     # one Ray task per run
    print(f"{summary.done} runs done, {summary.failed} failed on Ray")
    store = open_store(db_url)                             # any machine can read the server
    print(f"{len(store.runs())} runs in {db_url.split('@')[-1]}")
    print(format_results_table(results_table(store)))
# --8<-- [end:run]


BUDGETS: dict[str, dict] = {
    "full": {},
    # one seed and one hidden width, a few samples: checks the Ray + database path only
    "tiny": {"study.seeds": [0], "train.epochs": 1,
             "data.options.sizes": {"train": 256, "val": 64, "test": 64},
             "grid.axes.d.values": [[64, 8]], "grid.axes.d.labels": [8],
             "evaluate.snr_curve": False, "evaluate.robustness": False, "evaluate.cost": False,
             "grid.fusion[2].evaluate": {}},
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", choices=sorted(BUDGETS), default="full")
    p.add_argument("--out", type=Path, default=Path("runs/quickstart-ray"))
    p.add_argument("--address", default=None, help="Ray cluster address (default: local Ray)")
    p.add_argument("--db-url", default=None, help="SQLAlchemy URL (default: sqlite:///OUT.db)")
    args = p.parse_args(argv)
    db_url = args.db_url or f"sqlite:///{args.out.resolve()}.db"
    run(args.out, BUDGETS[args.budget], args.address, db_url)


if __name__ == "__main__":
    main()
