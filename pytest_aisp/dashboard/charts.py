"""Trend charts as inline SVG, drawn on the server: they read without JavaScript, print, and fetch nothing.

One chart per metric. The y axis spans the metric's own range (0 to 1 for rates and accuracies, from 0 for
timings and counts), so it never shows impossible values such as a negative accuracy; the legend is HTML
beside the drawing, so names never overlap the lines; every point carries its run and value as a tooltip.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 10, 28
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
           "#bcbd22")


@dataclass(frozen=True)
class Series:
    """One line: its legend name, its full name (tooltip), and (run id, value) points, oldest first."""

    name: str
    title: str
    points: Sequence[tuple[int, float]]


def axis_range(values: Sequence[float], lo: float | None, hi: float | None) -> tuple[float, float]:
    """The y range: the metric's bounds where it has them, the data's (with a margin) where it has none;
    never beyond a bound, never empty."""
    data_lo, data_hi = min(values), max(values)
    low = lo if lo is not None else data_lo - 0.1 * (abs(data_lo) or 1.0)
    high = hi if hi is not None else data_hi + 0.1 * (abs(data_hi) or 1.0)
    if lo is not None and lo >= 0 and hi is None and data_hi <= lo:
        high = lo + 1.0
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
        if lo is not None:
            low = max(low, lo)
        if hi is not None:
            high = min(high, hi)
    return low, high


def ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values within [low, high]."""
    span = high - low
    raw = span / max(1, count - 1)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9) * step
    values = []
    value = first
    while value <= high + 1e-9 * max(1.0, abs(high)):
        values.append(0.0 if abs(value) < 1e-12 else value)
        value += step
    return values


def _label(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.2e}"


def line_chart(title: str, series: Sequence[Series], *, lo: float | None = 0.0, hi: float | None = 1.0,
               run_labels: Mapping[int, str] | None = None) -> str:
    """An HTML figure: an SVG chart of ``series`` on one y axis bounded by ``lo``/``hi``, and its legend."""
    points = [p for s in series for p in s.points]
    safe_title = html.escape(title)
    if not points:
        return f"<p class='empty'>{safe_title}: no data yet</p>"
    run_labels = run_labels or {}
    xs = sorted({x for x, _ in points})
    low, high = axis_range([v for _, v in points], lo, hi)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    x_of = {x: LEFT + (i * plot_w / (len(xs) - 1) if len(xs) > 1 else plot_w / 2) for i, x in enumerate(xs)}

    def y_of(value: float) -> float:
        clamped = min(max(value, low), high)
        return TOP + plot_h - (clamped - low) / (high - low) * plot_h

    parts = [
        f"<svg class='chart' role='img' aria-label='{safe_title}' viewBox='0 0 {WIDTH} {HEIGHT}' "
        f"preserveAspectRatio='xMinYMin meet' xmlns='http://www.w3.org/2000/svg' data-lo='{low:g}' "
        f"data-hi='{high:g}'>",
        f"<title>{safe_title}</title>",
    ]
    for tick in ticks(low, high):
        y = y_of(tick)
        parts.append(f"<line class='grid' x1='{LEFT}' y1='{y:.1f}' x2='{WIDTH - RIGHT}' y2='{y:.1f}' "
                     "stroke='#e3e3e3'/>")
        parts.append(f"<text class='tick' x='{LEFT - 6}' y='{y + 3:.1f}' font-size='10' text-anchor='end'>"
                     f"{_label(tick)}</text>")
    parts.append(f"<line x1='{LEFT}' y1='{TOP + plot_h}' x2='{WIDTH - RIGHT}' y2='{TOP + plot_h}' stroke='#999'/>")
    parts.append(f"<line x1='{LEFT}' y1='{TOP}' x2='{LEFT}' y2='{TOP + plot_h}' stroke='#999'/>")
    shown_x = xs if len(xs) <= 8 else [xs[round(i * (len(xs) - 1) / 7)] for i in range(8)]
    for x in dict.fromkeys(shown_x):
        parts.append(f"<text class='run' x='{x_of[x]:.1f}' y='{HEIGHT - 8}' font-size='10' text-anchor='middle'>"
                     f"{html.escape(run_labels.get(x, f'#{x}'))}</text>")
    legend = []
    for index, line in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        name = html.escape(line.name)
        full = html.escape(line.title)
        if len(line.points) > 1:
            coords = " ".join(f"{x_of[x]:.1f},{y_of(v):.1f}" for x, v in line.points)
            parts.append(f"<polyline class='series' data-name='{full}' fill='none' stroke='{colour}' "
                         f"stroke-width='2' points='{coords}'/>")
        for x, v in line.points:
            parts.append(f"<circle cx='{x_of[x]:.1f}' cy='{y_of(v):.1f}' r='3' fill='{colour}'>"
                         f"<title>{full}, run {html.escape(run_labels.get(x, f'#{x}'))}: {v:.4g}</title></circle>")
        legend.append(f"<li title='{full}'><span class='swatch' style='background:{colour}'></span>{name}</li>")
    parts.append("</svg>")
    return (f"<figure class='trend-chart'>{''.join(parts)}<figcaption><ul class='legend'>{''.join(legend)}</ul>"
            "</figcaption></figure>")
