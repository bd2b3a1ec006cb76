"""A training path over its PCA plane, with how faithful the projection is.

The left panel is the plane's loss (heatmap and contours) with the projected
path; the right panels show, along the path, the true loss of each snapshot
beside the surface's loss at its projected point, and each snapshot's
distance off the plane relative to its distance from the centre. A picture
is trustworthy where both losses agree and the distance is small.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lossmap.plot import require_matplotlib
from lossmap.plot._landscape import LandscapeDisplay, check_field, set_labels
from lossmap.plot._nn import (
    CENTER_STYLE,
    LOSS_COLOR,
    METRIC_COLOR,
    PATH_COLOR,
    START_STYLE,
    _halo,
    axis_label,
)
from lossmap.surface import Surface

__all__ = ["TrajectoryDisplay"]


class TrajectoryDisplay:
    """A projected training path over a plane, and its projection diagnostics.

    Parameters
    ----------
    surface : Surface
        The plane's surface (usually the PCA plane of the same trajectory).
    projection : lossmap.nn.Projection
        From ``lossmap.nn.project(recording, directions, surface=surface,
        model=..., ...)``; coordinates of shape (n, 2).

    Attributes
    ----------
    landscape_ : LandscapeDisplay
    path_ : Line2D
        The path; ``get_xydata()`` equals ``projection.coords``.
    steps_ : PathCollection
        The snapshots, coloured by training step.
    start_, center_ : PathCollection
    true_line_, surface_line_, distance_line_ : Line2D or None
        Diagnostics (after :meth:`plot_diagnostics`).
    axes_, figure_
    """

    def __init__(self, surface: Surface, projection: Any) -> None:
        check_field(surface, "loss", ndim=2, who="TrajectoryDisplay")
        coords = np.asarray(getattr(projection, "coords", None))
        if coords.ndim != 2 or coords.shape[1] != 2:
            raise ValueError(
                "`projection` must be a Projection onto a plane (coords of shape "
                f"(n, 2)), got coords of shape {coords.shape}"
            )
        self.surface = surface
        self.projection = projection

    @classmethod
    def from_projection(
        cls, surface: Surface, projection: Any, *, axes: Any = None, **kw: Any
    ) -> TrajectoryDisplay:
        """Plot the path and, when there are axes for them, the diagnostics.

        With ``axes=None`` a figure with three panels is made: the path over
        the plane, true vs surface loss, distance off the plane.
        """
        disp = cls(surface, projection)
        if axes is None:
            plt = require_matplotlib("TrajectoryDisplay")
            fig = plt.figure(figsize=(13.5, 5.2), layout="constrained")
            grid = fig.add_gridspec(2, 2, width_ratios=[1.25, 1])
            axes = [
                fig.add_subplot(grid[:, 0]),
                fig.add_subplot(grid[0, 1]),
                fig.add_subplot(grid[1, 1]),
            ]
        axes = (
            list(np.ravel(axes)) if isinstance(axes, Sequence | np.ndarray) else [axes]
        )
        disp.plot(axes[0], **kw)
        if len(axes) >= 3:
            disp.plot_diagnostics(axes[1:3])
        disp.axes_ = axes
        return disp

    def plot(
        self,
        ax: Any = None,
        *,
        levels: Sequence[float] | None = None,
        cmap: str = "viridis",
        title: str | None = None,
    ) -> TrajectoryDisplay:
        """Draw the plane's loss and the projected path into ``ax``."""
        require_matplotlib("TrajectoryDisplay.plot")
        proj = self.projection
        self.landscape_ = LandscapeDisplay(self.surface).plot(
            ax,
            levels=levels,
            cmap=cmap,
            legend=False,
            xlabel=axis_label(self.surface, 0),
            ylabel=axis_label(self.surface, 1),
            title=title
            if title is not None
            else "Training path projected onto the plane",
        )
        ax = self.landscape_.ax_
        xy = np.asarray(proj.coords)
        (self.path_,) = ax.plot(
            xy[:, 0], xy[:, 1], color=PATH_COLOR, lw=1.6, zorder=5, label="path"
        )
        self.path_.set_path_effects(_halo())
        self.steps_ = ax.scatter(
            xy[:, 0],
            xy[:, 1],
            c=np.asarray(proj.steps, dtype=float),
            cmap="plasma",
            s=18,
            zorder=6,
            edgecolors="black",
            linewidths=0.4,
            label="snapshots (colour: step)",
        )
        self.start_ = ax.scatter([xy[0, 0]], [xy[0, 1]], **START_STYLE)
        self.center_ = ax.scatter([0.0], [0.0], **{**CENTER_STYLE, "label": "centre"})
        # keep the whole path visible even where it leaves the computed grid
        (_, a0), (_, a1) = self.surface.axes
        ax.set_xlim(min(a0[0], xy[:, 0].min()), max(a0[-1], xy[:, 0].max()))
        ax.set_ylim(min(a1[0], xy[:, 1].min()), max(a1[-1], xy[:, 1].max()))
        ax.legend(loc="best", fontsize=8, framealpha=0.85)
        self.true_line_ = self.surface_line_ = self.distance_line_ = None
        self.ax_, self.figure_ = ax, ax.figure
        return self

    def plot_diagnostics(self, axes: Any = None) -> TrajectoryDisplay:
        """True vs surface loss along the path, and the distance off the plane.

        Parameters
        ----------
        axes : pair of Axes, optional
            Loss panel and distance panel; a new figure when None.
        """
        plt = require_matplotlib("TrajectoryDisplay.plot_diagnostics")
        if axes is None:
            _fig, axes = plt.subplots(
                2, 1, figsize=(6.4, 5.2), sharex=True, layout="constrained"
            )
        ax_loss, ax_dist = list(np.ravel(axes))[:2]
        proj = self.projection
        steps = np.asarray(proj.steps, dtype=float)
        self.true_line_ = self.surface_line_ = None
        if proj.true_loss is not None:
            (self.true_line_,) = ax_loss.plot(
                steps, proj.true_loss, color=LOSS_COLOR, lw=2, label="true loss"
            )
        if proj.surface_loss is not None:
            (self.surface_line_,) = ax_loss.plot(
                steps,
                proj.surface_loss,
                color=METRIC_COLOR,
                lw=1.6,
                ls="--",
                marker=".",
                label="surface at projected point",
            )
        losses = [v for v in (proj.true_loss, proj.surface_loss) if v is not None]
        if losses and np.nanmin(np.concatenate(losses)) > 0:
            from matplotlib.ticker import FuncFormatter

            ax_loss.set_yscale("log")
            ax_loss.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax_loss.yaxis.set_minor_formatter(FuncFormatter(_sparse_minor))
        if losses:
            ax_loss.legend(fontsize=8, framealpha=0.85)
        ax_loss.grid(alpha=0.25)
        set_labels(
            ax_loss,
            xlabel=None,
            ylabel=None,
            title=None,
            defaults=("", "loss", "Is the plane faithful to the path?"),
        )
        # the centre itself has no meaningful relative distance: leave it out
        rel = np.where(
            np.asarray(proj.offset) > 0,
            100.0 * np.asarray(proj.relative_distance),
            np.nan,
        )
        (self.distance_line_,) = ax_dist.plot(
            steps, rel, color="#2a9d8f", lw=1.8, marker=".", label="off the plane"
        )
        ax_dist.set_ylim(bottom=0.0, top=max(5.0, float(np.nanmax(rel)) * 1.1))
        ax_dist.grid(alpha=0.25)
        set_labels(
            ax_dist,
            xlabel=None,
            ylabel=None,
            title=None,
            defaults=(
                "training step",
                "distance off plane\n(% of distance to centre)",
                "",
            ),
        )
        self.diagnostic_axes_ = [ax_loss, ax_dist]
        return self


def _sparse_minor(value: float, _pos: Any) -> str:
    """Label minor log ticks at 2 and 5 times a power of ten only."""
    if value <= 0:
        return ""
    mantissa = value / 10 ** np.floor(np.log10(value) + 1e-9)
    return f"{value:g}" if round(mantissa) in (2, 5) else ""
