"""Slack's checks on message content: the limits that make chat.postMessage answer invalid_blocks.

Errors name the offending place with a JSON pointer, as Slack's own `invalid_blocks` details do, so a
failing test says which block broke which limit.
"""

from __future__ import annotations

import copy
import json
import secrets
import string
from typing import Any

from slack_sandbox.workspace import SlackError

MESSAGE_MAX_BLOCKS = 50
VIEW_MAX_BLOCKS = 100
TEXT_MAX_CHARS = 40_000
SECTION_TEXT_MAX = 3000
SECTION_FIELDS_MAX = 10
HEADER_TEXT_MAX = 150
BLOCK_ID_MAX = 255
ACTION_ID_MAX = 255
ACTIONS_ELEMENTS_MAX = 25
CONTEXT_ELEMENTS_MAX = 10
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
VIEW_TITLE_MAX = 24
#: A modal's close and submit buttons, like its title, hold at most 24 characters of plain text.
VIEW_BUTTON_MAX = 24
VIEW_PRIVATE_METADATA_MAX = 3000
VIEW_CALLBACK_ID_MAX = 255
IMAGE_URL_MAX = 3000
IMAGE_ALT_TEXT_MAX = 2000
IMAGE_TITLE_MAX = 2000


def parse_json_field(value: Any, name: str) -> Any:
    """Form-encoded calls carry blocks and views as JSON strings (slack_sdk sends them so)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise SlackError(
                f"invalid_{name}_format", detail=f"`{name}` is not valid JSON: {exc}"
            ) from exc
    return value


def check_message(
    text: str | None, blocks: Any, *, require_content: bool = True
) -> list[dict[str, Any]]:
    """Returns the blocks as a list of dicts, or raises SlackError the way chat.postMessage would."""
    if text is not None and len(text) > TEXT_MAX_CHARS:
        raise SlackError(
            "msg_too_long", detail=f"text has {len(text)} characters; Slack allows {TEXT_MAX_CHARS}"
        )
    checked = check_blocks(blocks, max_blocks=MESSAGE_MAX_BLOCKS)
    if require_content and not text and not checked:
        raise SlackError("no_text", detail="a message needs text or blocks")
    return checked


def check_blocks(blocks: Any, *, max_blocks: int) -> list[dict[str, Any]]:
    blocks = parse_json_field(blocks, "blocks")
    if blocks is None:
        return []
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise SlackError("invalid_blocks_format", detail="`blocks` must be a JSON array of objects")
    problems = _problems(blocks, max_blocks)
    if problems:
        raise SlackError("invalid_blocks", detail="; ".join(problems))
    return _with_ids(blocks)


def _with_ids(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Slack gives every block and interactive element without an id a random one, and stores that."""
    out = copy.deepcopy(blocks)
    for block in out:
        block.setdefault("block_id", _short_id())
        elements = list(block.get("elements", [])) if block.get("type") == "actions" else []
        for key in ("accessory", "element"):
            if isinstance(block.get(key), dict):
                elements.append(block[key])
        for element in elements:
            if isinstance(element, dict) and element.get("type") not in _NON_INTERACTIVE:
                element.setdefault("action_id", _short_id())
    return out


_NON_INTERACTIVE = {"image", "mrkdwn", "plain_text"}


def _short_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(4))


_ID_ALPHABET = string.ascii_letters + string.digits + "+/="


def check_view(view: Any, *, kind: str | None = None) -> dict[str, Any]:
    """The view as a dict, or SlackError as views.open/update/push/publish answer; `kind` is the
    one type the method takes (views.publish: "home"), None for either."""
    view = parse_json_field(view, "arguments")
    if not isinstance(view, dict):
        raise SlackError("invalid_arguments", detail="`view` must be a JSON object")
    if view.get("type") not in ("modal", "home"):
        raise SlackError("invalid_arguments", detail="view.type must be 'modal' or 'home'")
    if kind is not None and view["type"] != kind:
        raise SlackError(
            "invalid_arguments", detail=f"this method takes a view of type {kind!r}, not {view['type']!r}"
        )
    title = view.get("title", {})
    if view["type"] == "modal" and (not isinstance(title, dict) or not title.get("text")):
        raise SlackError("invalid_arguments", detail="a modal needs a plain_text title")
    if len(str(title.get("text", ""))) > VIEW_TITLE_MAX:
        raise SlackError(
            "invalid_arguments", detail=f"a modal title has at most {VIEW_TITLE_MAX} characters"
        )
    for button in ("close", "submit"):
        label = view.get(button)
        if label is None:
            continue
        if not isinstance(label, dict) or label.get("type") != "plain_text" or not label.get("text"):
            raise SlackError("invalid_arguments", detail=f"view.{button} must be a plain_text object")
        if len(str(label["text"])) > VIEW_BUTTON_MAX:
            raise SlackError(
                "invalid_arguments",
                detail=f"a modal's {button} button has at most {VIEW_BUTTON_MAX} characters",
            )
    if len(str(view.get("private_metadata", ""))) > VIEW_PRIVATE_METADATA_MAX:
        raise SlackError(
            "invalid_arguments",
            detail=f"private_metadata holds at most {VIEW_PRIVATE_METADATA_MAX} characters",
        )
    if len(str(view.get("callback_id", ""))) > VIEW_CALLBACK_ID_MAX:
        raise SlackError(
            "invalid_arguments", detail=f"callback_id holds at most {VIEW_CALLBACK_ID_MAX} characters"
        )
    view["blocks"] = check_blocks(view.get("blocks", []), max_blocks=VIEW_MAX_BLOCKS)
    return view


