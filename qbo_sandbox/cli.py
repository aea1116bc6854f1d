"""`oodaloo sandbox`: the QBO sandbox as a local HTTP server, with its credentials printed on start.

    oodaloo sandbox [--host 127.0.0.1] [--port 8765] [--seed N] [--scale N] [--full-books] [--euro-supplier] [--country CC] [--json]
                    [--fault-5xx R] [--fault-429 R] [--latency-ms N] [--fault-lost R] [--fault-hang R]

With `--json` the first line of stdout is one JSON object (base_url, realm_id, client_id,
client_secret, access_token, refresh_token, ...) for scripts to read; then it serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import simplejson

from qbo_sandbox.app import Sandbox
from qbo_sandbox.chaos import FaultPlan, FaultRule, Latency
from qbo_sandbox.config import SandboxConfig
from qbo_sandbox.oauth import DISCOVERY_PATH, TOKEN_PATH
from qbo_sandbox.seed import DEFAULT_SEED
from qbo_sandbox.server import serve


def _rate(text: str) -> float:
    try:
        value = float(text)  # a probability, not an amount
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number between 0 and 1") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oodaloo sandbox",
        description="Run a local stand-in for QuickBooks Online (v3 API, OAuth, webhooks) seeded with a company.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on; 0 picks a free one (default 8765)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"company and fault seed (default {DEFAULT_SEED})")
    parser.add_argument("--scale", type=int, default=None, help="seed N bills and N invoices instead of the realistic company")
    parser.add_argument(
        "--full-books",
        action="store_true",
        help="the realistic company also with sales receipts, owner money, a loan, transfers, journal entries and card payments",
    )
    parser.add_argument(
        "--euro-supplier",
        action="store_true",
        help="the realistic company with multicurrency on and a supplier billing in euros",
    )
    parser.add_argument(
        "--country",
        default="US",
        help="the company's country (ISO 3166, default US): GB keeps its books in pounds, DE in euros",
    )
    parser.add_argument("--json", action="store_true", help="print the connection details as one JSON line")
    parser.add_argument("--fault-5xx", type=_rate, default=0.0, metavar="R", help="share of requests answered 503/500")
    parser.add_argument("--fault-429", type=_rate, default=0.0, metavar="R", help="share of requests throttled (429)")
    parser.add_argument("--latency-ms", type=float, default=None, metavar="N", help="added latency per request")
    parser.add_argument("--fault-lost", type=_rate, default=0.0, metavar="R",
                        help="share of requests applied whose response is lost (dropped, 502 or 504)")
    parser.add_argument("--fault-hang", type=_rate, default=0.0, metavar="R",
                        help="share of requests that never answer until the client gives up")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    return parser


def _details(base_url: str, sandbox: Sandbox) -> dict[str, Any]:
    return {
        "base_url": base_url,
        "realm_id": sandbox.realm_id,
        "client_id": sandbox.client_id,
        "client_secret": sandbox.client_secret,
        "access_token": sandbox.access_token,
        "refresh_token": sandbox.refresh_token,
        "verifier_token": sandbox.verifier_token,
        "api_base": f"{base_url}/v3/company/{sandbox.realm_id}",
        "discovery_url": f"{base_url}{DISCOVERY_PATH}",
        "token_url": f"{base_url}{TOKEN_PATH}",
        "admin_url": f"{base_url}/_sandbox",
    }


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.scale is not None and args.scale < 1:
        parser.error("--scale must be at least 1")
    try:
        rule = FaultRule(
            rate_429=args.fault_429,
            rate_5xx=args.fault_5xx,
            rate_hang=args.fault_hang,
            rate_lost=args.fault_lost,
            latency=Latency(fixed_ms=args.latency_ms) if args.latency_ms else None,
        )
    except ValueError as exc:
        parser.error(str(exc))
    config = SandboxConfig(
        seed=args.seed,
        scale=args.scale,
        full_books=args.full_books,
        euro_supplier=args.euro_supplier,
        country=args.country.upper(),
        host=args.host,
        port=args.port,
        faults=FaultPlan(default=rule),
    )

    def announce(base_url: str, sandbox: Sandbox) -> None:
        details = _details(base_url, sandbox)
        if args.json:
            print(simplejson.dumps(details), flush=True)
            return
        width = max(len(key) for key in details)
        print("QuickBooks Online sandbox is running (Ctrl-C to stop)")
        for key, value in details.items():
            print(f"  {key.replace('_', ' '):<{width}}  {value}")
        sys.stdout.flush()

    try:
        serve(config, on_ready=announce, log_level=args.log_level)
    except OSError as exc:
        print(
            f"oodaloo sandbox: cannot listen on {args.host}:{args.port} ({exc.strerror or exc}). "
            "Pick another --port (0 picks a free one).",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
