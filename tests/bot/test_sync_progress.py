"""What `oodaloo sync` shows while a sync runs: the progress `MirrorSync` tells after each page,
shown per entity type on a terminal (one line rewritten in place) and in a log (plain lines), for
the seeded company paged ten objects at a time, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import re
from typing import Any

from bot.sync_progress import SyncProgressShown, progress_line
from runway.mirror import MIRRORED_ENTITIES, MirrorSync, SyncProgress, SyncReport

PAGE = 10


class Terminal(io.StringIO):
    """What a terminal receives (the stream says it is one)."""

    def isatty(self) -> bool:
        return True


def _pages(received: int) -> int:
    return received // PAGE + 1  # paging stops at the first short page


def _done_line(entity: str, report: SyncReport) -> str:
    counts = report.entities[entity]
    pages = _pages(counts.received)
    return (
        f"  {entity}: {counts.received:,} received ({pages} page{'' if pages == 1 else 's'}), "
        f"{counts.created + counts.updated:,} written"
    )


async def test_each_page_is_told_with_what_was_received_and_written(
    seeded_business: Any,
) -> None:
    told: list[SyncProgress] = []
    mirror = MirrorSync(
        seeded_business.uows, seeded_business.smart_sync(), page_size=PAGE, progress=told.append
    )
    report = await mirror.sync()

    assert [p.entity for p in told if p.done] == list(MIRRORED_ENTITIES)
    for entity in MIRRORED_ENTITIES:
        pages = [p for p in told if p.entity == entity]
        counts = report.entities[entity]
        assert [p.page for p in pages] == list(range(1, _pages(counts.received) + 1))
        assert [p.done for p in pages] == [False] * (len(pages) - 1) + [True]
        assert [p.received for p in pages] == [
            min(n * PAGE, counts.received) for n in range(1, len(pages) + 1)
        ]
        assert pages[-1].written == counts.created == counts.received  # a first sync
    assert report.page_calls == len(told)
    assert max(p.page for p in told if p.entity == "Bill") > 2  # the company has bills to page


async def test_a_log_gets_each_entity_types_last_line(seeded_business: Any) -> None:
    log = io.StringIO()
    shown = SyncProgressShown(log, every=3600.0)  # nothing in between within the hour
    report = await MirrorSync(
        seeded_business.uows, seeded_business.smart_sync(), page_size=PAGE, progress=shown
    ).sync()
    shown.finish()

    assert log.getvalue().splitlines() == [
        _done_line(entity, report) for entity in MIRRORED_ENTITIES
    ]
    assert "\r" not in log.getvalue()


async def test_a_terminal_gets_one_line_per_entity_type_rewritten_in_place(
    seeded_business: Any,
) -> None:
    terminal = Terminal()
    shown = SyncProgressShown(terminal)
    report = await MirrorSync(
        seeded_business.uows, seeded_business.smart_sync(), page_size=PAGE, progress=shown
    ).sync()
    shown.finish()

    lines = terminal.getvalue().split("\n")
    assert lines[-1] == ""  # every line ended
    shown_lines = lines[:-1]
    assert len(shown_lines) == len(MIRRORED_ENTITIES)
    for entity, line in zip(MIRRORED_ENTITIES, shown_lines, strict=True):
        # Each page rewrites the line from its start; the last state stays.
        *updates, last = line.split("\r\x1b[K")
        assert updates[0] == "" and last == _done_line(entity, report)
        pages = _pages(report.entities[entity].received)
        assert [re.sub(r"[\d,]+ received", "", u).split(",")[0] for u in updates[1:]] == [
            f"  {entity}:  (page {n})" for n in range(1, pages)
        ]


def test_a_line_says_the_page_while_paging_and_the_pages_once_done() -> None:
    assert progress_line(SyncProgress("Bill", 12, 12_000, 11_500, done=False)) == (
        "Bill: 12,000 received (page 12), 11,500 written"
    )
    assert progress_line(SyncProgress("Bill", 21, 20_345, 20_345, done=True)) == (
        "Bill: 20,345 received (21 pages), 20,345 written"
    )
    assert progress_line(SyncProgress("Transfer", 1, 0, 0, done=True)) == (
        "Transfer: 0 received (1 page), 0 written"
    )
