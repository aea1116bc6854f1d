"""Signed but malformed Slack requests never crash Oodaloo (hypothesis).

Each case takes a real request the local Slack sent (a button click, a `/runway` command, a
settings-modal submission), replaces one field somewhere in it with a hostile value (the wrong
type, NaN, 1e30, NUL bytes, ids out of range, deep nesting), signs it as Slack would, and posts it
to the bot's HTTP endpoint. The test fails on any HTTP 500 and on any error logged by the work
after the ack; nothing may be paid or approved by a malformed request. Cases per kind: `CASES`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import pytest
from db_conftest import MigratedDatabase
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.signature import SignatureVerifier

from bot.local import CHANNEL, OWNER, LocalStack, local_stack
from bot.slack import blocks as kit

#: Cases per request kind (clicks, commands, view submissions).
CASES = 150

HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["NaN", "1e30", "-1", "", "\x00", "9" * 40, "2109|NaN", "2109|1e30", "2109|-5",
                     "<!channel>", "U\x00", "C" * 300, "{}", "[]"]),
    st.text(max_size=40),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.just(json.loads("[" * 300 + "]" * 300)),
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document a value could be replaced."""
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
    node = copy
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return copy


class Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
async def stack(migrated: MigratedDatabase) -> AsyncIterator[LocalStack]:
    async with local_stack(migrated.url) as built:
        yield built


async def post_signed(stack: LocalStack, body: str, content_type: str) -> httpx.Response:
    secret = stack.oodaloo.settings.slack_signing_secret
    assert secret is not None
    stamp = str(int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    async with httpx.AsyncClient() as client:
        return await client.post(
            stack.agent.request_url,
            content=body.encode("utf-8", "surrogatepass"),
            headers={
                "content-type": content_type,
                "x-slack-request-timestamp": stamp,
                "x-slack-signature": str(signature),
            },
        )


async def real_requests(stack: LocalStack) -> dict[str, tuple[dict[str, Any], str]]:
    """One real request of each kind, as the local Slack sent it: (payload, how it is sent)."""
    digest = await stack.post_digest()
    click = await stack.agent.click(OWNER, digest, kit.BILL_APPROVE, block_id=digest_bill_block(digest))
    command = await stack.agent.slash_command(OWNER, CHANNEL, "/runway", "bills")
    await stack.bot.idle()
    requests = {
        "click": (json.loads(parse_qs(click.request.body)["payload"][0]), "payload"),
        "command": ({k: v[0] for k, v in parse_qs(command.request.body).items()}, "form"),
    }
    return requests


def digest_bill_block(digest: Any) -> str:
    return next(b["block_id"] for b in digest.blocks if str(b.get("block_id", "")).startswith("bill_actions:"))


def encode(payload: Any, how: str) -> tuple[str, str]:
    if how == "payload":
        return urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded"
    if isinstance(payload, dict):
        return urlencode({k: v if isinstance(v, str) else json.dumps(v) for k, v in payload.items()}), (
            "application/x-www-form-urlencoded"
        )
    return json.dumps(payload), "application/x-www-form-urlencoded"


_BASES: dict[int, dict[str, tuple[dict[str, Any], str]]] = {}


async def fuzz_once(stack: LocalStack, kind: str, data: st.DataObject) -> None:
    """One hostile variant of a real request of `kind`: never a 500, never an error after the
    ack, never a payment."""
    if id(stack) not in _BASES:
        _BASES[id(stack)] = await real_requests(stack)
    base, how = _BASES[id(stack)][kind]
    where = data.draw(st.sampled_from(paths(base)), label="field")
    value = data.draw(HOSTILE, label="value")
    errors = Errors()
    logging.getLogger().addHandler(errors)
    payments = len(stack.bill_payments())
    try:
        body, content_type = encode(replaced(base, where, value), how)
        answer = await post_signed(stack, body, content_type)
        await stack.bot.idle()
    finally:
        logging.getLogger().removeHandler(errors)
    assert answer.status_code < 500, (answer.status_code, answer.text[:300])
    assert not errors.records, [
        f"{r.getMessage()}: {r.exc_info[1]!r}" if r.exc_info else r.getMessage()
        for r in errors.records[:3]
    ]
    assert len(stack.bill_payments()) == payments


FUZZ = settings(
    max_examples=CASES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(data=st.data())
async def test_signed_malformed_clicks_never_crash(stack: LocalStack, data: st.DataObject) -> None:
    await fuzz_once(stack, "click", data)


@FUZZ
@given(data=st.data())
async def test_signed_malformed_commands_never_crash(stack: LocalStack, data: st.DataObject) -> None:
    await fuzz_once(stack, "command", data)


