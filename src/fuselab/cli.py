"""The ``fuselab`` command: argument parsing and printing only; the work lives in the library."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import Any


def _parse_dims(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in text.split(","):
        name, _, width = part.partition("=")
        if not width:
            raise argparse.ArgumentTypeError(f"expected NAME=WIDTH[,NAME=WIDTH...], got {text!r}")
        out[name.strip()] = int(width)
    return out


def _cmd_ops(args: argparse.Namespace) -> int:
    from fuselab import fusion

    rows = fusion.describe(in_dims=args.dims, out_dim=args.out_dim)
    width = max(len(r["name"]) for r in rows)
    print(f"{'operator':<{width}}  {'kind':<11}  {'params':>10}  description")
    for r in rows:
        params = f"{r['params']:,}" if r["params"] is not None else "-"
        print(f"{r['name']:<{width}}  {r['kind']:<11}  {params:>10}  {r['summary']}")
    dims = ", ".join(f"{k}={v}" for k, v in args.dims.items())
    print(f"\n{len(rows)} operators; parameters at in_dims=({dims}) -> out_dim={args.out_dim}")
    return 0


def _fail(message: str) -> int:
    print(f"fuselab: error: {message}", file=sys.stderr)
    return 2


def _report_paths(study_dir: str) -> dict[str, Any]:
    from fuselab.report import build_report  # lazily: the report package may be absent

    return dict(build_report(study_dir))


def _cmd_study(args: argparse.Namespace) -> int:
    from fuselab.study import ConfigError, StoreError, StudyDirError, run_study

    try:
        summary = run_study(
            args.config, args.out, resume=args.resume, force=args.force,
            retry_failed=args.retry_failed, workers=args.workers, backend=args.backend,
            address=args.address, data_dir=args.data_dir, db_url=args.db_url,
            progress=not args.quiet,
        )
    except (ConfigError, StudyDirError, StoreError, FileNotFoundError) as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        print("\ninterrupted: finished runs are saved; continue with --resume", file=sys.stderr)
        return 130
    print(f"study {summary.study_dir}: {summary.done} done, {summary.failed} failed of "
          f"{summary.total} runs ({summary.skipped} already finished) in {summary.wall_s:.1f}s")
    for w in summary.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if args.no_report:
        return 0 if summary.failed == 0 else 1
    try:
        paths = _report_paths(str(summary.study_dir))
    except ImportError as e:
        print(f"report skipped (fuselab.report unavailable: {e})", file=sys.stderr)
        return 0 if summary.failed == 0 else 1
    print(f"report: {paths.get('html', paths)}")
    return 0 if summary.failed == 0 else 1


def _cmd_report(args: argparse.Namespace) -> int:
    from fuselab.study import StoreError

    try:
        paths = _report_paths(args.dir)
    except StoreError as e:
        return _fail(str(e))
    for kind in ("html", "md"):
        if kind in paths:
            print(f"{kind}: {paths[kind]}")
    return 0


def _json_safe(value: Any) -> Any:
    # Strict JSON has no NaN: a diverged metric is printed as null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _cmd_show(args: argparse.Namespace) -> int:
    from fuselab.study import StoreError, open_store

    try:
        store = open_store(args.dir, readonly=True)
        try:
            runs = store.runs()
            study = store.study()
        finally:
            store.close()
    except StoreError as e:
        return _fail(str(e))
    if args.format == "json":
        keys = ("run_id", "status", "variant", "factors", "seed", "config", "metrics", "error",
                "duration_s", "checkpoint_path")
        out = {"study": study.get("name"), "runs": [{k: r[k] for k in keys} for r in runs]}
        print(json.dumps(_json_safe(out), indent=2, allow_nan=False))
        return 0
    counts = {s: sum(r["status"] == s for r in runs) for s in ("done", "failed", "running",
                                                              "pending")}
    print(f"study {study.get('name')!r}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    try:
        from fuselab.report import format_results_table, results_table

        print(format_results_table(results_table(runs)))
    except ImportError:
        for r in runs:
            acc = r["metrics"].get("test_accuracy")
            print(f"{r['run_id']}  {r['status']:<7}  {r['variant']}  seed={r['seed']}  "
                  f"test_accuracy={acc}")
    for r in runs:
        if r["status"] == "failed":
            print(f"failed {r['run_id']} ({r['variant']}, seed {r['seed']}): {r['error']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fuselab", description="Multimodal fusion studies")
    sub = parser.add_subparsers(dest="command", required=True)

    ops = sub.add_parser("ops", help="list fusion operators with parameter counts")
    ops.add_argument(
        "--dims",
        type=_parse_dims,
        default={"image": 64, "audio": 32},
        help="modality widths, e.g. image=64,audio=32",
    )
    ops.add_argument("--out-dim", type=int, default=128)
    ops.set_defaults(func=_cmd_ops)

    st = sub.add_parser("study", help="run (or resume) a fusion study from a TOML/YAML config")
    st.add_argument("config", help="study config (.toml, .yaml)")
    st.add_argument("--resume", action="store_true", help="continue an interrupted study")
    st.add_argument("--force", action="store_true",
                    help="start over in a study dir holding results (of any config)")
    st.add_argument("--retry-failed", action="store_true", help="with --resume: rerun failed runs")
    st.add_argument("--workers", type=int, default=None,
                    help="local worker processes (default: cores / threads per run; 0: inline)")
    st.add_argument("--backend", choices=("local", "ray"), default="local")
    st.add_argument("--address", default=None, help="Ray cluster address (e.g. auto)")
    st.add_argument("--data-dir", default=None, help="dataset root (overrides data.root)")
    st.add_argument("--out", default=None, help="study directory (default runs/<study name>)")
    st.add_argument("--db-url", default=None,
                    help="SQLAlchemy database URL instead of DIR/results.sqlite")
    st.add_argument("--no-report", action="store_true", help="do not build the report")
    st.add_argument("--quiet", action="store_true", help="no progress output")
    st.set_defaults(func=_cmd_study)

    rep = sub.add_parser("report", help="(re)build report.html and report.md of a study")
    rep.add_argument("dir", help="study directory")
    rep.set_defaults(func=_cmd_report)

    show = sub.add_parser("show", help="print a study's results")
    show.add_argument("dir", help="study directory")
    show.add_argument("--format", choices=("table", "json"), default="table")
    show.set_defaults(func=_cmd_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
