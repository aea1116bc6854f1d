"""The runway chart: cash over the next 13 weeks as a PNG, and the same numbers in words.

Drawn from the digest's own 13-week view (`DigestView.forecast`), nothing computed again:

- the top panel is the cash at the end of each week (a line from today's cash on hand), the
  business's cash buffer (a dashed line; the band under it is tinted), and the weeks ending under
  it marked in the warning colour;
- the bottom panel is each week's money in (up) and out (down): the open invoices expected and
  the bills due in the strong colour, the typical rest of the week's income and spending (the
  trailing run rate) in the pale one.

`chart_alt_text` says what the picture shows (cash now, the lowest week, the buffer and the week
cash goes under it), for screen readers, Slack's alt text, and the email's text part.

Rendering is pure and deterministic: a fixed size at twice the size it is shown at (sharp on
retina screens), the font that ships with matplotlib, no metadata in the PNG, so the same figures
give the same bytes. It draws through matplotlib's Agg canvas directly (no pyplot, no GUI, no
global figure state) and takes a lock, as matplotlib's text layout is not thread-safe; callers on
the event loop run it in a thread (`asyncio.to_thread`). Colours are the Okabe–Ito palette, told
apart with any colour vision, and each meaning is also carried by position (in up, out down) or by
line style (the buffer is dashed).
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from runway.digest import DigestView
from runway.formatting import DEFAULT_LOCALE, format_day, money, money_short

#: What is drawn: 13 weeks ahead.
TITLE = "Cash over the next 13 weeks"
#: Inches and dots per inch: shown at 440 × 320 px (a phone's width), drawn at twice that for
#: retina screens.
FIGURE_SIZE = (4.4, 3.2)
SHOWN_DPI = 100
DPI = 2 * SHOWN_DPI
PIXEL_SIZE = (round(FIGURE_SIZE[0] * DPI), round(FIGURE_SIZE[1] * DPI))

# Okabe–Ito: distinguishable with any colour vision.
CASH = "#0072B2"  # blue
BELOW = "#D55E00"  # vermillion: under the buffer
IN_KNOWN = "#009E73"  # bluish green: invoices expected
IN_TYPICAL = "#A8DCCB"
OUT_KNOWN = "#D55E00"  # vermillion: bills due
OUT_TYPICAL = "#F2BE99"
INK = "#1F2937"
MUTED = "#6B7280"
GRID = "#E5E7EB"
#: The bars, in the legend's order: money in above the line, money out below.
FLOW_LABELS = ("Invoices expected", "Other money in", "Bills due", "Other money out")

_RC: dict[Any, Any] = {
    # Matplotlib's own font, so every machine draws the same pixels.
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.edgecolor": GRID,
    "axes.labelcolor": INK,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "xtick.labelcolor": INK,
    "ytick.labelcolor": INK,
}
_DRAWING = threading.Lock()


@dataclass(frozen=True, slots=True)
class ChartWeek:
    number: int
    end: date
    #: Cash at the end of the week.
    cash: Decimal
    invoices_in: Decimal
    typical_in: Decimal
    bills_out: Decimal
    typical_out: Decimal


#: Hex digits of a chart's fingerprint (`ChartData.fingerprint`), and how one looks.
FINGERPRINT_DIGITS = 16
FINGERPRINT = re.compile(rf"[0-9a-f]{{{FINGERPRINT_DIGITS}}}")


@dataclass(frozen=True, slots=True)
class ChartData:
    """What the chart shows, taken from a digest (hashable: renders are cached by it)."""

    business_id: str
    currency: str
    today: date
    cash_now: Decimal
    #: The business's minimum cash buffer (0: none set, the line is drawn at zero).
    buffer: Decimal
    weeks: tuple[ChartWeek, ...]
    #: How its amounts and days are written (the business's locale).
    locale: str = DEFAULT_LOCALE

    @property
    def fingerprint(self) -> str:
        """A short digest of the figures: equal figures, equal fingerprint (the chart link's
        cache key, so a link changes when the picture would)."""
        figures = (self.business_id, self.currency, self.today, self.cash_now, self.buffer,
                   self.weeks)  # fmt: skip
        # Another locale writes the same figures otherwise; en_US keeps the links it always had.
        text = repr(figures if self.locale == DEFAULT_LOCALE else (*figures, self.locale))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:FINGERPRINT_DIGITS]

    @property
    def lowest(self) -> ChartWeek:
        """The week ending with the least cash (the first such week on a tie)."""
        return min(self.weeks, key=lambda week: week.cash)

    @property
    def first_below_buffer(self) -> ChartWeek | None:
        return next((week for week in self.weeks if week.cash < self.buffer), None)


def chart_data(view: DigestView) -> ChartData:
    forecast = view.forecast
    return ChartData(
        business_id=view.business_id,
        currency=view.currency,
        today=view.today,
        cash_now=view.cash.total,
        buffer=forecast.buffer,
        weeks=tuple(
            ChartWeek(
                number=week.number,
                end=week.end,
                cash=week.ending_balance,
                invoices_in=week.invoice_inflows,
                typical_in=week.baseline_inflows,
                bills_out=week.bill_outflows,
                typical_out=week.baseline_outflows,
            )
            for week in forecast.weeks
        ),
        locale=view.locale,
    )


# --- words -----------------------------------------------------------------------------------


def chart_alt_text(view: DigestView) -> str:
    """The chart in words: "Cash over the next 13 weeks: $112,345.67 now, lowest $80,123.45 at
    the end of week 9 (Feb 1), $95,000.00 at the end of week 13 (Mar 1). Cash buffer $20,000.00:
    cash stays above it. Bills due: $45,000.00; invoices expected: $30,000.00."""
    return alt_text(chart_data(view))


def alt_text(data: ChartData) -> str:
    if not data.weeks:
        return f"{TITLE}: {money(data.cash_now, data.currency, locale=data.locale)} now; no forecast yet."

    def amount(value: Decimal) -> str:
        return money(value, data.currency, locale=data.locale)

    def day(on: date) -> str:
        return format_day(on, data.locale)

    last, low = data.weeks[-1], data.lowest
    at_end = f"{amount(last.cash)} at the end of week {last.number} ({day(last.end)})"
    if low is last:
        course = f"{at_end}, the lowest"
    else:
        course = (f"lowest {amount(low.cash)} at the end of week {low.number} "
                  f"({day(low.end)}), {at_end}")  # fmt: skip
    sentences = [f"{TITLE}: {amount(data.cash_now)} now, {course}."]
    below = data.first_below_buffer
    if data.buffer > 0:
        line = f"Cash buffer {amount(data.buffer)}: "
        if data.cash_now < data.buffer:
            line += "cash is under it now."
        elif below is None:
            line += "cash stays above it."
        else:
            line += f"cash falls under it in week {below.number} ({day(below.end)})."
    elif below is not None:
        line = f"No cash buffer is set; cash goes below zero in week {below.number} ({day(below.end)})."
    else:
        line = "No cash buffer is set; cash stays above zero."
    sentences.append(line)
    bills = sum((week.bills_out for week in data.weeks), Decimal("0.00"))
    invoices = sum((week.invoices_in for week in data.weeks), Decimal("0.00"))
    sentences.append(f"Bills due: {amount(bills)}; invoices expected: {amount(invoices)}.")
    return " ".join(sentences)


# --- the picture -----------------------------------------------------------------------------


def runway_chart_png(view: DigestView) -> bytes:
    """The chart of the digest's 13-week view as PNG bytes (`PIXEL_SIZE`); blocking, so callers
    on the event loop use `asyncio.to_thread`."""
    return render_png(chart_data(view))


def render_png(data: ChartData) -> bytes:
    # Imported here: only a process that draws a chart pays for loading matplotlib.
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with _DRAWING, rc_context(_RC):
        figure = Figure(figsize=FIGURE_SIZE, dpi=SHOWN_DPI, facecolor="white")
        FigureCanvasAgg(figure)
        grid = figure.add_gridspec(2, 1, height_ratios=(2.1, 1), hspace=0.2,
                                   left=0.15, right=0.97, top=0.84, bottom=0.14)  # fmt: skip
        cash_axes = figure.add_subplot(grid[0])
        flow_axes = figure.add_subplot(grid[1], sharex=cash_axes)
        _draw_cash(cash_axes, data)
        _draw_flows(flow_axes, data)
        _draw_x_axis(cash_axes, flow_axes, data)
        _legend(figure, cash_axes, flow_axes)
        out = io.BytesIO()
        # No "Software" text chunk: the same figures give the same bytes.
        figure.savefig(out, format="png", dpi=DPI, metadata={"Software": None})
    return out.getvalue()


def _legend(figure: Any, cash_axes: Any, flow_axes: Any) -> None:
    """Three columns, read across: cash and the buffer, money in, money out (the legend fills
    its columns top to bottom)."""
    from matplotlib.patches import Rectangle

    found = {
        label: handle
        for axes in (cash_axes, flow_axes)
        for handle, label in zip(*axes.get_legend_handles_labels(), strict=True)
    }
    buffer = next((label for label in found if label.startswith("Buffer")), None)
    order = ["Cash", buffer, *FLOW_LABELS]
    # No buffer set: an empty place keeps money in and out in their columns.
    blank = Rectangle((0, 0), 0, 0, visible=False)
    figure.legend([found[label] if label else blank for label in order],
                  [label or "" for label in order], loc="upper center", ncol=3, frameon=False,
                  fontsize=8, bbox_to_anchor=(0.55, 1.0), handlelength=1.2, handletextpad=0.4,
                  columnspacing=0.9)  # fmt: skip


def _floats(values: Any) -> list[float]:
    # Plotting is the one place money becomes float: pixels, never figures anyone reads.
    return [float(value) for value in values]


def _money_axis(axes: Any, currency: str, locale: str, ticks: int) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    axes.yaxis.set_major_locator(MaxNLocator(nbins=ticks))
    axes.yaxis.set_major_formatter(
        FuncFormatter(lambda value, _: money_short(Decimal(f"{float(value):.2f}"), currency, locale=locale))
    )
    axes.grid(axis="y", color=GRID, linewidth=0.6)
    axes.set_axisbelow(True)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    axes.tick_params(length=0)


def _draw_cash(axes: Any, data: ChartData) -> None:
    xs = list(range(len(data.weeks) + 1))
    cash = _floats([data.cash_now, *(week.cash for week in data.weeks)])
    buffer = float(data.buffer)
    low, high = min([*cash, buffer, 0.0]), max([*cash, buffer])
    pad = (high - low) * 0.08 or 1.0
    axes.set_ylim(low - pad if low < 0 else max(0.0, low - pad), high + pad)
    bottom, top = axes.get_ylim()
    axes.plot(xs, cash, color=CASH, linewidth=2.0, marker="o", markersize=3.2, label="Cash")
    if buffer > 0:
        axes.axhspan(bottom, buffer, color=BELOW, alpha=0.07, linewidth=0)
        axes.axhline(buffer, color=INK, linestyle=(0, (4, 3)), linewidth=1.0,
                     label=f"Buffer {money_short(data.buffer, data.currency, locale=data.locale)}")  # fmt: skip
    else:
        axes.axhline(0, color=INK, linewidth=0.6)
    under = [(x, value) for x, value in zip(xs, cash, strict=True) if value < buffer]
    if under:
        axes.plot([x for x, _ in under], [value for _, value in under], linestyle="none",
                  marker="o", markersize=4.2, color=BELOW)  # fmt: skip
    # The two figures a reader looks for first: cash now and the lowest week.
    low_week = data.lowest
    axes.annotate(money_short(data.cash_now, data.currency, locale=data.locale), (0, cash[0]), xytext=(4, 6),
                  textcoords="offset points", fontsize=8, color=INK)  # fmt: skip
    if low_week.cash < data.cash_now:
        low = float(low_week.cash)
        # Under the point, unless the buffer line runs just there.
        above = 0 < low - buffer < (top - bottom) * 0.15
        last = low_week.number == len(data.weeks)
        axes.annotate(money_short(low_week.cash, data.currency, locale=data.locale), (low_week.number, low),
                      xytext=(2 if last else 0, 6 if above else -12), textcoords="offset points",
                      ha="right" if last else "center", fontsize=8,
                      color=BELOW if low_week.cash < data.buffer else INK)  # fmt: skip
    _money_axis(axes, data.currency, data.locale, ticks=4)
    axes.tick_params(axis="x", labelbottom=False)


def _draw_flows(axes: Any, data: ChartData) -> None:
    xs = [week.number for week in data.weeks]
    invoices = _floats(week.invoices_in for week in data.weeks)
    typical_in = _floats(week.typical_in for week in data.weeks)
    bills = _floats(-week.bills_out for week in data.weeks)
    typical_out = _floats(-week.typical_out for week in data.weeks)
    width = 0.62
    known_in, other_in, known_out, other_out = FLOW_LABELS
    axes.bar(xs, invoices, width, color=IN_KNOWN, label=known_in)
    axes.bar(xs, typical_in, width, bottom=invoices, color=IN_TYPICAL, label=other_in)
    axes.bar(xs, bills, width, color=OUT_KNOWN, label=known_out)
    axes.bar(xs, typical_out, width, bottom=bills, color=OUT_TYPICAL, label=other_out)
    axes.axhline(0, color=INK, linewidth=0.6)
    _money_axis(axes, data.currency, data.locale, ticks=3)


def _draw_x_axis(cash_axes: Any, flow_axes: Any, data: ChartData) -> None:
    count = len(data.weeks)
    cash_axes.set_xlim(-0.5, count + 0.5)
    marked = [0, *(number for number in (4, 8, count) if 0 < number <= count)]
    labels = ["Today" if number == 0 else f"wk {number}\n{format_day(data.weeks[number - 1].end, data.locale)}"
              for number in marked]  # fmt: skip
    flow_axes.set_xticks(marked, labels)
    flow_axes.tick_params(axis="x", length=0)
    # The last week's label ends at its tick: centred, a long day ("Sat 6 Mar") runs off the image.
    flow_axes.get_xticklabels()[-1].set_horizontalalignment("right")
