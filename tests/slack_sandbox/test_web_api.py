"""slack_sdk's AsyncWebClient, unchanged but for base_url, against the local Slack's Web API."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from qbo_sandbox.config import ManualClock
from slack_sandbox.config import ChannelSpec, SlackSandboxConfig
from slack_sandbox.server import RunningSlack, start_in_thread

FINANCE = "C0FINANCE"
OWNER = "U0OWNER01"


@pytest.fixture
def clock() -> ManualClock:
    """Ticks with real time (retry handlers really sleep) and can jump ahead to expire trigger_ids."""
    return ManualClock()


@pytest.fixture
def slack_config(clock: ManualClock) -> SlackSandboxConfig:
    return SlackSandboxConfig(clock=clock)


def section(text: str, block_id: str | None = None) -> dict[str, object]:
    block: dict[str, object] = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    if block_id:
        block["block_id"] = block_id
    return block


async def test_auth_test_answers_like_slack(
    web_client: AsyncWebClient, slack: RunningSlack
) -> None:
    answer = await web_client.auth_test()
    assert answer["ok"] is True
    assert (answer["team_id"], answer["user_id"], answer["bot_id"]) == (
        "T0OODALOO",
        "U0OODABOT",
        "B0OODALOO",
    )
    assert answer["url"] == "https://oodaloo-demo.slack.com/"
    assert "chat:write" in answer.headers["x-oauth-scopes"]


async def test_a_wrong_or_missing_token_is_refused_with_slacks_errors(slack: RunningSlack) -> None:
    with pytest.raises(SlackApiError) as wrong:
        await AsyncWebClient(token="xoxb-not-this-one", base_url=slack.api_url).chat_postMessage(
            channel=FINANCE, text="hi"
        )
    assert wrong.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as missing:
        await AsyncWebClient(base_url=slack.api_url).chat_postMessage(channel=FINANCE, text="hi")
    assert missing.value.response["error"] == "not_authed"
    assert slack.workspace.messages(FINANCE) == []
    assert [c.error for c in slack.workspace.calls("chat.postMessage")] == [
        "invalid_auth",
        "not_authed",
    ]


async def test_post_update_ephemeral_and_delete(
    web_client: AsyncWebClient, slack: RunningSlack
) -> None:
    ws = slack.workspace
    posted = await web_client.chat_postMessage(
        channel=FINANCE, text="Runway: 84 days", blocks=[section("*84 days*", "runway")]
    )
    assert posted["channel"] == FINANCE
    assert (
        posted["message"]["bot_id"] == "B0OODALOO"
        and posted["message"]["blocks"][0]["block_id"] == "runway"
    )
    ts = posted["ts"]

    updated = await web_client.chat_update(channel=FINANCE, ts=ts, text="Runway: 90 days")
    assert updated["text"] == "Runway: 90 days"
    stored = ws.message(FINANCE, ts)
    assert stored is not None
    assert stored.text == "Runway: 90 days" and stored.edited == 1
    assert stored.blocks[0]["text"]["text"] == "*84 days*", "chat.update without blocks keeps them"

    shown = await web_client.chat_postEphemeral(
        channel=FINANCE, user=OWNER, text="Only you see this"
    )
    [ephemeral] = ws.ephemerals(user=OWNER)
    assert (ephemeral.ts, ephemeral.text) == (shown["message_ts"], "Only you see this")

    await web_client.chat_delete(channel=FINANCE, ts=ts)
    assert ws.messages(FINANCE) == []


async def test_update_refuses_other_peoples_and_unknown_messages(
    web_client: AsyncWebClient, slack: RunningSlack
) -> None:
    by_person = slack.workspace.post_message(FINANCE, "I paid the rent", user=OWNER)
    with pytest.raises(SlackApiError) as theirs:
        await web_client.chat_update(channel=FINANCE, ts=by_person.ts, text="edited by the bot")
    assert theirs.value.response["error"] == "cant_update_message"
    with pytest.raises(SlackApiError) as unknown:
        await web_client.chat_update(channel=FINANCE, ts="1700000000.000001", text="x")
    assert unknown.value.response["error"] == "message_not_found"
    with (
        pytest.raises(SlackApiError) as empty,
        pytest.warns(UserWarning, match="`text` argument is missing"),
    ):
        await web_client.chat_update(channel=FINANCE, ts=by_person.ts)
    assert empty.value.response["error"] == "no_text"
    assert slack.workspace.message(FINANCE, by_person.ts).text == "I paid the rent"  # type: ignore[union-attr]


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"channel": "C0NOWHERE", "text": "hi"}, "channel_not_found"),
        ({"channel": "", "text": "hi"}, "channel_not_found"),
        (
            {"channel": FINANCE, "text": "x", "blocks": [section(f"line {i}") for i in range(51)]},
            "invalid_blocks",
        ),
        ({"channel": FINANCE, "text": "x", "blocks": [section("x" * 3001)]}, "invalid_blocks"),
        ({"channel": FINANCE, "text": "x" * 40_001}, "msg_too_long"),
        ({"channel": FINANCE}, "no_text"),
    ],
)
async def test_post_message_validates_like_slack(
    web_client: AsyncWebClient, slack: RunningSlack, kwargs: dict[str, object], error: str
) -> None:
    with pytest.raises(SlackApiError) as refused:
        await web_client.chat_postMessage(**kwargs)  # type: ignore[arg-type]
    assert refused.value.response["error"] == error
    assert slack.workspace.messages(FINANCE) == []


async def test_the_limits_themselves_are_accepted(web_client: AsyncWebClient) -> None:
    await web_client.chat_postMessage(
        channel=FINANCE, text="x" * 40_000, blocks=[section("y" * 3000)]
    )
    await web_client.chat_postMessage(
        channel="#general", text="fifty", blocks=[section(f"{i}") for i in range(50)]
    )


async def test_form_encoded_calls_carry_blocks_as_a_json_string(slack: RunningSlack) -> None:
    form = {
        "channel": FINANCE,
        "text": "from a form",
        "blocks": json.dumps([section("*bold*", "b1")]),
    }
    headers = {"Authorization": f"Bearer {slack.workspace.bot_token}"}
    async with httpx.AsyncClient() as http:
        answer = (
            await http.post(slack.api_url + "chat.postMessage", data=form, headers=headers)
        ).json()
        refused = (
            await http.post(
                slack.api_url + "chat.postMessage", data={**form, "blocks": "[{"}, headers=headers
            )
        ).json()
    assert answer["ok"] is True and answer["message"]["blocks"][0]["block_id"] == "b1"
    assert refused == {
        "ok": False,
        "error": "invalid_blocks_format",
        "response_metadata": refused["response_metadata"],
    }


async def test_blocks_get_ids_slack_would_give_them(web_client: AsyncWebClient) -> None:
    button = {"type": "button", "text": {"type": "plain_text", "text": "Pay"}, "value": "bill-1"}
    posted = await web_client.chat_postMessage(
        channel=FINANCE,
        text="bills",
        blocks=[section("Rent"), {"type": "actions", "elements": [button]}],
    )
    blocks = posted["message"]["blocks"]
    assert all(b["block_id"] for b in blocks)
    assert blocks[1]["elements"][0]["action_id"]


async def test_timestamps_are_unique_and_increasing_even_on_a_stopped_clock() -> None:
    config = SlackSandboxConfig(clock=ManualClock(frozen=True), rate_limit=False)
    with start_in_thread(config) as slack:
        client = AsyncWebClient(token=slack.workspace.bot_token, base_url=slack.api_url)
        stamps = [
            (await client.chat_postMessage(channel=FINANCE, text=str(i)))["ts"] for i in range(6)
        ]
    assert stamps == sorted(stamps, key=lambda ts: tuple(int(p) for p in ts.split(".")))
    assert len(set(stamps)) == 6
    assert all(len(ts.split(".")[1]) == 6 for ts in stamps)


async def test_a_burst_in_one_channel_is_rate_limited_with_retry_after(
    web_client: AsyncWebClient, slack: RunningSlack
) -> None:
    for i in range(3):
        await web_client.chat_postMessage(channel=FINANCE, text=f"burst {i}")
    with pytest.raises(SlackApiError) as limited:
        await web_client.chat_postMessage(channel=FINANCE, text="one too many")
    assert limited.value.response.status_code == 429
    assert limited.value.response["error"] == "ratelimited"
    assert int(limited.value.response.headers["Retry-After"]) >= 1
    await web_client.chat_postMessage(
        channel="C0GENERAL", text="another channel has its own allowance"
    )
    assert len(slack.workspace.messages(FINANCE)) == 3


async def test_the_rate_limit_retry_handler_gets_through(
    web_client: AsyncWebClient, slack: RunningSlack
) -> None:
    web_client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=2))
    for i in range(4):
        await web_client.chat_postMessage(channel=FINANCE, text=f"message {i}")
    assert [m.text for m in slack.workspace.messages(FINANCE)] == [f"message {i}" for i in range(4)]
    statuses = [c.status for c in slack.workspace.calls("chat.postMessage")]
    assert statuses.count(429) >= 1 and statuses.count(200) == 4


MANY_CHANNELS = tuple(ChannelSpec(f"C0MANY{i:03d}", f"client-{i}") for i in range(8))


@pytest.mark.parametrize(
    "slack_config",
    [SlackSandboxConfig(channels=MANY_CHANNELS, workspace_rate_limit_burst=5,
                        workspace_rate_limit_per_minute=6)],
)
async def test_the_workspace_has_its_own_limit_across_channels(
    web_client: AsyncWebClient, slack: RunningSlack
) -> None:
    for spec in MANY_CHANNELS[:5]:
        await web_client.chat_postMessage(channel=spec.id, text="one each")
    with pytest.raises(SlackApiError) as limited:
        await web_client.chat_postMessage(channel=MANY_CHANNELS[5].id, text="the sixth channel")
    assert limited.value.response.status_code == 429
    assert limited.value.response["error"] == "ratelimited"
    # One message per 10 s across the workspace: Slack says when to come back.
    assert int(limited.value.response.headers["Retry-After"]) == 10
    assert slack.sandbox.rate_limit.rejected_by == {"channel": 0, "workspace": 1}
    assert slack.workspace.messages(MANY_CHANNELS[5].id) == []


@pytest.mark.parametrize("slack_config", [SlackSandboxConfig(rate_limit=False)])
async def test_the_rate_limit_can_be_switched_off(
    web_client: AsyncWebClient, slack: RunningSlack
) -> None:
    for i in range(10):
        await web_client.chat_postMessage(channel=FINANCE, text=f"{i}")
    assert len(slack.workspace.messages(FINANCE)) == 10


MODAL = {
    "type": "modal",
    "callback_id": "approve-bill",
    "title": {"type": "plain_text", "text": "Approve bill"},
    "submit": {"type": "plain_text", "text": "Approve"},
    "private_metadata": "bill-42",
    "blocks": [
        {
            "type": "input",
            "block_id": "memo",
            "label": {"type": "plain_text", "text": "Memo"},
            "element": {"type": "plain_text_input", "action_id": "memo_text"},
        }
    ],
}


async def test_views_open_needs_a_fresh_trigger_id(
    web_client: AsyncWebClient, slack: RunningSlack, clock: ManualClock
) -> None:
    ws = slack.workspace
    opened = await web_client.views_open(trigger_id=ws.issue_trigger(OWNER), view=MODAL)
    view = opened["view"]
    assert view["id"].startswith("V") and view["callback_id"] == "approve-bill" and view["hash"]
    assert view["private_metadata"] == "bill-42" and view["root_view_id"] == view["id"]
    assert [v.id for v in ws.open_views(OWNER)] == [view["id"]]

    with pytest.raises(SlackApiError) as unknown:
        await web_client.views_open(trigger_id="123.456.made-up", view=MODAL)
    assert unknown.value.response["error"] == "invalid_trigger_id"
    stale = ws.issue_trigger(OWNER)
    clock.advance(timedelta(seconds=4))
    with pytest.raises(SlackApiError) as expired:
        await web_client.views_open(trigger_id=stale, view=MODAL)
    assert expired.value.response["error"] == "expired_trigger_id"


async def test_views_update_checks_the_hash_and_push_stacks(
    web_client: AsyncWebClient, slack: RunningSlack
) -> None:
    ws = slack.workspace
    view = (await web_client.views_open(trigger_id=ws.issue_trigger(OWNER), view=MODAL))["view"]
    renamed = {**MODAL, "title": {"type": "plain_text", "text": "Approve rent"}}
    updated = (await web_client.views_update(view_id=view["id"], hash=view["hash"], view=renamed))[
        "view"
    ]
    assert updated["title"]["text"] == "Approve rent" and updated["hash"] != view["hash"]
    with pytest.raises(SlackApiError) as conflict:
        await web_client.views_update(view_id=view["id"], hash=view["hash"], view=MODAL)
    assert conflict.value.response["error"] == "hash_conflict"

    pushed = (
        await web_client.views_push(
            trigger_id=ws.issue_trigger(OWNER, view_id=view["id"]), view=MODAL
        )
    )["view"]
    assert pushed["root_view_id"] == view["id"] and pushed["previous_view_id"] == view["id"]
    with pytest.raises(SlackApiError) as outside:
        await web_client.views_push(trigger_id=ws.issue_trigger(OWNER), view=MODAL)
    assert outside.value.response["error"] == "invalid_trigger_id"


async def test_views_refuse_what_slack_refuses_of_a_modal(
    web_client: AsyncWebClient, slack: RunningSlack
) -> None:
    ws = slack.workspace
    wrong = [
        {**MODAL, "title": {"type": "plain_text", "text": "A title far longer than Slack's"}},
        {**MODAL, "close": {"type": "plain_text", "text": "Close this list, thank you"}},
        {**MODAL, "close": {"type": "mrkdwn", "text": "*Close*"}},
        {**MODAL, "private_metadata": "x" * 3001},
        {**MODAL, "callback_id": "c" * 256},
    ]
    for view in wrong:
        with pytest.raises(SlackApiError) as refused:
            await web_client.views_open(trigger_id=ws.issue_trigger(OWNER), view=view)
        assert refused.value.response["error"] == "invalid_arguments", view
    assert ws.open_views(OWNER) == []

    opened = (await web_client.views_open(trigger_id=ws.issue_trigger(OWNER), view=MODAL))["view"]
    ws.close_view(opened["id"])  # the person closed it
    with pytest.raises(SlackApiError) as closed:
        await web_client.views_update(view_id=opened["id"], view=MODAL)
    assert closed.value.response["error"] == "not_found"


async def test_users_and_conversations_info(web_client: AsyncWebClient) -> None:
    user = (await web_client.users_info(user=OWNER))["user"]
    assert (user["name"], user["real_name"], user["is_admin"]) == ("dana", "Dana Whitfield", True)
    channel = (await web_client.conversations_info(channel=FINANCE))["channel"]
    assert (channel["name"], channel["is_channel"], channel["is_member"]) == ("finance", True, True)
    with pytest.raises(SlackApiError) as nobody:
        await web_client.users_info(user="U0NOBODY")
    assert nobody.value.response["error"] == "user_not_found"
    with pytest.raises(SlackApiError) as nowhere:
        await web_client.conversations_info(channel="C0NOWHERE")
    assert nowhere.value.response["error"] == "channel_not_found"


@pytest.mark.filterwarnings("ignore:BasicAuth is deprecated")  # slack_sdk's own use of aiohttp
async def test_the_install_flow_gives_a_code_the_app_exchanges_once(slack: RunningSlack) -> None:
    config = slack.sandbox.config
    redirect = "https://oodaloo.example/slack/oauth_redirect"
    async with httpx.AsyncClient() as http:
        page = await http.get(
            slack.base_url + "/oauth/v2/authorize",
            params={
                "client_id": config.client_id,
                "scope": "commands,chat:write",
                "state": "s-1",
                "redirect_uri": redirect,
            },
        )
    assert page.status_code == 302
    location = urlsplit(page.headers["location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect and query[
        "state"
    ] == ["s-1"]

    client = AsyncWebClient(base_url=slack.api_url)
    with pytest.raises(SlackApiError) as wrong_secret:
        await client.oauth_v2_access(
            client_id=config.client_id, client_secret="guess", code=query["code"][0]
        )
    assert wrong_secret.value.response["error"] == "bad_client_secret"
    installed = await client.oauth_v2_access(
        client_id=config.client_id,
        client_secret=config.client_secret,
        code=query["code"][0],
        redirect_uri=redirect,
    )
    assert (
        installed["access_token"] == slack.workspace.bot_token
        and installed["team"]["id"] == "T0OODALOO"
    )
    assert installed["authed_user"]["id"] == OWNER and installed["bot_user_id"] == "U0OODABOT"
    with pytest.raises(SlackApiError) as reused:
        await client.oauth_v2_access(
            client_id=config.client_id, client_secret=config.client_secret, code=query["code"][0]
        )
    assert reused.value.response["error"] == "invalid_code"


async def test_the_state_page_shows_what_a_slack_client_would(
    web_client: AsyncWebClient, slack: RunningSlack
) -> None:
    posted = await web_client.chat_postMessage(channel=FINANCE, text="Runway: 84 days")
    await web_client.chat_postEphemeral(channel=FINANCE, user=OWNER, text="just for Dana")
    async with httpx.AsyncClient() as http:
        state = (await http.get(slack.base_url + "/_sandbox/state")).json()
    [finance] = [c for c in state["channels"] if c["id"] == FINANCE]
    assert [(m["ts"], m["text"]) for m in finance["messages"]] == [
        (posted["ts"], "Runway: 84 days")
    ]
    assert [(e["user"], e["text"]) for e in state["ephemerals"]] == [(OWNER, "just for Dana")]
    assert state["version"] == slack.workspace.version
