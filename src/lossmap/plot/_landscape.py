"""Landscape figures: heatmap with contours, 3-D surface, 1-D slice.

Displays follow one pattern: the constructor only stores computed data (a
:class:`~lossmap.Surface` and the points to mark); ``from_surface`` /
``from_problem`` compute what is missing, build the display and call
:meth:`plot`; ``plot(ax=None, ...)`` draws, keeps the artists in attributes
ending in ``_`` and returns the display. Labels the user already set on ``ax``
are kept.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lossmap._validation import check_choice, check_float, check_int
from lossmap.plot import require_matplotlib
from lossmap.surface import Surface

__all__ = ["LandscapeDisplay", "SliceDisplay", "Surface3DDisplay"]

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
    from matplotlib.ticker import MaxNLocator

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
    levels = MaxNLocator(nbins=max_levels, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
    return levels[(levels > lo) & (levels < hi)]


def format_level(value: float) -> str:
    """Compact label for a contour level: 0.001, 1.5, 200, 1e-05."""
    return f"{value:.3g}"


def title_from_metadata(meta: Mapping[str, Any]) -> str:
    """A readable title from surface metadata (``title`` wins)."""
    if meta.get("title"):
        return str(meta["title"])
    land = meta.get("landscape") or {}
    text = str(land.get("title") or land.get("name") or "")
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


# ------------------------------------------------------------ heatmap view
class LandscapeDisplay:
    """A 2-D landscape as a heatmap on a logarithmic colour scale, with contours.

    The colour scale is logarithmic (``LogNorm``): loss landscapes span many
    decades, and a linear scale hides everything near the minimum. Its lower
    end is the smallest positive value but at least ``1e-4`` times the data
    range (``log_floor``), so a loss that reaches exactly 0 still gets a
    finite scale; values below it take the lowest colour. Fields with negative
    values use a symmetric log scale instead. The colour bar is labelled in
    real loss values.

    Parameters
    ----------
    surface : Surface
        A 2-D surface; ``field[i, j]`` is the value at ``(axes[0][i], axes[1][j])``.
    field : str, default="loss"
        Which field to show.
    minimum : (float, float) or Minimum, optional
        θ*, drawn as a red star.
    start : (float, float), optional
        A start point θ₀, drawn as a white circle.
    current : (float, float), optional
        The current point (e.g. of the fit panel next to it), drawn as a cross.
    title : str, optional
        Default title; otherwise one is made from the surface metadata.

    Attributes
    ----------
    ax_, figure_ : matplotlib Axes and Figure
    mesh_ : QuadMesh
        The heatmap.
    norm_ : Normalize
        Its colour normalisation (a ``LogNorm`` by default).
    contour_ : ContourSet or None
    contour_labels_ : list of Text
    colorbar_ : Colorbar or None
    minimum_, start_, current_ : PathCollection or None
        The markers (``get_offsets()`` gives their position).

    Examples
    --------
    >>> from lossmap import toy
    >>> from lossmap.plot import LandscapeDisplay
    >>> p = toy.problem("tanh", "two-points", "huber")
    >>> disp = LandscapeDisplay.from_problem(p, steps=51)  # doctest: +SKIP
    """

    def __init__(
        self,
        surface: Surface,
        *,
        field: str = "loss",
        minimum: Any = None,
        start: Any = None,
        current: Any = None,
        title: str | None = None,
    ) -> None:
        self.surface = check_field(surface, field, ndim=2, who="LandscapeDisplay")
        self.field = field
        self.minimum = as_point("minimum", minimum)
        self.start = as_point("start", start)
        self.current = as_point("current", current)
        self.title = title

    @classmethod
    def from_surface(
        cls,
        surface: Surface,
        *,
        field: str = "loss",
        minimum: Any = None,
        start: Any = None,
        current: Any = None,
        levels: Sequence[float] | None = None,
        ax: Any = None,
        **plot_kw: Any,
    ) -> LandscapeDisplay:
        """Build the display from a computed surface and plot it."""
        disp = cls(surface, field=field, minimum=minimum, start=start, current=current)
        return disp.plot(ax, levels=levels, **plot_kw)

    @classmethod
    def from_problem(
        cls,
        problem: Any,
        *,
        steps: int = 201,
        region: Any = None,
        start: Any = None,
        current: Any = None,
        levels: Sequence[float] | None = None,
        ax: Any = None,
        **plot_kw: Any,
    ) -> LandscapeDisplay:
        """Compute the exact surface and θ* of ``problem``, then plot them.

        ``problem`` is any :class:`~lossmap.toy.Landscape`; θ* comes from its
        ``minimum()`` when it has one. A problem without a minimum (e.g.
        logistic loss on separable data) is drawn without a star and says so
        in the title.
        """
        steps = check_int("steps", steps, minimum=2)
        surface = problem.surface(region, steps=steps)
        title = title_from_metadata(surface.metadata) or getattr(problem, "title", "")
        minimum = None
        if hasattr(problem, "minimum"):
            try:
                minimum = problem.minimum()
            except ValueError:
                title += "\n(no finite minimum: the loss keeps falling)"
        disp = cls(surface, minimum=minimum, start=start, current=current, title=title)
        return disp.plot(ax, levels=levels, **plot_kw)

    def plot(
        self,
        ax: Any = None,
        *,
        levels: Sequence[float] | None = None,
        norm: str = "log",
        log_floor: float = LOG_FLOOR,
        cmap: str = "viridis",
        contours: bool = True,
        colorbar: bool = True,
        legend: bool = True,
        max_levels: int = 8,
        marker_scale: float = 1.0,
        xlabel: str | None = None,
        ylabel: str | None = None,
        title: str | None = None,
    ) -> LandscapeDisplay:
        """Draw the heatmap, contours, colour bar and markers into ``ax``.

        Parameters
        ----------
        ax : Axes, optional
            Where to draw; a new figure when None.
        levels : sequence of float, optional
            Contour levels, e.g. ``[0.1, 0.3, 0.7, 1.5]``; default: round,
            roughly log-spaced levels chosen from the data (:func:`nice_levels`).
        norm : {"log", "linear"}, default="log"
        log_floor : float, default=1e-4
            Lowest colour at ``log_floor`` times the data range (see class doc).
        cmap, contours, colorbar, legend, max_levels
            Colour map; whether to draw contours, colour bar and legend; the
            most levels chosen automatically.
        marker_scale : float, default=1.0
            Scales the θ*, θ₀ and current markers (e.g. 0.6 for small panels).
        xlabel, ylabel, title : str, optional
            Override the defaults (axis names, a title from the metadata).

        Returns
        -------
        LandscapeDisplay
            ``self``, with the artists stored.
        """
        ax = new_axes(ax, "LandscapeDisplay.plot")
        fig = ax.figure
        log_floor = check_float("log_floor", log_floor, minimum=0.0, maximum=1.0)
        (n0, a0), (n1, a1) = self.surface.axes
        values = np.asarray(self.surface.field(self.field))
        self.norm_ = make_norm(values, norm, log_floor)
        shown = np.ma.masked_invalid(values.T)  # (n1, n0): rows are axis 1
        if isinstance(self.norm_, _log_norm_type()):
            shown = np.ma.maximum(shown, self.norm_.vmin)
        self.mesh_ = ax.pcolormesh(
            a0,
            a1,
            shown,
            norm=self.norm_,
            cmap=cmap,
            shading="nearest",
            rasterized=True,
        )
        self.contour_, self.contour_labels_ = None, []
        if contours:
            self._draw_contours(ax, a0, a1, values, levels, max_levels)
        self.colorbar_ = None
        if colorbar:
            self.colorbar_ = fig.colorbar(self.mesh_, ax=ax, pad=0.02)
            label = self.field + (" (log scale)" if norm == "log" else "")
            self.colorbar_.set_label(label)
            if isinstance(self.norm_, _log_norm_type()):
                _plain_log_ticks(self.colorbar_, self.norm_.vmin, self.norm_.vmax)
        self.minimum_ = self.start_ = self.current_ = None
        for attr, style in (
            ("minimum", MINIMUM_STYLE),
            ("start", START_STYLE),
            ("current", CURRENT_STYLE),
        ):
            point = getattr(self, attr)
            if point is not None:
                size = {"s": style["s"] * marker_scale**2}
                marker = ax.scatter([point[0]], [point[1]], **{**style, **size})
                setattr(self, attr + "_", marker)
        ax.set_xlim(a0[0], a0[-1])
        ax.set_ylim(a1[0], a1[-1])
        default_title = self.title or title_from_metadata(self.surface.metadata)
        set_labels(
            ax,
            xlabel=xlabel,
            ylabel=ylabel,
            title=title,
            defaults=(n0, n1, default_title),
        )
        if legend and any(
            p is not None for p in (self.minimum, self.start, self.current)
        ):
            ax.legend(loc="best", fontsize=8, framealpha=0.85)
        self.ax_, self.figure_ = ax, fig
        return self

    def _draw_contours(
        self,
        ax: Any,
        a0: np.ndarray,
        a1: np.ndarray,
        values: np.ndarray,
        levels: Any,
        max_levels: int,
    ) -> None:
        from matplotlib import patheffects

        if levels is None:
            vmin = getattr(self.norm_, "vmin", None)
            is_log = isinstance(self.norm_, _log_norm_type())
            lv = nice_levels(
                values, vmin=vmin if is_log else None, max_levels=max_levels
            )
            # a level that many grid values hit exactly (a flat ridge or plateau,
            # e.g. MAE of a saturated tanh) draws a cloud of dots: skip it
            finite = values[np.isfinite(values)]
            lv = np.array(
                [
                    lev
                    for lev in lv
                    if np.mean(np.isclose(finite, lev, rtol=1e-6, atol=0)) < 5e-4
                ]
            )
        else:
            lv = np.asarray(levels, dtype=np.float64)
            if lv.ndim != 1 or lv.size == 0 or not np.all(np.isfinite(lv)):
                raise ValueError(
                    f"`levels` must be a 1-D list of finite numbers, got {levels!r}"
                )
            if lv.size > 1 and not np.all(np.diff(lv) > 0):
                raise ValueError(f"`levels` must be increasing, got {list(lv)}")
        if lv.size == 0:
            return
        masked = np.ma.masked_invalid(values.T)
        self.contour_ = ax.contour(
            a0, a1, masked, levels=lv, colors="white", linewidths=0.8, alpha=0.85
        )
        _drop_specks(self.contour_, (np.ptp(a0), np.ptp(a1)))
        labels = ax.clabel(self.contour_, inline=True, fontsize=7.5, fmt=format_level)
        halo = [patheffects.withStroke(linewidth=2.2, foreground="black", alpha=0.6)]
        for text in labels:
            text.set_path_effects(halo)
        self.contour_labels_ = list(labels)


def _drop_specks(contour: Any, spans: tuple[float, float], size: float = 0.01) -> None:
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


def _plain_log_ticks(colorbar: Any, vmin: float, vmax: float) -> None:
    """Label a log colour bar with plain numbers (0.01, 0.1, 1) at round values."""
    from matplotlib.ticker import FuncFormatter, NullLocator

    colorbar.set_ticks(log_ticks(vmin, vmax))
    colorbar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_level(v)))
    colorbar.ax.yaxis.set_minor_locator(NullLocator())


def _log_norm_type() -> type:
    from matplotlib import colors

    return colors.LogNorm


# --------------------------------------------------------------- 3-D view
class Surface3DDisplay:
    """A 2-D landscape as a 3-D surface; z is log10 of the loss by default.

    Parameters
    ----------
    surface : Surface
        A 2-D surface.
    field : str, default="loss"
    minimum, start, current : (float, float) or Minimum, optional
        Points drawn on the surface (the star at θ*, a circle at θ₀); their
        height is the field interpolated (bilinearly) on the grid.
    title : str, optional

    Attributes
    ----------
    ax_, figure_ : Axes3D and Figure
    surface_ : Poly3DCollection
    z_ : ndarray of shape (n0, n1)
        The heights drawn: ``log10(max(field, floor))`` for ``zscale="log10"``
        (floor as in :func:`log_limits`), the field itself for ``"linear"``.
    zscale_ : {"log10", "linear"}
    minimum_, start_, current_ : Path3DCollection or None
    """

    def __init__(
        self,
        surface: Surface,
        *,
        field: str = "loss",
        minimum: Any = None,
        start: Any = None,
        current: Any = None,
        title: str | None = None,
    ) -> None:
        self.surface = check_field(surface, field, ndim=2, who="Surface3DDisplay")
        self.field = field
        self.minimum = as_point("minimum", minimum)
        self.start = as_point("start", start)
        self.current = as_point("current", current)
        self.title = title

    @classmethod
    def from_surface(
        cls,
        surface: Surface,
        *,
        field: str = "loss",
        minimum: Any = None,
        start: Any = None,
        current: Any = None,
        ax: Any = None,
        **plot_kw: Any,
    ) -> Surface3DDisplay:
        """Build the display from a computed surface and plot it."""
        return cls(
            surface, field=field, minimum=minimum, start=start, current=current
        ).plot(ax, **plot_kw)

    @classmethod
    def from_problem(
        cls,
        problem: Any,
        *,
        steps: int = 121,
        region: Any = None,
        start: Any = None,
        current: Any = None,
        ax: Any = None,
        **plot_kw: Any,
    ) -> Surface3DDisplay:
        """Compute the exact surface and θ* of ``problem``, then plot them."""
        steps = check_int("steps", steps, minimum=2)
        surface = problem.surface(region, steps=steps)
        minimum = None
        if hasattr(problem, "minimum"):
            try:
                minimum = problem.minimum()
            except ValueError:
                pass
        return cls(surface, minimum=minimum, start=start, current=current).plot(
            ax, **plot_kw
        )

    def heights(self, zscale: str = "auto", floor: float = 1e-3) -> np.ndarray:
        """The z values for ``zscale`` ("auto": log10 unless values are negative)."""
        check_choice("zscale", zscale, ("auto", "log10", "linear"))
        values = np.asarray(self.surface.field(self.field))
        finite = values[np.isfinite(values)]
        if zscale == "auto":
            zscale = "log10" if finite.size and finite.min() >= 0 else "linear"
        if zscale == "log10":
            if finite.size and finite.min() < 0:
                raise ValueError(
                    f"`zscale`='log10' needs a non-negative field; "
                    f"{self.field!r} goes down to {finite.min():.3g}"
                )
            lo, _ = log_limits(values, floor)
            with np.errstate(invalid="ignore"):
                values = np.log10(np.maximum(values, lo))
        self.zscale_ = zscale
        return values

    def plot(
        self,
        ax: Any = None,
        *,
        zscale: str = "auto",
        cmap: str = "viridis",
        resolution: int = 80,
        elev: float = 35.0,
        azim: float = -60.0,
        log_floor: float = 1e-3,
        floor_contours: bool = True,
        xlabel: str | None = None,
        ylabel: str | None = None,
        zlabel: str | None = None,
        title: str | None = None,
        legend: bool = True,
    ) -> Surface3DDisplay:
        """Draw the surface, with θ* and θ₀ on it.

        Parameters
        ----------
        ax : Axes3D, optional
            A 3-D axes (``projection="3d"``); a new figure when None.
        zscale : {"auto", "log10", "linear"}, default="auto"
            Heights: log10 of the field (labelled so), or the field itself.
        resolution : int, default=80
            Most rows/columns of polygons drawn per axis.
        elev, azim : float
            View angles in degrees.
        log_floor : float, default=1e-3
            For ``log10``: values below ``log_floor`` times the data range are
            drawn at that height (a loss of exactly 0 has no logarithm).
        floor_contours : bool, default=True
            Project contour lines of the heights onto the floor of the box.
        """
        ax = new_axes(ax, "Surface3DDisplay.plot", projection="3d")
        if getattr(ax, "name", "") != "3d":
            raise ValueError(
                "Surface3DDisplay needs a 3-D axes "
                "(fig.add_subplot(projection='3d')), got a 2-D one"
            )
        resolution = check_int("resolution", resolution, minimum=2)
        z = self.heights(zscale, check_float("log_floor", log_floor, minimum=0.0))
        self.z_ = z
        (n0, a0), (n1, a1) = self.surface.axes
        g0, g1 = self.surface.mesh()
        ax.computed_zorder = False
        self.surface_ = ax.plot_surface(
            g0,
            g1,
            np.ma.masked_invalid(z),
            cmap=cmap,
            rcount=min(resolution, a0.size),
            ccount=min(resolution, a1.size),
            linewidth=0,
            antialiased=False,
            alpha=0.95,
            zorder=1,
        )
        self.floor_contour_ = None
        if floor_contours:
            finite = z[np.isfinite(z)]
            offset = float(finite.min() - 0.25 * np.ptp(finite))
            self.floor_contour_ = ax.contour(
                g0, g1, np.ma.masked_invalid(z), levels=12, zdir="z",
                offset=offset, cmap=cmap, linewidths=0.8, zorder=0,
            )  # fmt: skip
            ax.set_zlim(offset, float(finite.max()))
        self.minimum_ = self.start_ = self.current_ = None
        for attr, style in (
            ("minimum", MINIMUM_STYLE),
            ("start", START_STYLE),
            ("current", CURRENT_STYLE),
        ):
            point = getattr(self, attr)
            if point is None:
                continue
            height = _interpolate(a0, a1, z, point)
            setattr(
                self,
                attr + "_",
                ax.scatter([point[0]], [point[1]], [height], depthshade=False, **style),
            )
        ax.view_init(elev=elev, azim=azim)
        zname = f"log₁₀ {self.field}" if self.zscale_ == "log10" else self.field
        if zlabel is not None or not ax.get_zlabel():
            ax.set_zlabel(zlabel or zname)
        default_title = self.title or title_from_metadata(self.surface.metadata)
        set_labels(
            ax,
            xlabel=xlabel,
            ylabel=ylabel,
            title=title,
            defaults=(n0, n1, default_title),
        )
        if legend and (self.minimum or self.start or self.current):
            ax.legend(loc="upper right", fontsize=8)
        self.ax_, self.figure_ = ax, ax.figure
        return self


def _interpolate(
    a0: np.ndarray, a1: np.ndarray, z: np.ndarray, point: tuple[float, float]
) -> float:
    """Bilinear interpolation of ``z`` (shape (n0, n1)) at ``point``."""
    from scipy.interpolate import RegularGridInterpolator

    f = RegularGridInterpolator(
        (a0, a1), np.asarray(z), bounds_error=False, fill_value=None
    )
    return float(f(np.array([point]))[0])


# -------------------------------------------------------------- 1-D slice
class SliceDisplay:
    """A 1-D curve of one or more fields of a 1-D surface.

    Parameters
    ----------
    surface : Surface
        A 1-D surface, e.g. ``surface2d.slice("b", 0.3)``.
    fields : sequence of str, default=("loss",)
        One line per field.
    label : str, optional
        Legend label of the line when there is one field (e.g. to overlay
        several slices in one axes).

    Attributes
    ----------
    ax_, figure_ : Axes and Figure
    lines_ : dict of str to Line2D
        One line per field; ``xdata`` the axis coordinates, ``ydata`` the values.
    """

    def __init__(
        self,
        surface: Surface,
        *,
        fields: Sequence[str] = ("loss",),
        label: str | None = None,
    ) -> None:
        if isinstance(fields, str):
            fields = (fields,)
        if len(fields) == 0:
            raise ValueError("`fields` must name at least one field, got none")
        for f in fields:
            check_field(surface, f, ndim=1, who="SliceDisplay")
        self.surface = surface
        self.fields = tuple(fields)
        self.label = label

    @classmethod
    def from_surface(
        cls,
        surface: Surface,
        *,
        fields: Sequence[str] = ("loss",),
        axis: str | None = None,
        value: float | None = None,
        label: str | None = None,
        ax: Any = None,
        **plot_kw: Any,
    ) -> SliceDisplay:
        """Plot a 1-D surface, or the slice of a 2-D one at ``axis = value``."""
        if isinstance(surface, Surface) and surface.ndim == 2:
            if axis is None or value is None:
                raise ValueError(
                    "a 2-D surface needs `axis` and `value` to slice "
                    f"it, e.g. axis={surface.names[1]!r}, value=0.0"
                )
            check_choice("axis", axis, surface.names)
            surface = surface.slice(axis, check_float("value", value))
        return cls(surface, fields=fields, label=label).plot(ax, **plot_kw)

    def plot(
        self,
        ax: Any = None,
        *,
        logy: bool = False,
        xlabel: str | None = None,
        ylabel: str | None = None,
        title: str | None = None,
        legend: bool | None = None,
        **line_kw: Any,
    ) -> SliceDisplay:
        """Draw one line per field; ``logy`` puts the values on a log axis."""
        ax = new_axes(ax, "SliceDisplay.plot")
        name, coords = self.surface.axes[0]
        self.lines_ = {}
        for f in self.fields:
            label = self.label if (self.label and len(self.fields) == 1) else f
            (line,) = ax.plot(coords, self.surface.field(f), label=label, **line_kw)
            self.lines_[f] = line
        if logy:
            ax.set_yscale("log")
        ylab = self.fields[0] if len(self.fields) == 1 else "value"
        set_labels(
            ax,
            xlabel=xlabel,
            ylabel=ylabel,
            title=title,
            defaults=(name, ylab, title_from_metadata(self.surface.metadata)),
        )
        if legend or (legend is None and (len(self.fields) > 1 or self.label)):
            ax.legend(fontsize=8)
        self.ax_, self.figure_ = ax, ax.figure
        return self
