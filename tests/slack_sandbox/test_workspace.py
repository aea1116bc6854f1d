"""The workspace's own rules, without HTTP: waiting across threads and what a stored message keeps."""

from __future__ import annotations

import threading

import pytest

from slack_sandbox.config import SlackSandboxConfig
from slack_sandbox.workspace import SlackError, Workspace

FINANCE = "C0FINANCE"


def test_wait_for_blocking_wakes_when_another_thread_posts() -> None:
    ws = Workspace(SlackSandboxConfig())
    poster = threading.Timer(0.05, lambda: ws.post_message(FINANCE, "from the server thread"))
    poster.start()
    try:
        found = ws.wait_for_blocking(lambda: ws.last_message(FINANCE), timeout=5.0)
    finally:
        poster.join()
    assert found.text == "from the server thread"


def test_a_timeout_names_the_recent_calls() -> None:
    ws = Workspace(SlackSandboxConfig())
    ws.record_call("chat.update", {}, ok=False, error="message_not_found", status=200)
    with pytest.raises(TimeoutError, match=r"chat\.update=message_not_found"):
        ws.wait_for_blocking(lambda: ws.last_message(FINANCE), timeout=0.01)


def test_reads_are_copies_so_a_test_cannot_edit_slack_by_accident() -> None:
    ws = Workspace(SlackSandboxConfig())
    posted = ws.post_message(
        FINANCE, "Runway: 84 days", [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}]
    )
    posted.blocks.clear()
    stored = ws.message(FINANCE, posted.ts)
    assert stored is not None and len(stored.blocks) == 1


def test_a_direct_message_channel_opens_for_a_user_id() -> None:
    ws = Workspace(SlackSandboxConfig())
    dm = ws.post_message("U0OWNER01", "Your weekly digest")
    assert dm.channel.startswith("D") and ws.messages(dm.channel)[0].text == "Your weekly digest"
    with pytest.raises(SlackError, match="channel_not_found"):
        ws.post_message("C0NOWHERE", "x")
