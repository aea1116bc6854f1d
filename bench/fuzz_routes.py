"""The suite's route fuzzer, run at ten times its size: prints cases, answers and problems per route.

    .venv/bin/python bench/fuzz_routes.py [--scale 10] [--database-url URL] [--seed N]

The same hostile requests as `tests/bot/test_fuzz_routes.py` (`tests/bot/route_fuzz.py`): every
public route of `oodaloo serve`, signed and unsigned, served by uvicorn over loopback HTTP on the
production request path (`bot.local`). Each route gets `--scale` times the suite's cases, freshly
random unless `--seed` is given. A problem is an HTTP 500, anything logged at ERROR by the request
or the work after it, or anything acted on without a valid signature and an entitled person; the
"acted" column counts requests that did change something, all of them allowed to.

It exits 1 if any case had a problem, and prints the first few.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, unquote_plus

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "bot"))

from route_fuzz import (
    CASES,
    EMAIL_APPROVER,
    INSTALL_ROUTES,
    ROUTES,
    RouteFuzzer,
    SlackInstallFuzzer,
    Tally,
    slack_install_fuzzer,
)

from bot.local import local_stack

T = TypeVar("T")


class Loop:
    """An event loop in a thread of its own: the stack lives there, hypothesis drives it from here."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def fuzz_route(loop: Loop, fuzzer: RouteFuzzer | SlackInstallFuzzer, route: str, cases: int,
               seed: int | None, tally: Tally, examples: dict[str, str]) -> None:
    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        phases=[Phase.generate],  # count every case; a problem is reported, not shrunk
        suppress_health_check=list(HealthCheck),
        derandomize=seed is not None,
    )
    @given(data=st.data())
    def one(data: st.DataObject) -> None:
        verdict = loop.run(fuzzer.send(fuzzer.draw(route, data)))
        tally.add(verdict)
        if verdict.problems() and route not in examples:
            probe = verdict.probe
            assert probe is not None
            examples[route] = (f"{verdict.problems()} <- [{probe.note}] {probe.method} {unquote(probe.path)[:300]} "
                               f"{unquote_plus(probe.body.decode('utf-8', 'replace'))[:300]} -> {verdict.answer[:200]!r}")

    one()


async def _enter(context: Any) -> Any:
    return await context.__aenter__()


async def _exit(context: Any) -> None:
    await context.__aexit__(None, None, None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--scale", type=int, default=10, help="times the suite's cases per route")
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--seed", type=int, help="derandomize (the suite's own cases, scaled)")
    parser.add_argument("--routes", nargs="*", default=[*ROUTES, *INSTALL_ROUTES], choices=[*ROUTES, *INSTALL_ROUTES])
    args = parser.parse_args()
    # Errors reach the fuzzer's handler (a problem each); nothing is printed as it runs.
    logging.basicConfig(level=logging.ERROR, handlers=[logging.NullHandler()])
    with tempfile.TemporaryDirectory() as folder:
        database_url = args.database_url or f"sqlite+aiosqlite:///{Path(folder) / 'fuzz.db'}"
        loop = Loop()
        tally, examples = Tally(), {}
        started = time.perf_counter()
        stack_context = local_stack(
            database_url, migrate=True, email_recipients=[EMAIL_APPROVER],
            settings={"operator_token": secrets.token_urlsafe(24)},
        )  # fmt: skip
        stack = loop.run(_enter(stack_context))
        try:
            fuzzer = loop.run(RouteFuzzer.prepare(stack))
            for route in (r for r in ROUTES if r in args.routes):
                fuzz_route(loop, fuzzer, route, CASES[route] * args.scale, args.seed, tally, examples)
                print(f"  {route}: {tally.cases[route]} cases", file=sys.stderr, flush=True)
            loop.run(fuzzer.aclose())
        finally:
            loop.run(_exit(stack_context))
        if args.database_url is None:  # the install routes need tables of their own: a fresh file
            database_url = f"sqlite+aiosqlite:///{Path(folder) / 'install.db'}"
        install_routes = [r for r in INSTALL_ROUTES if r in args.routes]
        install_context = slack_install_fuzzer(database_url, migrate=True)
        install = loop.run(_enter(install_context))
        try:
            for route in install_routes:
                fuzz_route(loop, install, route, CASES[route] * args.scale, args.seed, tally, examples)
        finally:
            loop.run(_exit(install_context))
        loop.stop()
        elapsed = time.perf_counter() - started
    print(f"route fuzz: {args.scale}x the suite's cases, {'seed ' + str(args.seed) if args.seed is not None else 'random'}, "
          f"{database_url.split(':', 1)[0]}")
    print(tally.table())
    print(f"{sum(tally.cases.values())} requests in {elapsed:.0f} s "
          f"({sum(tally.cases.values()) / elapsed:.0f} per second, each with its work after the answer)")
    for route, example in examples.items():
        print(f"PROBLEM {route}: {example}")
    return 1 if tally.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
