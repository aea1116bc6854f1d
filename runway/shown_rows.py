"""Which rows of the digest's lists a surface shows, and how a list's window is put together.

The digest's lists (overdue bills, bills due, overdue invoices) are counted and summed whole,
but a surface shows only some of their rows: the digest a few of each and "and N more",
`/runway bills` a page. `ShownRows` says which; `runway.snapshot.load_books` reads only those
rows (and the few documents the Python rules must see whole), and `runway.digest` builds each
list's window from them with `merged_window`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

#: The digest's bills due are those due today or within this many days.
DUE_SOON_DAYS = 7


@dataclass(frozen=True, slots=True)
class Window:
    """Rows `start` up to (not including) `stop` of a list, in its order; `stop` None: to the end."""

    start: int = 0
    stop: int | None = None

    def __post_init__(self) -> None:
        if self.start < 0 or (self.stop is not None and self.stop < self.start):
            raise ValueError(f"a window runs from 0 or more to no less than its start: {self}")

    def holds(self, index: int) -> bool:
        return index >= self.start and (self.stop is None or index < self.stop)


@dataclass(frozen=True, slots=True)
class ShownRows:
    """The rows of the digest's lists a surface shows.

    `first`: the first rows of each list (each part of the bills, the overdue invoices; None:
    every row). `bills_page` / `invoices_page`: (offset, how many) of a paged list instead (the
    bills are paged overdue ones first, then those due).
    """

    first: int | None = None
    bills_page: tuple[int, int] | None = None
    invoices_page: tuple[int, int] | None = None

    def _head(self) -> Window:
        return Window(0, None if self.first is None else max(0, self.first))

    def bill_windows(self, overdue: int) -> tuple[Window, Window]:
        """(overdue bills' window, bills due's window), when `overdue` bills are overdue."""
        if self.bills_page is None:
            return self._head(), self._head()
        offset, size = max(0, self.bills_page[0]), max(0, self.bills_page[1])
        return (
            Window(min(offset, overdue), min(offset + size, overdue)),
            Window(max(0, offset - overdue), max(0, offset + size - overdue)),
        )

    def bill_windows_between(self, fewest: int, most: int) -> tuple[Window, Window]:
        """Windows holding both parts' windows for any count of overdue bills from `fewest` to
        `most` (what to read before the exact count is known)."""
        (low_overdue, low_due), (high_overdue, high_due) = (
            self.bill_windows(fewest),
            self.bill_windows(most),
        )
        return _hull(low_overdue, high_overdue), _hull(low_due, high_due)

    def invoice_window(self) -> Window:
        if self.invoices_page is None:
            return self._head()
        offset, size = max(0, self.invoices_page[0]), max(0, self.invoices_page[1])
        return Window(offset, offset + size)


#: The digest, Slack's and the email's: the first rows of each list (Slack shows up to 8, the email
#: 10).
DIGEST_ROWS = ShownRows(first=10)
#: Counts and totals only (`/runway`'s summary).
NO_ROWS = ShownRows(first=0)
#: Every row of every list (a snapshot with every open document, tests).
EVERY_ROW = ShownRows()


def bills_page(offset: int, size: int) -> ShownRows:
    return ShownRows(first=0, bills_page=(offset, size))


def invoices_page(offset: int, size: int) -> ShownRows:
    return ShownRows(first=0, invoices_page=(offset, size))


def fetch_window(window: Window, others: int) -> Window:
    """The rows of the plain part of a list to read so that, merged with `others` rows read
    whole, `window` of the merged list can be told exactly (`merged_window`)."""
    return Window(max(0, window.start - others), window.stop)


def merged_window(
    plain: Sequence[T],
    plain_start: int,
    plain_count: int,
    others: Sequence[T],
    window: Window,
    key: Callable[[T], Any],
) -> tuple[T, ...]:
    """The rows of `window` of a list made of two sorted parts: `plain`, rows `plain_start`
    onwards of a part `plain_count` long (read as `fetch_window` says, or more), and `others`,
    every row of the other part. `key` orders the list, no two rows alike.

    A row's place is how many rows of either part come before it. An `others` row beyond the
    plain rows read is outside the window: before them it has at most `plain_start` plain rows
    and every other `others` row ahead of it, which ends before the window's start; after them it
    has the plain rows up to the window's stop ahead of it.
    """
    other_keys = sorted(key(row) for row in others)
    plain_keys = [key(row) for row in plain]
    placed: list[tuple[int, T]] = []
    for index, row in enumerate(plain):
        place = plain_start + index + _before(other_keys, plain_keys[index])
        placed.append((place, row))
    plain_end = plain_start + len(plain)
    for row in others:
        mine = key(row)
        ahead = _before(plain_keys, mine)
        if ahead == 0 and plain_start > 0:
            continue
        if ahead == len(plain) and plain_end < plain_count:
            continue
        placed.append((plain_start + ahead + _before(other_keys, mine), row))
    placed.sort(key=lambda pair: pair[0])
    return tuple(row for place, row in placed if window.holds(place))


def _before(sorted_keys: Sequence[Any], key: Any) -> int:
    """How many of `sorted_keys` are smaller than `key`."""
    return bisect_left(sorted_keys, key)


def _hull(one: Window, other: Window) -> Window:
    stop = None if one.stop is None or other.stop is None else max(one.stop, other.stop)
    return Window(min(one.start, other.start), stop)


__all__ = [
    "DIGEST_ROWS",
    "DUE_SOON_DAYS",
    "EVERY_ROW",
    "NO_ROWS",
    "ShownRows",
    "Window",
    "bills_page",
    "fetch_window",
    "invoices_page",
    "merged_window",
]
