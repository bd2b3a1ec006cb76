"""Shared pieces of the Plotly figure builders: colour scale, contours, styles.

Plotly has no logarithmic colour scale, so :class:`ColorScale` maps values to
``log10(value)`` (clipped at a floor) and gives colour-bar ticks placed at the
logs of round values and labelled with the values themselves, plus contour
levels at round values.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from lossmap.plot import require_plotly
from lossmap.plot._style import log_limits, nice_levels
from lossmap.surface import Surface

__all__ = ["KIND_STYLE", "PATH_COLORS", "ColorScale", "color_scale"]

#: One colour per optimizer path: each has a contrast of at least 3 against
#: the white panels and 2.4 against both ends of Viridis, and none is red
#: (red marks θ*).
PATH_COLORS = (
    "#e8720c",
    "#0a8fd6",
    "#d63a9a",
    "#3e9e2e",
    "#7b4fd0",
    "#00a3a3",
    "#a07800",
    "#5d6b7d",
)
#: Marker symbol and colour per kind of critical point.
KIND_STYLE = {
    "minimum": ("star", "#e0201b"),
    "saddle": ("x", "#ffffff"),
    "maximum": ("triangle-up", "#ff9f1c"),
    "degenerate": ("diamond-open", "#cccccc"),
}
_FONT = {"family": "Inter, Helvetica, Arial, sans-serif", "size": 13}


# ------------------------------------------------------------ colour scale
class ColorScale:
    """How values map to colours: ``z = log10(value)`` or the value itself.

    Attributes
    ----------
    log : bool
    floor : float
        Smallest value shown on a log scale (values below are clipped to it):
        the smallest positive value, but at most 5 decades below the largest.
    tickvals : list of float
        Colour-bar ticks in plotted units.
    ticktext : list of str
        The same ticks as real values.
    levels : ndarray
        Contour levels in plotted units.
    """

    def __init__(self, values: np.ndarray, *, log: bool | None = None) -> None:
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            raise ValueError("the field has no finite values to show")
        lo, hi = float(finite.min()), float(finite.max())
        self.log = bool(lo >= 0.0 and hi > 0.0) if log is None else bool(log)
        if self.log and hi <= 0.0:
            raise ValueError("a logarithmic colour scale needs positive values")
        if self.log:
            # the same floor as the matplotlib figures (plot._style.log_limits):
            # an exact fit (loss 0) would otherwise stretch the colours over
            # empty decades around the minimum
            self.floor, hi = log_limits(finite)
            zlo, zhi = math.log10(self.floor), math.log10(hi)
            if zhi - zlo < 1e-9:
                zlo -= 0.5
                zhi += 0.5
            ticks = _log_ticks(self.floor, hi)
            self.tickvals = [math.log10(t) for t in ticks]
            self.ticktext = [_fmt(t) for t in ticks]
            # the matplotlib figures' levels (plot._style.nice_levels)
            self.levels = np.log10(nice_levels(finite, vmin=self.floor))
        else:
            self.floor = lo
            zlo, zhi = lo, hi if hi > lo else lo + 1.0
            ticks = _linear_ticks(zlo, zhi)
            self.tickvals = [float(t) for t in ticks]
            self.ticktext = [_fmt(t) for t in ticks]
            self.levels = np.array(self.tickvals)
        self.zmin, self.zmax = zlo, zhi

    def z(self, values: Any) -> np.ndarray:
        """Plotted units for real values (any shape)."""
        v = np.asarray(values, dtype=np.float64)
        if not self.log:
            return v
        with np.errstate(invalid="ignore"):
            return np.log10(np.clip(v, self.floor, None))

    def value(self, z: float) -> float:
        """The real value at plotted level ``z``."""
        return 10.0**z if self.log else z


def color_scale(values: Any, *, log: bool | None = None) -> ColorScale:
    """The colour scale :func:`landscape_figure` uses for ``values``.

    ``log=None`` picks a log scale when every finite value is >= 0.
    """
    return ColorScale(np.asarray(values, dtype=np.float64), log=log)


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if 1e-3 <= a < 1e4:
        return f"{v:.3g}"
    return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e").replace("e+", "e")


_MULTS = (
    (1,),
    (1, 3),
    (1, 2, 5),
    (1, 1.5, 2, 3, 5, 7),
    (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9),
)


def _nice_log_values(lo: float, hi: float, *, fewest: int, most: int) -> list[float]:
    """Round values (1-2-5 and finer per decade) inside [lo, hi]."""
    d0, d1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    best: list[float] = []
    for mults in _MULTS:
        vals = [m * 10.0**d for d in range(d0, d1 + 1) for m in mults]
        vals = [v for v in vals if lo * (1 - 1e-12) <= v <= hi * (1 + 1e-12)]
        if len(vals) > most and best:
            break
        best = vals
        if len(vals) >= fewest:
            break
    while len(best) > most:
        best = best[::2]
    return best


def _log_ticks(lo: float, hi: float) -> list[float]:
    return _nice_log_values(lo, hi, fewest=4, most=10)


def _linear_ticks(lo: float, hi: float) -> np.ndarray:
    raw = (hi - lo) / 8
    mag = 10.0 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 5, 10) if m * mag >= raw), default=mag * 10)
    start = math.ceil(lo / step) * step
    return np.arange(start, hi + step * 1e-9, step)


# ----------------------------------------------------------------- helpers
def _go() -> Any:
    return require_plotly("the explorer's figures")


def _axes2d(surface: Surface) -> tuple[str, np.ndarray, str, np.ndarray]:
    if surface.ndim != 2:
        raise ValueError(f"`surface` must be 2-D, got {surface.ndim}-D")
    (n0, a0), (n1, a1) = surface.axes
    return n0, a0, n1, a1


def _point(p: Any) -> tuple[list[float], list[float]]:
    if p is None:
        return [], []
    x, y = (float(v) for v in np.asarray(p, dtype=np.float64).reshape(2))
    return [x], [y]


def _contour_lines(
    a0: np.ndarray, a1: np.ndarray, z: np.ndarray, levels: np.ndarray
) -> tuple[list[Any], list[Any], list[tuple[float, float, float]]]:
    """Contour polylines (None-separated) and one label position per level."""
    import contourpy

    gen = contourpy.contour_generator(a0, a1, z.T, line_type="Separate")
    span0, span1 = float(a0[-1] - a0[0]), float(a1[-1] - a1[0])
    xs: list[Any] = []
    ys: list[Any] = []
    labels: list[tuple[float, float, float]] = []
    for level in levels:
        lines = gen.lines(float(level))
        longest = None
        for line in lines:
            if len(line) < 2:
                continue
            xs.extend([*line[:, 0].tolist(), None])
            ys.extend([*line[:, 1].tolist(), None])
            if longest is None or len(line) > len(longest):
                longest = line
        small = longest is not None and (
            np.ptp(longest[:, 0]) < 0.1 * span0 and np.ptp(longest[:, 1]) < 0.1 * span1
        )
        if longest is not None and len(longest) >= 8 and not small:
            # the vertex farthest from the plot's border keeps labels readable
            u = (longest[:, 0] - a0[0]) / span0
            v = (longest[:, 1] - a1[0]) / span1
            edge = np.minimum(np.minimum(u, 1 - u), np.minimum(v, 1 - v))
            cand = longest[int(np.argmax(edge))]
            spot = (float(cand[0]), float(cand[1]))
            if all(
                abs(spot[0] - p[0]) > 0.07 * span0 or abs(spot[1] - p[1]) > 0.05 * span1
                for p in labels
            ):
                labels.append((*spot, float(level)))
    return xs, ys, labels


def _finite_path(params: Any, region: Any = None) -> np.ndarray:
    """Rows up to the first non-finite one (and, given ``region``, up to the
    first one outside it, that one kept so the path runs to the edge)."""
    p = np.asarray(params, dtype=np.float64).reshape(-1, 2)
    ok = np.all(np.isfinite(p), axis=1)
    if not ok.all():
        p = p[: int(np.argmin(ok))] if ok[0] else p[:0]
    if region is not None and len(p):
        (lo0, hi0), (lo1, hi1) = region
        inside = (
            (p[:, 0] >= lo0) & (p[:, 0] <= hi0) & (p[:, 1] >= lo1) & (p[:, 1] <= hi1)
        )
        if not inside.all():
            k = int(np.argmin(inside))
            if k == 0:
                return p[:0]
            # the last segment ends where it crosses the region's border
            a, d = p[k - 1], p[k] - p[k - 1]
            t = 1.0
            for j, (lo, hi) in enumerate(((lo0, hi0), (lo1, hi1))):
                if d[j] > 0 and a[j] + d[j] > hi:
                    t = min(t, (hi - a[j]) / d[j])
                elif d[j] < 0 and a[j] + d[j] < lo:
                    t = min(t, (lo - a[j]) / d[j])
            p = np.vstack([p[:k], a + t * d])
    return p


def _path_label(traj: Any, i: int) -> str:
    return str(getattr(traj, "label", "") or f"run {i + 1}")


@functools.lru_cache(maxsize=1)
def _white_template() -> Any:
    import plotly.io as pio

    return pio.templates["plotly_white"]
