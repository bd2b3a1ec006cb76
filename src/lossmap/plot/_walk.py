"""Figures for walking a landscape: optimizer paths, loss curves, learning-rate
sweeps (the animated race: ``_walk_anim``; basins and critical points:
``_walk_analysis``).

Every display takes computed results (a :class:`~lossmap.Surface`,
:class:`~lossmap.optim.Trajectory` objects, :class:`~lossmap.analysis.Basins`,
critical points) and only draws. ``plot(ax=None, ...)`` returns the display
with its artists in attributes ending in ``_``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from lossmap.plot import require_matplotlib
from lossmap.plot._landscape import LandscapeDisplay, new_axes, set_labels

__all__ = [
    "LRSweepDisplay",
    "LossCurveDisplay",
    "PathsDisplay",
    "optimizer_color",
]

#: A fixed colour per optimizer, chosen to stand out on the viridis heatmap
#: (every path also gets a dark outline).
OPTIMIZER_COLORS = {
    "gd": "#ff3b30",
    "sgd": "#ff3b30",
    "momentum": "#ff9500",
    "nesterov": "#ffd60a",
    "adagrad": "#30d158",
    "rmsprop": "#64d2ff",
    "adam": "#ff2dd4",
    "adamw": "#bf5af2",
}
#: Learning-rate sweeps, smallest rate first: cool to hot.
_SWEEP = ("#64d2ff", "#30d158", "#ffd60a", "#ff9500", "#ff3b30", "#ff2dd4")
_FALLBACK = ("#ff3b30", "#ff9500", "#ffd60a", "#30d158", "#64d2ff", "#ff2dd4")
#: Paths are drawn while they stay inside the view plus this share of its
#: width; a path that leaves it (diverging, say) is cut at the edge and marked.
_MARGIN = 0.0


def optimizer_color(name: str, index: int = 0) -> str:
    """The colour used for optimizer ``name`` (a fallback cycle for others)."""
    return OPTIMIZER_COLORS.get(name, _FALLBACK[index % len(_FALLBACK)])


def _halo(width: float = 3.2) -> list[Any]:
    from matplotlib import patheffects

    return [
        patheffects.Stroke(linewidth=width, foreground="black", alpha=0.7),
        patheffects.Normal(),
    ]


def _as_list(trajectories: Any) -> list[Any]:
    if hasattr(trajectories, "params"):
        return [trajectories]
    out = list(trajectories)
    if not out:
        raise ValueError("`trajectories` must hold at least one Trajectory, got none")
    return out


def _visible_path(path: np.ndarray, view: np.ndarray) -> tuple[np.ndarray, bool]:
    """The leading part of ``path`` inside the view (plus a small margin).

    A path that leaves the view (or stops being finite) is cut there: its last
    point is where the segment crosses the margin box, and ``cut`` is True.
    """
    lo, hi = view[:, 0], view[:, 1]
    pad = _MARGIN * (hi - lo)
    lo, hi = lo - pad, hi + pad
    ok = np.isfinite(path).all(-1) & np.all((path >= lo) & (path <= hi), axis=-1)
    bad = np.flatnonzero(~ok)
    if not bad.size:
        return path, False
    k = int(bad[0])
    if k == 0:
        return path[:0], True
    a, b = path[k - 1], path[k]
    if np.isfinite(b).all():
        # largest s in (0, 1] with a + s·(b − a) inside the box
        d = b - a
        with np.errstate(divide="ignore", invalid="ignore"):
            s_hi = np.where(d > 0, (hi - a) / d, np.where(d < 0, (lo - a) / d, np.inf))
        s = float(np.clip(np.min(s_hi), 0.0, 1.0))
        return np.vstack([path[:k], a + s * d]), True
    return path[:k], True


def _status_text(t: Any, i: int | None = None) -> str:
    status = t.status if i is None else t.status[i]
    stop = t.stopped_at if i is None else t.stopped_at[i]
    if status == "diverged":
        return f"diverged at step {stop}"
    if status == "converged":
        return f"converged in {stop} steps"
    return f"{stop} steps"


# ------------------------------------------------------------------ paths
class PathsDisplay:
    """Optimizer paths over a landscape.

    Each trajectory gets its own colour (by optimizer name, or ``colors``),
    a dark outline, a marker at its end and a legend entry with its status.
    A path that diverges or leaves the view is cut where it does and marked
    with a black-edged ✕.

    Parameters
    ----------
    surface : Surface
        The landscape to draw underneath (2-D).
    trajectories : Trajectory or sequence of Trajectory
        Single-start or multi-start trajectories.
    minima : sequence of (x, y), optional
        Points to mark as minima (red stars).
    colors : sequence of colours, optional
        One per trajectory.
    labels : sequence of str, optional
        Legend text per trajectory (default: each trajectory's label).
    title : str, optional

    Attributes
    ----------
    ax_, figure_, landscape_ : Axes, Figure, LandscapeDisplay
    lines_ : list of Line2D
        One per drawn path (multi-start trajectories give one per start).
    ends_ : list of PathCollection
        End markers; ``cut_`` lists the ✕ markers of cut paths.
    start_ : PathCollection or None
    legend_ : Legend
    """

    def __init__(
        self,
        surface: Any,
        trajectories: Any,
        *,
        minima: Sequence[Any] | None = None,
        colors: Sequence[Any] | None = None,
        labels: Sequence[str] | None = None,
        title: str | None = None,
    ) -> None:
        self.surface = surface
        self.trajectories = _as_list(trajectories)
        self.minima = [tuple(m) for m in (minima or [])]
        n = len(self.trajectories)
        if colors is not None and len(colors) != n:
            raise ValueError(f"`colors` must have {n} entries, got {len(colors)}")
        if labels is not None and len(labels) != n:
            raise ValueError(f"`labels` must have {n} entries, got {len(labels)}")
        self.colors = (
            list(colors)
            if colors is not None
            else [
                optimizer_color(t.optimizer, i) for i, t in enumerate(self.trajectories)
            ]
        )
        if colors is None and len(set(self.colors)) < n:
            self.colors = list(_FALLBACK[:n]) if n <= len(_FALLBACK) else self.colors
        self.labels = (
            list(labels) if labels is not None else [t.label for t in self.trajectories]
        )
        self.title = title

    def plot(
        self,
        ax: Any = None,
        *,
        linewidth: float = 2.0,
        colorbar: bool = True,
        legend: bool = True,
        landscape_kw: dict[str, Any] | None = None,
    ) -> PathsDisplay:
        """Draw the landscape, then the paths, markers and legend."""
        if ax is None:
            plt = require_matplotlib("PathsDisplay.plot")
            _, ax = plt.subplots(figsize=(7.0, 7.0), layout="constrained")
        kw = {"colorbar": colorbar, "legend": False, **(landscape_kw or {})}
        self.landscape_ = LandscapeDisplay(self.surface, title=self.title).plot(
            ax, **kw
        )
        (_, a0), (_, a1) = self.surface.axes
        view = np.array([[a0[0], a0[-1]], [a1[0], a1[-1]]])
        self.lines_, self.ends_, self.cut_ = [], [], []
        handles = []
        for t, color, label in zip(self.trajectories, self.colors, self.labels):
            multi = t.n_starts is not None
            starts = range(t.n_starts) if multi else [None]
            line = None
            for i in starts:
                path = t.path(i) if multi else t.path()
                shown, cut = _visible_path(path, view)
                diverged = (t.status[i] if multi else t.status) == "diverged"
                if shown.shape[0] == 0:
                    continue
                (line,) = ax.plot(
                    shown[:, 0],
                    shown[:, 1],
                    color=color,
                    lw=linewidth if not multi else 0.8 * linewidth,
                    alpha=0.95,
                    zorder=4,
                    path_effects=_halo(linewidth + 1.8),
                )
                self.lines_.append(line)
                end = shown[-1]
                if cut or diverged:
                    self.cut_.append(
                        ax.scatter(
                            *end,
                            marker="X",
                            s=110,
                            color=color,
                            edgecolors="black",
                            linewidths=1.2,
                            zorder=7,
                            clip_on=False,
                        )
                    )
                else:
                    self.ends_.append(
                        ax.scatter(
                            *end,
                            marker="o",
                            s=46,
                            color=color,
                            edgecolors="black",
                            linewidths=1.0,
                            zorder=7,
                        )
                    )
            if line is not None:
                line.set_label(
                    f"{label}: {_status_text(t) if not multi else ''}".rstrip(": ")
                )
                handles.append(line)
        first = self.trajectories[0]
        self.start_ = None
        if first.n_starts is None:
            self.start_ = ax.scatter(
                *first.params[0],
                marker="o",
                s=90,
                c="white",
                edgecolors="black",
                linewidths=1.4,
                zorder=8,
                label="start",
            )
            handles.append(self.start_)
        if self.minima:
            m = np.array(self.minima)
            star = ax.scatter(
                m[:, 0],
                m[:, 1],
                marker="*",
                s=260,
                c="red",
                edgecolors="white",
                linewidths=0.9,
                zorder=6,
                label="minimum",
            )
            handles.append(star)
        if self.cut_:
            from matplotlib.lines import Line2D

            handles.append(
                Line2D(
                    [],
                    [],
                    marker="X",
                    ls="",
                    mfc="0.6",
                    mec="black",
                    ms=9,
                    label="cut off (diverged / left view)",
                )
            )
        ax.set_xlim(*view[0])
        ax.set_ylim(*view[1])
        self.legend_ = None
        if legend:
            self.legend_ = ax.legend(
                handles=handles,
                loc="upper center",
                bbox_to_anchor=(0.5, -0.11),
                ncol=2,
                fontsize=8,
                frameon=False,
            )
        self.ax_, self.figure_ = ax, ax.figure
        return self


# ------------------------------------------------------------- loss curves
class LossCurveDisplay:
    """Loss against step, one curve per trajectory, on a log scale.

    Parameters
    ----------
    trajectories : Trajectory or sequence of Trajectory (single-start)
    reference : float, optional
        Subtracted from the loss (e.g. the known minimum value), so the curve
        shows the gap ``L − L*`` and a log scale works for negative losses.
    colors, labels : sequences, optional
    """

    def __init__(
        self,
        trajectories: Any,
        *,
        reference: float | None = None,
        colors: Sequence[Any] | None = None,
        labels: Sequence[str] | None = None,
    ) -> None:
        self.trajectories = _as_list(trajectories)
        for t in self.trajectories:
            if t.n_starts is not None:
                raise ValueError(
                    "LossCurveDisplay takes single-start trajectories; pick one "
                    "start of a multi-start run first"
                )
        self.reference = reference
        n = len(self.trajectories)
        self.colors = (
            list(colors)
            if colors is not None
            else [
                optimizer_color(t.optimizer, i) for i, t in enumerate(self.trajectories)
            ]
        )
        if colors is None and len(set(self.colors)) < n:
            self.colors = [_FALLBACK[i % len(_FALLBACK)] for i in range(n)]
        self.labels = (
            list(labels) if labels is not None else [t.label for t in self.trajectories]
        )

    def plot(
        self, ax: Any = None, *, log: bool = True, floor: float = 1e-16
    ) -> LossCurveDisplay:
        """Draw the curves; diverged ones end in a ✕ at their last finite value."""
        ax = new_axes(ax, "LossCurveDisplay.plot")
        ref = 0.0 if self.reference is None else float(self.reference)
        if log:
            log = self._log_fits(ref)
        self.lines_, self.cut_ = [], []
        # a diverging curve is cut where it climbs above the ceiling (10x the
        # highest starting loss, or the highest loss of the runs that did not
        # diverge), so it does not squash the others
        keep = [t for t in self.trajectories if t.status != "diverged"]
        tops = [float(t.loss[0]) - ref for t in self.trajectories]
        tops += [float(np.nanmax(t.loss)) - ref for t in keep]
        ceiling = max(10.0 * max(tops[: len(self.trajectories)]), *tops, 10 * floor)
        for t, color, label in zip(self.trajectories, self.colors, self.labels):
            y = np.asarray(t.loss, dtype=np.float64) - ref
            steps = np.arange(y.size)
            bad = np.flatnonzero(~np.isfinite(y) | (y > ceiling))
            k = int(bad[0]) if bad.size else y.size
            y, steps = y[:k], steps[:k]
            if log:
                y = np.maximum(y, floor)
            (line,) = ax.plot(
                steps,
                y,
                color=color,
                lw=1.8,
                label=f"{label} ({_status_text(t)})",
                path_effects=_halo(3.0),
            )
            self.lines_.append(line)
            if t.status == "diverged" or bad.size:
                self.cut_.append(
                    ax.scatter(
                        k,
                        ceiling if bad.size else y[-1],
                        marker="X",
                        s=90,
                        color=color,
                        edgecolors="black",
                        zorder=5,
                        clip_on=False,
                    )
                )
        if log:
            ax.set_yscale("log")
        if log:
            ax.set_ylim(top=ceiling * 3.0)
        else:  # the drawn range (cut curves end at the ceiling) plus a margin
            drawn = [
                np.asarray(line.get_ydata(), dtype=np.float64) for line in self.lines_
            ]
            drawn = np.concatenate([y[np.isfinite(y)] for y in drawn] or [np.zeros(1)])
            if drawn.size:
                lo, hi = float(drawn.min()), float(drawn.max())
                pad = 0.05 * (hi - lo) or 0.05 * max(abs(hi), 1.0)
                ax.set_ylim(lo - pad, hi + pad)
        ylabel = "loss" if self.reference is None else "loss − minimum"
        set_labels(
            ax,
            xlabel=None,
            ylabel=None,
            title=None,
            defaults=("step", ylabel + (" (log scale)" if log else ""), ""),
        )
        ax.grid(True, which="major", alpha=0.3)
        self.legend_ = ax.legend(fontsize=8, loc="upper right", framealpha=0.9)
        _make_room_for_legend(ax, self.legend_, log=log)
        self.ax_, self.figure_ = ax, ax.figure
        return self

    def _log_fits(self, ref: float) -> bool:
        """Whether every curve stays >= 0 (above ``reference``), so a log scale
        can show it; otherwise warn and say what to do.

        A negative loss (six-hump camel reaches -1.03) was clamped to the
        floor 1e-16, so the curve seemed to plunge to 1e-16 where it crossed 0.
        """
        finite = [np.asarray(t.loss, dtype=np.float64) - ref for t in self.trajectories]
        finite = [y[np.isfinite(y)] for y in finite]
        scale = max(
            [1.0, abs(ref)] + [float(np.max(np.abs(y))) for y in finite if y.size]
        )
        low = min((float(y.min()) for y in finite if y.size), default=0.0)
        if low >= -1e-9 * scale:
            return True
        what = "loss" if self.reference is None else "loss − reference"
        warnings.warn(
            f"LossCurveDisplay: the {what} goes down to {low:.4g}, which a log "
            f"scale cannot show; drawn on a linear scale. Pass reference= the "
            f"minimum value (e.g. the function's min_value) to see the gap on a "
            f"log scale.",
            UserWarning,
            stacklevel=3,
        )
        return False


def _make_room_for_legend(ax: Any, legend: Any, *, log: bool) -> None:
    """Raise the top of the y axis until the legend sits above every curve.

    The curves start at their highest values at the left, right where a
    legend at the top goes; "best" placement still hid the first steps when
    the legend spanned the width (long schedule labels).
    """
    fig = ax.figure
    engine = fig.get_layout_engine()
    if engine is not None:  # a constrained layout sizes the axes only now
        engine.execute(fig)
    renderer = fig.canvas.get_renderer()
    ax_h = ax.get_window_extent(renderer).height
    if ax_h <= 0:
        return
    frac = legend.get_window_extent(renderer).height / ax_h + 0.05
    if not 0 < frac < 0.8:
        return
    ys = [np.asarray(line.get_ydata(), dtype=np.float64) for line in ax.get_lines()]
    ys += [np.asarray(c.get_offsets())[:, 1] for c in ax.collections]
    ys = [y[np.isfinite(y)] for y in ys if np.size(y)]
    ys = [y[y > 0] if log else y for y in ys]
    if not any(y.size for y in ys):
        return
    top_data = max(float(y.max()) for y in ys if y.size)
    lo, hi = ax.get_ylim()
    f = np.log10 if log else (lambda v: v)
    span = (f(top_data) - f(lo)) / (1.0 - frac)
    want = f(lo) + span
    if want > f(hi):
        ax.set_ylim(lo, 10.0**want if log else want)


# --------------------------------------------------------- learning rates
class LRSweepDisplay:
    """One optimizer at several learning rates: paths and loss curves.

    Rates are coloured along a sequential colour map (dark = small). Drawn as
    two panels side by side: the paths over the landscape, and loss against
    step (log scale). Diverged rates are cut off and say where.

    Parameters
    ----------
    surface : Surface
    trajectories : sequence of Trajectory
        Single-start runs of one optimizer, e.g. from
        :func:`lossmap.optim.lr_sweep`.
    reference : float, optional
        Subtracted from the loss in the curve panel.
    minima : sequence of (x, y), optional
    """

    def __init__(
        self,
        surface: Any,
        trajectories: Sequence[Any],
        *,
        reference: float | None = None,
        minima: Sequence[Any] | None = None,
        title: str | None = None,
    ) -> None:
        self.surface = surface
        self.trajectories = _as_list(trajectories)
        self.reference = reference
        self.minima = minima
        self.title = title

    def rates(self) -> list[float]:
        """The (first-step) learning rate of each trajectory."""
        return [
            float(t.lr[0]) if t.lr.size else float("nan") for t in self.trajectories
        ]

    def plot(self, fig: Any = None) -> LRSweepDisplay:
        """Draw both panels into ``fig`` (a new 12 x 4.8 in figure when None)."""
        plt = require_matplotlib("LRSweepDisplay.plot")
        if fig is None:
            fig = plt.figure(figsize=(12.5, 5.0), layout="constrained")
        ax_paths, ax_loss = fig.subplots(1, 2, width_ratios=[1.15, 1.0])
        n = len(self.trajectories)
        colors = [_SWEEP[i % len(_SWEEP)] for i in range(n)]
        labels = [f"lr = {r:g}" for r in self.rates()]
        name = self.trajectories[0].optimizer
        title = self.title or f"{name}: learning-rate sweep"
        self.paths_ = PathsDisplay(
            self.surface,
            self.trajectories,
            minima=self.minima,
            colors=colors,
            labels=labels,
            title=title,
        ).plot(ax_paths, colorbar=False)
        self.curves_ = LossCurveDisplay(
            self.trajectories, reference=self.reference, colors=colors, labels=labels
        ).plot(ax_loss)
        ax_loss.set_title("loss per step")
        self.axes_, self.figure_ = (ax_paths, ax_loss), fig
        return self
