"""chat.postMessage's limits, as Slack documents them: about one message per second per channel
with short bursts allowed, and a workspace-wide limit of several hundred messages per minute (with
generous bursts) across all its channels."""

from __future__ import annotations

import math
import threading

from slack_sandbox.config import Clock


class TokenBucket:
    """`burst` messages at once, then `per_second`, per key, on the sandbox clock."""

    def __init__(self, clock: Clock, *, burst: int, per_second: float) -> None:
        if burst < 1 or per_second <= 0:
            raise ValueError(
                f"a rate limit needs burst >= 1 and per_second > 0, got {burst} and {per_second}"
            )
        self.clock = clock
        self.burst = burst
        self.per_second = per_second
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def wait_for(self, key: str, now: float) -> float:
        """Seconds until `key` has a message's allowance (0: it has one now)."""
        tokens = self._tokens(key, now)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.per_second

    def take(self, key: str, now: float) -> None:
        self._buckets[key] = (self._tokens(key, now) - 1.0, now)

    def _tokens(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + max(0.0, now - at) * self.per_second)

    def reset(self) -> None:
        self._buckets.clear()


class ChannelRateLimit:
    """The per-channel bucket and the workspace's bucket: a message takes from both, or from neither."""

    def __init__(
        self,
        clock: Clock,
        *,
        burst: int,
        per_second: float,
        workspace_burst: int = 50,
        workspace_per_minute: float = 300.0,
        enabled: bool = True,
    ) -> None:
        self.clock = clock
        self.channels = TokenBucket(clock, burst=burst, per_second=per_second)
        self.workspace = TokenBucket(clock, burst=workspace_burst, per_second=workspace_per_minute / 60)
        self.enabled = enabled
        self.rejected = 0
        #: Refusals by the limit that refused them ("channel" or "workspace").
        self.rejected_by: dict[str, int] = {"channel": 0, "workspace": 0}
        self._lock = threading.Lock()

    @property
    def burst(self) -> int:
        return self.channels.burst

    @property
    def per_second(self) -> float:
        return self.channels.per_second

    def acquire(self, channel: str) -> int | None:
        """Takes one message's allowance; None when allowed, else the seconds for Retry-After."""
        if not self.enabled:
            return None
        now = self.clock.now().timestamp()
        with self._lock:
            waits = {
                "channel": self.channels.wait_for(channel, now),
                "workspace": self.workspace.wait_for("", now),
            }
            if not any(waits.values()):
                self.channels.take(channel, now)
                self.workspace.take("", now)
                return None
            self.rejected += 1
            self.rejected_by[max(waits, key=lambda name: waits[name])] += 1
            return max(1, math.ceil(max(waits.values())))

    def reset(self) -> None:
        with self._lock:
            self.channels.reset()
            self.workspace.reset()
