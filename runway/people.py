"""People: one person, whichever door they come through.

An approver acts from Slack (a user id such as `U024BE7LH`) or from the email digest (the address
the email went to). Oodaloo keeps which Slack user has which email address (from the Slack
profile), so "a second, different approver" means a different *person*: the Slack id and the email
address of one person are one approver, never two.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: What a Slack user id looks like (anything else naming an actor is an email address).
SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{2,31}")


def is_email(actor: str) -> bool:
    return "@" in actor


def canonical(actor: str) -> str:
    """How an actor is compared: email addresses without case or surrounding blanks."""
    actor = actor.strip()
    return actor.lower() if is_email(actor) else actor


def is_identifier(actor: str) -> bool:
    """Whether `actor` can name a person at all: a Slack user id or an email address of sensible
    length, without control characters (anything else is never looked up or stored)."""
    if len(actor) > 320 or any(ord(ch) < 32 for ch in actor):
        return False
    return is_email(actor) or SLACK_USER_ID.fullmatch(actor) is not None


def same_person(identities: Iterable[str], other: str) -> bool:
    """Whether `other` names the person whose known identifiers are `identities`."""
    return canonical(other) in {canonical(name) for name in identities}


__all__ = ["SLACK_USER_ID", "canonical", "is_email", "is_identifier", "same_person"]
