"""Charts as inline SVG, the number formats that label them, and the charts of a profile.

A report has to open anywhere: offline, attached to an email, printed, years later.
Inline SVG needs no script, no network and no plotting library, prints sharply at any
size, and stays accessible: every chart carries ``role="img"``, an ``aria-label`` that
says what it shows in words, a ``<title>``, and a ``<title>`` per bar that browsers
show as a tooltip. Every piece of text is escaped here, so callers pass plain strings.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

FONT_SIZE = 11
INK = "#334155"
MUTED = "#64748b"
TRACK = "#eef1f5"
AXIS = "#cbd5e1"


def esc(value: object) -> str:
    """Text made safe for HTML and SVG, quotes included, so it can go into attributes."""
    return html.escape(str(value), quote=True)


# -- labels -------------------------------------------------------------------------------


def number(value: float | None) -> str:
    """Four significant digits with thousands separators; integers in full."""
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "\u221e" if value > 0 else "\u2212\u221e"
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    if magnitude >= 15 or magnitude < -4:
        return f"{value:.4g}"
    rounded = float(f"{value:.4g}")
    text = f"{rounded:,.{max(0, 3 - magnitude)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def percent(fraction: float) -> str:
    """A share of rows, never rounded to 0% or 100% when it is not exactly that."""
    if fraction <= 0:
        return "0%"
    if fraction >= 1:
        return "100%"
    if fraction < 0.001:
        return "<0.1%"
    if fraction > 0.999:
        return ">99.9%"
    return f"{fraction * 100:.1f}%"


def moment(seconds: float | None, duckdb_type: str = "TIMESTAMP", *, span: float = 0.0) -> str:
    """Epoch seconds as a date, or a date and time when the values lie close together."""
    if seconds is None or not math.isfinite(seconds):
        return "\u2013"
    if duckdb_type.upper().startswith("TIME") and not duckdb_type.upper().startswith("TIMESTAMP"):
        of_day = int(seconds) % 86400
        return f"{of_day // 3600:02d}:{of_day // 60 % 60:02d}:{of_day % 60:02d}"
    try:
        when = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        return number(seconds)
    if duckdb_type.upper() == "DATE" or span >= 3 * 86400:
        return when.strftime("%Y-%m-%d")
    if span == 0 and when.hour == when.minute == when.second == 0:
        return when.strftime("%Y-%m-%d")
    return when.strftime("%Y-%m-%d %H:%M")


def duration(seconds: float | None) -> str:
    """A spread of times (a standard deviation) in the unit that reads best."""
    if seconds is None or not math.isfinite(seconds):
        return "\u2013"
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{number(seconds / size)} {unit}"
    return f"{number(seconds)} s"


# -- charts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    """One row of a horizontal bar chart: its label, length, and the text at its end."""

    label: str
    value: float
    text: str
    muted: bool = False
    href: str | None = None


def _open(width: float, height: float, label: str, css_class: str) -> str:
    return (
        f'<svg class="chart {css_class}" role="img" aria-label="{esc(label)}" '
        f'viewBox="0 0 {width:g} {height:g}" width="{width:g}" height="{height:g}" '
        f'font-size="{FONT_SIZE}" '
        f'preserveAspectRatio="xMinYMin meet">'
        f"<title>{esc(label)}</title>"
    )


def _clip(text: str, room: float) -> str:
    """Cut a label to the characters that fit in ``room`` pixels, marking the cut."""
    fits = max(3, int(room / (FONT_SIZE * 0.6)))
    return text if len(text) <= fits else text[: fits - 1] + "…"


def hbars(
    bars: Sequence[Bar],
    *,
    title: str,
    color: str,
    scale: float | None = None,
    width: float = 360,
    label_width: float | None = None,
    text_width: float = 92,
) -> str:
    """Horizontal bars on a light track; ``scale`` is the full-track value (the max if None).

    Labels get the room their longest one needs, up to a third of the width, so short
    category codes leave the space to the bars.
    """
    if label_width is None:
        longest = max((len(b.label) for b in bars), default=0)
        label_width = min(max(longest * FONT_SIZE * 0.6 + 4, 24), width / 3)
    row, bar = 20, 13
    height = row * len(bars) + 4
    full = scale if scale is not None else max((b.value for b in bars), default=0.0)
    left, room = label_width + 6, width - label_width - text_width - 12
    parts = [_open(width, height, title, "hbars")]
    for index, item in enumerate(bars):
        y = 2 + index * row
        length = room * item.value / full if full > 0 else 0.0
        if item.value > 0:
            length = max(length, 1.5)
        fill = "#a8b3c2" if item.muted else color
        shown = _clip(item.label, label_width)
        body = (
            f"<title>{esc(item.label)}: {esc(item.text)}</title>"
            f'<text x="{label_width:g}" y="{y + bar - 2:g}" text-anchor="end" '
            f'fill="{MUTED if item.muted else INK}">{esc(shown)}</text>'
            f'<rect x="{left:g}" y="{y:g}" width="{room:.1f}" height="{bar}" rx="2" '
            f'fill="{TRACK}"/>'
        )
        if item.value > 0:
            body += (
                f'<rect class="bar" x="{left:g}" y="{y:g}" width="{length:.1f}" '
                f'height="{bar}" rx="2" fill="{fill}"/>'
            )
        body += (
            f'<text x="{left + room + 6:g}" y="{y + bar - 2:g}" fill="{INK}" '
            f'class="value">{esc(item.text)}</text>'
        )
        if item.href:
            body = f'<a href="{esc(item.href)}">{body}</a>'
        parts.append(f"<g>{body}</g>")
    parts.append("</svg>")
    return "".join(parts)


def histogram(
    edges: Sequence[float],
    counts: Sequence[int],
    *,
    title: str,
    color: str,
    label: Callable[[float], str] = number,
    width: float = 360,
    height: float = 150,
) -> str:
    """Bars for the non-empty bins over an x axis labelled at both ends and the middle."""
    top, bottom, side = 16, height - 24, 6
    plot_width, plot_height = width - 2 * side, bottom - top
    tallest = max(counts, default=0)
    low, high = (edges[0], edges[-1]) if edges else (0.0, 0.0)
    span = high - low
    parts = [_open(width, height, title, "histogram")]
    parts.append(
        f'<line x1="{side}" x2="{width - side}" y1="{top}" y2="{top}" stroke="{TRACK}"/>'
        f'<text x="{side}" y="{top - 5}" fill="{MUTED}">{esc(number(tallest))} rows</text>'
    )
    for index, count in enumerate(counts):
        if count <= 0 or tallest <= 0:
            continue
        if span > 0 and len(edges) == len(counts) + 1:
            x0 = side + plot_width * (edges[index] - low) / span
            x1 = side + plot_width * (edges[index + 1] - low) / span
        else:
            x0 = side + plot_width * index / len(counts)
            x1 = side + plot_width * (index + 1) / len(counts)
        bar_height = max(plot_height * count / tallest, 1.0)
        lo = edges[index] if index < len(edges) else low
        hi = edges[index + 1] if index + 1 < len(edges) else high
        parts.append(
            f'<rect class="bar" x="{x0 + 0.5:.2f}" y="{bottom - bar_height:.2f}" '
            f'width="{max(x1 - x0 - 1, 0.8):.2f}" height="{bar_height:.2f}" fill="{color}">'
            f"<title>{esc(label(lo))} \u2013 {esc(label(hi))}: {esc(number(count))} rows"
            "</title></rect>"
        )
    parts.append(
        f'<line x1="{side}" x2="{width - side}" y1="{bottom}" y2="{bottom}" stroke="{AXIS}"/>'
    )
    ticks = [(low, "start", side), (high, "end", width - side)]
    if span > 0:
        ticks.insert(1, ((low + high) / 2, "middle", width / 2))
    for value, anchor, x in ticks:
        parts.append(
            f'<line x1="{x:g}" x2="{x:g}" y1="{bottom}" y2="{bottom + 4}" stroke="{AXIS}"/>'
            f'<text x="{x:g}" y="{bottom + 16}" text-anchor="{anchor}" fill="{MUTED}">'
            f"{esc(label(value))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


# -- profile columns ------------------------------------------------------------------------


def formatter(kind: str, duckdb_type: str, stats: Mapping[str, Any]) -> Callable[[float], str]:
    """How a column's values read: numbers, or dates (profiles hold times as epoch seconds)."""
    if kind != "temporal":
        return number
    low, high = stats.get("min"), stats.get("max")
    span = float(high - low) if low is not None and high is not None else 0.0
    return lambda value: moment(value, duckdb_type, span=span)


