"""The landscape as a 3-D surface, and 1-D slices of a surface."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lossmap._validation import check_choice, check_float, check_int
from lossmap.plot._landscape import LandscapeDisplay
from lossmap.plot._style import (
    CURRENT_STYLE,
    MINIMUM_STYLE,
    START_STYLE,
    check_field,
    log_limits,
    new_axes,
    set_labels,
    title_from_metadata,
)
from lossmap.surface import Surface

__all__ = ["SliceDisplay", "Surface3DDisplay"]


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

    # same constructor as LandscapeDisplay: surface, field and the three markers
    __init__ = LandscapeDisplay.__init__

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
