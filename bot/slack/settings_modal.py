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

from bot.slack.tenancy import SLACK_ID
from runway.businesses import check_timezone
from runway.formatting import LOCALE_CHOICES, locale_label
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
            _locale_input(business.locale),
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


def locale_choices(current: str | None = None) -> tuple[str, ...]:
    """The locales the modal offers: the short list, and the business's own where it is not on
    it (taken from its QuickBooks company's country), so saving untouched keeps it."""
    if current is None or current in LOCALE_CHOICES:
        return LOCALE_CHOICES
    return (*LOCALE_CHOICES, current)


def _locale_input(current: str) -> dict[str, Any]:
    options = [_option(locale_label(locale), locale) for locale in locale_choices(current)]
    chosen = next(option for option in options if option["value"] == current)
    return _input(
        "locale",
        "Money and time style",
        {"type": "static_select", "options": options, "initial_option": chosen},
        hint="How amounts, dates and times are written in the digest, /runway and the email.",
    )


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
    """What one input of the submitted modal holds (empty when Slack sent something else)."""
    block = values.get(block_id) if isinstance(values, dict) else None
    found = block.get("value") if isinstance(block, dict) else None
    return found if isinstance(found, dict) else {}


def _typed(found: object) -> str:
    """A field's text, or "" for anything that is not text or holds control characters (NUL
    bytes and the like never reach the database)."""
    if not isinstance(found, str) or any(ord(ch) < 32 and ch not in "\t\n\r" for ch in found):
        return ""
    return found


def _chosen(values: dict[str, Any], block_id: str) -> str:
    selected = _value(values, block_id).get("selected_option")
    return _typed(selected.get("value")) if isinstance(selected, dict) else ""


def _money(raw: str | None, what: str) -> tuple[Decimal | None, str | None]:
    text = (raw or "").strip().replace(",", "").lstrip("$")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return None, f"Enter {what} as an amount such as 5000 or 5000.00."
    if not amount.is_finite() or amount < 0:
        return None, f"{what.capitalize()} must be zero or more."
    # Size first: 1e30 cannot even be rounded to cents in Decimal's 28 digits.
    if amount > _MAX_MONEY:
        return None, f"{what.capitalize()} is too large (at most {_MAX_MONEY:,.2f})."
    if amount != amount.quantize(Decimal("0.01")):
        return None, "Use at most two decimal places (cents)."
    return amount.quantize(Decimal("0.01")), None


def _emails(raw: object) -> list[str]:
    """Addresses typed one per line, or separated by commas, semicolons or spaces (lower-cased:
    email addresses are matched without regard to case)."""
    return [part.strip().lower() for part in re.split(r"[,;\s]+", str(raw or "")) if part.strip()]


def read_settings(
    state_values: dict[str, Any],
    bank_ids: frozenset[str] = frozenset(),
    current_locale: str | None = None,
) -> SettingsAnswer:
    """The business fields the modal's answers set, or an error message per field
    (`current_locale`: the business's locale, which stays a choice where it is not on the list)."""
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}

    if "locale" in state_values:  # a modal opened before the field existed has none
        locale = _chosen(state_values, "locale")
        choices = locale_choices(current_locale)
        if locale in choices:
            changes["locale"] = locale
        else:
            errors["locale"] = (
                f"{locale or 'That'} is not a style Oodaloo offers; choose one of the list "
                f"({', '.join(choices)})."
            )

    if "pay_from" in state_values:
        account = _chosen(state_values, "pay_from")
        if account not in bank_ids:
            errors["pay_from"] = "Choose one of the business's bank accounts."
        else:
            changes["payment_bank_account_id"] = account

    day = _chosen(state_values, "digest_day")
    if day in {str(weekday) for weekday in range(7)}:
        changes["digest_weekday"] = int(day)
    else:
        errors["digest_day"] = "Choose the day the digest comes."

    raw_time = _typed(_value(state_values, "digest_time").get("selected_time"))
    try:
        hour, minute = (int(part) for part in raw_time.split(":"))
        changes["digest_local_time"] = time(hour, minute)
    except ValueError:
        errors["digest_time"] = "Choose a time such as 08:00."

    zone = _typed(_value(state_values, "timezone").get("value")).strip()
    try:
        changes["timezone"] = check_timezone(zone)
    except ValueError:
        errors["timezone"] = f"{zone or 'An empty value'} is not a timezone; use a name like America/Chicago."

    users = _value(state_values, "approvers").get("selected_users")
    approvers = [user for user in users if SLACK_ID.fullmatch(_typed(user))] if isinstance(users, list) else []
    by_email = _emails(_typed(_value(state_values, "approver_emails").get("value")))
    bad_approvers = [email for email in by_email if not _EMAIL.match(email)]
    if not approvers:
        errors["approvers"] = "Choose at least one approver."
    elif bad_approvers:
        errors["approver_emails"] = f"Not an email address: {', '.join(bad_approvers[:3])}"
    else:
        changes["approvers"] = list(dict.fromkeys([*approvers, *by_email]))

    threshold, problem = _money(_typed(_value(state_values, "threshold").get("value")), "the threshold")
    if problem:
        errors["threshold"] = problem
    else:
        changes["approval_threshold"] = threshold

    buffer, problem = _money(_typed(_value(state_values, "buffer").get("value")), "the buffer")
    if problem:
        errors["buffer"] = problem
    else:
        changes["min_cash_buffer"] = buffer

    channel = _typed(_value(state_values, "channel").get("selected_conversation"))
    if not SLACK_ID.fullmatch(channel):
        errors["channel"] = "Choose the channel the digest goes to."
    else:
        changes["slack_channel_id"] = str(channel)

    emails = _emails(_typed(_value(state_values, "emails").get("value")))
    bad = [email for email in emails if not _EMAIL.match(email)]
    if bad:
        errors["emails"] = f"Not an email address: {', '.join(bad[:3])}"
    else:
        changes["email_recipients"] = list(dict.fromkeys(emails))

    return SettingsAnswer({} if errors else changes, errors)
