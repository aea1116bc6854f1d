"""app.yaml, the Slack app manifest an owner pastes into "Create New App -> From a manifest".

It is checked against Slack's own JSON schema, `data/slack_manifest.schema.1.0.0.json`: a verbatim
copy of slackapi/manifest-schema `schemas/manifest.schema.1.0.0.json` (commit c50cfa85).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from bot.web import SLACK_EVENTS_PATH, SLACK_OAUTH_REDIRECT_PATH

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = Path(__file__).resolve().parent / "data" / "slack_manifest.schema.1.0.0.json"
PUBLIC_HOST = "oodaloo.example.com"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@pytest.fixture
def manifest() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "app.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _errors(validator: jsonschema.Draft7Validator, manifest: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(manifest)
    ]


def _urls(manifest: dict[str, Any]) -> list[str]:
    settings = manifest["settings"]
    return [
        *(command["url"] for command in manifest["features"]["slash_commands"]),
        settings["interactivity"]["request_url"],
        settings["event_subscriptions"]["request_url"],
        *manifest["oauth_config"]["redirect_urls"],
    ]


def test_manifest_is_valid_for_slack(
    validator: jsonschema.Draft7Validator, manifest: dict[str, Any]
) -> None:
    assert _errors(validator, manifest) == []


def test_a_broken_manifest_fails_validation(
    validator: jsonschema.Draft7Validator, manifest: dict[str, Any]
) -> None:
    broken = copy.deepcopy(manifest)
    broken["features"]["slash_commands"][0]["command"] = "runway"  # Slack needs the leading "/"
    errors = _errors(validator, broken)
    assert len(errors) == 1
    assert errors[0].startswith("features/slash_commands/0/command:")


def test_runway_command(manifest: dict[str, Any]) -> None:
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/runway"
    assert command["usage_hint"] == "[share | bills | invoices | sync | settings | connect | help]"
    assert command["should_escape"] is False
    assert command["description"]


def test_every_url_is_a_route_the_bot_serves(manifest: dict[str, Any]) -> None:
    """Slack's one request URL (events, commands, buttons) and its install redirect, as bot.web serves them."""
    urls = _urls(manifest)
    assert len(urls) == 4
    for url in urls:
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc) == ("https", PUBLIC_HOST), url
        assert not parts.query and not parts.fragment, url
    paths = [urlsplit(url).path for url in urls]
    assert paths == [SLACK_EVENTS_PATH] * 3 + [SLACK_OAUTH_REDIRECT_PATH]


def test_http_mode_events_and_settings(manifest: dict[str, Any]) -> None:
    settings = manifest["settings"]
    assert settings["event_subscriptions"]["bot_events"] == [
        "app_uninstalled",
        "tokens_revoked",
        "app_home_opened",
    ]
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is False
    assert settings["token_rotation_enabled"] is False
    assert settings["org_deploy_enabled"] is False


def test_bot_asks_only_for_the_scopes_it_uses(manifest: dict[str, Any]) -> None:
    assert manifest["oauth_config"]["scopes"] == {
        "bot": [
            "commands",
            "chat:write",
            "chat:write.public",
            "users:read",
            "users:read.email",
            "channels:read",
        ]
    }


def test_every_scope_says_why(manifest: dict[str, Any]) -> None:
    lines = (ROOT / "app.yaml").read_text(encoding="utf-8").splitlines()
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    for scope in scopes:
        (index,) = [i for i, line in enumerate(lines) if line.strip() == f"- {scope}"]
        comment = lines[index - 1].strip()
        assert comment.startswith("# ") and len(comment) > 10, f"{scope} has no reason above it"


def test_display_information(manifest: dict[str, Any]) -> None:
    info = manifest["display_information"]
    assert info["name"] == "Oodaloo"
    assert manifest["features"]["bot_user"]["display_name"] == "Oodaloo"
    assert len(info["long_description"]) >= 175
    assert "QuickBooks Online" in info["long_description"]
    assert "runway" in info["long_description"]
