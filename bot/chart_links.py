"""The runway chart at a signed URL of `oodaloo serve`, for Slack's image blocks.

Slack shows an image block by fetching its `image_url` itself, so the digest's chart is served at
`{PUBLIC_URL}/charts/{token}.png`. The token is signed with the email links' key ring
(`LinkSigner.sign`, its own purpose, so it is never an email link) and names the business, the
fingerprint of the figures drawn (`ChartData.fingerprint`) and the last day it works: the same
figures on the same day give the same URL, so a message drawn again with unchanged figures keeps
its image, and new figures give a new URL that Slack fetches afresh.

`GET /charts/{token}.png` answers a forged, altered or cut token with 404 and one past its last
day with 410. Otherwise it hands over the chart as kept: the process that made the URL drew it
and kept it by fingerprint (`ChartImages`), so a web process does not draw on a Monday morning;
one not kept any more is drawn from the business's figures as they stand.

Slack must reach PUBLIC_URL for this: with a public https address, or the local Slack (tests and
the demo), the digest carries the image; otherwise (Socket Mode on a laptop) it goes without.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot.bootstrap import Oodaloo
from bot.chart import FINGERPRINT, ChartData, chart_data, render_png
from bot.email.links import BadLink, LinkSigner
from bot.models import ChartImage
from runway.businesses import BusinessNotFound
from runway.digest import DigestView
from runway.shown_rows import NO_ROWS
from sync import Clock

logger = logging.getLogger(__name__)

PURPOSE = "chart"
#: How long a chart link works after the digest's day: old digests keep their picture a month.
LINK_DAYS = 30
#: Renders kept in this process, by fingerprint (a PNG is some 40 KB).
CACHE_SIZE = 64
PATH = "/charts/{token}.png"


class ExpiredChart(ValueError):
    """A genuine chart link past its last day."""


@dataclass(frozen=True, slots=True)
class ChartLink:
    business_id: str
    fingerprint: str
    last_day: date


class ChartLinks:
    """Makes and reads the chart's signed URLs."""

    def __init__(self, signer: LinkSigner, clock: Clock, *, days: int = LINK_DAYS) -> None:
        self.signer = signer
        self.clock = clock
        self.days = days

    def token(self, view: DigestView) -> str:
        data = chart_data(view)
        last_day = view.today + timedelta(days=self.days)
        return self.signer.sign(
            PURPOSE, {"b": view.business_id, "f": data.fingerprint, "d": last_day.isoformat()}
        )

    def url(self, view: DigestView) -> str:
        return f"{self.signer.public_url}/charts/{self.token(view)}.png"

    def read(self, token: str) -> ChartLink:
        """BadLink when Oodaloo did not write it; ExpiredChart after its last day."""
        if not token.isascii() or not token.isprintable():
            raise BadLink("the link holds characters Oodaloo never writes")
        fields = self.signer.verify(token, PURPOSE)
        business_id, fingerprint, last_day = fields.get("b"), fields.get("f"), fields.get("d")
        # Signed, so written here; still checked for form: text no table can hold (a NUL byte, a
        # lone surrogate) must be a 404 here, not a database error later.
        if not (
            isinstance(business_id, str) and business_id.isprintable() and business_id
            and isinstance(fingerprint, str) and FINGERPRINT.fullmatch(fingerprint)
            and isinstance(last_day, str)
        ):  # fmt: skip
            raise BadLink("the chart link's contents are not what Oodaloo writes")
        try:
            link = ChartLink(business_id, fingerprint, date.fromisoformat(last_day))
        except ValueError as exc:
            raise BadLink("the chart link's contents are not what Oodaloo writes") from exc
        if self.clock.now().astimezone(UTC).date() > link.last_day:
            raise ExpiredChart(f"the chart link worked until {link.last_day.isoformat()}")
        return link


