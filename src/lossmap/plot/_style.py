"""Shared pieces of the landscape figures: colour scales, contour levels,
labels, marker styles and argument checks.

The colour-scale policy lives here for both kinds of figure: the matplotlib
displays and the Plotly builders (:mod:`lossmap.plot._plotly_style`) take the
floor of a log scale from :func:`log_limits` and the contour levels from
:func:`nice_levels`, so a surface has the same colours and the same labelled
contours in a PNG and in the explorer.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from lossmap._validation import check_choice, check_float
from lossmap.plot import require_matplotlib
from lossmap.surface import Surface

__all__ = [
    "CURRENT_STYLE",
    "LOG_FLOOR",
    "MINIMUM_STYLE",
    "START_STYLE",
    "as_point",
    "check_field",
    "drop_specks",
    "flat_levels",
    "format_level",
    "log_limits",
    "log_norm_type",
    "log_ticks",
    "make_norm",
    "new_axes",
    "nice_levels",
    "plain_log_ticks",
    "plain_symlog_ticks",
    "round_ticks",
    "set_labels",
    "title_from_metadata",
]

#: Default floor of the logarithmic colour scale, relative to the data range.
LOG_FLOOR = 1e-4
_SYMBOLS = {"delta": "δ"}
#: Mantissas per decade tried for contour levels, finest first.
_MANTISSAS = ((1, 1.5, 2, 3, 5, 7), (1, 2, 5), (1, 3), (1,))

MINIMUM_STYLE = {
    "marker": "*",
    "s": 320,
    "c": "red",
    "edgecolors": "white",
    "linewidths": 1.0,
    "zorder": 6,
    "label": "θ* (minimum)",
}
START_STYLE = {
    "marker": "o",
    "s": 70,
    "c": "white",
    "edgecolors": "black",
    "linewidths": 1.2,
    "zorder": 6,
    "label": "θ₀ (start)",
}
CURRENT_STYLE = {
    "marker": "X",
    "s": 140,
    "c": "#ff9f1c",
    "edgecolors": "black",
    "linewidths": 0.8,
    "zorder": 7,
    "label": "current (w, b)",
}


# ---------------------------------------------------------------- helpers
def as_point(name: str, value: Any) -> tuple[float, float] | None:
    """``(p0, p1)`` from a pair or a :class:`~lossmap.toy.Minimum`; None stays None."""
    if value is None:
        return None
    if hasattr(value, "w") and hasattr(value, "b"):
        p0, p1 = value.w, value.b
    else:
        try:
            p0, p1 = value
        except (TypeError, ValueError):
            raise TypeError(
                f"`{name}` must be a pair of coordinates (w, b), got {value!r}"
            ) from None
    return check_float(f"{name}[0]", p0), check_float(f"{name}[1]", p1)


def check_field(surface: Any, field: str, *, ndim: int | None, who: str) -> Surface:
    """Check that ``surface`` is a Surface of ``ndim`` axes holding ``field``."""
    if not isinstance(surface, Surface):
        raise TypeError(f"`surface` must be a lossmap.Surface, got {type(surface)}")
    if ndim is not None and surface.ndim != ndim:
        raise ValueError(
            f"{who} needs a {ndim}-D surface, got one with {surface.ndim} axis "
            f"{surface.names}" + ("; use surface.slice(...)" if ndim == 1 else "")
        )
    check_choice("field", field, surface.field_names)
    return surface


def log_limits(values: np.ndarray, floor: float = LOG_FLOOR) -> tuple[float, float]:
    """``(vmin, vmax)`` of a logarithmic scale for non-negative ``values``.

    ``vmin`` is the smallest positive value, but at least ``floor`` times the
    data range, so a loss that reaches 0 (or 1e-30 next to an exact minimum)
    does not stretch the scale over many empty decades; values below ``vmin``
    get the lowest colour.
    """
    v = values[np.isfinite(values)]
    if v.size == 0:
        raise ValueError("the field has no finite value to show")
    hi = float(v.max())
    pos = v[v > 0]
    span = hi - float(v.min())
    lo = max(float(pos.min()) if pos.size else 0.0, floor * span)
    if lo <= 0:  # constant zero field
        lo = 1e-12
    if hi <= lo:
        hi = lo * 10.0
    return lo, hi


def make_norm(values: np.ndarray, scale: str, floor: float = LOG_FLOOR) -> Any:
    """The colour normalisation for ``values``: ``"log"`` or ``"linear"``.

    ``"log"`` is a LogNorm (see :func:`log_limits`) when no value is negative,
    and a SymLogNorm (linear within 1 % of the largest magnitude) otherwise.
    """
    from matplotlib import colors

    check_choice("norm", scale, ("log", "linear"))
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise ValueError("the field has no finite value to show")
    if scale == "linear":
        return colors.Normalize(float(finite.min()), float(finite.max()))
    if finite.min() >= 0:
        return colors.LogNorm(*log_limits(values, floor))
    big = float(np.abs(finite).max())
    return colors.SymLogNorm(
        linthresh=0.01 * big, vmin=float(finite.min()), vmax=float(finite.max())
    )


def nice_levels(
    values: np.ndarray, *, vmin: float | None = None, max_levels: int = 8
) -> np.ndarray:
    """Contour levels from the data: round numbers, roughly log-spaced.

    Levels are 1-2-5-style numbers (finest mantissa set with at most
    ``max_levels`` levels) strictly between the data minimum (or ``vmin``) and
    maximum. Narrow or signed ranges get evenly spaced round levels.
    """
    v = values[np.isfinite(values)]
    lo, hi = float(v.min()), float(v.max())
    if vmin is not None:
        lo = max(lo, vmin)
    # levels in the lowest half-percent of the grid would be tiny rings hidden
    # under the θ* marker
    lo = max(lo, float(np.quantile(v, 0.005)))
    if lo > 0 and hi / lo > 3:
        for mantissas in _MANTISSAS:
            cand = [
                m * 10.0**e
                for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)))
                for m in mantissas
            ]
            levels = np.array([c for c in cand if lo < c < hi])
            if 3 <= levels.size <= max_levels:
                return levels
            if levels.size < 3:
                break
        else:  # even one per decade is too many: every k-th decade
            step = math.ceil(levels.size / max_levels)
            return levels[::step]
    levels = round_ticks(lo, hi, max_levels)
    return levels[(levels > lo) & (levels < hi)]


def round_ticks(lo: float, hi: float, nbins: int = 8) -> np.ndarray:
    """Evenly spaced round values covering ``[lo, hi]``: steps of 1, 2, 2.5
    or 5 times a power of ten, at most ``nbins`` intervals (no matplotlib)."""
    if not hi > lo:
        return np.array([lo])
    raw = (hi - lo) / nbins
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-12))
    start = math.floor(lo / step) * step
    return start + step * np.arange(math.ceil((hi - start) / step - 1e-9) + 1)


def format_level(value: float) -> str:
    """Compact label for a contour level: 0.001, 1.5, 200, 3000, 1e+05, 1e-05.

    Round values from 1000 to 99,999 are written out ("3000", not "3e+03",
    which sat oddly beside "100" on a colour bar).
    """
    if 1e3 <= abs(value) < 1e5 and float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.3g}"


def title_from_metadata(meta: Mapping[str, Any]) -> str:
    """A readable title from surface metadata (``title`` wins)."""
    if meta.get("title"):
        return str(meta["title"])
    land = meta.get("landscape") or {}
    text = str(land.get("title") or land.get("name") or "")
    if land.get("kind") == "WeightedSum" and land.get("name") and land.get("formula"):
        text = f"{land['name']}\n{land['formula']}"  # one line is too wide
    if land.get("kind") == "Problem":
        from lossmap import losses
        from lossmap.toy import MODELS

        model = MODELS.get(land.get("model"))
        try:
            loss = losses.get(land.get("loss", ""))
            loss_label = loss.label or loss.name
        except (TypeError, ValueError):
            loss_label = str(land.get("loss"))
        params = land.get("loss_params") or {}
        if params:
            loss_label += (
                " ("
                + ", ".join(f"{_SYMBOLS.get(k, k)}={v:g}" for k, v in params.items())
                + ")"
            )
        data = (land.get("data") or {}).get("name", "data")
        text = (
            f"{model.formula if model else land.get('model')} · {loss_label} · {data}"
        )
        for pen in ("l2", "l1"):
            if land.get(pen):
                text += f" · {pen}={land[pen]:g}"
    sliced = meta.get("sliced_at")
    if sliced:
        text += " at " + ", ".join(f"{k} = {v:.3g}" for k, v in sliced.items())
    return text


def set_labels(
    ax: Any,
    *,
    xlabel: str | None,
    ylabel: str | None,
    title: str | None,
    defaults: tuple[str, str, str],
) -> None:
    """Set axis labels and title unless the user set them (explicit values win)."""
    for value, default, get, set_ in (
        (xlabel, defaults[0], ax.get_xlabel, ax.set_xlabel),
        (ylabel, defaults[1], ax.get_ylabel, ax.set_ylabel),
        (title, defaults[2], ax.get_title, ax.set_title),
    ):
        if value is not None:
            set_(value)
        elif not get() and default:
            set_(default)


def new_axes(ax: Any, what: str, *, projection: str | None = None) -> Any:
    """``ax``, or a new figure's axes when ``ax`` is None."""
    plt = require_matplotlib(what)
    if ax is None:
        fig = plt.figure(figsize=(6.4, 5.0) if projection is None else (7, 5.6))
        ax = fig.add_subplot(projection=projection)
    return ax


