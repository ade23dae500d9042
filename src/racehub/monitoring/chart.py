"""Runs per hour as a stacked bar chart, laid out here and drawn by the template as inline
SVG: no JavaScript, no chart library, nothing fetched. Pure: buckets in, shapes out."""

from __future__ import annotations

from dataclasses import dataclass

from racehub.monitoring.schemas import HourBucket

# Bottom to top; each has a CSS class ``outcome-<name>`` (racehub.css) and a legend entry.
OUTCOMES = ("succeeded", "failed", "other", "active")
LABELS = {"succeeded": "succeeded", "failed": "failed", "other": "cancelled or discarded",
          "active": "not finished"}

WIDTH = 960
HEIGHT = 220
LEFT = 40  # room for the y-axis labels
BOTTOM = 24  # room for the hour labels
TOP = 10
GAP = 2


@dataclass(frozen=True)
class Segment:
    outcome: str
    count: int
    y: float
    height: float


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    label: str  # "2026-12-07 14:00 UTC"
    title: str  # the tooltip: the hour and each outcome's count
    total: int
    segments: tuple[Segment, ...]
    tick: str | None  # the hour written under the bar (every 6 hours)


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot_left: int
    plot_bottom: float
    plot_top: int
    y_max: int
    y_ticks: tuple[tuple[float, int], ...]  # (y, value)
    bars: tuple[Bar, ...]
    total: int
    summary: str  # the chart in words, for screen readers


def _nice_max(value: int) -> int:
    """The axis top: the smallest of 1, 2, 5 x 10^n (or 4) at or above ``value``."""
    if value <= 4:
        return 4
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= value:
                return m * step
        step *= 10


def layout(buckets: list[HourBucket]) -> Chart:
    plot_bottom = HEIGHT - BOTTOM
    plot_height = plot_bottom - TOP
    peak = max((b.succeeded + b.failed + b.other + b.active for b in buckets), default=0)
    y_max = _nice_max(peak)
    slot = (WIDTH - LEFT) / max(len(buckets), 1)
    bars = []
    for i, bucket in enumerate(buckets):
        counts = {o: getattr(bucket, o) for o in OUTCOMES}
        y = float(plot_bottom)
        segments = []
        for outcome in OUTCOMES:
            n = counts[outcome]
            if n:
                h = plot_height * n / y_max
                y -= h
                segments.append(Segment(outcome, n, round(y, 2), round(h, 2)))
        label = bucket.hour.strftime("%Y-%m-%d %H:00 UTC")
        detail = ", ".join(f"{counts[o]} {LABELS[o]}" for o in OUTCOMES if counts[o])
        bars.append(Bar(
            x=round(LEFT + i * slot + GAP / 2, 2), width=round(slot - GAP, 2), label=label,
            title=f"{label}: {detail or 'no runs'}", total=sum(counts.values()),
            segments=tuple(segments),
            tick=bucket.hour.strftime("%H:00") if bucket.hour.hour % 6 == 0 else None))
    ticks = tuple((round(plot_bottom - plot_height * v / y_max, 2), v)
                  for v in (0, y_max // 2, y_max))
    total = sum(b.total for b in bars)
    outcome_totals = {o: sum(getattr(b, o) for b in buckets) for o in OUTCOMES}
    words = ", ".join(f"{n} {LABELS[o]}" for o, n in outcome_totals.items() if n)
    summary = (f"Sync runs per hour over the last {len(buckets)} hours: {total} runs"
               + (f" ({words})" if words else ""))
    return Chart(width=WIDTH, height=HEIGHT, plot_left=LEFT, plot_bottom=plot_bottom,
                 plot_top=TOP, y_max=y_max, y_ticks=ticks, bars=tuple(bars), total=total,
                 summary=summary)
