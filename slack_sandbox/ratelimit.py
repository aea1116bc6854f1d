"""chat.postMessage's limit: about one message per second per channel, with short bursts allowed."""

from __future__ import annotations

import math
import threading

from slack_sandbox.config import Clock


class ChannelRateLimit:
    """A token bucket per channel on the sandbox clock: `burst` messages at once, then `per_second`."""

    def __init__(
        self, clock: Clock, *, burst: int, per_second: float, enabled: bool = True
    ) -> None:
        if burst < 1 or per_second <= 0:
            raise ValueError(
                f"a rate limit needs burst >= 1 and per_second > 0, got {burst} and {per_second}"
            )
        self.clock = clock
        self.burst = burst
        self.per_second = per_second
        self.enabled = enabled
        self.rejected = 0
        self._buckets: dict[str, tuple[float, float]] = {}  # channel -> (tokens, at)
        self._lock = threading.Lock()

    def acquire(self, channel: str) -> int | None:
        """Takes one message's allowance; None when allowed, else the seconds for Retry-After."""
        if not self.enabled:
            return None
        now = self.clock.now().timestamp()
        with self._lock:
            tokens, at = self._buckets.get(channel, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + max(0.0, now - at) * self.per_second)
            if tokens >= 1.0:
                self._buckets[channel] = (tokens - 1.0, now)
                return None
            self._buckets[channel] = (tokens, now)
            self.rejected += 1
            return max(1, math.ceil((1.0 - tokens) / self.per_second))

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
