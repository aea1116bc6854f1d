"""Hostile requests to every public route of `oodaloo serve`, and what must hold for each.

A `RouteFuzzer` takes real requests of each kind (a digest's button click, a `/runway` command, a
settings-modal submission and an event from the local Slack; both QuickBooks webhook formats; the
email digest's links; the digest's signed chart URL; the QuickBooks and Slack OAuth round trips),
draws hostile variants of them with hypothesis (one field replaced by the wrong type, NaN, 1e30, NUL
bytes, ids out of range, deep nesting, markup; a forged, stale or missing signature; a mangled,
huge or path-traversing link or state; another method; a query string) and sends each over HTTP to
the app served by uvicorn. Each answer is judged by `Verdict.problems`:

- never an HTTP 500, and nothing logged at ERROR (the request or the work after it failed);
- a chart only for a chart URL Oodaloo signed, asked for with GET or HEAD; anything else a 4xx;
- nothing acted on (approvals, payments, reminders, snoozes, settings, approvers, channel, the
  QuickBooks connection, Slack installations) unless the request carried a valid signature and
  named a person entitled to act: an approver of the business, or for an OAuth round trip the
  approver who started it, with every part of QuickBooks' or Slack's answer genuine.

The suite (`tests/bot/test_fuzz_routes.py`) runs a few thousand cases; `bench/fuzz_routes.py` runs
the same fuzzer with many more and prints the counts.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import httpx
from hypothesis import strategies as st
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import text, update

from bot.bootstrap import Oodaloo
from bot.email.links import ActionKind, LinkSigner
from bot.local import BUSINESS_ID, CHANNEL, OWNER, STAFF, LocalStack, free_socket, serve_in_loop
from bot.models import SLACK_INSTALLATIONS_TABLE
from bot.settings import load_settings
from bot.slack import blocks as kit
from bot.slack.app import SlackBot
from bot.web import SLACK_INSTALL_PATH, SLACK_OAUTH_REDIRECT_PATH, create_web_app
from runway.crypto import generate_key
from runway.models import Business
from slack_sandbox.config import SlackSandboxConfig
from slack_sandbox.server import start_in_thread
from sync import MemoryBackend

#: The approver the email digest goes to in the fuzzer's stack (`local_stack(email_recipients=...)`).
EMAIL_APPROVER = "owner@larkspur.example"

#: Values a field is replaced with: wrong types, numbers Decimal and the database refuse, NUL bytes,
#: ids out of range, Slack markup, deep nesting.
HOSTILE: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([
        "NaN", "1e30", "-1", "", "\x00", "9" * 40, "2109|NaN", "2109|1e30", "2109|-5", "1|0.001",
        "<!channel>", "<@U0OWNER01>", "U\x00", "C" * 300, "{}", "[]", "'; DROP TABLE bills;--",
        "\ud800", "é" * 50, "../../etc/passwd", "%00", "T0OTHER01", "C0GENERAL", STAFF, OWNER,
    ]),
    st.text(max_size=40),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.just(json.loads("[" * 300 + "]" * 300)),
)  # fmt: skip

#: Text for query strings, headers and tokens.
HOSTILE_TEXT: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(["", " ", "\x00", "é", "%", "%zz", "a" * 5000, "1.5", "abc", "-1", "v0=", "v0=" + "0" * 64,
                     "Bearer", "Bearer ", "Basic Zm9vOmJhcg==", "<script>", "../", "\ud800"]),
    st.text(max_size=60),
)  # fmt: skip

#: Text a signed link's field may hold that no table can: NUL bytes, a lone surrogate, and others
#: that are only odd.
_ODD_TEXT = ("\x00", "biz\x00larkspur", "\ud800", "a\udfff", "", " ", "é" * 40, "0" * 300, "../x")

#: Every route and kind of request the fuzzer sends, in the order the suite states them.
ROUTES = (
    "slack_click",
    "slack_command",
    "slack_view_submission",
    "slack_event",
    "slack_not_entitled",
    "slack_unsigned",
    "qbo_webhook_legacy",
    "qbo_webhook_cloudevents",
    "qbo_webhook_unsigned",
    "email_link_signed",
    "email_link_forged",
    "chart_link_signed",
    "chart_link_forged",
    "qbo_connect",
    "qbo_callback",
    "healthz",
)

#: Routes of the multi-workspace install (a stack of its own: `SlackInstallFuzzer`).
INSTALL_ROUTES = ("slack_install", "slack_oauth_redirect")

#: Cases per route in the suite, on each database (the bench runs a multiple).
CASES = {
    "slack_click": 100,
    "slack_command": 100,
    "slack_view_submission": 100,
    "slack_event": 100,
    "slack_not_entitled": 100,
    "slack_unsigned": 250,
    "qbo_webhook_legacy": 100,
    "qbo_webhook_cloudevents": 100,
    "qbo_webhook_unsigned": 100,
    "email_link_signed": 150,
    "email_link_forged": 150,
    "chart_link_signed": 100,
    "chart_link_forged": 100,
    "qbo_connect": 100,
    "qbo_callback": 100,
    "healthz": 100,
    "slack_install": 50,
    "slack_oauth_redirect": 100,
}
assert set(CASES) == set(ROUTES + INSTALL_ROUTES)

#: The business's settings an approver may change (and the fuzzer puts back after each case that did).
_SETTINGS = (
    "approvers", "approval_threshold", "min_cash_buffer", "slack_channel_id", "email_recipients",
    "payment_bank_account_id", "digest_weekday", "digest_local_time", "timezone", "reminder_interval_days",
)  # fmt: skip

_DONE_IN_BACKGROUND = ("handling QuickBooks changes", "qbo-connected-")


@dataclass
class Probe:
    """One request, and whether it may change anything."""

    route: str
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    may_act: bool = False
    note: str = ""
    #: May be answered with what it asks for (a chart): only a URL Oodaloo signed, with GET or HEAD.
    may_see: bool = False


@dataclass
class Verdict:
    route: str
    status: int
    errors: list[str]
    acted: bool
    may_act: bool
    leaked: str | None = None
    probe: Probe | None = None
    answer: str = ""

    def problems(self) -> list[str]:
        found = []
        if self.status >= 500:
            found.append(f"HTTP {self.status}")
        if self.errors:
            found.append("logged at ERROR: " + " | ".join(self.errors[:3]))
        if self.acted and not self.may_act:
            found.append("acted on a request that was not signed by an entitled person")
        if self.leaked:
            found.append(f"showed {self.leaked} to someone who is not the operator")
        if self.route.startswith("chart_link"):
            if self.status == 200 and not (self.probe is not None and self.probe.may_see):
                found.append("served a chart for a URL Oodaloo did not sign, or to a method but GET and HEAD")
            elif self.status != 200 and not 400 <= self.status < 500:
                found.append(f"HTTP {self.status} for a chart: the chart or a clear 4xx, nothing else")
        return found


class ErrorLog(logging.Handler):
    """Everything logged at ERROR while it is attached (the request and the work after it)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        return [
            f"{r.getMessage()}: {r.exc_info[1]!r}" if r.exc_info else r.getMessage()
            for r in self.records
        ]


