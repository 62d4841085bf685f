"""Static SVG charts for the HTML report: lines over time, signed bars, heat maps, spans.

Hand-written SVG rather than a plotting library (docs/REPORTS.md has the
measurements): the report's charts are four simple kinds, the data is
aggregated before it gets here (at most a few hundred points per line, a
fixed grid per heat map), and text stays text. Every function returns one
``<svg>`` element as a string, with a ``<title>`` for screen readers; colours
come from :data:`PALETTE` by series index so that a policy keeps its colour
across charts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

import numpy as np

# Okabe-Ito colours (distinguishable with colour-blindness), baseline first in black
PALETTE = ("#000000", "#E69F00", "#0072B2", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#999999")
HEAT = ("#fff5eb", "#fdd0a2", "#fdae6b", "#fd8d3c", "#f16913", "#d94801", "#a63603", "#7f2704")
FONT = 'font-family="sans-serif" font-size="11"'


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _num(v: float) -> str:
    """Compact tick label: 1.2k, 3.4M, 0.25."""
    a = abs(v)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}"


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (step * m) <= n:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step) + 1)]


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" {FONT}>'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def _legend(labels: Sequence[str], x: float, y: float) -> list[str]:
    out = []
    for i, label in enumerate(labels):
        yy = y + 14 * i
        out.append(
            f'<rect x="{x:.1f}" y="{yy - 8:.1f}" width="10" height="10" fill="{color(i)}"/>'
            f'<text x="{x + 14:.1f}" y="{yy + 1:.1f}">{escape(label)}</text>'
        )
    return out


def line_chart(
    xs: np.ndarray,
    series: Sequence[tuple[str, np.ndarray]],
    *,
    title: str,
    x_label: str,
    width: int = 460,
    height: int = 220,
) -> str:
    """Lines sharing ``xs`` (already binned); one colour per series, legend on the right."""
    left, right, top, bottom = 52, 130, 22, 34
    pw, ph = width - left - right, height - top - bottom
    x0, x1 = (float(xs[0]), float(xs[-1])) if len(xs) else (0.0, 1.0)
    x1 = x1 if x1 > x0 else x0 + 1
    ymax = max([float(np.max(v)) for _, v in series if len(v)] + [0.0])
    ymax = ymax if ymax > 0 else 1.0

    def px(x: np.ndarray | float) -> np.ndarray | float:
        return left + (x - x0) / (x1 - x0) * pw

    def py(y: np.ndarray | float) -> np.ndarray | float:
        return top + ph - y / ymax * ph

    body = [f'<text x="{left}" y="14" font-weight="bold">{escape(title)}</text>']
    for t in _ticks(0, ymax):
        yy = py(t)
        body.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e5e5e5"/>'
            f'<text x="{left - 4}" y="{yy + 4:.1f}" text-anchor="end">{_num(t)}</text>'
        )
    for t in _ticks(x0, x1):
        xx = px(t)
        body.append(f'<text x="{xx:.1f}" y="{top + ph + 14}" text-anchor="middle">{_num(t)}</text>')
    body.append(
        f'<text x="{left + pw / 2:.1f}" y="{height - 4}" text-anchor="middle">{escape(x_label)}</text>'
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>'
    )
    for i, (label, ys) in enumerate(series):
        pts = " ".join(
            f"{a:.1f},{b:.1f}"
            for a, b in zip(np.atleast_1d(px(xs)), np.atleast_1d(py(ys)), strict=True)
        )
        dash = ' stroke-dasharray="5,3"' if i % 2 == 0 and i else ""
        body.append(
            f'<polyline points="{pts}" fill="none" stroke="{color(i)}" stroke-width="1.6"{dash}>'
            f"<title>{escape(label)}: {_num(float(ys[-1]) if len(ys) else 0)}</title></polyline>"
        )
    body += _legend([s[0] for s in series], left + pw + 10, top + 8)
    return _svg(width, height, title, body)


def bar_chart(
    rows: Sequence[tuple[str, str, int, float]],
    *,
    title: str,
    width: int = 460,
) -> str:
    """Signed horizontal bars: ``(group, label, colour index, value)`` per row.

    A negative value (a policy doing more than the baseline) goes left of zero.
    """
    left, right, top, row_h = 200, 60, 24, 16
    height = top + row_h * max(len(rows), 1) + 10
    pw = width - left - right
    lo = min([0.0, *(r[3] for r in rows)])
    hi = max([0.0, *(r[3] for r in rows)])
    span = hi - lo or 1.0

    def px(v: float) -> float:
        return left + (v - lo) / span * pw

    zero = px(0.0)
    body = [f'<text x="4" y="14" font-weight="bold">{escape(title)}</text>']
    for k, (group, label, ci, v) in enumerate(rows):
        y = top + k * row_h
        name = f"{group} · {label}"
        a, b = sorted((zero, px(v)))
        body.append(
            f'<text x="{left - 6}" y="{y + 11}" text-anchor="end">{escape(name)}</text>'
            f'<rect x="{a:.1f}" y="{y + 2}" width="{max(b - a, 0.8):.1f}" height="{row_h - 4}" '
            f'fill="{color(ci)}"><title>{escape(name)}: {v:,.0f}</title></rect>'
            # a negative bar's value sits right of zero: left of the bar are the labels
            f'<text x="{b + 4 if v >= 0 else zero + 4:.1f}" y="{y + 11}">{_num(v)}</text>'
        )
    body.append(
        f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="{top}" y2="{height - 8}" stroke="#555"/>'
    )
    return _svg(width, height, title, body)


def heatmap(
    grid: np.ndarray,
    *,
    title: str,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    x_label: str,
    y_label: str,
    vmax: float | None = None,
    width: int = 280,
    height: int = 220,
) -> str:
    """``grid[y, x]`` (y = address bins, bottom first; x = time bins) as coloured cells.

    Values are put in :data:`HEAT`'s classes on a square-root scale up to ``vmax``
    (share it between maps to compare them); runs of equal cells in a row become
    one subpath of one path per class, so the SVG stays small (~110 KB at worst).
    """
    left, right, top, bottom = 58, 10, 22, 34
    pw, ph = width - left - right, height - top - bottom
    ny, nx = grid.shape
    top_v = float(vmax if vmax is not None else (grid.max() if grid.size else 0.0)) or 1.0
    levels = np.where(
        grid > 0,
        1 + np.minimum(np.sqrt(grid / top_v) * (len(HEAT) - 1), len(HEAT) - 2).astype(int),
        0,
    )
    cw, ch = pw / max(nx, 1), ph / max(ny, 1)
    body = [
        f'<text x="{left}" y="14" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="{HEAT[0]}" stroke="#999"/>',
    ]
    # one path per colour class, in cell units (scaled once): a run of cells is ~14 bytes
    runs: dict[int, list[str]] = {}
    for j in range(ny):
        row, i = levels[j], 0
        while i < nx:
            lv = int(row[i])
            k = i + 1
            while k < nx and row[k] == lv:
                k += 1
            if lv:
                runs.setdefault(lv, []).append(f"M{i} {ny - 1 - j}h{k - i}v1h-{k - i}z")
            i = k
    body.append(f'<g transform="translate({left} {top}) scale({cw:.4f} {ch:.4f})">')
    body += [f'<path fill="{HEAT[lv]}" d="{"".join(d)}"/>' for lv, d in sorted(runs.items())]
    body.append("</g>")
    (x0, x1), (y0, y1) = x_range, y_range
    for t in _ticks(x0, x1, 4):
        xx = left + (t - x0) / ((x1 - x0) or 1) * pw
        body.append(f'<text x="{xx:.1f}" y="{top + ph + 13}" text-anchor="middle">{_num(t)}</text>')
    for t in _ticks(y0, y1, 4):
        yy = top + ph - (t - y0) / ((y1 - y0) or 1) * ph
        body.append(f'<text x="{left - 4}" y="{yy + 4:.1f}" text-anchor="end">{_num(t)}</text>')
    body.append(
        f'<text x="{left + pw / 2:.1f}" y="{height - 4}" text-anchor="middle">{escape(x_label)}</text>'
        f'<text transform="translate(12 {top + ph / 2:.1f}) rotate(-90)" text-anchor="middle">'
        f"{escape(y_label)}</text>"
    )
    return _svg(width, height, title, body)


def spans(
    rows: Sequence[tuple[str, float, float, str]],
    *,
    title: str,
    x_range: tuple[float, float],
    x_label: str,
    width: int = 700,
) -> str:
    """One horizontal span per row: ``(label, start, end, tooltip)`` on a shared time axis."""
    left, right, top, row_h, bottom = 90, 16, 22, 14, 32
    height = top + row_h * max(len(rows), 1) + bottom
    pw = width - left - right
    x0, x1 = x_range
    x1 = x1 if x1 > x0 else x0 + 1

    def px(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * pw

    body = [f'<text x="4" y="14" font-weight="bold">{escape(title)}</text>']
    for k, (label, a, b, tip) in enumerate(rows):
        y = top + k * row_h
        body.append(
            f'<text x="{left - 6}" y="{y + 10}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{px(a):.1f}" y="{y + 2}" width="{max(px(b) - px(a), 1.5):.1f}" '
            f'height="{row_h - 4}" fill="{color(2)}"><title>{escape(tip)}</title></rect>'
        )
    base = top + row_h * max(len(rows), 1)
    for t in _ticks(x0, x1):
        body.append(f'<text x="{px(t):.1f}" y="{base + 14}" text-anchor="middle">{_num(t)}</text>')
    body.append(
        f'<line x1="{left}" x2="{left + pw}" y1="{base}" y2="{base}" stroke="#999"/>'
        f'<text x="{left + pw / 2:.1f}" y="{base + 28}" text-anchor="middle">{escape(x_label)}</text>'
    )
    return _svg(width, height, title, body)


__all__ = ["PALETTE", "bar_chart", "color", "heatmap", "line_chart", "spans"]
