"""Who gets a business's digest by email: removing an address when its owner unsubscribes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from runway.businesses import BusinessDirectory


async def remove_recipient(directory: BusinessDirectory, business_id: str, recipient: str) -> bool:
    """Take `recipient` off the business's email list (compared without case); True if it was on.

    Unsubscribing an address that is not on the list changes nothing, so a second click, or a
    mail client's one-click POST after the reader's own, is harmless.
    """
    business = await directory.get(business_id)
    current = list(business.email_recipients or [])
    kept = [address for address in current if address.strip().lower() != recipient.strip().lower()]
    if len(kept) == len(current):
        return False
    await directory.update(business_id, email_recipients=kept)
    return True


def unsubscriber(directory: BusinessDirectory) -> Callable[[str, str], Awaitable[None]]:
    """The `unsubscribe` callable `email_routes` takes, backed by the business directory."""

    async def unsubscribe(business_id: str, recipient: str) -> None:
        await remove_recipient(directory, business_id, recipient)

    return unsubscribe
