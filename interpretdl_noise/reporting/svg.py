"""Small inline SVG charts for the report (no JavaScript, no external resources).

Every function returns an ``<svg>`` element as a string, sized in CSS pixels through ``viewBox`` so
it scales with the page. Coordinates are rounded to one decimal to keep the file small.
"""
from __future__ import annotations

from html import escape
from typing import Mapping, Optional, Sequence, Tuple

import numpy as np

__all__ = ["PALETTE", "bars_svg", "curve_svg", "heatmap_svg", "line_chart_svg", "sparkline_svg"]

# matplotlib's tab10, so the page matches the package's PNG plots
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]


def _points(xs: np.ndarray, ys: np.ndarray) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys))


def _downsample(values: np.ndarray, max_points: int) -> Tuple[np.ndarray, np.ndarray]:
    """(positions in [0, 1], values) with at most ``max_points`` points, end points kept."""
    n = values.shape[0]
    idx = np.arange(n) if n <= max_points else np.unique(np.linspace(0, n - 1, max_points).round().astype(int))
    pos = idx / max(n - 1, 1)
    return pos, values[idx]


def curve_svg(curve: np.ndarray, reference: np.ndarray, *, width: int = 220, height: int = 56,
              max_points: int = 60, title: str = "") -> str:
    """The sample's assigned-label probability per epoch (blue) over the run's median curve (grey).

    Parameters
    ----------
    curve, reference : ndarray of shape (E,)
        Probabilities in [0, 1].
    """
    pad = 3
    inner_w, inner_h = width - 2 * pad, height - 2 * pad

    def line(values: np.ndarray) -> str:
        pos, vals = _downsample(np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0), max_points)
        return _points(pad + pos * inner_w, pad + (1.0 - vals) * inner_h)

    tip = f"<title>{escape(title)}</title>" if title else ""
    return (f'<svg class="curve" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">{tip}'
            f'<rect x="{pad}" y="{pad}" width="{inner_w}" height="{inner_h}" class="frame"/>'
            f'<line x1="{pad}" x2="{pad + inner_w}" y1="{pad + inner_h / 2:.1f}" y2="{pad + inner_h / 2:.1f}" '
            f'class="grid"/>'
            f'<polyline points="{line(reference)}" class="median"/>'
            f'<polyline points="{line(curve)}" class="sample"/></svg>')


def sparkline_svg(values: np.ndarray, *, width: int = 96, height: int = 64, max_points: int = 128) -> str:
    """A feature vector (D,) as a line, scaled to its own min..max (the card's 'thumbnail' without images)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    values = np.where(np.isfinite(values), values, 0.0)
    pad = 3
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    span = hi - lo if hi > lo else 1.0
    pos, vals = _downsample(values if values.size else np.zeros(1), max_points)
    pts = _points(pad + pos * (width - 2 * pad), pad + (1.0 - (vals - lo) / span) * (height - 2 * pad))
    return (f'<svg class="thumb-svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">'
            f'<title>feature vector, {values.size} values in [{lo:.3g}, {hi:.3g}]</title>'
            f'<polyline points="{pts}" class="spark"/></svg>')


def bars_svg(values: np.ndarray, labels: Sequence[str], *, width: int = 96, height: int = 64,
             highlight: Sequence[int] = (), ymax: Optional[float] = 1.0, axis: bool = False,
             title: str = "", value_format: str = "{:.2f}") -> str:
    """Vertical bars, one per entry of ``values`` (e.g. class probabilities or per-class noise rates).

    ``highlight`` indices get the accent colour; with ``axis`` the labels are written under the bars
    and the maximum on the y axis.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    n = values.shape[0]
    top = ymax if ymax is not None else (float(values.max()) if n and values.max() > 0 else 1.0)
    top = top if top > 0 else 1.0
    left, bottom = (40, 34) if axis else (2, 2)
    right, upper = 4, (12 if axis else 2)
    inner_w, inner_h = width - left - right, height - bottom - upper
    step = inner_w / max(n, 1)
    parts = [f'<svg class="bars" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">']
    if title:
        parts.append(f"<title>{escape(title)}</title>")
    marked = set(int(i) for i in highlight)
    show_labels = axis and n <= 40
    for i, v in enumerate(values):
        h = max(0.0, min(v / top, 1.0)) * inner_h
        x = left + i * step + step * 0.1
        cls = "bar hi" if i in marked else "bar"
        label = escape(str(labels[i])) if i < len(labels) else str(i)
        parts.append(f'<rect class="{cls}" x="{x:.1f}" y="{upper + inner_h - h:.1f}" width="{step * 0.8:.1f}" '
                     f'height="{h:.1f}"><title>{label}: {value_format.format(v)}</title></rect>')
        if show_labels:
            cx = left + (i + 0.5) * step
            parts.append(f'<text class="tick" x="{cx:.1f}" y="{upper + inner_h + 12:.1f}" '
                         f'text-anchor="end" transform="rotate(-40 {cx:.1f} {upper + inner_h + 12:.1f})">'
                         f'{escape(_short(label))}</text>')
    if axis:
        parts.append(f'<line class="axis" x1="{left}" x2="{left + inner_w}" y1="{upper + inner_h}" '
                     f'y2="{upper + inner_h}"/>')
        parts.append(f'<text class="tick" x="{left - 4}" y="{upper + 4}" text-anchor="end">'
                     f'{value_format.format(top)}</text>')
        parts.append(f'<text class="tick" x="{left - 4}" y="{upper + inner_h}" text-anchor="end">0</text>')
    parts.append("</svg>")
    return "".join(parts)


