"""Text from QuickBooks made harmless for Slack mrkdwn, and text cut to Slack's limits.

Slack's own rule: in mrkdwn, `&`, `<` and `>` are control characters and must be sent as `&amp;`,
`&lt;` and `&gt;`. That alone stops a name from forming a link, a user mention or `<!channel>`.
Every mrkdwn text object Oodaloo sends is also `verbatim`, so Slack does not turn a bare URL,
`#channel` or `@channel` typed into QuickBooks into a link or a ping.

Formatting characters have no escape in mrkdwn: a vendor called `*Acme*_` would be shown bold.
`escape` therefore puts a zero-width space (U+200B) after each of `*`, `_`, `~`, a backtick and
`@`. Slack only opens bold, italic, strike or code when the marker is followed by a non-space
character, and it treats U+200B as a word break (the same trick people use to force bold in the
middle of a word); the name looks unchanged and copies with only an invisible extra character.
Line breaks become spaces, so a name can never start a new line (a `>` quote, a list).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

ZERO_WIDTH_SPACE = "\u200b"
ELLIPSIS = "…"

#: Characters that open or close mrkdwn formatting, and `@` (mentions typed as plain text).
FORMATTING_CHARACTERS = frozenset("*_~`@")

_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def escape(text: str) -> str:
    """`text` (from QuickBooks or a person) as inert mrkdwn: shown as typed, never formatted."""
    out: list[str] = []
    for ch in text:
        if ch in _ENTITIES:
            out.append(_ENTITIES[ch])
        elif ch in FORMATTING_CHARACTERS:
            out.append(ch + ZERO_WIDTH_SPACE)
        elif ch in "\r\n\t\v\f\u2028\u2029":
            out.append(" ")
        elif ch.isprintable() or ch == ZERO_WIDTH_SPACE:
            out.append(ch)
        # Other control characters are dropped: Slack would show them as boxes, if at all.
    return "".join(out)


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in "…" when it was longer.

    For plain text and for raw names before they are escaped (cutting escaped mrkdwn could split
    an `&amp;`).
    """
    if limit < 1:
        raise ValueError(f"a clip limit must be at least 1 character, got {limit}")
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + ELLIPSIS


def clip_lines(
    lines: Sequence[str],
    limit: int,
    more: Callable[[int], str] | None = None,
    *,
    most: int | None = None,
) -> str:
    """Whole lines joined by newlines, as many as fit in `limit` characters.

    At most `most` lines are kept when it is given. When some are left out, the line `more(n)`
    (n = how many were left out) ends the text. mrkdwn is cut between lines, never inside one, so
    no entity or formatting is split.
    """
    kept = 0
    used = -1  # no newline before the first line
    for index, line in enumerate(lines):
        if most is not None and index >= most:
            break
        after = used + 1 + len(line)
        left = len(lines) - index - 1
        tail = len(more(left)) + 1 if left and more is not None else 0
        if after + tail > limit:
            break
        kept, used = index + 1, after
    if kept == len(lines):
        return "\n".join(lines)
    if kept == 0:  # not even one line fits: the only case that cuts inside a line
        return clip("\n".join(lines), limit)
    shown = [*lines[:kept], *([more(len(lines) - kept)] if more is not None else [])]
    return "\n".join(shown)
