"""The ``fuselab`` command: argument parsing and printing only; the work lives in the library."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from fuselab._process import own_process

#: Exit statuses (docs/study.md): every run finished; some run failed; bad input or an error
#: met before or while running (message on stderr); an unexpected error (a bug: --debug shows
#: its traceback); stopped by Ctrl-C.
OK, RUN_FAILED, ERROR, INTERNAL, INTERRUPTED = 0, 1, 2, 3, 130
#: Largest width `fuselab operators` accepts (parameter counts of wider operators overflow int64).
MAX_WIDTH = 65536
#: Deprecated command names (one release): old -> current. They still run, print a warning, and
#: are left out of the help (``fuselab ops`` read as the native kernels of ``fuselab.ops``).
DEPRECATED_COMMANDS = {"ops": "operators"}


def _nonnegative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _positive(text: str) -> int:
    value = _nonnegative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected an integer >= 1, got 0")
    return value


def _width(text: str) -> int:
    value = _positive(text)
    if value > MAX_WIDTH:
        raise argparse.ArgumentTypeError(f"expected a width <= {MAX_WIDTH}, got {value}")
    return value


def _parse_dims(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in text.split(","):
        name, _, width = part.partition("=")
        if not name.strip() or not width.strip().isdigit():
            raise argparse.ArgumentTypeError(f"expected NAME=WIDTH[,NAME=WIDTH...], got {text!r}")
        out[name.strip()] = _width(width)
    return out


def _cmd_operators(args: argparse.Namespace) -> int:
    import torch

    from fuselab import fusion

    with torch.device("meta"):  # parameter counts need shapes only, not memory
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
    return ERROR


def _report_paths(study_dir: str) -> dict[str, Any]:
    from fuselab.report import build_report  # lazily: the report package may be absent

    return dict(build_report(study_dir))


def _load_study_config(args: argparse.Namespace, loader: Any = None,
                       kind: str = "study") -> Any:
    from fuselab.study import load_config
    from fuselab.study.examples import resolve
    from fuselab.study.overrides import load_overrides, parse_assignment

    overrides: dict[str, Any] = {}
    for path in args.overrides or []:
        overrides.update(load_overrides(resolve(path, "overrides")))
    overrides.update(parse_assignment(text) for text in args.set or [])
    origin = ", ".join([*(args.overrides or []), *(["--set"] if args.set else [])])
    config = resolve(args.config, kind)
    return (loader or load_config)(config, overrides, origin=origin or "override")


def _cmd_examples(args: argparse.Namespace) -> int:
    from fuselab.study.examples import FOLDER, bundled

    rows = bundled()
    if args.format == "json":
        print(json.dumps([{"name": e.name, "kind": e.kind, "description": e.description,
                           "command": e.command, "path": str(e.path)} for e in rows], indent=2))
        return OK
    width = max((len(e.name) for e in rows), default=0)
    for e in rows:
        print(f"{e.name:<{width}}  {e.kind:<9}  {e.description}")
    print(f"\nrun one with `fuselab study NAME` (`fuselab search NAME` for a search, "
          f"`--overrides NAME` for overrides); the files, to copy and edit: {FOLDER}")
    return OK


def _cmd_study(args: argparse.Namespace) -> int:
    import shlex

    from fuselab.study import run_study
    from fuselab.study.interrupt import Cancelled

    if args.data_dir is not None and os.path.exists(args.data_dir) \
            and not os.path.isdir(args.data_dir):
        return _fail(f"--data-dir {args.data_dir}: is a file, not a folder")
    if args.backend != "ray" and args.address is not None:
        return _fail("--address is the Ray cluster address: it needs --backend ray")
    if args.shared and args.force:
        return _fail("--force with --shared would discard the runs other processes work on; "
                     "start over with --force alone first")
    if args.backend == "ray" and importlib.util.find_spec("ray") is None:
        return _fail("--backend ray needs Ray: pip install 'fuselab[ray]'")
    try:
        summary = run_study(
            _load_study_config(args), args.out, resume=args.resume, force=args.force,
            retry_failed=args.retry_failed, workers=args.workers, backend=args.backend,
            address=args.address, data_dir=args.data_dir, db_url=args.db_url,
            progress=not args.quiet, command=shlex.join(["fuselab", *args.argv]),
            shared=args.shared,
        )
    except Cancelled:
        print("\ncancelled: the runs in flight were stopped; finished runs are saved; "
              "continue with --resume", file=sys.stderr)
        return INTERRUPTED
    print(f"study {summary.study_dir}: {summary.done} done, {summary.failed} failed of "
          f"{summary.total} runs ({summary.skipped} already finished) in {summary.wall_s:.1f}s")
    for w in summary.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if summary.claims:
        from fuselab.study.claims import count_verdicts

        print(f"claims: {count_verdicts(summary.claims)} (fuselab show {summary.study_dir} "
              "--claims)")
    if summary.interrupted:
        left = summary.total - summary.done - summary.failed
        print(f"stopped by Ctrl-C: the runs in flight were recorded, {left} runs not run; "
              "continue with --resume", file=sys.stderr)
        return INTERRUPTED
    status = OK if summary.failed == 0 else RUN_FAILED
    if args.no_report:
        return status
    try:
        paths = _report_paths(str(summary.study_dir))
    except ImportError as e:
        print(f"report skipped (fuselab.report unavailable: {e})", file=sys.stderr)
        return status
    except OSError as e:
        return _fail(f"the results are saved, but the report could not be written: {e}")
    print(f"report: {paths.get('html', paths)}")
    return status


def _cmd_search(args: argparse.Namespace) -> int:
    import shlex

    from fuselab.study import ConfigError, StoreError, StudyDirError

    try:
        from fuselab.search import load_search_config, run_search
        from fuselab.search.optuna_setup import optuna

        optuna()  # a missing extra is named before the config is read
        summary = run_search(
            _load_study_config(args, load_search_config, "search"), args.out, resume=args.resume,
            force=args.force, workers=args.workers, backend=args.backend, address=args.address,
            data_dir=args.data_dir, db_url=args.db_url, progress=not args.quiet,
            command=shlex.join(["fuselab", *args.argv]),
        )
    except (ConfigError, StudyDirError, StoreError, FileNotFoundError, ImportError) as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        print("\ninterrupted: finished trials are saved, the running ones queued again; "
              "continue with --resume", file=sys.stderr)
        return 130
    states = ", ".join(f"{n} {s}" for s, n in sorted(summary.states.items()))
    print(f"search {summary.study_dir}: {sum(summary.states.values())} trials ({states}); "
          f"{summary.executed} run now in {summary.wall_s:.1f}s")
    for ch in summary.chosen:
        values = ", ".join(f"{v:.4g}" for v in ch["values"])
        print(f"  {ch['label']}: {values}  {ch['params']}  ({'; '.join(ch['reasons'])})")
    if summary.best_config is not None:
        print(f"best designs: {summary.best_config} (test split: fuselab study "
              f"{summary.best_config})")
    if not args.no_report:
        paths = _report_paths(str(summary.study_dir))
        print(f"report: {paths.get('html', paths)}")
    return 0 if summary.states.get("complete") else 1


def _cmd_report(args: argparse.Namespace) -> int:
    if (args.figures_dir or args.claim_figures) and not args.results_md:
        return _fail("--figures-dir and --claim-figures need --results-md")
    try:
        claims = (None if args.claim_figures is None else
                  [int(c) for c in args.claim_figures.split(",")])
    except ValueError:
        return _fail(f"--claim-figures: expected claim numbers such as 2,5,7, got "
                     f"{args.claim_figures!r}")
    if "://" not in args.dir and not os.path.isdir(args.dir):
        what = "is not a folder" if os.path.exists(args.dir) else "does not exist"
        return _fail(f"study folder {args.dir!r} {what}")
    try:
        paths = _report_paths(args.dir)
        if args.results_md:
            from fuselab.report.results_md import write_results_md

            res = write_results_md(args.dir, args.results_md, figures_dir=args.figures_dir,
                                   claims=claims, force=args.force)
    except (FileExistsError, FileNotFoundError, ValueError) as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"cannot write the report into {args.dir}: {e}")
    for kind in ("html", "md"):
        if kind in paths:
            print(f"{kind}: {paths[kind]}")
    if args.results_md:
        print(f"results: {res['md']} ({len(res['figures'])} figures)")
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


def _show_claims(args: argparse.Namespace, study: dict[str, Any], runs: list[Any],
                 records: list[Any]) -> int:
    from fuselab.study import ConfigError
    from fuselab.study.claims import claims_of, count_verdicts, evaluate_claims

    try:
        verdicts = evaluate_claims(claims_of(study), runs, records)
    except ConfigError as e:
        return _fail(f"the stored study config: {e}")
    if args.format == "json":
        out = {"study": study.get("name"), "claims": [v.to_dict() for v in verdicts]}
        print(json.dumps(_json_safe(out), indent=2, allow_nan=False))
    elif args.format == "markdown":
        from fuselab.report.claims import claims_markdown

        print(claims_markdown(verdicts), end="")
    else:
        print(f"study {study.get('name')!r}: claims: {count_verdicts(verdicts)}")
        for i, v in enumerate(verdicts, start=1):
            print(f"{i}. [{v.verdict}] {v.claim.name} ({v.claim.source})\n"
                  f"   fuselab: {v.value}\n   {v.reason}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from fuselab.study import open_store
    from fuselab.study.environment import describe_environment

    if args.format == "markdown" and not args.claims:
        return _fail("--format markdown prints the claims table: add --claims")
    store = open_store(args.dir, readonly=True)
    try:
        runs = store.runs()
        study = store.study()
        declares = bool((study.get("config") or {}).get("claims"))
        records = store.records() if args.claims or declares else []
    finally:
        store.close()
    if not study:
        return _fail(f"{args.dir} holds no study yet (it was stopped before its runs started)")
    if args.claims:
        return _show_claims(args, study, runs, records)
    if args.format == "json":
        keys = ("run_id", "status", "variant", "factors", "seed", "config", "metrics", "error",
                "duration_s", "checkpoint_path", "attempts", "host", "node")
        out = {"study": study.get("name"), "environment": study.get("environment") or {},
               "runs": [{k: r[k] for k in keys} for r in runs]}
        print(json.dumps(_json_safe(out), indent=2, allow_nan=False))
        return 0
    counts = {s: sum(r["status"] == s for r in runs) for s in ("done", "failed", "running",
                                                              "pending")}
    print(f"study {study.get('name')!r}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    for label, text in describe_environment(study.get("environment") or {}):
        print(f"  {label}: {text}")
    if declares:
        from fuselab.study import ConfigError
        from fuselab.study.claims import claims_of, count_verdicts, evaluate_claims

        try:
            counted = count_verdicts(evaluate_claims(claims_of(study), runs, records))
        except ConfigError as e:  # a claim the current schema rejects; the results still print
            counted = f"cannot be judged ({e})"
        print(f"  claims: {counted} (details: --claims)")
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


def _add_run_args(p: argparse.ArgumentParser, what: str) -> None:
    """The arguments ``fuselab study`` and ``fuselab search`` share (``what`` names the kind)."""
    p.add_argument("config", help=f"{what} config (.toml, .yaml), or the name of a bundled "
                                  "example (fuselab examples)")
    p.add_argument("--resume", action="store_true", help=f"continue an interrupted {what}")
    p.add_argument("--force", action="store_true",
                   help=f"start over in a {what} dir holding results (of any config)")
    p.add_argument("--workers", type=_nonnegative, default=None,
                   help="local worker processes (default: cores / threads per run; 0: inline)")
    p.add_argument("--backend", choices=("local", "ray"), default="local")
    p.add_argument("--address", default=None, help="Ray cluster address (e.g. auto)")
    p.add_argument("--data-dir", default=None, help="dataset root (overrides data.root)")
    p.add_argument("--out", default=None, help=f"{what} directory (default runs/<study name>)")
    p.add_argument("--db-url", default=None,
                   help="SQLAlchemy database URL instead of DIR/results.sqlite")
    p.add_argument("--no-report", action="store_true", help="do not build the report")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--set", action="append", metavar="PATH=VALUE",
                   help="override a config value, e.g. train.epochs=1 (a TOML value; repeatable)")
    p.add_argument("--overrides", action="append", metavar="FILE",
                   help="a flat TOML table of PATH = value overrides, e.g. a reproduction's "
                        "smoke.toml, or a bundled one's name (applied before --set; "
                        "repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fuselab", description="Multimodal fusion studies")
    parser.add_argument("--debug", action="store_true", default=False,
                        help="show the traceback of an unexpected error (or FUSELAB_DEBUG=1)")
    # --debug is also accepted after the command; SUPPRESS keeps it from resetting the above
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)

    for name in ("operators", *(old for old, new in DEPRECATED_COMMANDS.items() if new == "operators")):
        kwargs = {"help": "list fusion operators with parameter counts"} if name == "operators" else {}
        ops = sub.add_parser(name, parents=[common], **kwargs)  # type: ignore[arg-type]
        ops.add_argument(
            "--dims",
            type=_parse_dims,
            default={"image": 64, "audio": 32},
            help="modality widths, e.g. image=64,audio=32",
        )
        ops.add_argument("--out-dim", type=_width, default=128)
        ops.set_defaults(func=_cmd_operators)

    ex = sub.add_parser("examples", parents=[common],
                        help="list the example configs that ship with fuselab")
    ex.add_argument("--format", choices=("table", "json"), default="table")
    ex.set_defaults(func=_cmd_examples)

    st = sub.add_parser("study", parents=[common], help="run (or resume) a fusion study from a TOML/YAML config")
    _add_run_args(st, "study")
    st.add_argument("--retry-failed", action="store_true", help="with --resume: rerun failed runs")
    st.add_argument("--shared", action="store_true",
                    help="work this study together with other `fuselab study --shared` processes "
                         "(any machine) through one --db-url: each takes pending runs under a "
                         "lease (docs/cluster.md)")
    st.set_defaults(func=_cmd_study)

    se = sub.add_parser("search", parents=[common], help="search the design space of a config with Optuna and "
                                                          "write the best designs as a study config")
    _add_run_args(se, "search")
    se.set_defaults(func=_cmd_search)

    rep = sub.add_parser("report", parents=[common], help="(re)build report.html and report.md of a study")
    rep.add_argument("dir", help="study directory")
    rep.add_argument("--results-md", metavar="PATH", default=None,
                     help="also write a RESULTS.md skeleton (command, machine, claims, figures)")
    rep.add_argument("--figures-dir", metavar="DIR", default=None,
                     help="where --results-md copies its claim figures (default: beside it)")
    rep.add_argument("--claim-figures", metavar="N,N,...", default=None,
                     help="the claims whose figures --results-md copies (numbers as in the "
                          "claims table; default: the first 3 that have one)")
    rep.add_argument("--force", action="store_true", help="overwrite an existing --results-md")
    rep.set_defaults(func=_cmd_report)

    show = sub.add_parser("show", parents=[common], help="print a study's results")
    show.add_argument("dir", help="study directory")
    show.add_argument("--claims", action="store_true",
                      help="print the verdicts of the study's [[claims]]")
    show.add_argument("--format", choices=("table", "json", "markdown"), default="table",
                      help="markdown: the claims table (with --claims)")
    show.set_defaults(func=_cmd_show)
    sub.metavar = "{" + ",".join(c for c in sub.choices if c not in DEPRECATED_COMMANDS) + "}"
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fuselab`` command on ``argv`` (default ``sys.argv[1:]``); the exit status.

    Called without ``argv`` (the installed program) it owns its process, so process-wide speed
    settings (``TrainConfig.retain_memory="auto"``) apply."""
    if argv is None:
        own_process()
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.command in DEPRECATED_COMMANDS:
        print(f"fuselab: warning: 'fuselab {args.command}' is deprecated, use 'fuselab "
              f"{DEPRECATED_COMMANDS[args.command]}' (the old name will be removed)", file=sys.stderr)
    debug = args.debug or os.environ.get("FUSELAB_DEBUG", "") not in ("", "0")
    ctrl_c: list[bool] = []
    old = None
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler and \
            threading.current_thread() is threading.main_thread():
        def on_sigint(signum: int, frame: Any) -> None:
            ctrl_c.append(True)
            signal.default_int_handler(signum, frame)

        old = signal.signal(signal.SIGINT, on_sigint)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("\nfuselab: interrupted; finished runs are saved (continue a study with --resume)",
              file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:  # `fuselab show ... | head`: the reader left; nothing to report
        sys.stderr.close()
        return OK
    except Exception as e:
        if ctrl_c:  # e.g. an import cut short by Ctrl-C fails again later with an ImportError
            print("\nfuselab: interrupted", file=sys.stderr)
            return INTERRUPTED
        if debug:
            raise
        return _error(e)
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)


def _error(e: Exception) -> int:
    """One line for an error that reached the top: expected kinds as they are, others as a bug."""
    from fuselab.study import ConfigError, StoreError, StudyDirError

    if isinstance(e, (ConfigError, StudyDirError, StoreError, OSError)):
        return _fail(str(e))
    if isinstance(e, MemoryError):
        return _fail("out of memory")
    print(f"fuselab: unexpected error: {type(e).__name__}: {e}\n"
          "(run again with --debug or FUSELAB_DEBUG=1 for the traceback, and please report it)",
          file=sys.stderr)
    return INTERNAL


if __name__ == "__main__":
    sys.exit(main())