#: Where an error can be logged: the root, and uvicorn's loggers ("Exception in ASGI application").
_ERROR_LOGGERS = ("", "uvicorn", "uvicorn.error")


@contextmanager
def errors_logged() -> Iterator[ErrorLog]:
    """Collects everything logged at ERROR while the block runs (the request and its work after)."""
    errors = ErrorLog()
    loggers = [logging.getLogger(name) for name in _ERROR_LOGGERS]
    for logger in loggers:
        logger.addHandler(errors)
    try:
        yield errors
    finally:
        for logger in loggers:
            logger.removeHandler(errors)


class Tally:
    """Counts per route: cases, answers by status class, problems."""

    def __init__(self) -> None:
        self.cases: Counter[str] = Counter()
        self.statuses: dict[str, Counter[str]] = {}
        self.acted: Counter[str] = Counter()
        self.failures: dict[str, list[str]] = {}

    def add(self, verdict: Verdict) -> None:
        self.cases[verdict.route] += 1
        self.statuses.setdefault(verdict.route, Counter())[f"{verdict.status // 100}xx"] += 1
        self.acted[verdict.route] += verdict.acted
        for problem in verdict.problems():
            self.failures.setdefault(verdict.route, []).append(problem)

    def table(self) -> str:
        lines = [f"{'route':26} {'cases':>7} {'2xx':>6} {'3xx':>6} {'4xx':>6} {'5xx':>5} {'acted':>6} {'problems':>8}"]
        for route in sorted(self.cases, key=lambda r: (ROUTES + INSTALL_ROUTES).index(r)):
            s = self.statuses[route]
            lines.append(
                f"{route:26} {self.cases[route]:7d} {s['2xx']:6d} {s['3xx']:6d} {s['4xx']:6d} "
                f"{s['5xx']:5d} {self.acted[route]:6d} {len(self.failures.get(route, [])):8d}"
            )
        lines.append(f"{'all':26} {sum(self.cases.values()):7d}")
        return "\n".join(lines)


# -- pieces of JSON ---------------------------------------------------------------------------


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document a value could be replaced (the first three of each list)."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node[:3]):
            found += paths(value, (*prefix, index))
    return found


def replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(document))
    if not path:
        return value
    node = copy
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return copy


def mutated(data: st.DataObject, document: Any) -> tuple[Any, str]:
    """`document` with one field (or the whole of it, now and then) replaced by a hostile value,
    and which field became what."""
    where = data.draw(st.sampled_from([(), *paths(document)]), label="field")
    value = data.draw(HOSTILE, label="value")
    return replaced(document, where, value), f"{'.'.join(map(str, where)) or 'the whole'} = {value!r}"[:300]


