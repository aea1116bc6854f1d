"""What a digest read from the mirror, kept with the version of the books it was read at.

A `/runway` asked again, a message redrawn after a click elsewhere, the Home tab opened twice:
each would read the same business, drift and books again. The books' version (`sync.books_version`)
changes in the same transaction as any write, in any process, so a read kept at the version that
stands now is exactly what reading again would give, and is served instead (one statement, the
version, in place of a dozen). A read is kept per business and per shape of what was read (the
rows a surface shows, the bills a message shows), for its business's day only.

With `check` on, every read served from here is read again as well and the two compared, so a
write that failed to change the version shows up as an error where it happens.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import date

from runway.books import BooksSnapshot
from runway.models import Business

#: How many reads a process keeps, the least recently used going first (a seeded company's read
#: holds about 180 KB, mostly its cash movements per day: 128 of them, about 23 MB).
KEPT_READS = 128


@dataclass(frozen=True)
class KeptRead:
    """A business, its open drift and its books, as read at `version` for the day `today`."""

    version: tuple[int, int]
    today: date
    business: Business
    drift: tuple[str, ...]
    books: BooksSnapshot


class StaleRead(AssertionError):
    """A kept read differs from the mirror at the same version: a write did not change it."""


class KeptReads:
    """The latest read of each business and shape, served while the books' version stands."""

    def __init__(self, size: int = KEPT_READS, *, check: bool = False) -> None:
        self.size = size
        self.check = check
        self.served = 0
        self._reads: OrderedDict[Hashable, KeptRead] = OrderedDict()

    def get(self, key: Hashable, version: tuple[int, int]) -> KeptRead | None:
        """The read kept for `key` at `version`, if one is."""
        read = self._reads.get(key)
        if read is None or read.version != version:
            return None
        self._reads.move_to_end(key)
        self.served += 1
        return read

    def keep(self, key: Hashable, read: KeptRead) -> None:
        self._reads[key] = read
        self._reads.move_to_end(key)
        while len(self._reads) > self.size:
            self._reads.popitem(last=False)

    def compare(self, kept: KeptRead, fresh: KeptRead) -> None:
        """Raise StaleRead unless `kept` says what `fresh`, read again now, says."""
        differences = [
            part
            for part, same in (
                ("business", _business_fields(kept.business) == _business_fields(fresh.business)),
                ("drift", kept.drift == fresh.drift),
                ("books", kept.books == fresh.books),
            )
            if not same
        ]
        if differences:
            raise StaleRead(
                f"the read kept for business {kept.business.id!r} at books version "
                f"{kept.version} differs from the mirror in its {', '.join(differences)}: "
                "a write did not change the books' version"
            )


def _business_fields(business: Business) -> dict[str, object]:
    return {column.key: getattr(business, column.key) for column in Business.__table__.columns}
