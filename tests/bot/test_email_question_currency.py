"""The confirmation question of a Pay link for a bill the mirror does not hold (not synced yet,
or deleted in QuickBooks): the link's token carries an amount but no currency, so the amount is
written in the business's home currency, never in dollars by default."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from conftest_email import BUSINESS, db_url_fixture, migrated_fixture, runway_env, set_business

from bot.email import ActionKind, EmailAction, LinkSigner, default_question, mirror_describer
from sync.clock import ManualClock

__all__ = ["db_url_fixture", "migrated_fixture", "runway_env"]  # fixtures, imported for pytest

OWNER = "owner@larkspur.example"


def pay_link(amount: Decimal) -> EmailAction:
    signer = LinkSigner(
        secrets.token_bytes(32),
        ManualClock(datetime.now(UTC)),
        public_url="https://oodaloo.example.com",
    )
    return signer.read_action(
        signer.action_token(BUSINESS, ActionKind.BILL_PAY, "9999", OWNER, amount=amount)
    )


async def test_a_bill_not_in_the_mirror_is_asked_about_in_the_home_currency(
    runway_env: Any,
) -> None:
    await set_business(runway_env, home_currency="EUR")
    describe = mirror_describer(runway_env.uows)

    confirmation = await describe(pay_link(Decimal("1234.56")))

    assert confirmation.question == "Pay €1,234.56 on bill 9999?"
    assert confirmation.can_act
    assert confirmation.timezone == "America/Los_Angeles"  # the business's, for the expiry


def test_with_nothing_known_the_amount_is_said_without_a_currency() -> None:
    action = pay_link(Decimal("1234.56"))

    assert default_question(action) == "Pay 1,234.56 on bill 9999?"
    assert default_question(action, "GBP") == "Pay £1,234.56 on bill 9999?"
