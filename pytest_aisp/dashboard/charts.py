"""Line charts as inline SVG, drawn on the server: no JavaScript and nothing fetched from a CDN."""

from __future__ import annotations

import html
from collections.abc import Sequence

WIDTH, HEIGHT, PAD = 480, 160, 32
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def line_chart(title: str, series: Sequence[tuple[str, Sequence[tuple[int, float]]]]) -> str:
    """An SVG chart of named series of (run id, value) points sharing one y axis."""
    points = [p for _, values in series for p in values]
    if not points:
        return f"<p class='empty'>{html.escape(title)}: no data yet</p>"
    xs = sorted({x for x, _ in points})
    lo = min(v for _, v in points)
    hi = max(v for _, v in points)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    x_of = {x: PAD + i * (WIDTH - 2 * PAD) / max(1, len(xs) - 1) for i, x in enumerate(xs)}

    def y_of(value: float) -> float:
        return HEIGHT - PAD - (value - lo) / (hi - lo) * (HEIGHT - 2 * PAD)

    parts = [
        f"<svg class='chart' role='img' aria-label='{html.escape(title)}' viewBox='0 0 {WIDTH} {HEIGHT}' "
        f"width='{WIDTH}' height='{HEIGHT}' xmlns='http://www.w3.org/2000/svg'>",
        f"<title>{html.escape(title)}</title>",
        f"<line x1='{PAD}' y1='{HEIGHT - PAD}' x2='{WIDTH - PAD}' y2='{HEIGHT - PAD}' stroke='#999'/>",
        f"<line x1='{PAD}' y1='{PAD}' x2='{PAD}' y2='{HEIGHT - PAD}' stroke='#999'/>",
        f"<text x='2' y='{PAD}' font-size='10'>{hi:.3g}</text>",
        f"<text x='2' y='{HEIGHT - PAD}' font-size='10'>{lo:.3g}</text>",
    ]
    for index, (name, values) in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        coords = " ".join(f"{x_of[x]:.1f},{y_of(v):.1f}" for x, v in values)
        parts.append(f"<polyline class='series' data-name='{html.escape(name)}' fill='none' stroke='{colour}' "
                     f"stroke-width='2' points='{coords}'/>")
        for x, v in values:
            parts.append(f"<circle cx='{x_of[x]:.1f}' cy='{y_of(v):.1f}' r='3' fill='{colour}'>"
                         f"<title>{html.escape(name)} run {x}: {v:.4g}</title></circle>")
        parts.append(f"<text x='{PAD + 4}' y='{12 + 12 * index}' font-size='10' fill='{colour}'>"
                     f"{html.escape(name)}</text>")
    parts.append("</svg>")
    return "".join(parts)