def _short(text: str, n: int = 10) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def heatmap_svg(counts: np.ndarray, labels: Sequence[str], *, size: int = 300, row_title: str = "given",
                col_title: str = "suggested") -> str:
    """A C x C count matrix (rows ``row_title``, columns ``col_title``) as a heat map.

    Colour = share of the row (square-root scale, so small off-diagonal cells stay visible); counts are
    written in the cells when C <= 15; every cell has a tooltip.
    """
    counts = np.asarray(counts, dtype=np.float64)
    c = counts.shape[0]
    left, top = 50, 40
    cell = (size - max(left, top) - 4) / max(c, 1)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    parts = [f'<svg class="heatmap" viewBox="0 0 {size} {size}" width="{size}" height="{size}" role="img">',
             f'<text class="axis-title" x="{left + (size - left) / 2:.1f}" y="14" text-anchor="middle">'
             f'{escape(col_title)} →</text>',
             f'<text class="axis-title" x="14" y="{top + (size - top) / 2:.1f}" text-anchor="middle" '
             f'transform="rotate(-90 14 {top + (size - top) / 2:.1f})">{escape(row_title)} →</text>']
    show_ticks = c <= 30
    for i in range(c):
        name = str(i)  # ids keep the axes short; names are in the tooltips
        if show_ticks:
            parts.append(f'<text class="tick" x="{left + (i + 0.5) * cell:.1f}" y="{top - 5}" '
                         f'text-anchor="middle">{name}</text>')
            parts.append(f'<text class="tick" x="{left - 4}" y="{top + (i + 0.5) * cell + 3:.1f}" '
                         f'text-anchor="end">{name}</text>')
        for j in range(c):
            alpha = float(np.sqrt(share[i, j]))
            tip = (f"{row_title} {escape(str(labels[i]))}, {col_title} {escape(str(labels[j]))}: "
                   f"{int(counts[i, j])} ({share[i, j]:.1%} of the row)")
            parts.append(f'<rect class="cell{" diag" if i == j else ""}" x="{left + j * cell:.1f}" '
                         f'y="{top + i * cell:.1f}" width="{cell:.1f}" height="{cell:.1f}" '
                         f'fill-opacity="{alpha:.2f}"><title>{tip}</title></rect>')
            if c <= 15 and counts[i, j] > 0:
                dark = alpha > 0.6
                parts.append(f'<text class="count{" light" if dark else ""}" x="{left + (j + 0.5) * cell:.1f}" '
                             f'y="{top + (i + 0.5) * cell + 3:.1f}" text-anchor="middle">{int(counts[i, j])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart_svg(series: Mapping[str, Tuple[np.ndarray, np.ndarray]], *, xlabel: str, ylabel: str,
                   width: int = 300, height: int = 240, diagonal: bool = False, max_points: int = 150) -> str:
    """Several curves on [0, 1] x [0, 1] (ROC or PR), one colour per series in :data:`PALETTE` order."""
    left, bottom, right, upper = 36, 30, 8, 8
    inner_w, inner_h = width - left - right, height - bottom - upper

    def sx(v):
        return left + np.clip(v, 0, 1) * inner_w

    def sy(v):
        return upper + (1 - np.clip(v, 0, 1)) * inner_h

    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">',
             f'<rect class="frame" x="{left}" y="{upper}" width="{inner_w}" height="{inner_h}"/>']
    for t in (0.0, 0.5, 1.0):
        parts.append(f'<text class="tick" x="{sx(t):.1f}" y="{upper + inner_h + 12}" text-anchor="middle">{t:g}</text>')
        parts.append(f'<text class="tick" x="{left - 4}" y="{sy(t) + 3:.1f}" text-anchor="end">{t:g}</text>')
    parts.append(f'<text class="axis-title" x="{left + inner_w / 2:.1f}" y="{height - 4}" '
                 f'text-anchor="middle">{escape(xlabel)}</text>')
    parts.append(f'<text class="axis-title" x="10" y="{upper + inner_h / 2:.1f}" text-anchor="middle" '
                 f'transform="rotate(-90 10 {upper + inner_h / 2:.1f})">{escape(ylabel)}</text>')
    if diagonal:
        parts.append(f'<line class="grid" x1="{sx(0):.1f}" y1="{sy(0):.1f}" x2="{sx(1):.1f}" y2="{sy(1):.1f}"/>')
    for k, (name, (xs, ys)) in enumerate(series.items()):
        xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        if xs.shape[0] > max_points:
            idx = np.unique(np.linspace(0, xs.shape[0] - 1, max_points).round().astype(int))
            xs, ys = xs[idx], ys[idx]
        colour = PALETTE[k % len(PALETTE)]
        parts.append(f'<polyline class="series" stroke="{colour}" points="{_points(sx(xs), sy(ys))}">'
                     f'<title>{escape(name)}</title></polyline>')
    parts.append("</svg>")
    return "".join(parts)
