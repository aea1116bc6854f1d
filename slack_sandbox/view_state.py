"""What a modal submits: `view.state.values` as Slack builds it from the inputs a person filled in.

An input the person leaves alone is submitted with what the modal opened with (its `initial_*`), or
empty in the shape Slack uses for that element (`null`, or `[]` for multi-selects). Tests may give a
value in Slack's own shape (a dict) or plainly: "text", "C0FINANCE", an option's value, a list.
"""

from __future__ import annotations

import copy
from typing import Any

from slack_sandbox.workspace import View

#: element type -> (the state's field, the element's initial field)
STATE_FIELDS: dict[str, tuple[str, str]] = {
    "plain_text_input": ("value", "initial_value"),
    "number_input": ("value", "initial_value"),
    "email_text_input": ("value", "initial_value"),
    "url_text_input": ("value", "initial_value"),
    "static_select": ("selected_option", "initial_option"),
    "external_select": ("selected_option", "initial_option"),
    "radio_buttons": ("selected_option", "initial_option"),
    "checkboxes": ("selected_options", "initial_options"),
    "multi_static_select": ("selected_options", "initial_options"),
    "users_select": ("selected_user", "initial_user"),
    "multi_users_select": ("selected_users", "initial_users"),
    "conversations_select": ("selected_conversation", "initial_conversation"),
    "multi_conversations_select": ("selected_conversations", "initial_conversations"),
    "channels_select": ("selected_channel", "initial_channel"),
    "multi_channels_select": ("selected_channels", "initial_channels"),
    "datepicker": ("selected_date", "initial_date"),
    "timepicker": ("selected_time", "initial_time"),
    "datetimepicker": ("selected_date_time", "initial_date_time"),
}
_OPTION_FIELDS = {"selected_option", "selected_options"}
_MULTI_FIELDS = {
    "selected_options",
    "selected_users",
    "selected_conversations",
    "selected_channels",
}


def input_elements(view: View) -> dict[str, dict[str, Any]]:
    """block_id -> the element of every input block of the modal."""
    return {
        str(b["block_id"]): b["element"]
        for b in view.blocks
        if b.get("type") == "input" and isinstance(b.get("element"), dict)
    }


def submitted_state(view: View, values: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """`state.values` for submitting `view` with `values` {block_id: {action_id: value}}."""
    inputs = input_elements(view)
    unknown = [
        f"{block_id}/{action_id}"
        for block_id, by_action in values.items()
        for action_id in by_action
        if inputs.get(block_id, {}).get("action_id") != action_id
    ]
    if unknown:
        present = [f"{b}/{e.get('action_id')}" for b, e in inputs.items()]
        raise LookupError(f"the modal has no inputs {unknown}; it has {present}")
    state: dict[str, Any] = {}
    for block_id, element in inputs.items():
        action_id = str(element.get("action_id"))
        given = values.get(block_id, {}).get(action_id)
        state[block_id] = {action_id: {"type": element.get("type"), **_entry(element, given)}}
    return state


def _entry(element: dict[str, Any], given: Any) -> dict[str, Any]:
    kind = str(element.get("type"))
    field, initial = STATE_FIELDS.get(kind, ("value", "initial_value"))
    if isinstance(given, dict):
        return copy.deepcopy(given)
    if given is None:
        # Left alone: what the modal opened with, else empty.
        empty: Any = [] if field in _MULTI_FIELDS else None
        return {field: copy.deepcopy(element.get(initial, empty))}
    if field in _OPTION_FIELDS:
        wanted = given if isinstance(given, list) else [given]
        chosen = [_option(element, str(value)) for value in wanted]
        return {field: chosen if field == "selected_options" else chosen[0]}
    if field in _MULTI_FIELDS and not isinstance(given, list):
        return {field: [str(given)]}
    return {field: given if isinstance(given, list) else str(given)}


def _option(element: dict[str, Any], value: str) -> dict[str, Any]:
    options = list(element.get("options", []))
    for group in element.get("option_groups", []):
        options += group.get("options", [])
    for option in options:
        if option.get("value") == value:
            return copy.deepcopy(option)
    raise LookupError(
        f"{element.get('action_id')!r} has no option {value!r}; it has {[o.get('value') for o in options]}"
    )


def response_urls_for(view: View, state: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(block_id, action_id, channel) for each conversation input that asks Slack for a response_url."""
    found: list[tuple[str, str, str]] = []
    for block_id, element in input_elements(view).items():
        if not element.get("response_url_enabled"):
            continue
        action_id = str(element.get("action_id"))
        entry = state.get(block_id, {}).get(action_id, {})
        channel = entry.get("selected_conversation") or entry.get("selected_channel")
        if channel:
            found.append((block_id, action_id, str(channel)))
    return found
