"""The words of Oodaloo's Slack messages: Jinja2 templates in `templates/slack/*.md.j2`.

Templates produce Slack mrkdwn. Autoescape is off because mrkdwn is not HTML: every value from
QuickBooks goes through the `mrkdwn` filter (`bot.slack.mrkdwn.escape`) in the template itself,
and an undefined variable is an error, not an empty string. Filters: `mrkdwn`, `money`
(`amount|money(currency)`), `days` ("1 day", "3 days"), `signed_days` ("+3 days", "−2 days"),
`day` ("Mon 2 Mar"), `time` ("9:02 AM PST"), `moment` ("Mon 2 Mar, 9:02 AM PST"), each on the
clock of the time it is given (the caller converts it to the business's); money, dates and times
come from `runway.formatting`, in the business's locale: a template that writes any of them is
rendered with `locale=` (the digest view's), and one rendered without it is an error.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context
from jinja2.runtime import Context

from bot.packaged import templates_dir
from bot.slack.mrkdwn import escape
from runway.calculator import format_days
from runway.formatting import format_day, format_moment, format_time, money

SUFFIX = ".md.j2"


def _locale(context: Context) -> str:
    """The business's locale the template was rendered with (no silent default: a surface that
    forgot it would write another country's money)."""
    locale = context.get("locale")
    if not isinstance(locale, str):
        raise ValueError(
            f"template {context.name} writes money or dates: render it with locale= (the "
            "business's, e.g. view.locale)"
        )
    return locale


@pass_context
def _money(context: Context, amount: Decimal, currency: str) -> str:
    return money(amount, currency, locale=_locale(context))


@pass_context
def _day(context: Context, day: date | datetime) -> str:
    return format_day(day, _locale(context))


@pass_context
def _time(context: Context, moment: datetime) -> str:
    return format_time(moment, None, _locale(context))


@pass_context
def _moment(context: Context, moment: datetime) -> str:
    return format_moment(moment, None, _locale(context))


def days(count: int) -> str:
    return format_days(count)


def signed_days(change: int) -> str:
    """+3 days, −2 days, ±0 days (a true minus sign, as the runway sentences use)."""
    sign = "+" if change > 0 else ("−" if change < 0 else "±")
    return f"{sign}{format_days(abs(change))}"


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(templates_dir() / "slack"),
        undefined=StrictUndefined,
        autoescape=False,  # mrkdwn, not HTML: values are escaped by the `mrkdwn` filter
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(
        mrkdwn=escape,
        money=_money,
        days=days,
        signed_days=signed_days,
        day=_day,
        time=_time,
        moment=_moment,
    )
    return env


def render(name: str, /, **context: Any) -> str:
    """Template `templates/slack/{name}.md.j2` rendered with `context`, surrounding blanks removed."""
    return environment().get_template(name + SUFFIX).render(**context).strip()