def drop_specks(contour: Any, spans: tuple[float, float], size: float = 0.01) -> None:
    """Remove contour pieces smaller than ``size`` of the plot.

    Where a surface creeps toward a level without crossing it cleanly (the
    arm of a valley approaching an asymptote) the contour breaks into many
    tiny pieces that read as a dotted line; they carry no information.
    """
    from matplotlib.path import Path

    new = []
    for path in contour.get_paths():
        verts, codes = path.vertices, path.codes
        if verts.size == 0 or codes is None:
            new.append(path)
            continue
        starts = [*np.flatnonzero(codes == Path.MOVETO), len(codes)]
        keep = np.zeros(len(codes), dtype=bool)
        for lo, hi in itertools.pairwise(starts):
            ext = np.ptp(verts[lo:hi], axis=0) / np.asarray(spans)
            if np.hypot(*ext) >= size:
                keep[lo:hi] = True
        new.append(Path(verts[keep], codes[keep]))
    contour.set_paths(new)


def flat_levels(
    values: np.ndarray, levels: Any, *, share: float = 5e-4, rtol: float = 1e-6
) -> np.ndarray:
    """The levels of ``levels`` that the grid lies *on* rather than crosses.

    A level that many grid values equal without the surface crossing it there
    (a plateau, such as the MAE of a saturated tanh, or a flat ridge) draws a
    cloud of dots instead of a line. A grid value counts against its level
    when it equals the level (to ``rtol``) and its four neighbours are not
    some above and some below it; a level is flat when such values make up
    ``share`` of the finite grid. A contour that merely passes through grid
    points (common for piecewise-linear losses such as MAE on round data,
    whose values fall on a lattice) has neighbours on both sides and is kept.
    """
    v = np.asarray(values, dtype=np.float64)
    lv = np.asarray(levels, dtype=np.float64)
    finite = np.isfinite(v)
    n = max(int(np.count_nonzero(finite)), 1)
    if v.ndim != 2 or lv.size == 0:
        return lv[:0]
    padded = np.pad(v, 1, constant_values=np.nan)
    neighbours = [
        padded[:-2, 1:-1],
        padded[2:, 1:-1],
        padded[1:-1, :-2],
        padded[1:-1, 2:],
    ]
    flat = []
    for lev in lv:
        tol = rtol * abs(lev)
        hit = finite & (np.abs(v - lev) <= tol)
        if not hit.any():
            continue
        with np.errstate(invalid="ignore"):
            above = np.zeros_like(hit)
            below = np.zeros_like(hit)
            for nb in neighbours:
                above |= nb - lev > tol
                below |= lev - nb > tol
        if np.count_nonzero(hit & ~(above & below)) / n >= share:
            flat.append(lev)
    return np.array(flat, dtype=np.float64)