class ChartImages:
    """The charts drawn, by fingerprint: the last few in this process's memory, every one of the
    last `LINK_DAYS` in the database (`ChartImage`), so the process that posts a message draws its
    chart once and any `oodaloo serve` hands it to Slack without drawing (a drawing is some 150 ms
    of CPU: a web process must not spend a Monday's worth of them)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock, size: int = CACHE_SIZE) -> None:
        self.sessions = sessions
        self.clock = clock
        self.size = size
        self._pngs: OrderedDict[str, bytes] = OrderedDict()
        #: Charts this process drew itself (the others it found kept).
        self.drawn = 0

    async def get(self, fingerprint: str) -> bytes | None:
        png = self._pngs.get(fingerprint)
        if png is not None:
            self._pngs.move_to_end(fingerprint)
            return png
        async with self.sessions() as session:
            png = await session.scalar(
                select(ChartImage.png).where(ChartImage.fingerprint == fingerprint)
            )
        if png is not None:
            self._remember(fingerprint, png)
        return png

    async def draw(self, data: ChartData) -> bytes:
        """The chart of `data`: as kept, else drawn (in a thread, off the event loop) and kept."""
        png = await self.get(data.fingerprint)
        if png is not None:
            return png
        png = await asyncio.to_thread(render_png, data)
        self.drawn += 1
        self._remember(data.fingerprint, png)
        now = self.clock.now()
        async with self.sessions() as session:
            try:
                session.add(
                    ChartImage(
                        fingerprint=data.fingerprint, business_id=data.business_id, png=png,
                        drawn_at=now,
                    )
                )
                # Charts older than any link still working are not asked for again.
                await session.execute(
                    delete(ChartImage).where(
                        ChartImage.drawn_at < now - timedelta(days=LINK_DAYS + 1)
                    )
                )
                await session.commit()
            except IntegrityError:
                await session.rollback()  # another process kept the same chart first
        return png

    def _remember(self, fingerprint: str, png: bytes) -> None:
        self._pngs[fingerprint] = png
        while len(self._pngs) > self.size:
            self._pngs.popitem(last=False)


def _problem(status: int, message: str) -> Response:
    return PlainTextResponse(message + "\n", status_code=status, headers={"cache-control": "no-store"})


def chart_routes(oodaloo: Oodaloo, links: ChartLinks, images: ChartImages) -> list[Route]:
    async def chart(request: Request) -> Response:
        try:
            link = links.read(request.path_params["token"])
        except ExpiredChart as expired:
            return _problem(410, f"This chart link has expired ({expired}); the latest digest has a new one.")
        except BadLink as bad:
            return _problem(404, f"No such chart: {bad}. Open the chart from the digest itself.")
        try:
            png = await images.get(link.fingerprint)
            fresh = png is not None
            if png is None:
                # Not kept (drawn long ago, or the database was restored): today's figures.
                ctx = await oodaloo.digest(link.business_id, rows=NO_ROWS)
                data = chart_data(ctx.view)
                png = await images.draw(data)
                # The books moved on since the link was made: the picture is today's, not kept long.
                fresh = data.fingerprint == link.fingerprint
        except BusinessNotFound:
            return _problem(404, "No such chart: the business it was drawn for is not on Oodaloo any more.")
        except (OSError, SQLAlchemyError) as down:
            logger.warning("the chart of %s cannot be drawn now: %s", link.business_id, down)
            return _problem(503, "The chart cannot be drawn right now; try again in a minute.")
        return Response(
            png,
            media_type="image/png",
            headers={
                "cache-control": "private, max-age=86400" if fresh else "no-cache",
                "x-robots-tag": "noindex",
                "content-disposition": 'inline; filename="runway.png"',
            },
        )

    return [Route(PATH, chart, methods=["GET"], name="runway_chart")]


def slack_can_fetch(public_url: str, slack_api_url: str) -> bool:
    """Whether Slack can fetch an image from `public_url`: a public https address, or a Slack on
    this machine (the local Slack of the tests and the demo)."""
    return _is_local(slack_api_url) or (
        urlsplit(public_url).scheme == "https" and not _is_local(public_url)
    )


def _is_local(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


def chart_url_for(
    oodaloo: Oodaloo, signer: LinkSigner, images: ChartImages
) -> Callable[[DigestView], Awaitable[str | None]] | None:
    """The chart URLs for Slack's messages, each chart drawn and kept (`images`) before its URL is
    given out, or None (said in the log) when Slack cannot reach PUBLIC_URL."""
    settings = oodaloo.settings
    if not slack_can_fetch(settings.public_url, settings.slack_api_url):
        logger.info(
            "The digest's chart is not shown in Slack: Slack fetches images from PUBLIC_URL (%s), "
            "which must be a public https address",
            settings.public_url,
        )
        return None
    links = ChartLinks(signer, oodaloo.clock)

    async def url(view: DigestView) -> str | None:
        try:
            await images.draw(chart_data(view))
        except (OSError, SQLAlchemyError) as down:
            logger.warning("the chart of %s could not be kept (%s); the message goes without it",
                           view.business_id, down)
            return None
        return links.url(view)

    return url