def _text_of(obj: Any) -> str:
    if isinstance(obj, dict):
        return str(obj.get("text", ""))
    return ""


def _problems(blocks: list[dict[str, Any]], max_blocks: int) -> list[str]:
    problems: list[str] = []
    if len(blocks) > max_blocks:
        problems.append(f"no more than {max_blocks} items allowed [json-pointer:/blocks]")
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"/blocks/{i}"
        action_ids: set[str] = set()  # an action_id must be unique within its block only
        kind = block.get("type")
        if not isinstance(kind, str):
            problems.append(f"missing required field: type [json-pointer:{where}]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if len(str(block_id)) > BLOCK_ID_MAX:
                problems.append(
                    f"must be less than {BLOCK_ID_MAX + 1} characters [json-pointer:{where}/block_id]"
                )
            if block_id in block_ids:
                problems.append(f"duplicate block_id {block_id!r} [json-pointer:{where}/block_id]")
            block_ids.add(str(block_id))
        if kind == "section":
            if "text" not in block and "fields" not in block:
                problems.append(f"a section needs text or fields [json-pointer:{where}]")
            if len(_text_of(block.get("text"))) > SECTION_TEXT_MAX:
                problems.append(
                    f"must be less than {SECTION_TEXT_MAX + 1} characters [json-pointer:{where}/text]"
                )
            if len(block.get("fields", [])) > SECTION_FIELDS_MAX:
                problems.append(
                    f"no more than {SECTION_FIELDS_MAX} items allowed [json-pointer:{where}/fields]"
                )
            if isinstance(block.get("accessory"), dict):
                problems += _element_problems(block["accessory"], f"{where}/accessory", action_ids)
        elif kind == "header":
            if len(_text_of(block.get("text"))) > HEADER_TEXT_MAX:
                problems.append(
                    f"must be less than {HEADER_TEXT_MAX + 1} characters [json-pointer:{where}/text]"
                )
        elif kind in ("actions", "context"):
            elements = block.get("elements", [])
            limit = ACTIONS_ELEMENTS_MAX if kind == "actions" else CONTEXT_ELEMENTS_MAX
            if not elements or len(elements) > limit:
                problems.append(f"needs 1 to {limit} elements [json-pointer:{where}/elements]")
            if kind == "actions":
                for j, element in enumerate(elements):
                    problems += _element_problems(element, f"{where}/elements/{j}", action_ids)
        elif kind == "input" and isinstance(block.get("element"), dict):
            problems += _element_problems(block["element"], f"{where}/element", action_ids)
        elif kind == "image":
            problems += _image_problems(block, where)
    return problems


def _image_problems(block: dict[str, Any], where: str) -> list[str]:
    """An image block as Slack checks it: an http(s) image_url and alt text, each within its limit
    (Slack also fetches the image; the local Slack leaves that to whoever shows the message)."""
    problems: list[str] = []
    url, alt = block.get("image_url"), block.get("alt_text")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        problems.append(f"must provide a valid http(s) image_url [json-pointer:{where}/image_url]")
    elif len(url) > IMAGE_URL_MAX:
        problems.append(
            f"must be less than {IMAGE_URL_MAX + 1} characters [json-pointer:{where}/image_url]"
        )
    if not isinstance(alt, str) or not alt:
        problems.append(f"missing required field: alt_text [json-pointer:{where}/alt_text]")
    elif len(alt) > IMAGE_ALT_TEXT_MAX:
        problems.append(
            f"must be less than {IMAGE_ALT_TEXT_MAX + 1} characters [json-pointer:{where}/alt_text]"
        )
    title = block.get("title")
    if title is not None and (not isinstance(title, dict) or title.get("type") != "plain_text"):
        problems.append(f"title must be a plain_text object [json-pointer:{where}/title]")
    elif len(_text_of(title)) > IMAGE_TITLE_MAX:
        problems.append(
            f"must be less than {IMAGE_TITLE_MAX + 1} characters [json-pointer:{where}/title/text]"
        )
    return problems


def _element_problems(element: dict[str, Any], where: str, action_ids: set[str]) -> list[str]:
    problems: list[str] = []
    action_id = element.get("action_id")
    if action_id is not None:
        if len(str(action_id)) > ACTION_ID_MAX:
            problems.append(
                f"must be less than {ACTION_ID_MAX + 1} characters [json-pointer:{where}/action_id]"
            )
        if action_id in action_ids:
            problems.append(f"duplicate action_id {action_id!r} [json-pointer:{where}/action_id]")
        action_ids.add(str(action_id))
    if element.get("type") == "button":
        if len(_text_of(element.get("text"))) > BUTTON_TEXT_MAX:
            problems.append(
                f"must be less than {BUTTON_TEXT_MAX + 1} characters [json-pointer:{where}/text]"
            )
        if len(str(element.get("value", ""))) > BUTTON_VALUE_MAX:
            problems.append(
                f"must be less than {BUTTON_VALUE_MAX + 1} characters [json-pointer:{where}/value]"
            )
    return problems
