"""Figures of landscape analysis: basins of attraction and critical points.

Both take computed results (:class:`~lossmap.analysis.Basins`, a list of
:class:`~lossmap.analysis.CriticalPoint`) and only draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lossmap.plot import require_matplotlib
from lossmap.plot._landscape import LandscapeDisplay, new_axes, set_labels

__all__ = ["BasinDisplay", "CriticalPointsDisplay"]


# ------------------------------------------------------------------ basins
class BasinDisplay:
    """A map of which point each start's run ends at.

    Parameters
    ----------
    basins : lossmap.analysis.Basins
    surface : Surface, optional
        Drawn as thin contours on top, for orientation.
    """

    def __init__(self, basins: Any, *, surface: Any = None, title: str | None = None):
        self.basins = basins
        self.surface = surface
        self.title = title

    def plot(self, ax: Any = None, *, legend: bool = True) -> BasinDisplay:
        """Draw the labelled map, the end points and a legend with shares."""
        plt = require_matplotlib("BasinDisplay.plot")
        from matplotlib.colors import BoundaryNorm, ListedColormap
        from matplotlib.patches import Patch

        if ax is None:
            # the legend sits right of the axes: a constrained layout keeps it
            # inside the figure (a saved PNG cut it off)
            fig = plt.figure(figsize=(8.4, 5.4), layout="constrained")
            ax = fig.add_subplot()
        b = self.basins
        k = len(b.points)
        base = plt.get_cmap("tab10" if k <= 10 else "tab20")
        colors = ["#222222", "#dddddd"] + [base(i % base.N) for i in range(k)]
        cmap = ListedColormap(colors)
        norm = BoundaryNorm(np.arange(-2.5, k + 0.5), cmap.N)
        a0, a1 = b.axes
        self.mesh_ = ax.pcolormesh(
            a0, a1, b.labels.T, cmap=cmap, norm=norm, shading="nearest", rasterized=True
        )
        self.contour_ = None
        if self.surface is not None:
            (_, s0), (_, s1) = self.surface.axes
            z = np.asarray(self.surface.loss, dtype=np.float64)
            lv = np.quantile(z[np.isfinite(z)], [0.02, 0.08, 0.2, 0.4, 0.7])
            self.contour_ = ax.contour(
                s0,
                s1,
                z.T,
                levels=np.unique(lv),
                colors="black",
                linewidths=0.5,
                alpha=0.45,
            )
        handles = []
        markers = {"minimum": "*", "saddle": "X", "maximum": "^", "degenerate": "D"}
        for i, (p, kind, frac) in enumerate(zip(b.points, b.kinds, b.fractions)):
            ax.scatter(
                *p,
                marker=markers.get(kind, "o"),
                s=180 if kind == "minimum" else 90,
                color="white",
                edgecolors="black",
                linewidths=1.1,
                zorder=5,
            )
            handles.append(
                Patch(
                    facecolor=colors[i + 2],
                    edgecolor="black",
                    label=f"{kind} ({p[0]:.2f}, {p[1]:.2f}): {100 * frac:.0f}%",
                )
            )
        for lab, color, text in (
            (-1, colors[0], "diverged"),
            (-2, colors[1], "did not settle"),
        ):
            share = float(np.mean(b.labels == lab))
            if share:
                handles.append(
                    Patch(
                        facecolor=color,
                        edgecolor="black",
                        label=f"{text}: {100 * share:.0f}%",
                    )
                )
        names = b.param_names
        set_labels(
            ax,
            xlabel=None,
            ylabel=None,
            title=self.title,
            defaults=(names[0], names[1], f"basins of attraction · {b.optimizer}"),
        )
        self.legend_ = None
        if legend:
            self.legend_ = ax.legend(
                handles=handles,
                fontsize=7.5,
                loc="upper left",
                bbox_to_anchor=(1.01, 1.0),
                borderaxespad=0,
            )
        self.ax_, self.figure_ = ax, ax.figure
        return self


# -------------------------------------------------------- critical points
_KIND_STYLE = {
    "minimum": {"marker": "o", "c": "#ff3b30", "s": 80},
    "maximum": {"marker": "^", "c": "#ffffff", "s": 110},
    "saddle": {"marker": "X", "c": "#ff9500", "s": 110},
    "degenerate": {"marker": "D", "c": "#64d2ff", "s": 80},
}


class CriticalPointsDisplay:
    """Stationary points marked by kind over the landscape.

    Global minima are red stars, other minima red circles, maxima white
    triangles, saddles orange crosses, degenerate points blue diamonds.

    Parameters
    ----------
    surface : Surface
    points : sequence of lossmap.analysis.CriticalPoint
    """

    def __init__(
        self, surface: Any, points: Sequence[Any], *, title: str | None = None
    ):
        self.surface = surface
        self.points = list(points)
        self.title = title

    def plot(self, ax: Any = None, *, colorbar: bool = True) -> CriticalPointsDisplay:
        """Draw the landscape and one marker group per kind, with a legend."""
        ax = new_axes(ax, "CriticalPointsDisplay.plot")
        self.landscape_ = LandscapeDisplay(self.surface, title=self.title).plot(
            ax, colorbar=colorbar, legend=False
        )
        self.markers_ = {}
        groups: dict[str, list[Any]] = {}
        for p in self.points:
            key = "global minimum" if p.is_global else p.kind
            groups.setdefault(key, []).append(p.theta)
        order = ["global minimum", "minimum", "saddle", "maximum", "degenerate"]
        for key in order:
            if key not in groups:
                continue
            pts = np.array(groups[key])
            style = dict(_KIND_STYLE["minimum" if key == "global minimum" else key])
            if key == "global minimum":
                style.update(marker="*", s=300)
            self.markers_[key] = ax.scatter(
                pts[:, 0],
                pts[:, 1],
                edgecolors="black",
                linewidths=1.1,
                zorder=6,
                label=f"{key} ({len(pts)})",
                **style,
            )
        if self.markers_:
            ax.legend(fontsize=8, loc="best", framealpha=0.9)
        self.ax_, self.figure_ = ax, ax.figure
        return self
