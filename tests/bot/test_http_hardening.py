"""What the public HTTP app does with requests nobody signed: big bodies, malformed Slack headers and
bodies, mangled email links, and who may see the per-business part of /healthz. Through the real
web app served by uvicorn (`bot.local.local_stack`)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode, urlparse

import httpx
import pytest
from db_conftest import MigratedDatabase
from route_fuzz import errors_logged
from slack_sdk.signature import SignatureVerifier

from bot.email.links import ActionKind, BadLink, LinkSigner
from bot.local import BUSINESS_ID, LocalStack, local_stack
from bot.slack.clicks import item_and_amount
from sync.clock import ManualClock

OPERATOR_TOKEN = "op-4d1c0a8e9f2b47c6a1d3e5f7b9c2d4e6"
MiB = 1024 * 1024


@pytest.fixture
async def stack(migrated: MigratedDatabase) -> AsyncIterator[LocalStack]:
    async with local_stack(migrated.url, settings={"operator_token": OPERATOR_TOKEN}) as built:
        yield built


@contextmanager
def no_error_logged() -> Iterator[None]:
    """Fails if anything (uvicorn's "Exception in ASGI application" included) logs an ERROR."""
    with errors_logged() as errors:
        yield
    assert [r.getMessage() for r in errors.records] == []


# -- 4. bodies are limited before they are read -------------------------------------------------


async def _stream_until_answered(url: str, path: str, total: int, *, chunked: bool) -> tuple[int, bytes]:
    """POSTs `total` bytes of junk in 64 KiB pieces over a raw connection, stopping as soon as the
    server answers; returns the status and the body of the answer."""
    parts = urlparse(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n{length}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n\r\n".encode()
    )
    answer = asyncio.create_task(reader.read(64 * 1024))
    piece = b"a" * (64 * 1024)
    sent = 0
    try:
        while sent < total and not answer.done():
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            sent += len(piece)
            await writer.drain()
            # The reading task gets its turn after every piece: on loopback the socket rarely makes
            # drain() wait, and an answer left unread is lost to the reset our next piece causes.
            await asyncio.sleep(0)
        if chunked and not answer.done():
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except ConnectionError:
        pass  # the server answered and closed while we were still sending
    try:
        head = await asyncio.wait_for(answer, 10)
    except ConnectionResetError:
        # The server answered and closed with our unread bytes still arriving: the kernel resets
        # the connection, and the answer can be lost on the way. Nothing was read: status 0.
        return 0, b""
    finally:
        writer.close()
    status_line, _, rest = head.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


#: Every public route, and the limit it states when a body passes it.
_LIMITS = {
    "/slack/events": "1 MiB",
    "/qbo/webhooks": "256 KiB",
    "/email/act/not-a-link": "64 KiB",
    "/email/unsubscribe/not-a-link": "64 KiB",
    "/qbo/connect": "64 KiB",
    "/qbo/callback": "64 KiB",
    "/healthz": "64 KiB",
}


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_huge_unsigned_body_is_refused_before_it_is_read(stack: LocalStack, chunked: bool) -> None:
    """64 MiB to each public route: answered at once, and the server holds less than 4 MiB more
    while it answers (measured with tracemalloc; the whole app runs in this process). A declared
    length above the route's limit is 413 before a byte is read; a streamed body is 413 as soon as
    it passes the limit, or, on a route that never reads a body, refused (4xx) without reading it."""
    started = time.monotonic()
    for path, limit in _LIMITS.items():
        tracemalloc.start()
        try:
            status, body = await _stream_until_answered(stack.url, path, 64 * MiB, chunked=chunked)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        reads_its_body = path in ("/slack/events", "/qbo/webhooks")
        if reads_its_body or not chunked:
            assert status == 413, (path, body)
            assert limit.encode() in body, body
        else:  # refused without reading: a 4xx, or a reset that lost it (status 0)
            assert status == 0 or 400 <= status < 500, (path, status, body)
        assert peak < 4 * MiB, f"{path}: {peak / MiB:.1f} MiB traced while refusing a 64 MiB body"
    assert time.monotonic() - started < 60


async def test_bodies_within_the_limits_still_arrive(stack: LocalStack) -> None:
    async with httpx.AsyncClient() as client:
        # Just under Slack's limit, unsigned: read whole and refused for its signature, not its size.
        big = await client.post(f"{stack.url}/slack/events", content=b"a" * (MiB - 1),
                                headers={"content-type": "application/x-www-form-urlencoded"})
        assert big.status_code == 401


# -- 5. Slack: the signature first, and never a 500 ----------------------------------------------


def _signed(stack: LocalStack, body: str, *, timestamp: str | None = None) -> dict[str, Any]:
    timestamp = timestamp or str(int(time.time()))
    verifier = SignatureVerifier(stack.workspace.signing_secret)
    signature = verifier.generate_signature(timestamp=timestamp, body=body)
    assert signature is not None
    return {"x-slack-request-timestamp": timestamp, "x-slack-signature": signature}


FORM = "application/x-www-form-urlencoded"
UNPARSEABLE = [
    ("payload=5", FORM),
    ("payload=%5B1%2C2%5D", FORM),
    ("[1, 2, 3]", "application/json"),
    ('{"type": "block_actions", "team": 5}', "application/json"),
    ("payload=" + '{"type": "block_actions", "team": 5}', FORM),
    ("payload=%7Bnot json", FORM),
    ("payload=%7B%7D%5D", FORM),
]
_CLICK = {"type": "block_actions", "team": {"id": "T1"}, "user": {"id": "U1"}, "channel": {"id": "C1"},
          "actions": [{"action_id": "bill_approve", "block_id": "bill_actions:1", "value": "1"}]}
#: Signed, well-formed JSON, but with a field of a type Bolt indexes into while routing.
UNROUTABLE = [
    {**_CLICK, "actions": [5.0]},
    {**_CLICK, "actions": []},
    {**_CLICK, "actions": [{"block_id": "bill_actions:1"}]},
    {**_CLICK, "actions": [{"action_id": 7}]},
    {**_CLICK, "team": {"id": 5}},
    {**_CLICK, "user": 5},
    {**_CLICK, "authorizations": 5},
    {**_CLICK, "type": ["block_actions"]},
    {**_CLICK, "response_url": "null"},
    {"type": "view_submission", "team": {"id": "T1"}, "user": {"id": "U1"}, "view": {"callback_id": 5}},
    {"type": "view_submission", "team": {"id": "T1"}, "user": {"id": "U1"}, "view": "runway_settings"},
]


async def test_malformed_signature_headers_are_401_without_an_error(stack: LocalStack) -> None:
    body = "command=%2Frunway&text=&team_id=T1&user_id=U1&channel_id=C1"
    good = _signed(stack, body)
    cases: list[dict[str, Any]] = [
        {},
        {"x-slack-request-timestamp": "abc", "x-slack-signature": good["x-slack-signature"]},
        {"x-slack-request-timestamp": "1.5", "x-slack-signature": good["x-slack-signature"]},
        {"x-slack-request-timestamp": "", "x-slack-signature": good["x-slack-signature"]},
        {"x-slack-request-timestamp": "9" * 40, "x-slack-signature": good["x-slack-signature"]},
        {"x-slack-request-timestamp": good["x-slack-request-timestamp"]},
        {**good, "x-slack-signature": "v0=zz"},
        {**good, "x-slack-signature": ("v0=" + "é" * 64).encode()},
        _signed(stack, body, timestamp="abc"),
        _signed(stack, body, timestamp=str(int(time.time()) - 3600)),  # stale
    ]
    with no_error_logged():
        async with httpx.AsyncClient() as client:
            for headers in cases:
                response = await client.post(
                    f"{stack.url}/slack/events", content=body.encode(),
                    headers={"content-type": FORM, **headers},
                )
                assert response.status_code == 401, (headers, response.text)
                assert "signature" in response.text.lower()
            for content, content_type in UNPARSEABLE:  # unsigned: refused before being parsed
                response = await client.post(
                    f"{stack.url}/slack/events", content=content.encode(),
                    headers={"content-type": content_type, "x-slack-request-timestamp": "abc",
                             "x-slack-signature": "v0=00"},
                )
                assert response.status_code == 401, (content, response.text)


async def test_signed_bodies_bolt_cannot_read_are_400_without_an_error(stack: LocalStack) -> None:
    with no_error_logged():
        async with httpx.AsyncClient() as client:
            for content, content_type in UNPARSEABLE:
                response = await client.post(
                    f"{stack.url}/slack/events", content=content.encode(),
                    headers={"content-type": content_type, **_signed(stack, content)},
                )
                assert response.status_code == 400, (content, response.status_code, response.text)
            for payload in UNROUTABLE:
                content = urlencode({"payload": json.dumps(payload)})
                response = await client.post(
                    f"{stack.url}/slack/events", content=content.encode(),
                    headers={"content-type": FORM, **_signed(stack, content)},
                )
                assert response.status_code == 400, (payload, response.status_code, response.text)


# -- 5. email links: a mangled token is 400 -------------------------------------------------------


async def test_a_mangled_email_link_is_400_link_not_valid(stack: LocalStack) -> None:
    signer = LinkSigner(stack.oodaloo.link_secret, stack.oodaloo.clock, public_url=stack.url)
    token = signer.action_token(BUSINESS_ID, ActionKind.BILL_APPROVE, "1", "owner@example.com")
    payload, _, signature = token.partition(".")
    unsubscribe = signer.unsubscribe_token(BUSINESS_ID, "owner@example.com")
    mangled = [
        f"{payload}.{signature[:-1]}é",
        f"{payload}.é",
        f"{payload}é.{signature}",
        f"{payload}.{signature}\u2028",
        f"{payload}.{signature}%00",
        f"{payload}..{signature}",
        "é.é",
        "a.",
        "x" * 3000,
        f"{unsubscribe}é",
    ]
    with no_error_logged():
        async with httpx.AsyncClient() as client:
            for bad in mangled:
                for kind in ("act", "unsubscribe"):
                    for method in ("GET", "POST"):
                        response = await client.request(method, f"{stack.url}/email/{kind}/{bad}")
                        assert response.status_code == 400, (bad, kind, method, response.text)
                        assert "Link not valid" in response.text


# -- 8. /healthz ----------------------------------------------------------------------------------


async def test_healthz_says_up_or_down_to_anyone_and_businesses_only_to_the_operator(
    stack: LocalStack,
) -> None:
    async with httpx.AsyncClient() as client:
        public = await client.get(f"{stack.url}/healthz")
        assert public.status_code == 200
        report = public.json()
        assert report["status"] == "ok" and report["database"]["ok"] is True
        assert "businesses" not in report
        assert BUSINESS_ID not in public.text and "Larkspur" not in public.text

        for wrong in ("Bearer nope", f"Bearer {OPERATOR_TOKEN}x", OPERATOR_TOKEN, "Bearer é".encode(), "Bearer"):
            refused = await client.get(f"{stack.url}/healthz", headers={"authorization": wrong})
            assert refused.status_code == 401, wrong
            assert BUSINESS_ID not in refused.text

        operator = await client.get(
            f"{stack.url}/healthz", headers={"authorization": f"Bearer {OPERATOR_TOKEN}"}
        )
        assert operator.status_code == 200
        [business] = operator.json()["businesses"]
        assert business["id"] == BUSINESS_ID
        assert business["qbo"] == {"usable": True, "status": "connected"}


async def test_healthz_never_shows_businesses_without_an_operator_token(
    migrated: MigratedDatabase,
) -> None:
    async with local_stack(migrated.url) as stack, httpx.AsyncClient() as client:
        for headers in ({}, {"authorization": "Bearer"}, {"authorization": "Bearer anything"}):
            response = await client.get(f"{stack.url}/healthz", headers=headers)
            assert BUSINESS_ID not in response.text
            assert "businesses" not in response.text


@pytest.mark.parametrize("value", ["2109|1e30", "2109|NaN", "2109|0.001", "2109|-Infinity", "2109|1e-30"])
def test_a_button_amount_oodaloo_could_not_hold_is_refused_as_unreadable(value: str) -> None:
    """The route fuzz bench found `2109|1e30` reaching the approval's wording, which cannot format it."""
    with pytest.raises(ValueError, match="unreadable amount"):
        item_and_amount(value)
    assert item_and_amount("2109|2747.53") == ("2109", Decimal("2747.53"))


@pytest.mark.parametrize("field", ["b", "t", "r", "n", "m"])
def test_a_genuine_link_carrying_a_lone_surrogate_is_not_a_link(field: str) -> None:
    """The route fuzz bench signed a link whose nonce was "\\ud800": it reached the database (500)."""
    signer = LinkSigner(b"k" * 32, ManualClock(datetime.now(UTC)), public_url="https://oodaloo.test")
    token = signer.action_token("biz-larkspur", ActionKind.BILL_PAY, "2109", "owner@example.com",
                                amount=Decimal("12.00"))
    encoded = token.partition(".")[0]
    payload = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    payload[field] = "\ud800"
    with pytest.raises(BadLink):
        signer.read_action(signer._sign(payload))
