"""Plotly panels beside the landscape: the fit, loss per step, 1-D curves.

Like :mod:`lossmap.plot._plotly`, these take computed results and return a
``plotly.graph_objects.Figure``; the fit panel is rebuilt on every click in
the explorer, so it is built from a plain specification without plotly's
per-property validation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lossmap.plot._plotly_style import (
    _FONT,
    PATH_COLORS,
    _go,
    _path_label,
    _white_template,
)
from lossmap.surface import Surface

__all__ = ["curve_figure", "fit_figure", "fit_y_range", "loss_curves_figure"]


#: Legends go under the x-axis title, where they cannot cover the panel title.
_LEGEND_BELOW = {
    "orientation": "h",
    "yanchor": "top",
    "y": -0.22,
    "x": 0.0,
    "xanchor": "left",
}


# --------------------------------------------------------------- fit panel
def fit_y_range(y: Any) -> list[float]:
    """The fit panel's y-axis for targets ``y``: fixed per data set.

    Binary targets (all 0 or 1) get ``[-0.15, 1.15]``; others their range
    padded by 35 % on both sides, so most predictions stay in view.
    """
    y = np.asarray(y, dtype=float)
    lo, hi = float(y.min()), float(y.max())
    if np.all((y == 0) | (y == 1)):
        return [-0.15, 1.15]
    span = hi - lo if hi > lo else max(1.0, abs(hi))
    return [lo - 0.35 * span, hi + 0.35 * span]


def fit_figure(problem: Any, w: float, b: float, *, n_curve: int = 241) -> Any:
    """Data, the prediction curve at ``(w, b)`` and one residual line per point.

    Parameters
    ----------
    problem : lossmap.toy.Problem
    w, b : float
    n_curve : int, default=241
        Points on the prediction curve.

    Returns
    -------
    plotly.graph_objects.Figure
        Traces: residuals (one line per data point, None-separated), the
        prediction curve over the data's x range (padded by 15 %), the data.
        Built from a plain specification without plotly's property validation
        (a tenth of the time), as the explorer redraws it on every click.
    """
    go = _go()
    x, y = problem.data.x, problem.data.y
    lo, hi = float(x.min()), float(x.max())
    pad = 0.15 * (hi - lo if hi > lo else 1.0)
    xs = np.linspace(lo - pad, hi + pad, n_curve)
    curve = np.asarray(problem.predict(xs, w, b), dtype=float)
    pred = np.asarray(problem.predict(x, w, b), dtype=float)
    rx: list[Any] = []
    ry: list[Any] = []
    for xi, yi, pi in zip(x.tolist(), y.tolist(), pred.tolist()):
        rx.extend([xi, xi, None])
        ry.extend([yi, pi, None])
    loss = float(problem.loss(w, b))
    yrange = fit_y_range(y)
    spec = {
        "data": [
            {
                "type": "scatter",
                "x": rx,
                "y": ry,
                "mode": "lines",
                "line": {"color": "#e0201b", "width": 1.5, "dash": "dot"},
                "name": "residuals",
                "hoverinfo": "skip",
                "uid": "residuals",
            },
            {
                "type": "scatter",
                "x": xs,
                "y": curve,
                "mode": "lines",
                "line": {"color": "#2a6fdb", "width": 3},
                "name": "prediction",
                "uid": "prediction",
            },
            {
                "type": "scatter",
                "x": x.copy(),
                "y": y.copy(),
                "mode": "markers",
                "marker": {
                    "size": 9,
                    "color": "#222222",
                    "line": {"color": "white", "width": 1},
                },
                "name": "data",
                "uid": "data",
            },
        ],
        "layout": {
            "title": {
                "text": f"w = {w:.3f}, b = {b:.3f}   loss = {loss:.4g}",
                "x": 0.02,
                "font": {"size": 15},
            },
            "xaxis": {
                "title": {
                    "text": f"x   ({problem.data.name}, model {problem.model.formula})"
                },
                "range": [lo - pad, hi + pad],
            },
            "yaxis": {"title": {"text": "y"}, "range": yrange},
            "legend": _LEGEND_BELOW,
            "margin": {"l": 55, "r": 15, "t": 40, "b": 95},
            "font": _FONT,
            "template": _white_template(),
        },
    }
    return go.Figure(spec, _validate=False)


# ------------------------------------------------------------ loss curves
def loss_curves_figure(paths: Sequence[Any], *, log: bool | None = None) -> Any:
    """Loss versus step, one line per trajectory (``.loss`` of shape (n + 1,)).

    A diverged run's line ends at its last finite value. ``log=None`` uses a
    log y-axis when every finite loss is > 0.
    """
    go = _go()
    fig = go.Figure()
    finite_all: list[np.ndarray] = []
    for i, traj in enumerate(paths):
        loss = np.asarray(traj.loss, dtype=float)
        ok = np.isfinite(loss)
        if not ok.all():
            loss = loss[: int(np.argmin(ok))] if ok[0] else loss[:0]
        finite_all.append(loss)
        fig.add_trace(
            go.Scatter(
                x=np.arange(loss.size),
                y=loss,
                mode="lines",
                line={"color": PATH_COLORS[i % len(PATH_COLORS)], "width": 2.5},
                name=_path_label(traj, i),
                uid=f"path-{i}",
            )
        )
    if not paths:
        fig.update_xaxes(showticklabels=False)
        fig.update_yaxes(showticklabels=False)
        fig.add_annotation(
            text="no runs yet",
            showarrow=False,
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
            font={"size": 14, "color": "#888888"},
        )
    allv = np.concatenate(finite_all) if finite_all else np.array([])
    use_log = bool(allv.size and np.all(allv > 0)) if log is None else log
    fig.update_layout(
        title={"text": "loss per step", "x": 0.02, "font": {"size": 15}},
        xaxis={"title": "step"},
        yaxis={
            "title": "loss",
            "type": "log" if use_log else "linear",
            "exponentformat": "power",
        },
        legend=_LEGEND_BELOW,
        margin={"l": 60, "r": 15, "t": 40, "b": 95},
        font=_FONT,
        template="plotly_white",
    )
    return fig


def curve_figure(
    surface: Surface, *, field: str = "loss", log: bool | None = None
) -> Any:
    """A 1-D surface (a line through parameter space) as a curve."""
    go = _go()
    if surface.ndim != 1:
        raise ValueError(f"`surface` must be 1-D, got {surface.ndim}-D")
    ((name, a),) = surface.axes
    values = surface.field(field)
    finite = values[np.isfinite(values)]
    use_log = bool(finite.size and np.all(finite > 0)) if log is None else log
    fig = go.Figure(
        go.Scatter(
            x=a,
            y=values,
            mode="lines",
            line={"color": "#2a6fdb", "width": 3},
            name=field,
        )
    )
    fig.update_layout(
        xaxis={"title": name},
        yaxis={"title": field, "type": "log" if use_log else "linear"},
        margin={"l": 60, "r": 15, "t": 40, "b": 45},
        font=_FONT,
        template="plotly_white",
    )
    return fig
