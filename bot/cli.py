"""The `oodaloo` command: one console script for every Oodaloo process and operation."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oodaloo",
        description="Oodaloo: the weekly cash-runway ritual for QuickBooks Online, in Slack.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="run Oodaloo on embedded defaults against a local QuickBooks sandbox (no accounts, no network)",
    )
    demo.add_argument("--seed", type=int, default=None, help="sandbox company seed (default: the standard demo company)")
    demo.add_argument("--keep-running", action="store_true", help="keep the sandbox up after the read")

    # The sandbox parses its own flags; see `oodaloo sandbox --help`.
    commands.add_parser("sandbox", help="run the local QuickBooks Online sandbox as an HTTP server", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["sandbox"]:
        # The sandbox is a development tool: imported only when asked for, never by production paths.
        from qbo_sandbox.cli import main as sandbox_main

        return sandbox_main(args_list[1:])

    parser = _build_parser()
    args = parser.parse_args(args_list)
    if args.command == "demo":
        from bot.demo import run_demo

        return run_demo(seed=args.seed, keep_running=args.keep_running)
    parser.print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
