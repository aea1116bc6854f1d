"""Slack's retried deliveries do not repeat work.

Slack delivers an event again when the first answer was slow (with `X-Slack-Retry-Num`), and a
flaky network can bring the same interaction twice. Each delivery is named by what Slack keeps
the same across retries (an event's `event_id`; for commands and interactions, the signed body,
whose `trigger_id` is unique, or over Socket Mode, where there is no raw body, the payload
itself), and only the first arrival of a name is handled. Names are kept
for an hour in the shared backend (Redis across processes, or this process's memory).

Clicks and `/runway` commands are checked where their work is handed off (`bot.slack.handoff`):
with Redis, in the same round trip that adds the work to the stream; everything else as it
arrives (`SlackBot._once_per_delivery`).

Redis out of reach (restarting, say) does not turn a delivery away: it is handled as a first
arrival. Handling a repeat is safe, only wasteful: a Pay is claimed on the bill's row and recorded
in the action ledger, so a click handled twice pays once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field

from sync import Backend, MemoryBackend, RedisBackend, redis_of, redis_unreachable

logger = logging.getLogger(__name__)

KEEP_SECONDS = 3600


@dataclass
class _Seen:
    until: dict[str, float] = field(default_factory=dict)


def delivery_name(raw_body: str, body: dict[str, object]) -> str:
    event_id = body.get("event_id")
    if isinstance(event_id, str) and event_id:
        return f"event:{event_id}"
    if not raw_body:
        # Bolt hands a Socket Mode payload over parsed, with an empty raw body: name it by its
        # content, or every command and click would look like a repeat of the first.
        raw_body = json.dumps(body, sort_keys=True, default=str)
    return "body:" + hashlib.sha256(raw_body.encode()).hexdigest()


class DeliveryLog:
    def __init__(self, backend: Backend, keep_seconds: int = KEEP_SECONDS) -> None:
        self.backend = backend
        self.keep_seconds = keep_seconds

    def key(self, name: str) -> str:
        """The Redis key that says `name` arrived (kept `keep_seconds`)."""
        if not isinstance(self.backend, RedisBackend):
            raise TypeError("deliveries are kept under Redis keys only with a Redis backend")
        return self.backend.key("slack-delivery", name)

    async def first_arrival(self, name: str) -> bool:
        """True the first time `name` is seen within the keeping window, False for a repeat."""
        if isinstance(self.backend, MemoryBackend):
            seen = self.backend.state("slack-deliveries", _Seen)
            now = time.monotonic()
            if len(seen.until) > 10_000:
                seen.until = {k: t for k, t in seen.until.items() if t > now}
            if seen.until.get(name, 0.0) > now:
                return False
            seen.until[name] = now + self.keep_seconds
            return True
        key = self.key(name)
        try:
            return bool(await redis_of(self.backend).set(key, "1", nx=True, ex=self.keep_seconds))
        except self.backend.errors as exc:
            if not redis_unreachable(exc):
                raise
            logger.warning("could not check Slack delivery %s against Redis (%s); handling it", name, exc)
            return True
