"""Figures for slices of real networks: planes, lines, bands of random lines.

Every display takes computed results (a :class:`~lossmap.Surface` from
``lossmap.nn.plane``/``line``) and never evaluates a model. Heatmaps reuse
:class:`~lossmap.plot.LandscapeDisplay` (log colour scale for the loss,
linear for accuracy); 3-D views use :class:`~lossmap.plot.Surface3DDisplay`
directly. The trajectory over a PCA plane is in :mod:`._nn_path`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lossmap._validation import check_float
from lossmap.plot import _style, require_matplotlib
from lossmap.plot._landscape import (
    LandscapeDisplay,
    check_field,
    new_axes,
    set_labels,
)
from lossmap.surface import Surface

__all__ = [
    "LineDisplay",
    "PlaneDisplay",
    "RandomLinesDisplay",
    "axis_label",
    "nn_title",
]

CENTER_STYLE = {
    "marker": "*",
    "s": 260,
    "c": "#e63946",
    "edgecolors": "white",
    "linewidths": 1.0,
    "zorder": 7,
    "label": "θ (centre)",
}
LOSS_COLOR = "#1d3557"
METRIC_COLOR = "#e76f51"
#: A training path over a plane, and its first snapshot.
PATH_COLOR = "#f1faee"
START_STYLE = {**_style.START_STYLE, "zorder": 8, "label": "first snapshot"}
_NORM_WORDS = {
    "filter": "filter-normalised",
    "layer": "layer-normalised",
    "model": "model-normalised",
}


# ---------------------------------------------------------------- labels
def _directions_meta(meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    dirs = meta.get("directions")
    if isinstance(dirs, Mapping):
        dirs = dirs.get("items") or dirs.get("directions") or [dirs]
    if isinstance(dirs, Sequence) and not isinstance(dirs, str):
        return [d if isinstance(d, Mapping) else {} for d in dirs]
    return []


def axis_label(surface: Surface, k: int) -> str:
    """A readable label for axis ``k``, from the direction's metadata.

    ``"PC1 (71.2 % of variance)"`` for a PCA direction, ``"δ₁ (filter-
    normalised, seed 0)"`` for a random one, the axis name otherwise.
    """
    name = surface.names[k]
    dirs = _directions_meta(surface.metadata)
    d = dirs[k] if k < len(dirs) else {}
    kind = d.get("kind")
    if kind == "pca":
        comp = int(d.get("component", k)) + 1
        ratio = d.get("explained_variance_ratio")
        return f"PC{comp}" + (f" ({100 * ratio:.1f} % of variance)" if ratio else "")
    if kind == "random":
        bits = [_NORM_WORDS.get(d.get("norm"), "raw Gaussian")]
        if d.get("seed") is not None:
            bits.append(f"seed {d['seed']}")
        return f"{name}: random direction ({', '.join(bits)})"
    if kind == "interpolation":
        return f"{name}: 0 = initial weights, 1 = final weights"
    if kind == "axis":
        return f"{name}: {d.get('entry', 'one parameter')}"
    return name


def nn_title(surface: Surface, field: str = "loss") -> str:
    """A title from a network surface's metadata (``title`` wins)."""
    meta = surface.metadata
    if meta.get("title"):
        return str(meta["title"])
    kinds = {d.get("kind") for d in _directions_meta(meta)}
    plural = "plane" if surface.ndim == 2 else "line"
    what = {
        frozenset({"pca"}): "the PCA plane of the training path",
        frozenset({"random"}): f"a random {plural} through the weights",
        frozenset({"interpolation"}): "the line from initial to final weights",
    }.get(frozenset(kinds), f"a {plural} through the weights")
    return f"{field[:1].upper()}{field[1:]} on {what}"


def _is_fraction(values: np.ndarray) -> bool:
    v = values[np.isfinite(values)]
    return bool(v.size) and float(v.min()) >= 0.0 and float(v.max()) <= 1.0


def _fraction_levels(values: np.ndarray) -> np.ndarray:
    v = values[np.isfinite(values)]
    cand = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95])
    out = cand[(cand > v.min()) & (cand < v.max())]
    return out if out.size else np.array([])


# ------------------------------------------------------------------ plane
def _stored_path(surface: Surface) -> np.ndarray | None:
    """The projected path (n, 2) a plane's metadata carries, if any."""
    meta = surface.metadata.get("trajectory") if surface.ndim == 2 else None
    if not isinstance(meta, Mapping) or not meta.get("coords"):
        return None
    coords = np.asarray(meta["coords"], dtype=float)
    return coords if coords.ndim == 2 and coords.shape[1] == 2 else None