def sendable(headers: dict[str, str]) -> dict[str, bytes]:
    """Header values as bytes an HTTP client can put on the wire: any byte but controls, no
    surrounding blanks (what a hostile client can send; the rest would never reach the server)."""
    return {
        name: bytes(b for b in value.encode("utf-8", "replace") if b >= 0x20 and b != 0x7F).strip(b" \t")
        for name, value in headers.items()
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


def _utf8(body: str) -> bytes:
    return body.encode("utf-8", "surrogatepass")


def _json_ish(value: Any) -> str:
    return value if isinstance(value, str) else _dumps(value)


# -- the fuzzer -------------------------------------------------------------------------------


@dataclass
class Plan:
    """What was drawn for one case; `RouteFuzzer.send` turns it into a request (some routes need a
    fresh single-use state first, which only the running server can give)."""

    route: str
    build: Callable[[dict[str, str]], Probe]
    fresh: str | None = None
    #: Which field of the real request became what (for the report of a failing case).
    note: str = ""


class RouteFuzzer:
    """Draws and sends hostile requests to the stack's web app (see the module's docstring)."""

    def __init__(self, stack: LocalStack, bases: dict[str, Any]) -> None:
        self.stack = stack
        self.bases = bases
        oodaloo = stack.oodaloo
        self.signing_secret = oodaloo.settings.slack_signing_secret or ""
        self.verifier = oodaloo.settings.qbo_webhook_verifier_token or ""
        self.links = LinkSigner(oodaloo.link_secret, oodaloo.clock, public_url=stack.url)
        self.approvers: frozenset[str] = frozenset()
        self.settings: dict[str, Any] = {}
        self.http = httpx.AsyncClient(base_url=stack.url, timeout=30)
        #: `fingerprint()` after the last case, while it still holds (see `send`).
        self._state_after_last: tuple[Any, ...] | None = None

    @classmethod
    async def prepare(cls, stack: LocalStack) -> RouteFuzzer:
        """Takes one real request of each kind from the local Slack and the stack's business."""
        agent, ws = stack.agent, stack.workspace
        digest = await stack.post_digest()
        block = next(b["block_id"] for b in digest.blocks if str(b.get("block_id", "")).startswith("bill_actions:"))
        click = await agent.click(OWNER, digest, kit.BILL_APPROVE, block_id=block)
        command = await agent.slash_command(OWNER, CHANNEL, "/runway", "bills")
        await agent.slash_command(OWNER, CHANNEL, "/runway", "settings")
        view = await stack.until(lambda: next(iter(ws.open_views(OWNER)), None))
        submission = await agent.submit_view(OWNER, view.id)
        event = await agent.event({"type": "app_home_opened", "user": OWNER, "channel": "D0OWNER01", "tab": "home"})
        await stack.bot.idle()
        business = await stack.business()
        realm = stack.sandbox.realm(stack.sandbox.realm_id)
        bill = next(iter(realm.iter("Bill")))
        invoice = next(iter(realm.iter("Invoice")))
        chart_url = next(b["image_url"] for b in digest.blocks if b.get("type") == "image")
        chart = re.fullmatch(r".*/charts/([^/]+)\.png", urlsplit(chart_url).path)
        assert chart is not None, chart_url
        bases: dict[str, Any] = {
            "chart": chart.group(1),
            "click": json.loads(parse_qs(click.request.body)["payload"][0]),
            "command": {k: v[0] for k, v in parse_qs(command.request.body).items()},
            "view": json.loads(parse_qs(submission.request.body)["payload"][0]),
            "event": json.loads(event.request.body),
            "realm_id": stack.sandbox.realm_id,
            "bill": {"id": str(bill["Id"]), "balance": str(bill["Balance"])},
            "invoice_id": str(invoice["Id"]),
        }
        fuzzer = cls(stack, bases)
        fuzzer.approvers = frozenset(business.approvers)
        fuzzer.settings = {column: getattr(business, column) for column in _SETTINGS}
        return fuzzer

    async def aclose(self) -> None:
        await self.http.aclose()

    # -- drawing ------------------------------------------------------------------------------

    def draw(self, route: str, data: st.DataObject) -> Plan:
        drawers: dict[str, Callable[[st.DataObject], Plan]] = {
            "slack_click": lambda d: self._slack_signed("slack_click", "click", d),
            "slack_command": lambda d: self._slack_signed("slack_command", "command", d),
            "slack_view_submission": lambda d: self._slack_signed("slack_view_submission", "view", d),
            "slack_event": lambda d: self._slack_signed("slack_event", "event", d),
            "slack_not_entitled": self._slack_not_entitled,
            "slack_unsigned": self._slack_unsigned,
            "qbo_webhook_legacy": lambda d: self._webhook(d, cloud=False),
            "qbo_webhook_cloudevents": lambda d: self._webhook(d, cloud=True),
            "qbo_webhook_unsigned": self._webhook_unsigned,
            "email_link_signed": self._email_signed,
            "email_link_forged": self._email_forged,
            "chart_link_signed": self._chart_signed,
            "chart_link_forged": self._chart_forged,
            "qbo_connect": self._qbo_connect,
            "qbo_callback": self._qbo_callback,
            "healthz": self._healthz,
        }
        return drawers[route](data)

    def _slack_request(self, kind: str, payload: Any) -> tuple[str, str]:
        if kind in ("click", "view"):
            return urlencode({"payload": _dumps(payload)}), "application/x-www-form-urlencoded"
        if kind == "command":
            if isinstance(payload, dict):
                form = {str(k): _json_ish(v) for k, v in payload.items()}
                return urlencode(form, errors="surrogatepass"), "application/x-www-form-urlencoded"
            return _dumps(payload), "application/x-www-form-urlencoded"
        return _dumps(payload), "application/json"

    def _slack_probe(self, route: str, body: str, content_type: str, *, may_act: bool,
                     secret: str | None = None, stamp: str | None = None,
                     signature: str | None = None, drop: Sequence[str] = ()) -> Probe:
        stamp = str(int(time.time())) if stamp is None else stamp
        if signature is None:
            signature = str(SignatureVerifier(secret if secret is not None else self.signing_secret)
                            .generate_signature(timestamp=stamp, body=body))
        headers = {"content-type": content_type, "x-slack-request-timestamp": stamp,
                   "x-slack-signature": signature}
        for name in drop:
            headers.pop(name, None)
        return Probe(route, "POST", "/slack/events", _utf8(body), headers, may_act)

    def _acting_user(self, kind: str, payload: Any) -> Any:
        if not isinstance(payload, dict):
            return None
        if kind == "command":
            return payload.get("user_id")
        user = payload.get("user")
        return user.get("id") if isinstance(user, dict) else None

    def _slack_signed(self, route: str, kind: str, data: st.DataObject) -> Plan:
        payload, note = mutated(data, self.bases[kind])
        body, content_type = self._slack_request(kind, payload)
        # A signed request acts only for an approver (an event never acts).
        user = self._acting_user(kind, payload)
        may_act = kind != "event" and isinstance(user, str) and user in self.approvers
        probe = self._slack_probe(route, body, content_type, may_act=may_act)
        return Plan(route, lambda _: probe, note=note)

    def _slack_not_entitled(self, data: st.DataObject) -> Plan:
        """Correctly signed requests that would act, from a member who is not an approver."""
        someone = data.draw(st.one_of(st.just(STAFF), st.from_regex(r"\AU[A-Z0-9]{8,10}\Z")), label="user")
        if someone in self.approvers:
            someone = STAFF
        kind = data.draw(st.sampled_from(["approve", "pay", "remind", "settings", "connect", "snooze"]), label="kind")
        if kind == "settings":
            payload = json.loads(json.dumps(self.bases["view"]))
            payload["user"]["id"] = someone
            values = payload["view"]["state"]["values"]
            if data.draw(st.booleans(), label="change threshold"):
                for actions in values.get("threshold", {}).values():
                    actions["value"] = "1.00"
            body, content_type = self._slack_request("view", payload)
        elif kind == "connect":
            payload = {**self.bases["command"], "user_id": someone, "text": "connect"}
            body, content_type = self._slack_request("command", payload)
        else:
            payload = json.loads(json.dumps(self.bases["click"]))
            payload["user"]["id"] = someone
            action = payload["actions"][0]
            bill = self.bases["bill"]
            action["action_id"], action["value"] = {
                "approve": (kit.BILL_APPROVE, f"{bill['id']}|{bill['balance']}"),
                "pay": (kit.BILL_PAY, f"{bill['id']}|{bill['balance']}"),
                "remind": (kit.INVOICE_REMIND, self.bases["invoice_id"]),
                "snooze": (kit.BILL_SNOOZE, bill["id"]),
            }[kind]
            body, content_type = self._slack_request("click", payload)
        probe = self._slack_probe("slack_not_entitled", body, content_type, may_act=False)
        return Plan("slack_not_entitled", lambda _: probe)

    def _slack_unsigned(self, data: st.DataObject) -> Plan:
        """A real request (or a hostile variant) whose signature is missing, forged, stale or malformed."""
        kind = data.draw(st.sampled_from(["click", "command", "view", "event"]), label="kind")
        payload = mutated(data, self.bases[kind])[0] if data.draw(st.booleans(), label="mutate") else self.bases[kind]
        body, content_type = self._slack_request(kind, payload)
        now = int(time.time())
        how = data.draw(st.sampled_from(
            ["none", "no signature", "no timestamp", "wrong secret", "stale", "future", "bad timestamp",
             "bad signature", "other body"]), label="how")  # fmt: skip
        route = "slack_unsigned"
        if how == "none":
            probe = self._slack_probe(route, body, content_type, may_act=False,
                                      drop=("x-slack-request-timestamp", "x-slack-signature"))
        elif how == "no signature":
            probe = self._slack_probe(route, body, content_type, may_act=False, drop=("x-slack-signature",))
        elif how == "no timestamp":
            probe = self._slack_probe(route, body, content_type, may_act=False, drop=("x-slack-request-timestamp",))
        elif how == "wrong secret":
            secret = data.draw(st.sampled_from(["x", self.signing_secret + "x", self.signing_secret[:-1]]), label="secret")
            probe = self._slack_probe(route, body, content_type, may_act=False, secret=secret)
        elif how in ("stale", "future"):
            skew = data.draw(st.integers(min_value=301, max_value=10**9), label="skew")
            probe = self._slack_probe(route, body, content_type, may_act=False,
                                      stamp=str(now - skew if how == "stale" else now + skew))
        elif how == "bad timestamp":
            stamp = data.draw(HOSTILE_TEXT, label="timestamp").encode("utf-8", "replace").decode()
            probe = self._slack_probe(route, body, content_type, may_act=False, stamp=stamp)
        elif how == "bad signature":
            signature = data.draw(HOSTILE_TEXT, label="signature")
            probe = self._slack_probe(route, body, content_type, may_act=False, signature=signature)
        else:  # signed, then the body changed on the way
            signed = self._slack_probe(route, body, content_type, may_act=False)
            probe = Probe(route, "POST", "/slack/events", signed.body + b"&x=1", signed.headers, False)
        return Plan(route, lambda _: probe)

    # QuickBooks webhooks

    def _intuit_signature(self, body: bytes, token: str | None = None) -> str:
        key = (token if token is not None else self.verifier).encode()
        return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()

    def _webhook_base(self, cloud: bool) -> Any:
        bill, realm = self.bases["bill"]["id"], self.bases["realm_id"]
        if cloud:
            return [{
                "specversion": "1.0", "id": secrets.token_hex(8), "source": "intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=",
                "type": "qbo.bill.updated.v1", "datacontenttype": "application/json",
                "time": "2026-03-02T17:15:00Z", "intuitentityid": bill, "intuitaccountid": realm, "data": {},
            }, {
                "specversion": "1.0", "id": secrets.token_hex(8), "source": "intuit", "type": "qbo.invoice.created.v1",
                "time": "2026-03-02T17:16:00Z", "intuitentityid": self.bases["invoice_id"], "intuitaccountid": realm,
            }]  # fmt: skip
        return {"eventNotifications": [{"realmId": realm, "dataChangeEvent": {"entities": [
            {"name": "Bill", "id": bill, "operation": "Update", "lastUpdated": "2026-03-02T09:15:00-0800"},
            {"name": "Invoice", "id": self.bases["invoice_id"], "operation": "Create",
             "lastUpdated": "2026-03-02T09:16:00-0800"},
        ]}}]}  # fmt: skip

    def _webhook(self, data: st.DataObject, *, cloud: bool) -> Plan:
        route = "qbo_webhook_cloudevents" if cloud else "qbo_webhook_legacy"
        raw = data.draw(st.sampled_from(["json", "bytes"]), label="body") == "bytes" and data.draw(st.booleans())
        if raw:
            body = data.draw(st.binary(max_size=200), label="raw body")
        else:
            payload, note = mutated(data, self._webhook_base(cloud))
            body = _utf8(_dumps(payload))
        headers = {"content-type": "application/json", "intuit-signature": self._intuit_signature(body)}
        probe = Probe(route, "POST", "/qbo/webhooks", body, headers, may_act=False)
        return Plan(route, lambda _: probe, note="" if raw else note)

    def _webhook_unsigned(self, data: st.DataObject) -> Plan:
        cloud = data.draw(st.booleans(), label="cloud")
        body = _utf8(_dumps(mutated(data, self._webhook_base(cloud))[0] if data.draw(st.booleans()) else self._webhook_base(cloud)))
        how = data.draw(st.sampled_from(["none", "wrong token", "garbage", "other body"]), label="how")
        headers = {"content-type": "application/json"}
        if how == "wrong token":
            headers["intuit-signature"] = self._intuit_signature(body, self.verifier + "x")
        elif how == "garbage":
            headers["intuit-signature"] = data.draw(HOSTILE_TEXT, label="signature")
        elif how == "other body":
            headers["intuit-signature"] = self._intuit_signature(body + b" ")
        probe = Probe("qbo_webhook_unsigned", "POST", "/qbo/webhooks", body, headers, may_act=False)
        return Plan("qbo_webhook_unsigned", lambda _: probe)

    # email links

    def _email_payload(self, action: ActionKind) -> dict[str, Any]:
        bill = self.bases["bill"]
        target = self.bases["invoice_id"] if action == ActionKind.INVOICE_REMIND else bill["id"]
        token = self.links.action_token(BUSINESS_ID, ActionKind(action), target, EMAIL_APPROVER,
                                        amount=Decimal(bill["balance"]) if action != ActionKind.INVOICE_REMIND else None)
        encoded = token.partition(".")[0]
        decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        return decoded

    def _email_signed(self, data: st.DataObject) -> Plan:
        kind = data.draw(st.sampled_from([*ActionKind, "unsubscribe"]), label="link")
        if kind == "unsubscribe":
            payload: Any = {"p": "unsubscribe", "b": BUSINESS_ID, "r": EMAIL_APPROVER}
        else:
            payload = self._email_payload(kind)
        payload, note = mutated(data, payload)
        token = self.links._sign(payload) if isinstance(payload, dict) else self.links._sign({"x": payload})
        method = data.draw(st.sampled_from(["GET", "POST"]), label="method")
        path = f"/email/{'unsubscribe' if kind == 'unsubscribe' else 'act'}/{token}"
        # A genuine link acts for the approver it was sent to; one naming anyone else acts for nobody.
        may_act = isinstance(payload, dict) and payload.get("r") == EMAIL_APPROVER and method == "POST"
        probe = Probe("email_link_signed", method, path, b"", {}, may_act)
        return Plan("email_link_signed", lambda _: probe, note=note)

    def _email_forged(self, data: st.DataObject) -> Plan:
        genuine = self.links.action_token(BUSINESS_ID, ActionKind.BILL_PAY, self.bases["bill"]["id"], EMAIL_APPROVER,
                                          amount=Decimal(self.bases["bill"]["balance"]))
        how = data.draw(st.sampled_from(["flip", "cut", "other key", "random", "no signature", "swap payload"]), label="how")
        if how == "flip":
            at = data.draw(st.integers(min_value=0, max_value=len(genuine) - 1), label="at")
            char = data.draw(st.characters(codec="utf-8").filter(lambda c: c != genuine[at] and c not in "/?#"), label="char")
            token = genuine[:at] + char + genuine[at + 1:]
        elif how == "cut":
            token = genuine[: data.draw(st.integers(min_value=0, max_value=len(genuine) - 1), label="length")]
        elif how == "other key":
            other = LinkSigner(secrets.token_bytes(32), self.stack.oodaloo.clock, public_url=self.stack.url)
            token = other.action_token(BUSINESS_ID, ActionKind.BILL_PAY, self.bases["bill"]["id"], EMAIL_APPROVER)
        elif how == "no signature":
            token = genuine.partition(".")[0] + "."
        elif how == "swap payload":
            payload = self._email_payload(ActionKind.BILL_PAY)
            payload["r"] = "someone@else.example"
            forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
            token = f"{forged}.{genuine.partition('.')[2]}"
        else:
            token = data.draw(HOSTILE_TEXT, label="token").replace("/", "").replace("?", "").replace("#", "")
        method = data.draw(st.sampled_from(["GET", "POST", "PUT"]), label="method")
        which = data.draw(st.sampled_from(["act", "unsubscribe"]), label="route")
        path = f"/email/{which}/{quote(token.encode('utf-8', 'surrogatepass'), safe='') or '%00'}"
        probe = Probe("email_link_forged", method, path, b"", {}, may_act=False)
        return Plan("email_link_forged", lambda _: probe)

    # the digest's chart

    def _chart_probe(self, route: str, data: st.DataObject, token: str, *, signed: bool,
                     quoted: bool = True) -> Probe:
        """GET (or another method) of the chart at `token`, with a hostile query string now and
        then. `signed`: Oodaloo signed the token, so GET and HEAD may answer the chart."""
        method = data.draw(st.sampled_from(["GET", "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]),
                           label="method")
        query = data.draw(st.dictionaries(HOSTILE_TEXT, HOSTILE_TEXT, max_size=2), label="query")
        encoded = urlencode({k.encode("utf-8", "surrogatepass"): v.encode("utf-8", "surrogatepass")
                             for k, v in query.items()})
        raw = token.encode("utf-8", "surrogatepass")
        path = f"/charts/{quote(raw, safe='') if quoted else quote(raw, safe='/.%')}.png"
        path += f"?{encoded}" if encoded else ""
        return Probe(route, method, path, b"", {}, may_see=signed and method in ("GET", "HEAD"))

    def _chart_signed(self, data: st.DataObject) -> Plan:
        """Chart URLs Oodaloo signed: the digest's own, and ones holding hostile contents (another
        business, fingerprint or last day: text the database refuses, a field of the wrong type, a
        day long past)."""
        fields = self.links.verify(self.bases["chart"], "chart")
        how = data.draw(st.sampled_from(["own", "expired", "odd text", "mutated"]), label="how")
        note = how
        if how == "own":
            token = self.bases["chart"]
        else:
            payload: Any = fields
            if how == "expired":
                fields["d"] = data.draw(st.dates(max_value=date(2020, 1, 1)), label="day").isoformat()
            elif how == "odd text":
                name = data.draw(st.sampled_from(["b", "f", "d"]), label="field")
                fields[name] = data.draw(st.sampled_from(_ODD_TEXT), label="text")
                note = f"{name} = {fields[name]!r}"
            else:
                payload, note = mutated(data, fields)
            payload = payload if isinstance(payload, dict) else {"x": payload}
            payload.pop("p", None)
            token = self.links.sign("chart", payload)
        probe = self._chart_probe("chart_link_signed", data, token, signed=True)
        return Plan("chart_link_signed", lambda _: probe, note=note)

    def _chart_forged(self, data: st.DataObject) -> Plan:
        """Chart URLs Oodaloo did not sign: altered, cut, huge, signed with another key or for an
        email link, non-ASCII, path-traversing, or anything at all."""
        genuine = self.bases["chart"]
        how = data.draw(st.sampled_from(["flip", "cut", "huge", "other key", "email link", "non-ascii",
                                         "traversal", "random"]), label="how")
        quoted = True
        if how == "flip":
            at = data.draw(st.integers(min_value=0, max_value=len(genuine) - 1), label="at")
            char = data.draw(st.characters(codec="utf-8").filter(lambda c: c != genuine[at] and c not in "/?#"),
                             label="char")
            token = genuine[:at] + char + genuine[at + 1:]
        elif how == "cut":
            token = genuine[: data.draw(st.integers(min_value=1, max_value=len(genuine) - 1), label="length")]
        elif how == "huge":
            # Up to about h11's limit on a request's head (16 KiB): past it, uvicorn answers 400 itself.
            size = data.draw(st.integers(min_value=len(genuine) + 1, max_value=12_000), label="size")
            token = (genuine * (size // len(genuine) + 1))[:size]
        elif how == "other key":
            other = LinkSigner(secrets.token_bytes(32), self.stack.oodaloo.clock, public_url=self.stack.url)
            token = other.sign("chart", self.links.verify(genuine, "chart"))
        elif how == "email link":
            token = self.links.action_token(BUSINESS_ID, ActionKind.BILL_PAY, self.bases["bill"]["id"],
                                            EMAIL_APPROVER)
        elif how == "non-ascii":
            at = data.draw(st.integers(min_value=0, max_value=len(genuine)), label="at")
            odd = data.draw(st.sampled_from(["é", "\u200b", "\ufeff", "\ud800", "\x00", "\n", "\x7f", "ａ"]),
                            label="char")
            token = genuine[:at] + odd + genuine[at:]
        elif how == "traversal":
            token = data.draw(st.sampled_from([
                "..", "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e", "....//....//",
                "..\\..\\windows\\win.ini", f"{genuine}/..", f"../{genuine}", "%252e%252e%252f",
                "/etc/passwd%00", "%c0%ae%c0%ae/",
            ]), label="traversal")  # fmt: skip
            quoted = data.draw(st.booleans(), label="quoted")
        else:
            token = data.draw(HOSTILE_TEXT, label="token") or "%00"
        probe = self._chart_probe("chart_link_forged", data, token, signed=False, quoted=quoted)
        return Plan("chart_link_forged", lambda _: probe)

    # QuickBooks OAuth

    def _qbo_connect(self, data: st.DataObject) -> Plan:
        how = data.draw(st.sampled_from(["genuine", "altered", "hostile", "none"]), label="state")
        hostile = data.draw(HOSTILE_TEXT, label="value")
        at = data.draw(st.integers(min_value=0, max_value=200), label="at")

        def build(fresh: dict[str, str]) -> Probe:
            state = fresh["state"]
            if how == "altered":
                at_ = at % len(state)
                state = state[:at_] + ("A" if state[at_] != "A" else "B") + state[at_ + 1:]
            elif how == "hostile":
                state = hostile
            query = "" if how == "none" else "?" + urlencode({"state": state.encode("utf-8", "surrogatepass")})
            return Probe("qbo_connect", "GET", f"/qbo/connect{query}", may_act=False)

        return Plan("qbo_connect", build, fresh="state")

    def _qbo_callback(self, data: st.DataObject) -> Plan:
        keep = {name: data.draw(st.booleans(), label=f"keep {name}") for name in ("code", "state", "realmId")}
        hostile = {name: data.draw(HOSTILE_TEXT, label=name) for name in keep}
        extra = data.draw(st.one_of(st.none(), st.sampled_from(["access_denied", "invalid_scope"]), HOSTILE_TEXT), label="error")
        other_realm = data.draw(st.booleans(), label="another company")

        def build(fresh: dict[str, str]) -> Probe:
            query: dict[str, Any] = {}
            for name, kept in keep.items():
                if kept:
                    query[name] = fresh[name]
                elif name == "realmId" and other_realm:
                    query[name] = str(int(fresh[name]) + 1)
                else:
                    query[name] = hostile[name].encode("utf-8", "surrogatepass")
            if extra is not None:
                query["error"] = extra.encode("utf-8", "surrogatepass")
            # Only QuickBooks' genuine answer to a link an approver asked for connects anything.
            may_act = all(keep.values()) and not extra  # an empty error= is no error
            return Probe("qbo_callback", "GET", f"/qbo/callback?{urlencode(query)}", may_act=may_act)

        return Plan("qbo_callback", build, fresh="callback")

    def _healthz(self, data: st.DataObject) -> Plan:
        header = data.draw(st.one_of(st.none(), HOSTILE_TEXT), label="authorization")
        headers = {} if header is None else {"authorization": header}
        probe = Probe("healthz", "GET", "/healthz", b"", headers, may_act=False)
        return Plan("healthz", lambda _: probe)

    # -- sending ------------------------------------------------------------------------------

    async def _fresh(self, what: str) -> dict[str, str]:
        link = await self.stack.bot.linker(await self.stack.business(), OWNER)  # type: ignore[misc]
        state = parse_qs(urlsplit(link).query)["state"][0]
        if what == "state":
            return {"state": state}
        to_intuit = await self.http.get(link, follow_redirects=False)
        assert to_intuit.status_code == 302, to_intuit.text
        sandbox = self.stack.sandbox
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app)) as intuit:
            back = await intuit.get(to_intuit.headers["location"], follow_redirects=False)
        assert back.status_code == 302, back.text
        answer = {k: v[0] for k, v in parse_qs(urlsplit(back.headers["location"]).query).items()}
        return {"code": answer["code"], "state": answer["state"], "realmId": answer["realmId"]}

    async def fingerprint(self) -> tuple[Any, ...]:
        """Everything a request could act on: approvals, payments, reminders, snoozes, settings,
        approvers, channel, the QuickBooks connection."""
        queries = (
            "SELECT id, approved_by, approved_amount, second_approved_by, second_approved_amount, "
            "snoozed_until, payment_state, payment_amount FROM bills ORDER BY id",
            "SELECT id, reminders_sent, last_reminder_at, snoozed_until FROM invoices ORDER BY id",
            "SELECT id, name, realm_id, approvers, approval_threshold, min_cash_buffer, slack_team_id, "
            "slack_channel_id, email_recipients, payment_bank_account_id, digest_weekday, digest_local_time, "
            "timezone, reminder_interval_days FROM businesses ORDER BY id",
            "SELECT business_id, realm_id, status, access_token_encrypted FROM qbo_connections ORDER BY business_id",
        )
        async with self.stack.oodaloo.sessions() as session:
            rows = [tuple(map(str, row)) for query in queries for row in (await session.execute(text(query))).all()]
        return (len(self.stack.bill_payments()), *rows)

    async def settle(self) -> None:
        """Waits for the work after the answer: the bot's and the webhooks' and connections'."""
        for _ in range(100):
            pending = [t for t in asyncio.all_tasks() if t.get_name().startswith(_DONE_IN_BACKGROUND) and not t.done()]
            if not pending:
                break
            await asyncio.wait(pending, timeout=10)
        await self.stack.bot.idle()

    async def send(self, plan: Plan) -> Verdict:
        fresh = await self._fresh(plan.fresh) if plan.fresh else {}
        probe = plan.build(fresh)
        probe.note = plan.note
        # The last case's work was settled before its state was taken, so nothing has run since
        # unless a fresh state was fetched just now: then the state before this case is taken anew.
        known = None if plan.fresh else self._state_after_last
        before = known if known is not None else await self.fingerprint()
        with errors_logged() as errors:
            answer = await self.http.request(probe.method, probe.path, content=probe.body, headers=sendable(probe.headers))
            await self.settle()
        after = await self.fingerprint()
        self._state_after_last = after
        if after != before:  # an approver changed the settings: the next case starts from the same ones
            async with self.stack.oodaloo.sessions() as session:
                await session.execute(update(Business).where(Business.id == BUSINESS_ID).values(**self.settings))
                await session.commit()
            self._state_after_last = None
        leaked = None
        if probe.route == "healthz" and "businesses" in answer.text:
            leaked = "the businesses in /healthz"
        return Verdict(probe.route, answer.status_code, errors.lines(), before != after, probe.may_act, leaked,
                       probe, answer.text[:300])


# -- the multi-workspace install ---------------------------------------------------------------


@asynccontextmanager
async def slack_install_fuzzer(database_url: str, *, migrate: bool = False) -> AsyncIterator[SlackInstallFuzzer]:
    """A multi-workspace `oodaloo serve` (Slack's OAuth install) against the local Slack, served
    on a loopback port, and the fuzzer aimed at it."""
    with start_in_thread(SlackSandboxConfig()) as slack:
        config = slack.sandbox.config
        sock = free_socket()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        settings = load_settings(
            database_url=database_url, slack_client_id=config.client_id,
            slack_client_secret=config.client_secret, slack_signing_secret=config.signing_secret,
            slack_api_url=slack.api_url, token_encryption_key=generate_key(),
            email_link_key=secrets.token_urlsafe(32), public_url=url,
        )  # fmt: skip
        oodaloo = await Oodaloo.start(settings, backend=MemoryBackend(), migrate=migrate)

        async def installations() -> Any:
            async with oodaloo.engine.connect() as connection:
                rows = await connection.execute(text(f"SELECT * FROM {SLACK_INSTALLATIONS_TABLE} ORDER BY 1"))
                return [tuple(map(str, row)) for row in rows]

        try:
            async with serve_in_loop(create_web_app(oodaloo, SlackBot(oodaloo)), sock):
                built = SlackInstallFuzzer(url, installations)
                try:
                    yield built
                finally:
                    await built.aclose()
        finally:
            await oodaloo.aclose()



class SlackInstallFuzzer:
    """`/slack/install` and `/slack/oauth_redirect` of a multi-workspace `oodaloo serve`, against the
    local Slack's OAuth: hostile queries, states and codes; an installation is stored only for
    Slack's genuine answer to a state this server issued, carried by the browser that asked."""

    def __init__(self, url: str, installations: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        self.http = httpx.AsyncClient(base_url=url, timeout=30)
        self.installations = installations

    async def aclose(self) -> None:
        await self.http.aclose()

    def draw(self, route: str, data: st.DataObject) -> Plan:
        if route == "slack_install":
            query = data.draw(st.dictionaries(HOSTILE_TEXT, HOSTILE_TEXT, max_size=3), label="query")
            encoded = urlencode({k.encode("utf-8", "surrogatepass"): v.encode("utf-8", "surrogatepass") for k, v in query.items()})
            probe = Probe(route, "GET", f"{SLACK_INSTALL_PATH}?{encoded}")
            return Plan(route, lambda _: probe)
        keep = {name: data.draw(st.booleans(), label=f"keep {name}") for name in ("code", "state", "cookie")}
        hostile = {name: data.draw(HOSTILE_TEXT, label=name) for name in keep}
        error = data.draw(st.one_of(st.none(), st.sampled_from(["access_denied"]), HOSTILE_TEXT), label="error")

        def build(fresh: dict[str, str]) -> Probe:
            query: dict[str, Any] = {}
            for name in ("code", "state"):
                query[name] = fresh[name] if keep[name] else hostile[name].encode("utf-8", "surrogatepass")
            if error is not None:
                query["error"] = error.encode("utf-8", "surrogatepass")
            cookie = fresh["cookie"] if keep["cookie"] else hostile["cookie"]
            headers = {"cookie": cookie} if cookie else {}
            may_act = all(keep.values()) and not error
            return Probe(route, "GET", f"{SLACK_OAUTH_REDIRECT_PATH}?{urlencode(query)}", b"", headers, may_act)

        return Plan(route, build, fresh="install")

    async def _fresh(self) -> dict[str, str]:
        """What a browser carries back from Slack's consent screen: a code, the state, Bolt's cookie."""
        page = await self.http.get(SLACK_INSTALL_PATH, follow_redirects=False)
        consent = re.search(r'href="([^"]+oauth/v2/authorize[^"]+)"', page.text)
        assert consent, page.text
        back = await self.http.get(consent.group(1).replace("&amp;", "&"), follow_redirects=False)
        assert back.status_code in (302, 303), back.text
        answer = {k: v[0] for k, v in parse_qs(urlsplit(back.headers["location"]).query).items()}
        cookie = page.headers["set-cookie"].split(";", 1)[0]
        return {"state": answer["state"], "code": answer["code"], "cookie": cookie}

    async def send(self, plan: Plan) -> Verdict:
        fresh = await self._fresh() if plan.fresh else {}
        probe = plan.build(fresh)
        before = await self.installations()
        with errors_logged() as errors:
            self.http.cookies.clear()
            answer = await self.http.request(probe.method, probe.path, headers=sendable(probe.headers))
        after = await self.installations()
        return Verdict(probe.route, answer.status_code, errors.lines(), before != after, probe.may_act,
                       probe=probe, answer=answer.text[:300])


__all__ = [
    "CASES",
    "EMAIL_APPROVER",
    "INSTALL_ROUTES",
    "ROUTES",
    "Plan",
    "RouteFuzzer",
    "SlackInstallFuzzer",
    "Tally",
    "Verdict",
    "errors_logged",
    "slack_install_fuzzer",
]
