"""QBO query statements over a realm's indexed tables."""

from __future__ import annotations

from typing import Any

from qbo_sandbox.store import QueryError, Realm

__all__ = ["QueryError", "execute"]


def execute(realm: Realm, text: str) -> dict[str, Any]:
    raise NotImplementedError("the query engine is being written")
