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
    demo.add_argument("--port", type=int, default=8000, help="port of the demo's page and web app (0: any free port)")
    demo.add_argument("--exit-after", type=float, default=None, metavar="SECONDS", help="stop by itself after this long")

    serve = commands.add_parser("serve", help="run the HTTP app: Slack events, QuickBooks connect and webhooks, email links, /healthz")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=3000)
    commands.add_parser("worker", help="run the scheduler and job worker (syncs, weekly digests, reconciliation)")
    migrate = commands.add_parser(
        "migrate",
        help="bring the database's tables up to this version of Oodaloo (once per deploy, before serve and worker)",
    )
    migrate.add_argument(
        "--check", action="store_true",
        help="change nothing; exit 1 if the database needs `oodaloo migrate` (or is newer than this version)",
    )
    commands.add_parser("businesses", help="list businesses, their QuickBooks connection and digest schedule")
    sync = commands.add_parser("sync", help="sync one business's books from QuickBooks now")
    sync.add_argument("business", metavar="BUSINESS", help="business id (see `oodaloo businesses`)")
    sync.add_argument("--full", action="store_true", help="read everything again instead of only changes")
    digest = commands.add_parser("digest", help="build one business's digest now and send it (or print it)")
    digest.add_argument("business", metavar="BUSINESS")
    digest.add_argument("--dry-run", action="store_true", help="print the digest; post and send nothing")
    actions = commands.add_parser("actions", help="list QuickBooks actions in the ledger")
    actions.add_argument("--state", help="only this state: pending, in_flight, unknown, succeeded, failed, needs_human")
    commands.add_parser("reconcile", help="settle actions whose outcome is unknown, once, now")
    commands.add_parser(
        "rotate-keys",
        help="re-encrypt every stored token with the newest TOKEN_ENCRYPTION_KEY (the first of the ring)",
    )

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
        from bot.settings import missing_extra

        missing = missing_extra("sandbox", "`oodaloo demo`")  # its local mail server and Slack
        if missing:
            print(missing, file=sys.stderr)
            return 2
        from bot.demo import run_demo

        return run_demo(seed=args.seed, port=args.port, exit_after=args.exit_after)
    if args.command is None:
        parser.print_help()
        return 2
    return _run_operation(args)


def _run_operation(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from bot.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    missing = settings.missing_extra(redis=args.command != "migrate")
    if missing:
        print(missing, file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "migrate":
        return asyncio.run(_migrate(settings.database_url, check=args.check))
    if args.command == "serve":
        from bot.serve import serve

        try:
            asyncio.run(serve(settings, host=args.host, port=args.port))
        except SettingsError as error:
            print(error, file=sys.stderr)
            return 2
        return 0
    try:
        if args.command == "worker":
            from bot.wiring import run_worker_process

            asyncio.run(run_worker_process(settings))
            return 0
        return asyncio.run(_operation(args, settings))
    except SettingsError as error:  # e.g. a TOKEN_ENCRYPTION_KEY that opens nothing stored
        print(error, file=sys.stderr)
        return 2


async def _migrate(database_url: str, *, check: bool) -> int:
    from sqlalchemy import make_url

    from bot.bootstrap import database_schema, migrate_database, schema_problem

    shown = make_url(database_url).render_as_string(hide_password=True)
    if check:
        state = await database_schema(database_url)
        problem = schema_problem(state)
        print(problem or f"The database ({shown}) is up to date: revision {', '.join(state.head)}.",
              file=sys.stderr if problem else sys.stdout)
        return 1 if problem else 0
    before, after = await migrate_database(database_url)
    problem = schema_problem(after)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 1
    now = ", ".join(after.current)
    if before.current == after.current:
        print(f"The database ({shown}) was already at revision {now}: nothing to do.")
    else:
        was = ", ".join(before.current) or "empty"
        print(f"Migrated the database ({shown}) from {was} to revision {now}.")
    return 0


async def _operation(args: argparse.Namespace, settings: object) -> int:
    from bot import ops
    from bot.bootstrap import Oodaloo
    from bot.settings import Settings
    from bot.wiring import ritual_for
    from runway.businesses import BusinessNotFound
    from runway.errors import RunwayError
    from sync import QBOError, QuickBooksUnavailable

    assert isinstance(settings, Settings)
    oodaloo = await Oodaloo.start(settings, migrate=settings.migrates_on_start())
    try:
        if args.command == "businesses":
            return await ops.businesses(oodaloo)
        if args.command == "actions":
            return await ops.actions(oodaloo, args.state)
        if args.command == "reconcile":
            await ritual_for(oodaloo)  # with Slack configured, its bot redraws what settles
            return await ops.reconcile(oodaloo)
        if args.command == "rotate-keys":
            return await ops.rotate_keys(oodaloo)
        try:
            if args.command == "sync":
                return await ops.sync(oodaloo, args.business, full=args.full)
            if args.command == "digest":
                ritual = None if args.dry_run else await ritual_for(oodaloo)
                return await ops.digest(oodaloo, args.business, dry_run=args.dry_run, ritual=ritual)
        except BusinessNotFound as error:
            return ops.missing_business(args.business, error)
        return 2
    except (RunwayError, QuickBooksUnavailable, QBOError) as error:
        # Not connected yet, QuickBooks unavailable now or refusing: the message says what to do.
        return ops.failed(error)
    finally:
        await oodaloo.aclose()


if __name__ == "__main__":
    raise SystemExit(main())