def _halo() -> list[Any]:
    from matplotlib import patheffects

    return [patheffects.withStroke(linewidth=3.2, foreground="black", alpha=0.7)]


def _draw_path(ax: Any, coords: np.ndarray) -> Any:
    """The path as a haloed line with a dot per snapshot; the first one white."""
    (line,) = ax.plot(
        coords[:, 0],
        coords[:, 1],
        color=PATH_COLOR,
        lw=1.6,
        marker=".",
        ms=5,
        zorder=5,
        label="training path",
    )
    line.set_path_effects(_halo())
    ax.scatter([coords[0, 0]], [coords[0, 1]], **START_STYLE)
    return line


class PlaneDisplay:
    """Heatmaps with contours of a network's plane: the loss, and e.g. accuracy.

    Parameters
    ----------
    surface : Surface
        A 2-D surface from ``lossmap.nn.plane``; ``field[i, j]`` is the value
        at ``θ + a_i d₁ + b_j d₂``.
    fields : sequence of str, optional
        Panels, left to right; default ``loss`` and, when present,
        ``accuracy``.
    center : (float, float) or None, default (0, 0)
        The point the plane is centred on (the trained weights), drawn as a
        star; None draws none.
    path : bool, default True
        Draw the projected training path a PCA plane carries in its metadata
        (``lossmap pca``'s ``metadata["trajectory"]["coords"]``) on every
        panel, its first snapshot as a white dot; planes without one are
        drawn without.

    Attributes
    ----------
    panels_ : dict of str to LandscapeDisplay
        One display per field (``mesh_``, ``contour_``, ``colorbar_``).
    center_ : dict of str to PathCollection
    path_ : dict of str to Line2D
        The drawn path per field (empty when there is none).
    axes_, figure_
    """

    def __init__(
        self,
        surface: Surface,
        *,
        fields: Sequence[str] | None = None,
        center: Any = (0.0, 0.0),
        path: bool = True,
    ) -> None:
        if fields is None:
            fields = ["loss"] + (
                ["accuracy"]
                if isinstance(surface, Surface) and "accuracy" in surface.fields
                else []
            )
        if isinstance(fields, str):
            fields = [fields]
        if not fields:
            raise ValueError("`fields` must name at least one field, got none")
        for f in fields:
            check_field(surface, f, ndim=2, who="PlaneDisplay")
        if not isinstance(path, bool):
            raise TypeError(f"`path` must be True or False, got {path!r}")
        self.surface = surface
        self.fields = tuple(fields)
        self.path = path
        self.center = (
            None
            if center is None
            else (
                check_float("center[0]", center[0]),
                check_float("center[1]", center[1]),
            )
        )

    @classmethod
    def from_surface(
        cls,
        surface: Surface,
        *,
        fields: Sequence[str] | None = None,
        center: Any = (0.0, 0.0),
        path: bool = True,
        axes: Any = None,
        **plot_kw: Any,
    ) -> PlaneDisplay:
        """Build the display and plot it."""
        return cls(surface, fields=fields, center=center, path=path).plot(
            axes, **plot_kw
        )

    def plot(
        self,
        axes: Any = None,
        *,
        levels: Mapping[str, Sequence[float]] | None = None,
        cmap: str = "viridis",
        title: str | None = None,
    ) -> PlaneDisplay:
        """Draw one heatmap per field into ``axes`` (a sequence, one per field).

        The loss uses a logarithmic colour scale; a field with values in
        [0, 1] (accuracy) a linear one, with contours at round fractions.
        """
        plt = require_matplotlib("PlaneDisplay.plot")
        if axes is None:
            n = len(self.fields)
            _fig, axes = plt.subplots(
                1, n, figsize=(5.6 * n, 4.8), squeeze=False, layout="constrained"
            )
            axes = list(axes[0])
        elif not isinstance(axes, Sequence | np.ndarray):
            axes = [axes]
        axes = list(np.ravel(axes))
        if len(axes) != len(self.fields):
            raise ValueError(
                f"`axes` must hold one axes per field {list(self.fields)}, got "
                f"{len(axes)}"
            )
        levels = dict(levels or {})
        self.panels_, self.center_, self.path_ = {}, {}, {}
        coords = _stored_path(self.surface) if self.path else None
        for ax, f in zip(axes, self.fields):
            values = self.surface.field(f)
            frac = f != "loss" and _is_fraction(values)
            lv = levels.get(f)
            if lv is None and frac:
                lv = _fraction_levels(values)
            disp = LandscapeDisplay(self.surface, field=f, title=None).plot(
                ax,
                levels=lv if lv is None or len(lv) else None,
                contours=lv is None or len(lv) > 0,
                norm="linear" if frac else "log",
                cmap="magma" if frac else cmap,
                legend=False,
                xlabel=axis_label(self.surface, 0),
                ylabel=axis_label(self.surface, 1),
                title=title if title is not None else nn_title(self.surface, f),
            )
            if coords is not None:
                self.path_[f] = _draw_path(ax, coords)
            if self.center is not None:
                self.center_[f] = ax.scatter(
                    [self.center[0]], [self.center[1]], **CENTER_STYLE
                )
            if self.center is not None or coords is not None:
                ax.legend(loc="upper right", fontsize=8, framealpha=0.85)
            self.panels_[f] = disp
        self.axes_ = axes
        self.figure_ = axes[0].figure
        return self


