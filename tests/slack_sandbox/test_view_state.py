"""A modal's submitted state, as Slack builds it from what a person filled in or left alone."""

from __future__ import annotations

from typing import Any

import pytest

from slack_sandbox.config import SlackSandboxConfig
from slack_sandbox.view_state import response_urls_for, submitted_state
from slack_sandbox.workspace import View, Workspace


def _input(block_id: str, element: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "input",
        "block_id": block_id,
        "label": {"type": "plain_text", "text": block_id},
        "element": element,
    }


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": text}, "value": value}


SETTINGS = {
    "type": "modal",
    "callback_id": "settings",
    "title": {"type": "plain_text", "text": "Runway settings"},
    "blocks": [
        _input(
            "tz",
            {"type": "plain_text_input", "action_id": "value", "initial_value": "America/Denver"},
        ),
        _input(
            "day",
            {
                "type": "static_select",
                "action_id": "value",
                "options": [_option("Monday", "0"), _option("Friday", "4")],
                "initial_option": _option("Monday", "0"),
            },
        ),
        _input("approvers", {"type": "multi_users_select", "action_id": "value"}),
        _input("memo", {"type": "plain_text_input", "action_id": "value"}),
        _input(
            "channel",
            {"type": "conversations_select", "action_id": "value", "response_url_enabled": True},
        ),
        {"type": "section", "text": {"type": "mrkdwn", "text": "not an input"}},
    ],
}


@pytest.fixture
def view() -> View:
    return Workspace(SlackSandboxConfig()).open_view("U0OWNER01", SETTINGS)


def test_inputs_left_alone_keep_their_initial_values_or_are_empty(view: View) -> None:
    state = submitted_state(view, {})
    assert state["tz"]["value"] == {"type": "plain_text_input", "value": "America/Denver"}
    assert state["day"]["value"] == {
        "type": "static_select",
        "selected_option": _option("Monday", "0"),
    }
    assert state["approvers"]["value"] == {"type": "multi_users_select", "selected_users": []}
    assert state["memo"]["value"] == {"type": "plain_text_input", "value": None}
    assert state["channel"]["value"] == {
        "type": "conversations_select",
        "selected_conversation": None,
    }
    assert set(state) == {"tz", "day", "approvers", "memo", "channel"}


def test_plain_values_become_slacks_entries(view: View) -> None:
    state = submitted_state(
        view,
        {
            "day": {"value": "4"},
            "approvers": {"value": ["U0OWNER01", "U0BOOKS02"]},
            "memo": {"value": "Landlord confirmed"},
            "channel": {"value": "C0FINANCE"},
        },
    )
    assert state["day"]["value"]["selected_option"] == _option("Friday", "4")
    assert state["approvers"]["value"]["selected_users"] == ["U0OWNER01", "U0BOOKS02"]
    assert state["memo"]["value"]["value"] == "Landlord confirmed"
    assert response_urls_for(view, state) == [("channel", "value", "C0FINANCE")]


def test_a_given_slack_entry_is_sent_as_it_is(view: View) -> None:
    state = submitted_state(view, {"tz": {"value": {"type": "plain_text_input", "value": "UTC"}}})
    assert state["tz"]["value"] == {"type": "plain_text_input", "value": "UTC"}


def test_mistakes_in_the_test_say_what_the_modal_has(view: View) -> None:
    with pytest.raises(LookupError, match="no inputs"):
        submitted_state(view, {"timezone": {"value": "UTC"}})
    with pytest.raises(LookupError, match="no option '9'"):
        submitted_state(view, {"day": {"value": "9"}})
