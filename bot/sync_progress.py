"""How `oodaloo sync` shows a long sync while it runs: per entity type, what QuickBooks has sent
so far and what was written of it.

On a terminal each entity type has one line, rewritten in place after every page and kept once its
last page is in. Anywhere else (a log file, a pipe) plain lines are printed instead: each entity
type's last one, and in between at most one a second, so a 100,000-bill company does not flood
the log with a line per page.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from runway.mirror import SyncProgress


def progress_line(progress: SyncProgress) -> str:
    """"Bill: 12,000 received (page 12), 12,000 written" (the pages counted once it is done)."""
    pages = f"{progress.page} page{'' if progress.page == 1 else 's'}"
    where = pages if progress.done else f"page {progress.page}"
    return (
        f"{progress.entity}: {progress.received:,} received ({where}), "
        f"{progress.written:,} written"
    )


class SyncProgressShown:
    """A `MirrorSync` progress callback writing to `stream`; call `finish()` once it is over."""

    def __init__(
        self,
        stream: TextIO,
        *,
        every: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        #: A terminal: one line per entity type, rewritten in place.
        self.live = stream.isatty()
        self.every = every
        self.clock = clock
        self._last_printed: float | None = None
        self._open_line = False

    def __call__(self, progress: SyncProgress) -> None:
        line = f"  {progress_line(progress)}"
        if self.live:
            # Back to the line's start and clear it, so a shorter line leaves nothing behind.
            self.stream.write(f"\r\x1b[K{line}" + ("\n" if progress.done else ""))
            self.stream.flush()
            self._open_line = not progress.done
            return
        now = self.clock()
        if progress.done or self._last_printed is None or now - self._last_printed >= self.every:
            print(line, file=self.stream, flush=True)
            self._last_printed = now

    def finish(self) -> None:
        """End a line left open on a terminal (the sync stopped mid-way)."""
        if self._open_line:
            self.stream.write("\n")
            self.stream.flush()
            self._open_line = False
