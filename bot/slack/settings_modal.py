"""`/runway settings`: the modal, and reading its answers back with an error per field.

Nothing is saved unless every field is valid; Slack shows each error under its field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import time
from decimal import Decimal, InvalidOperation
from typing import Any

from runway.businesses import check_timezone
from runway.models import Business

CALLBACK_ID = "runway_settings"
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_EMAIL = re.compile(r"^[^@\s<>,;\"']+@[^@\s<>,;\"']+\.[^@\s<>,;\"']+$")
_MAX_MONEY = Decimal("9999999999999999.99")


def _text(value: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": value}


def _option(label: str, value: str) -> dict[str, Any]:
    return {"text": _text(label), "value": value}


def _input(block_id: str, label: str, element: dict[str, Any], hint: str | None = None,
           optional: bool = False) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "input",
        "block_id": block_id,
        "label": _text(label),
        "element": {**element, "action_id": "value"},
        "optional": optional,
    }
    if hint:
        block["hint"] = _text(hint)
    return block


def settings_view(
    business: Business,
    channel_id: str,
    banks: list[tuple[str, str]] | None = None,
    *,
    paying_from: str | None = None,
) -> dict[str, Any]:
    """The modal, filled in with the business's settings; `banks` are (QuickBooks id, name) of the
    bank accounts bills may be paid from, and `paying_from` the one payments go from now
    (`runway.businesses.payment_account_id`; by default the business's own choice)."""
    day = business.digest_weekday
    emails = "\n".join(business.email_recipients or [])
    channel = business.slack_channel_id or channel_id
    conversation: dict[str, Any] = {
        "type": "conversations_select",
        "filter": {"include": ["public", "private"], "exclude_bot_users": True},
    }
    if channel:
        conversation["initial_conversation"] = channel
    # Approvers are Slack users, and email addresses for acting from the email digest's links.
    slack_approvers = [a for a in business.approvers or [] if "@" not in a]
    email_approvers = "\n".join(a for a in business.approvers or [] if "@" in a)
    approvers: dict[str, Any] = {"type": "multi_users_select"}
    if slack_approvers:
        approvers["initial_users"] = slack_approvers
    return {
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "private_metadata": json.dumps({"channel_id": channel_id}),
        "title": _text("Runway settings"),
        "submit": _text("Save"),
        "close": _text("Cancel"),
        "blocks": [
            _input(
                "digest_day",
                "Digest day",
                {
                    "type": "static_select",
                    "options": [_option(name, str(i)) for i, name in enumerate(WEEKDAYS)],
                    "initial_option": _option(WEEKDAYS[day], str(day)),
                },
            ),
            _input(
                "digest_time",
                "Digest time",
                {"type": "timepicker", "initial_time": business.digest_local_time.strftime("%H:%M")},
            ),
            _input(
                "timezone",
                "Timezone",
                {"type": "plain_text_input", "initial_value": business.timezone},
                hint="An IANA name such as America/Chicago or Europe/London.",
            ),
            _input("approvers", "Approvers", approvers, hint="Who may approve and pay bills."),
            _input(
                "approver_emails",
                "Approvers by email",
                {"type": "plain_text_input", "multiline": True, "initial_value": email_approvers},
                hint="Addresses whose links in the email digest may approve and pay (one per line).",
                optional=True,
            ),
            _input(
                "threshold",
                "Second approval above",
                {"type": "plain_text_input", "initial_value": f"{business.approval_threshold:.2f}"},
                hint="Bills above this amount need two different approvers.",
            ),
            _input(
                "buffer",
                "Cash buffer",
                {"type": "plain_text_input", "initial_value": f"{business.min_cash_buffer:.2f}"},
                hint="Runway also says when cash would fall below this amount.",
            ),
            _input("channel", "Digest channel", conversation),
            *([_pay_from(banks, paying_from or business.payment_bank_account_id)] if banks else []),
            _input(
                "emails",
                "Email the digest to",
                {"type": "plain_text_input", "multiline": True, "initial_value": emails},
                hint="One address per line (or separated by commas).",
                optional=True,
            ),
        ],
    }


def _pay_from(banks: list[tuple[str, str]], paying_from: str | None) -> dict[str, Any]:
    options = [_option(name[:75], account_id) for account_id, name in banks[:100]]
    element: dict[str, Any] = {"type": "static_select", "options": options}
    # Starts from the account payments go from, so saving the modal untouched changes nothing.
    chosen = next((o for o in options if o["value"] == paying_from), None)
    if chosen is not None:
        element["initial_option"] = chosen
    return _input("pay_from", "Pay bills from", element, hint="The QuickBooks bank account bill payments come out of.")


@dataclass(frozen=True)
class SettingsAnswer:
    changes: dict[str, Any]
    errors: dict[str, str]


def _value(values: dict[str, Any], block_id: str) -> dict[str, Any]:
    found = (values.get(block_id) or {}).get("value")
    return found if isinstance(found, dict) else {}


def _money(raw: str | None, what: str) -> tuple[Decimal | None, str | None]:
    text = (raw or "").strip().replace(",", "").lstrip("$")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return None, f"Enter {what} as an amount such as 5000 or 5000.00."
    if not amount.is_finite() or amount < 0:
        return None, f"{what.capitalize()} must be zero or more."
    if amount != amount.quantize(Decimal("0.01")):
        return None, "Use at most two decimal places (cents)."
    if amount > _MAX_MONEY:
        return None, f"{what.capitalize()} is too large."
    return amount.quantize(Decimal("0.01")), None


def _emails(raw: object) -> list[str]:
    """Addresses typed one per line, or separated by commas, semicolons or spaces (lower-cased:
    email addresses are matched without regard to case)."""
    return [part.strip().lower() for part in re.split(r"[,;\s]+", str(raw or "")) if part.strip()]


def read_settings(
    state_values: dict[str, Any], bank_ids: frozenset[str] = frozenset()
) -> SettingsAnswer:
    """The business fields the modal's answers set, or an error message per field."""
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}

    if "pay_from" in state_values:
        account = (_value(state_values, "pay_from").get("selected_option") or {}).get("value")
        if account not in bank_ids:
            errors["pay_from"] = "Choose one of the business's bank accounts."
        else:
            changes["payment_bank_account_id"] = account

    day = _value(state_values, "digest_day").get("selected_option") or {}
    try:
        weekday = int(day.get("value", ""))
        if not 0 <= weekday <= 6:
            raise ValueError
        changes["digest_weekday"] = weekday
    except ValueError:
        errors["digest_day"] = "Choose the day the digest comes."

    raw_time = _value(state_values, "digest_time").get("selected_time") or ""
    try:
        hour, minute = (int(part) for part in str(raw_time).split(":"))
        changes["digest_local_time"] = time(hour, minute)
    except ValueError:
        errors["digest_time"] = "Choose a time such as 08:00."

    zone = str(_value(state_values, "timezone").get("value") or "").strip()
    try:
        changes["timezone"] = check_timezone(zone)
    except ValueError:
        errors["timezone"] = f"{zone or 'An empty value'} is not a timezone; use a name like America/Chicago."

    approvers = [str(user) for user in _value(state_values, "approvers").get("selected_users") or []]
    by_email = _emails(_value(state_values, "approver_emails").get("value"))
    bad_approvers = [email for email in by_email if not _EMAIL.match(email)]
    if not approvers:
        errors["approvers"] = "Choose at least one approver."
    elif bad_approvers:
        errors["approver_emails"] = f"Not an email address: {', '.join(bad_approvers[:3])}"
    else:
        changes["approvers"] = list(dict.fromkeys([*approvers, *by_email]))

    threshold, problem = _money(_value(state_values, "threshold").get("value"), "the threshold")
    if problem:
        errors["threshold"] = problem
    else:
        changes["approval_threshold"] = threshold

    buffer, problem = _money(_value(state_values, "buffer").get("value"), "the buffer")
    if problem:
        errors["buffer"] = problem
    else:
        changes["min_cash_buffer"] = buffer

    channel = _value(state_values, "channel").get("selected_conversation")
    if not channel:
        errors["channel"] = "Choose the channel the digest goes to."
    else:
        changes["slack_channel_id"] = str(channel)

    emails = _emails(_value(state_values, "emails").get("value"))
    bad = [email for email in emails if not _EMAIL.match(email)]
    if bad:
        errors["emails"] = f"Not an email address: {', '.join(bad[:3])}"
    else:
        changes["email_recipients"] = list(dict.fromkeys(emails))

    return SettingsAnswer({} if errors else changes, errors)