def column_chart(name: str, stats: Mapping[str, Any], color: str, *, top: int = 12) -> str:
    """The histogram of a numeric or temporal column, the top values of any other, or "".

    Top values are left out when none repeats: a bar per unique value says nothing.
    """
    histogram_ = stats.get("histogram")
    if histogram_ and any(histogram_.get("counts", [])):
        edges, counts = histogram_["edges"], histogram_["counts"]
        label = formatter(str(stats.get("kind")), str(stats.get("type")), stats)
        title = (
            f"Distribution of {name}: {number(sum(counts))} values in {len(counts)} bins "
            f"from {label(edges[0])} to {label(edges[-1])}"
        )
        return histogram(edges, counts, title=title, color=color, label=label)
    entries = stats.get("top")
    if not entries or int(entries[0]["count"]) <= 1:
        return ""
    count = max(int(stats.get("count") or 0), 1)
    rest = int(stats.get("other_count") or 0) + sum(int(e["count"]) for e in entries[top:])
    bars = [
        Bar(
            "(empty)" if entry["value"] == "" else str(entry["value"]),
            float(entry["count"]),
            f"{number(int(entry['count']))} · {percent(int(entry['count']) / count)}",
        )
        for entry in entries[:top]
    ]
    if rest:
        others = int(stats.get("distinct") or 0) - len(bars)
        label_ = f"{number(others)} others" if others > 1 else "other"
        bars.append(Bar(label_, float(rest), f"{number(rest)} · {percent(rest / count)}", True))
    title = f"Most frequent values of {name}: " + ", ".join(
        f"{bar.label} {bar.text}" for bar in bars[:5]
    )
    return hbars(bars, title=title, color=color)
