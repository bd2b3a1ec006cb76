"""The compact HTML summary a notebook shows for a :class:`~lossmap.Surface`.

NumPy and the standard library only: a small table (axes, fields with their
range and how many points are not computed, the lowest loss), the kinds of
the directions, and a thumbnail drawn as inline SVG -- a heatmap of ``log10(loss)``
for a plane (at most 40 × 40 cells), the curve for a line.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np

__all__ = ["surface_html"]

#: Viridis at 6 stops (matplotlib's values), interpolated in between.
_VIRIDIS = np.array(
    [
        [68, 1, 84],
        [65, 68, 135],
        [42, 120, 142],
        [34, 168, 132],
        [122, 209, 81],
        [253, 231, 37],
    ],
    dtype=float,
)
_CELLS = 40
_SIZE = 160


def _colour(t: float) -> str:
    if not np.isfinite(t):
        return "#dddddd"
    x = min(max(t, 0.0), 1.0) * (len(_VIRIDIS) - 1)
    i = min(int(x), len(_VIRIDIS) - 2)
    rgb = _VIRIDIS[i] + (x - i) * (_VIRIDIS[i + 1] - _VIRIDIS[i])
    return "#{:02x}{:02x}{:02x}".format(*(int(c + 0.5) for c in rgb))


def _scaled(values: np.ndarray) -> np.ndarray:
    """Values mapped to [0, 1]; log10 when every finite value is > 0."""
    v = np.asarray(values, dtype=float)
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        return np.full(v.shape, np.nan)
    if np.all(finite > 0):
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.log10(v)
        finite = v[np.isfinite(v)]
    lo, hi = float(finite.min()), float(finite.max())
    return (v - lo) / (hi - lo) if hi > lo else np.where(np.isfinite(v), 0.5, np.nan)


def _thumb_plane(loss: np.ndarray) -> str:
    n0, n1 = loss.shape
    i = np.linspace(0, n0 - 1, min(n0, _CELLS)).round().astype(int)
    j = np.linspace(0, n1 - 1, min(n1, _CELLS)).round().astype(int)
    t = _scaled(loss[np.ix_(i, j)])
    w, h = _SIZE / len(i), _SIZE / len(j)
    rects = []
    for a in range(len(i)):  # first axis horizontal, second vertical (up)
        for b in range(len(j)):
            y = _SIZE - (b + 1) * h
            rects.append(
                f'<rect x="{a * w:.2f}" y="{y:.2f}" width="{w + 0.3:.2f}" '
                f'height="{h + 0.3:.2f}" fill="{_colour(t[a, b])}"/>'
            )
    return "".join(rects)


def _thumb_line(loss: np.ndarray) -> str:
    t = _scaled(loss)
    x = np.linspace(4, _SIZE - 4, loss.size)
    y = _SIZE - 8 - (_SIZE - 16) * t
    pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(x, y) if np.isfinite(b))
    return (
        f'<rect width="{_SIZE}" height="{_SIZE}" fill="#f7f7f7"/>'
        f'<polyline points="{pts}" fill="none" stroke="#2a6fdb" stroke-width="2"/>'
    )


def surface_html(surface: Any) -> str:
    """A compact HTML summary of ``surface`` for Jupyter's rich display."""
    kind = "plane" if surface.ndim == 2 else "line"
    rows = []
    for name, a in surface.axes:
        rows.append(
            f"<tr><td>axis <b>{html.escape(name)}</b></td>"
            f"<td>{a.size} points, {a[0]:.4g} to {a[-1]:.4g}</td></tr>"
        )
    for name in surface.field_names:
        v = surface.field(name)
        finite = v[np.isfinite(v)]
        text = (
            f"{finite.min():.4g} to {finite.max():.4g}" if finite.size else "no value"
        )
        missing = v.size - finite.size
        if missing:
            text += f" ({missing} of {v.size} points NaN)"
        rows.append(
            f"<tr><td>field <b>{html.escape(name)}</b></td><td>{text}</td></tr>"
        )
    if np.isfinite(surface.loss).any():
        best = surface.argmin()
        where = ", ".join(f"{k} = {v:.4g}" for k, v in best.coords.items())
        rows.append(
            f"<tr><td>lowest loss</td><td>{best.value:.5g} at {where}</td></tr>"
        )
    meta = surface.metadata
    for key, label in (("model", "model"), ("loss_fn", "loss function")):
        if key in meta:
            rows.append(
                f"<tr><td>{label}</td><td>{html.escape(str(meta[key]))}</td></tr>"
            )
    dirs = meta.get("directions")
    if isinstance(dirs, list) and dirs:  # lossmap.describe says more, in words
        kinds = ", ".join(
            str(d.get("kind", "?")) if isinstance(d, dict) else "?" for d in dirs
        )
        rows.append(f"<tr><td>directions</td><td>{html.escape(kinds)}</td></tr>")
    thumb = (
        _thumb_plane(surface.loss) if surface.ndim == 2 else _thumb_line(surface.loss)
    )
    svg = (
        f'<svg width="{_SIZE}" height="{_SIZE}" viewBox="0 0 {_SIZE} {_SIZE}" '
        f'role="img" aria-label="loss thumbnail">{thumb}</svg>'
    )
    shape = " × ".join(str(n) for n in surface.shape)
    return (
        '<div class="lossmap-surface" style="display:flex;gap:14px;'
        'align-items:flex-start;font-family:sans-serif;font-size:13px">'
        f"<div>{svg}</div><div><div><b>lossmap Surface</b>: a {kind} of "
        f'{shape} points</div><table style="border-collapse:collapse">'
        f"{''.join(rows)}</table></div></div>"
    )