# ------------------------------------------------------------------ lines
class LineDisplay:
    """A 1-D slice of a network: the loss, and a metric on a twin axis.

    Parameters
    ----------
    surface : Surface
        A 1-D surface from ``lossmap.nn.line``.
    metric : str or None, optional
        Field drawn on the right axis; default ``accuracy`` when present.
    marks : mapping of str to float, optional
        Vertical reference lines, e.g. ``{"initial": 0, "final": 1}``; by
        default these two for an interpolation and ``{"centre": 0}``
        otherwise.

    Attributes
    ----------
    ax_, metric_ax_ : Axes (``metric_ax_`` None without a metric)
    loss_line_, metric_line_ : Line2D
    marks_ : list of Line2D
    """

    def __init__(
        self,
        surface: Surface,
        *,
        metric: str | None = "auto",
        marks: Mapping[str, float] | None = None,
    ) -> None:
        check_field(surface, "loss", ndim=1, who="LineDisplay")
        if metric == "auto":
            metric = "accuracy" if "accuracy" in surface.fields else None
        if metric is not None:
            check_field(surface, metric, ndim=1, who="LineDisplay")
        if marks is None:
            kinds = {d.get("kind") for d in _directions_meta(surface.metadata)}
            marks = (
                {"initial": 0.0, "final": 1.0}
                if kinds == {"interpolation"}
                else {"centre": 0.0}
            )
        self.surface = surface
        self.metric = metric
        self.marks = {str(k): check_float(f"marks[{k!r}]", v) for k, v in marks.items()}

    @classmethod
    def from_surface(
        cls,
        surface: Surface,
        *,
        metric: str | None = "auto",
        marks: Mapping[str, float] | None = None,
        ax: Any = None,
        **plot_kw: Any,
    ) -> LineDisplay:
        """Build the display and plot it."""
        return cls(surface, metric=metric, marks=marks).plot(ax, **plot_kw)

    def plot(
        self,
        ax: Any = None,
        *,
        logy: bool = False,
        xlabel: str | None = None,
        title: str | None = None,
    ) -> LineDisplay:
        """Draw the loss (left axis) and the metric (right axis)."""
        ax = new_axes(ax, "LineDisplay.plot")
        _, x = self.surface.axes[0]
        (self.loss_line_,) = ax.plot(
            x, self.surface.loss, color=LOSS_COLOR, lw=2, label="loss"
        )
        if logy:
            ax.set_yscale("log")
        ax.set_ylabel("loss", color=LOSS_COLOR)
        ax.tick_params(axis="y", colors=LOSS_COLOR)
        self.metric_ax_ = self.metric_line_ = None
        handles = [self.loss_line_]
        if self.metric is not None:
            twin = ax.twinx()
            (self.metric_line_,) = twin.plot(
                x,
                self.surface.field(self.metric),
                color=METRIC_COLOR,
                lw=1.8,
                ls="--",
                label=self.metric,
            )
            twin.set_ylabel(self.metric, color=METRIC_COLOR)
            twin.tick_params(axis="y", colors=METRIC_COLOR)
            if _is_fraction(self.surface.field(self.metric)):
                twin.set_ylim(-0.02, 1.02)
            self.metric_ax_ = twin
            handles.append(self.metric_line_)
        self.marks_ = []
        for label, pos in self.marks.items():
            if x[0] <= pos <= x[-1]:
                self.marks_.append(ax.axvline(pos, color="0.45", lw=0.9, ls=":"))
                ax.annotate(
                    label,
                    (pos, 1.0),
                    xycoords=("data", "axes fraction"),
                    xytext=(3, -12),
                    textcoords="offset points",
                    fontsize=8,
                    color="0.3",
                )
        ax.set_xlim(x[0], x[-1])
        ax.grid(alpha=0.25)
        ax.legend(handles=handles, loc="center right", fontsize=8, framealpha=0.85)
        set_labels(
            ax,
            xlabel=xlabel,
            ylabel=None,
            title=title,
            defaults=(axis_label(self.surface, 0), "", nn_title(self.surface)),
        )
        self.ax_, self.figure_ = ax, ax.figure
        return self


