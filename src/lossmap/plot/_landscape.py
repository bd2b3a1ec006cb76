"""The landscape heatmap: log colour scale, labelled contours, θ* and θ₀.

Displays follow one pattern: the constructor only stores computed data (a
:class:`~lossmap.Surface` and the points to mark); ``from_surface`` /
``from_problem`` compute what is missing, build the display and call
:meth:`plot`; ``plot(ax=None, ...)`` draws, keeps the artists in attributes
ending in ``_`` and returns the display. Labels the user already set on ``ax``
are kept. The 3-D surface and the 1-D slice are in :mod:`lossmap.plot._views`,
the fit panels in :mod:`lossmap.plot._fit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lossmap._validation import check_float, check_int
from lossmap.plot._style import (
    CURRENT_STYLE,
    LOG_FLOOR,
    MINIMUM_STYLE,
    START_STYLE,
    as_point,
    check_field,
    drop_specks,
    flat_levels,
    format_level,
    log_norm_type,
    make_norm,
    new_axes,
    nice_levels,
    plain_log_ticks,
    plain_symlog_ticks,
    set_labels,
    title_from_metadata,
)
from lossmap.surface import Surface

__all__ = ["LandscapeDisplay"]


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
    >>> disp = LandscapeDisplay.from_problem(p, steps=51)
    >>> disp.minimum_ is not None
    True
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
        self.surface = check_field(surface, field, ndim=2, who=type(self).__name__)
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
        if isinstance(self.norm_, log_norm_type()):
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
            from matplotlib.colors import SymLogNorm

            symlog = isinstance(self.norm_, SymLogNorm)
            scale = " (symmetric log scale)" if symlog else " (log scale)"
            self.colorbar_.set_label(self.field + (scale if norm == "log" else ""))
            if isinstance(self.norm_, log_norm_type()):
                plain_log_ticks(self.colorbar_, self.norm_.vmin, self.norm_.vmax)
            elif symlog:
                plain_symlog_ticks(self.colorbar_, self.norm_)
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
            is_log = isinstance(self.norm_, log_norm_type())
            lv = nice_levels(
                values, vmin=vmin if is_log else None, max_levels=max_levels
            )
            # a level the grid lies on rather than crosses (a plateau or flat
            # ridge, e.g. MAE of a saturated tanh) draws a cloud of dots: skip it
            lv = lv[~np.isin(lv, flat_levels(values, lv))]
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
        drop_specks(self.contour_, (np.ptp(a0), np.ptp(a1)))
        labels = ax.clabel(self.contour_, inline=True, fontsize=7.5, fmt=format_level)
        halo = [patheffects.withStroke(linewidth=2.2, foreground="black", alpha=0.6)]
        for text in labels:
            text.set_path_effects(halo)
        self.contour_labels_ = list(labels)
