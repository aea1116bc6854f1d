"""The words of Oodaloo's Slack messages: Jinja2 templates in `templates/slack/*.md.j2`.

Templates produce Slack mrkdwn. Autoescape is off because mrkdwn is not HTML: every value from
QuickBooks goes through the `mrkdwn` filter (`bot.slack.mrkdwn.escape`) in the template itself,
and an undefined variable is an error, not an empty string. Filters: `mrkdwn`, `money`
(`amount|money(currency)`), `days` ("1 day", "3 days"), `signed_days` ("+3 days", "−2 days"),
`day` ("Mon 2 Mar"), `time` ("9:02 AM PST"), `moment` ("Mon 2 Mar, 9:02 AM PST"), each on the
clock of the time it is given (the caller converts it to the business's); money, dates and times
come from `runway.formatting`.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from bot.packaged import templates_dir
from bot.slack.mrkdwn import escape
from runway.calculator import format_days
from runway.formatting import format_day, format_moment, format_time, money

SUFFIX = ".md.j2"


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
        money=money,
        days=days,
        signed_days=signed_days,
        day=format_day,
        time=format_time,
        moment=format_moment,
    )
    return env


def render(name: str, /, **context: Any) -> str:
    """Template `templates/slack/{name}.md.j2` rendered with `context`, surrounding blanks removed."""
    return environment().get_template(name + SUFFIX).render(**context).strip()