class RandomLinesDisplay:
    """Many random lines through one point: median and spread per step.

    One random 1-D slice can mislead; the loss along many seeded directions,
    summarised per step, shows how much the picture depends on the seed.

    Parameters
    ----------
    x : array-like of shape (n_steps,)
        Step coordinates along every line.
    curves : array-like of shape (n_lines, n_steps)
        The loss along each line.
    metadata : mapping, optional
        Provenance (a ``title`` entry becomes the default title).

    Attributes
    ----------
    median_, q25_, q75_, min_, max_ : ndarray of shape (n_steps,)
        The summary drawn: NaN-aware median, quartiles and range over lines
        (the same statistics as ``lossmap.nn.random_lines(...).summary``).
    ax_, median_line_, iqr_band_, range_band_, lines_ : the artists
        (``lines_`` the thin individual curves, when drawn)
    """

    def __init__(
        self,
        x: Any,
        curves: Any,
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        x = np.asarray(x, dtype=np.float64)
        curves = np.asarray(curves, dtype=np.float64)
        if x.ndim != 1 or curves.ndim != 2 or curves.shape[1] != x.size:
            raise ValueError(
                f"`curves` must have shape (n_lines, {x.size}) for {x.size} steps, "
                f"got {curves.shape}"
            )
        self.x, self.curves = x, curves
        self.metadata = dict(metadata or {})
        self.median_ = np.nanmedian(curves, axis=0)
        self.q25_, self.q75_ = np.nanpercentile(curves, [25, 75], axis=0)
        self.min_, self.max_ = np.nanmin(curves, axis=0), np.nanmax(curves, axis=0)

    @classmethod
    def from_surface(
        cls, surface: Any, *, field: str = "loss", ax: Any = None, **plot_kw: Any
    ) -> RandomLinesDisplay:
        """From ``random_lines(...)`` or its ``curves`` surface (one row per line)."""
        surface = getattr(surface, "curves", surface)
        check_field(surface, field, ndim=2, who="RandomLinesDisplay")
        disp = cls(surface.coords(1), surface.field(field), metadata=surface.metadata)
        return disp.plot(ax, **plot_kw)

    def plot(
        self,
        ax: Any = None,
        *,
        logy: bool = False,
        individual: bool = False,
        xlabel: str | None = None,
        ylabel: str | None = None,
        title: str | None = None,
    ) -> RandomLinesDisplay:
        """Draw the range and quartile bands, the median, and optionally each line."""
        ax = new_axes(ax, "RandomLinesDisplay.plot")
        self.lines_ = []
        if individual:
            for c in self.curves:
                (ln,) = ax.plot(self.x, c, color="0.5", lw=0.6, alpha=0.4)
                self.lines_.append(ln)
        n = len(self.curves)
        self.range_band_ = ax.fill_between(
            self.x,
            self.min_,
            self.max_,
            color=LOSS_COLOR,
            alpha=0.12,
            lw=0,
            label=f"range of {n} lines",
        )
        self.iqr_band_ = ax.fill_between(
            self.x,
            self.q25_,
            self.q75_,
            color=LOSS_COLOR,
            alpha=0.3,
            lw=0,
            label="middle 50 %",
        )
        (self.median_line_,) = ax.plot(
            self.x, self.median_, color=LOSS_COLOR, lw=2.2, label="median"
        )
        if logy:
            ax.set_yscale("log")
        ax.set_xlim(self.x[0], self.x[-1])
        ax.grid(alpha=0.25)
        ax.legend(loc="upper center", fontsize=8, framealpha=0.85)
        dirs = _directions_meta(self.metadata)
        norm = _NORM_WORDS.get(dirs[0].get("norm"), "raw") if dirs else ""
        set_labels(
            ax,
            xlabel=xlabel,
            ylabel=ylabel,
            title=title,
            defaults=(
                f"α along each random direction{f' ({norm})' if norm else ''}",
                "loss",
                str(
                    self.metadata.get("title")
                    or f"Loss along {n} random directions: how much the seed matters"
                ),
            ),
        )
        self.ax_, self.figure_ = ax, ax.figure
        return self
