"""Figures between minima: checkpoint maps, paths with their barriers, tunnels.

* :class:`EmbeddingDisplay`: an :class:`~lossmap.nn.Embedding` of
  checkpoints, each run a path in its own colour, every checkpoint coloured
  by its loss, first and last checkpoints marked.
* :class:`BarrierDisplay`: the loss (and accuracy) along several paths from
  model A (``t = 0``) to model B, e.g. the straight line before and after
  alignment and a trained curve, each with its highest point marked.
* :class:`CurvePlaneDisplay`: the loss over the plane through a curve's
  control points with the curve, its control points and the straight line
  drawn on it: the low-loss tunnel beside the barrier.
* :func:`embedding_figure`: the embedding as a Plotly figure (hover shows
  each checkpoint's run, step and loss), for HTML pages.

Like every display here, they only draw computed results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lossmap.plot import require_matplotlib
from lossmap.plot._landscape import check_field, new_axes, set_labels
from lossmap.plot._nn import PlaneDisplay
from lossmap.plot._style import log_norm_type, make_norm, plain_log_ticks
from lossmap.surface import Surface

__all__ = [
    "BarrierDisplay",
    "CurvePlaneDisplay",
    "EmbeddingDisplay",
    "embedding_figure",
]

RUN_COLORS = (
    "#1d3557",
    "#e63946",
    "#2a9d8f",
    "#f4a261",
    "#6a4c93",
    "#8ab17d",
    "#e76f51",
    "#457b9d",
)
PATH_COLORS = {"linear": "#e63946", "aligned": "#f4a261", "curve": "#2a9d8f"}
_METHOD_WORDS = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}


def _run_color(k: int) -> str:
    return RUN_COLORS[k % len(RUN_COLORS)]


# ------------------------------------------------------------- embeddings
class EmbeddingDisplay:
    """Checkpoints in 2-D: runs as paths, points coloured by loss.

    Parameters
    ----------
    embedding : lossmap.nn.Embedding
        From :func:`lossmap.nn.embed`.

    Attributes
    ----------
    paths_ : dict of str to Line2D
        One line per run through its checkpoints in order; ``get_xydata()``
        equals that run's rows of ``embedding.coords``.
    points_ : PathCollection
        Every checkpoint, coloured by loss (log scale) or, without losses,
        by step.
    starts_, ends_ : PathCollection
        First and last checkpoint of every run.
    colorbar_, ax_, figure_
    """

    def __init__(self, embedding: Any) -> None:
        coords = np.asarray(getattr(embedding, "coords", None))
        if coords.ndim != 2 or coords.shape[1:] != (2,):
            raise TypeError(
                "`embedding` must be a lossmap.nn.Embedding (coords of shape "
                f"(n, 2)), got {type(embedding).__name__}"
            )
        self.embedding = embedding

    @classmethod
    def from_embedding(
        cls, embedding: Any, *, ax: Any = None, **kw: Any
    ) -> EmbeddingDisplay:
        """Build the display and plot it."""
        return cls(embedding).plot(ax, **kw)

    def plot(
        self,
        ax: Any = None,
        *,
        cmap: str = "viridis",
        title: str | None = None,
        colorbar: bool = True,
    ) -> EmbeddingDisplay:
        """Draw the map into ``ax`` (a new figure when None)."""
        require_matplotlib("EmbeddingDisplay.plot")
        ax = new_axes(ax, "EmbeddingDisplay.plot")
        emb = self.embedding
        meta = dict(emb.meta)
        xy = emb.coords
        self.paths_ = {}
        for k, name in enumerate(emb.runs):
            rows = emb.of_run(k)
            (self.paths_[name],) = ax.plot(
                xy[rows, 0],
                xy[rows, 1],
                color=_run_color(k),
                lw=1.3,
                alpha=0.75,
                zorder=2,
                label=name,
            )
        if emb.loss is not None:
            values, label, norm = emb.loss, "loss", make_norm(emb.loss, "log")
        else:
            values = emb.step.astype(float)
            label, norm = "step", make_norm(values, "linear")
        self.points_ = ax.scatter(
            xy[:, 0],
            xy[:, 1],
            c=values,
            cmap=cmap,
            norm=norm,
            s=26,
            edgecolors="white",
            linewidths=0.4,
            zorder=3,
        )
        first = [int(emb.of_run(k)[0]) for k in range(len(emb.runs))]
        last = [int(emb.of_run(k)[-1]) for k in range(len(emb.runs))]
        edge = [_run_color(k) for k in range(len(emb.runs))]
        self.starts_ = ax.scatter(
            xy[first, 0],
            xy[first, 1],
            marker="o",
            s=90,
            facecolors="white",
            edgecolors=edge,
            linewidths=2.0,
            zorder=4,
            label="start",
        )
        self.ends_ = ax.scatter(
            xy[last, 0],
            xy[last, 1],
            marker="*",
            s=260,
            c=edge,
            edgecolors="black",
            linewidths=0.8,
            zorder=5,
            label="end",
        )
        self.colorbar_ = None
        if colorbar:
            self.colorbar_ = ax.figure.colorbar(self.points_, ax=ax, label=label)
            if isinstance(norm, log_norm_type()):
                plain_log_ticks(self.colorbar_, norm.vmin, norm.vmax)
        method = meta.get("method", "pca")
        if method == "pca":
            ratio = meta.get("explained_variance_ratio", [np.nan, np.nan])
            labels = [
                f"PC {i + 1} ({100 * ratio[i]:.1f} % of variance)" for i in (0, 1)
            ]
            default = f"PCA of {len(emb)} checkpoints"
        else:
            word = _METHOD_WORDS.get(method, method)
            labels = [f"{word} 1", f"{word} 2"]
            extra = (
                f", perplexity {meta['perplexity']:.3g}" if "perplexity" in meta else ""
            )
            default = (
                f"{word} of {len(emb)} checkpoints{extra}\n"
                "neighbourhoods only: distances and gaps are not metric"
            )
        ax.legend(loc="best", fontsize=8, framealpha=0.85)
        ax.grid(alpha=0.2)
        set_labels(
            ax,
            xlabel=None,
            ylabel=None,
            title=title,
            defaults=(labels[0], labels[1], default),
        )
        self.ax_, self.figure_ = ax, ax.figure
        return self


# ---------------------------------------------------------------- barriers
class BarrierDisplay:
    """The loss along paths from A (``t = 0``) to B (``t = 1``), barriers marked.

    Parameters
    ----------
    paths : mapping of str to Surface
        Label to a 1-D path surface (from ``lossmap.nn.linear_path`` or
        ``curve_path``; axis ``t``). Labels containing "linear", "aligned"
        or "curve" get fixed colours.

    Attributes
    ----------
    lines_ : dict of str to Line2D
        Loss along each path (``get_xydata()`` is ``(t, loss)``).
    peaks_ : dict of str to PathCollection
        Each path's highest point.
    metric_lines_ : dict of str to Line2D
        Accuracy along each path (when every path has it).
    axes_, figure_
    """

    def __init__(self, paths: Mapping[str, Surface], *, metric: str = "accuracy"):
        if not isinstance(paths, Mapping) or not paths:
            raise TypeError(
                f"`paths` must be a non-empty mapping of label to path Surface, "
                f"got {type(paths).__name__}"
            )
        for s in paths.values():
            check_field(s, "loss", ndim=1, who="BarrierDisplay")
        self.paths = dict(paths)
        self.metric = (
            metric
            if metric and all(metric in s.fields for s in self.paths.values())
            else None
        )

    @classmethod
    def from_paths(
        cls, paths: Mapping[str, Surface], *, axes: Any = None, **kw: Any
    ) -> BarrierDisplay:
        """Build the display and plot it."""
        return cls(paths).plot(axes, **kw)

    def _color(self, label: str, k: int) -> str:
        low = label.lower()
        for key in ("aligned", "curve", "linear"):
            if key in low:
                return PATH_COLORS[key]
        return _run_color(k + 3)

    def plot(
        self, axes: Any = None, *, logy: bool | None = None, title: str | None = None
    ) -> BarrierDisplay:
        """Loss (left panel) and the metric (right panel, when present)."""
        plt = require_matplotlib("BarrierDisplay.plot")
        n = 2 if self.metric else 1
        if axes is None:
            _fig, axes = plt.subplots(
                1, n, figsize=(5.8 * n, 4.4), squeeze=False, layout="constrained"
            )
            axes = list(axes[0])
        axes = (
            list(np.ravel(axes)) if isinstance(axes, Sequence | np.ndarray) else [axes]
        )
        if len(axes) != n:
            raise ValueError(f"`axes` must hold {n} axes, got {len(axes)}")
        ax = axes[0]
        self.lines_, self.peaks_, self.metric_lines_ = {}, {}, {}
        top = 0.0
        for k, (label, s) in enumerate(self.paths.items()):
            t, loss = s.coords(0), np.asarray(s.loss, dtype=float)
            height = _height(s)
            text = f"{label} (barrier {height:.3g})" if height is not None else label
            color = self._color(label, k)
            (self.lines_[label],) = ax.plot(t, loss, color=color, lw=2, label=text)
            i = int(np.nanargmax(loss))
            self.peaks_[label] = ax.scatter(
                [t[i]], [loss[i]], color=color, edgecolors="black", s=40, zorder=4
            )
            top = max(top, float(np.nanmax(loss)))
            if self.metric:
                (self.metric_lines_[label],) = axes[1].plot(
                    t, s.field(self.metric), color=color, lw=2, label=label
                )
        if logy is None:
            low = min(float(np.nanmin(s.loss)) for s in self.paths.values())
            logy = low > 0 and top / low > 30
        if logy:
            ax.set_yscale("log")
        ax.grid(alpha=0.25)
        ax.legend(fontsize=8, framealpha=0.85)
        ax.set_xlim(0, 1)
        set_labels(
            ax,
            xlabel=None,
            ylabel=None,
            title=title,
            defaults=(
                "t (0 = model A, 1 = model B)",
                "loss",
                "loss between two minima",
            ),
        )
        if self.metric:
            m = axes[1]
            m.set_xlim(0, 1)
            m.grid(alpha=0.25)
            m.legend(fontsize=8, framealpha=0.85)
            set_labels(
                m,
                xlabel=None,
                ylabel=None,
                title=None,
                defaults=("t (0 = model A, 1 = model B)", self.metric, self.metric),
            )
        self.axes_, self.figure_ = axes, ax.figure
        return self


def _height(path: Surface) -> float | None:
    b = path.metadata.get("barrier")
    return float(b["height"]) if isinstance(b, Mapping) and "height" in b else None


# ------------------------------------------------------------ curve plane
class CurvePlaneDisplay:
    """The plane through a curve's control points, with the curve drawn on it.

    Parameters
    ----------
    surface : Surface
        ``lossmap.nn.plane(model_a, ..., curve.plane(model_a))``.
    curve_coords : array-like of shape (m, 2)
        Points of the curve in the plane (``curve.plane_coords(dirs, t)``).
    controls : array-like of shape (k, 2)
        The control points' coordinates (``dirs[0].meta["controls"]``); the
        first is A, the last B.

    Attributes
    ----------
    plane_ : PlaneDisplay
    curve_, line_ : Line2D
        The curve and the straight segment from A to B.
    controls_, ends_ : PathCollection
    ax_, figure_
    """

    def __init__(self, surface: Surface, curve_coords: Any, controls: Any) -> None:
        check_field(surface, "loss", ndim=2, who="CurvePlaneDisplay")
        self.surface = surface
        self.curve_coords = _xy(curve_coords, "curve_coords")
        self.controls = _xy(controls, "controls")
        if len(self.controls) < 3:
            raise ValueError(
                f"`controls` must hold the two ends and at least one bend, got "
                f"{len(self.controls)} points"
            )

    @classmethod
    def from_curve(
        cls,
        surface: Surface,
        curve: Any,
        directions: Any,
        *,
        ax: Any = None,
        points: int = 101,
        **kw: Any,
    ) -> CurvePlaneDisplay:
        """Take the curve's coordinates from ``curve`` and its plane's directions."""
        t = np.linspace(0.0, 1.0, points)
        coords = curve.plane_coords(directions, t)
        controls = directions[0].meta["controls"]
        return cls(surface, coords, controls).plot(ax, **kw)

    def plot(
        self, ax: Any = None, *, cmap: str = "viridis", title: str | None = None
    ) -> CurvePlaneDisplay:
        """Heatmap of the loss with the curve, its bends and the straight line."""
        plt = require_matplotlib("CurvePlaneDisplay.plot")
        if ax is None:
            _fig, ax = plt.subplots(figsize=(6.4, 5.2), layout="constrained")
        self.plane_ = PlaneDisplay(self.surface, fields=["loss"], center=None).plot(
            [ax],
            cmap=cmap,
            title=title
            if title is not None
            else "loss over the plane through the curve",
        )
        ax.set_xlabel("α: from model A (0) to model B (1)")
        ax.set_ylabel("β: towards the middle control point")
        c, k = self.curve_coords, self.controls
        (self.line_,) = ax.plot(
            [k[0, 0], k[-1, 0]],
            [k[0, 1], k[-1, 1]],
            color="#e63946",
            lw=1.8,
            ls="--",
            label="straight line",
            zorder=5,
        )
        (self.curve_,) = ax.plot(
            c[:, 0], c[:, 1], color="white", lw=2.4, label="trained curve", zorder=6
        )
        self.controls_ = ax.scatter(
            k[1:-1, 0],
            k[1:-1, 1],
            marker="D",
            s=55,
            c="white",
            edgecolors="black",
            zorder=7,
            label="bend (control point)",
        )
        self.ends_ = ax.scatter(
            k[[0, -1], 0],
            k[[0, -1], 1],
            marker="*",
            s=240,
            c="#e63946",
            edgecolors="white",
            zorder=8,
            label="models A, B",
        )
        for (x, y), name in zip(k[[0, -1]], ("A", "B")):
            ax.annotate(
                name,
                (x, y),
                xytext=(6, 6),
                textcoords="offset points",
                color="white",
                fontweight="bold",
            )
        ax.legend(loc="upper right", fontsize=8, framealpha=0.85)
        self.ax_, self.figure_ = ax, ax.figure
        return self


def _xy(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"`{name}` must have shape (n, 2), got {arr.shape}")
    return arr


# ------------------------------------------------------------ Plotly view
def embedding_figure(embedding: Any) -> Any:
    """A Plotly figure of an embedding: the same picture as
    :class:`EmbeddingDisplay`, with the run, step and loss of every checkpoint
    on hover.

    ``embedding`` is an :class:`~lossmap.nn.Embedding` or the mapping its
    ``to_dict()`` gives (as ``lossmap embed`` writes it to JSON).
    """
    from lossmap.plot import require_plotly
    from lossmap.plot._plotly_style import color_scale

    go = require_plotly("embedding_figure")
    rec = embedding.to_dict() if hasattr(embedding, "to_dict") else dict(embedding)
    try:
        xy = np.asarray(rec["coords"], dtype=np.float64).reshape(-1, 2)
        run = np.asarray(rec["run"], dtype=int)
        step = np.asarray(rec["step"])
        runs = list(rec["runs"])
    except (KeyError, TypeError, ValueError):
        raise TypeError(
            "`embedding` must be a lossmap.nn.Embedding or its to_dict() mapping "
            "(coords, run, step, runs)"
        ) from None
    meta = dict(rec.get("meta") or {})
    loss = rec.get("loss")
    fig = go.Figure()
    for k, name in enumerate(runs):
        rows = np.flatnonzero(run == k)
        fig.add_scatter(
            x=xy[rows, 0],
            y=xy[rows, 1],
            mode="lines",
            line={"color": _run_color(k), "width": 1.5},
            name=name,
            hoverinfo="skip",
        )
        ends = rows[[0, -1]]
        fig.add_scatter(
            x=xy[ends, 0],
            y=xy[ends, 1],
            mode="markers",
            marker={
                "symbol": ["circle-open", "star"],
                "size": [14, 18],
                "color": _run_color(k),
                "line": {"width": 2, "color": _run_color(k)},
            },
            name=f"{name}: start, end",
            showlegend=False,
            hoverinfo="skip",
        )
    text = [f"{runs[r]}, step {s}" for r, s in zip(run, step)]
    marker: dict[str, Any] = {"size": 8, "line": {"width": 0.5, "color": "white"}}
    if loss is not None:
        values = np.asarray(loss, dtype=np.float64)
        scale = color_scale(values)
        marker.update(
            color=scale.z(values),
            colorscale="Viridis",
            colorbar={
                "title": {"text": "loss"},
                "tickvals": scale.tickvals,
                "ticktext": scale.ticktext,
            },
        )
        text = [f"{t}<br>loss {v:.4g}" for t, v in zip(text, values)]
    else:
        marker.update(color=step, colorscale="Viridis", colorbar={"title": "step"})
    for name, vals in (rec.get("metrics") or {}).items():
        text = [f"{t}<br>{name} {float(v):.4g}" for t, v in zip(text, vals)]
    fig.add_scatter(
        x=xy[:, 0],
        y=xy[:, 1],
        mode="markers",
        marker=marker,
        text=text,
        hovertemplate="%{text}<extra></extra>",
        name="checkpoints",
        showlegend=False,
    )
    method = meta.get("method", "pca")
    if method == "pca":
        ratio = meta.get("explained_variance_ratio", [np.nan, np.nan])
        labels = [f"PC {i + 1} ({100 * ratio[i]:.1f} % of variance)" for i in (0, 1)]
        title = f"PCA of {len(xy)} checkpoints"
    else:
        word = _METHOD_WORDS.get(method, method)
        labels = [f"{word} 1", f"{word} 2"]
        title = (
            f"{word} of {len(xy)} checkpoints (neighbourhoods only: distances and "
            "gaps are not metric)"
        )
    fig.update_layout(
        template="plotly_white",
        title={"text": title, "x": 0.02},
        xaxis={"title": {"text": labels[0]}},
        yaxis={"title": {"text": labels[1]}},
        legend={"orientation": "h", "y": -0.15},
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
    )
    return fig
