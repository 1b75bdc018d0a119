"""The ``fuselab`` command: argument parsing and printing only; the work lives in the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