def log_ticks(vmin: float, vmax: float, *, max_ticks: int = 7) -> np.ndarray:
    """Round tick values on a log scale: the finest 1-2-5-style set that fits."""
    lo_e, hi_e = math.floor(math.log10(vmin)), math.ceil(math.log10(vmax))
    best = np.array([vmin, vmax])
    for mantissas in reversed(_MANTISSAS):
        cand = np.array([m * 10.0**e for e in range(lo_e, hi_e + 1) for m in mantissas])
        cand = cand[(cand >= vmin * (1 - 1e-9)) & (cand <= vmax * (1 + 1e-9))]
        if cand.size > max_ticks:
            if best.size < 3:  # even one per decade is too many: thin them
                best = cand[:: math.ceil(cand.size / max_ticks)]
            break
        best = cand
    return best


def plain_log_ticks(colorbar: Any, vmin: float, vmax: float) -> None:
    """Label a log colour bar with plain numbers (0.01, 0.1, 1) at round values."""
    from matplotlib.ticker import FuncFormatter, NullLocator

    colorbar.set_ticks(log_ticks(vmin, vmax))
    colorbar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_level(v)))
    colorbar.ax.yaxis.set_minor_locator(NullLocator())


def plain_symlog_ticks(colorbar: Any, norm: Any) -> None:
    """Label a symmetric log colour bar with plain numbers: 0 and ± round values.

    matplotlib's own locator puts ticks at ±10ⁿ only (none at all between 1
    and a largest value of 4, say), labelled as powers of ten.
    """
    from matplotlib.ticker import FuncFormatter, NullLocator

    vmin, vmax = float(norm.vmin), float(norm.vmax)
    lin = float(norm.linthresh)
    big = max(abs(vmin), abs(vmax))
    side = log_ticks(lin, big, max_ticks=4) if big > lin else np.array([])
    # beside 0 a tick inside the linear band would crowd it
    side = side[side >= 2.0 * lin]
    ticks = np.concatenate([-side[::-1], [0.0], side])
    ticks = ticks[(ticks >= vmin * (1 + 1e-9)) & (ticks <= vmax * (1 + 1e-9))]
    colorbar.set_ticks(ticks)
    colorbar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_level(v)))
    colorbar.ax.yaxis.set_minor_locator(NullLocator())


def log_norm_type() -> type:
    from matplotlib import colors

    return colors.LogNorm
