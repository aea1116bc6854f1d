"""Any settings-modal submission Slack could deliver is read field by field or refused per field
(hypothesis): never an exception, never a value the database cannot take."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.slack.settings_modal import read_settings
from runway.formatting import LOCALE_CHOICES

HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["NaN", "1e30", "-1", "", "\x00", "9" * 40, "<!channel>", "U\x00", "C" * 300]),
    st.text(max_size=40),
)


JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=12,
)
FIELDS = ("pay_from", "locale", "digest_day", "digest_time", "timezone", "approvers", "approver_emails",
          "threshold", "buffer", "channel", "emails")
KEYS = ("value", "selected_option", "selected_time", "selected_users", "selected_conversation")


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(
    state=st.dictionaries(
        st.sampled_from(FIELDS),
        st.one_of(JSON, st.fixed_dictionaries({"value": st.one_of(JSON, st.dictionaries(st.sampled_from(KEYS), st.one_of(JSON, HOSTILE)))})),
    )
)
# A timezone too long to be a file name made the zone lookup raise OSError.
@example(state={"timezone": {"value": {"value": "C" * 300}}})
def test_any_settings_submission_is_read_or_refused_field_by_field(state: dict[str, Any]) -> None:
    """A signed view submission of any shape: saved, or an error per field; never an exception,
    never a value the database cannot take (1e30, NUL bytes, non-text ids)."""
    answer = read_settings(state, frozenset({"35"}))
    assert answer.errors or answer.changes
    for value in answer.changes.values():
        assert "\x00" not in str(value)
    assert answer.changes.get("locale", "en_US") in LOCALE_CHOICES
    threshold = answer.changes.get("approval_threshold")
    assert threshold is None or threshold <= Decimal("9999999999999999.99")


def test_a_style_off_the_list_is_refused_with_the_list() -> None:
    def chosen(value: str) -> dict[str, Any]:
        return {"locale": {"value": {"type": "static_select", "selected_option": {"value": value}}}}

    refused = read_settings(chosen("fr_FR"))
    assert refused.changes == {}
    assert refused.errors["locale"].startswith("fr_FR is not a style Oodaloo offers; choose one")
    assert "en_GB" in refused.errors["locale"]
    assert "locale" not in read_settings(chosen("en_DE")).errors
    # A business whose company's country gave it a locale off the list keeps it on saving.
    assert "locale" not in read_settings(chosen("en_IN"), current_locale="en_IN").errors
    assert "locale" in read_settings(chosen("en_IN"), current_locale="en_GB").errors
