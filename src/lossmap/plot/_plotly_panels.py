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

__all__ = [
    "curve_figure",
    "fit_figure",
    "fit_y_range",
    "log_axis",
    "loss_curves_figure",
]


#: Legends go under the x-axis title, where they cannot cover the panel title.
_LEGEND_BELOW = {
    "orientation": "h",
    "yanchor": "top",
    "y": -0.3,
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
                "title": {"text": f"x   ({problem.data.name})"},
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
        yaxis={"title": "loss", **(log_axis(allv) if use_log else {"type": "linear"})},
        legend=_LEGEND_BELOW,
        margin={"l": 60, "r": 15, "t": 40, "b": 95},
        font=_FONT,
        template="plotly_white",
    )
    return fig


def log_axis(values: Any) -> dict[str, Any]:
    """A log y-axis whose ticks are labelled with their values (1-2-5 per
    decade, as the landscape's colour bar: never a bare "2" that could be 2
    or 0.2)."""
    from lossmap.plot._plotly_style import _fmt, _log_ticks

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return {"type": "log"}
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        lo, hi = lo / 2, hi * 2
    ticks = _log_ticks(lo, hi)
    if len(ticks) < 2:
        ticks = _log_ticks(lo / 3, hi * 3)
    return {"type": "log", "tickvals": ticks, "ticktext": [_fmt(t) for t in ticks]}


def curve_figure(
    surface: Surface,
    *,
    field: str = "loss",
    log: bool | None = None,
    title: str | None = None,
    axis_title: str | None = None,
    marks: Sequence[tuple[float, str]] = (),
) -> Any:
    """A 1-D surface (a line through parameter space) as a curve.

    ``title`` and ``axis_title`` name the figure and the x-axis (default: the
    field and the axis name); ``marks`` are ``(coordinate, label)`` pairs
    drawn as labelled markers on the curve (e.g. the two models at α = 0 and
    α = 1 of an interpolation), those outside the line left out. A log
    y-axis has labelled ticks (:func:`log_axis`).
    """
    go = _go()
    if surface.ndim != 1:
        raise ValueError(f"`surface` must be 1-D, got {surface.ndim}-D")
    ((name, a),) = surface.axes
    values = surface.field(field)
    finite = values[np.isfinite(values)]
    use_log = bool(finite.size and np.all(finite > 0)) if log is None else log
    traces = [
        go.Scatter(
            x=a,
            y=values,
            mode="lines",
            line={"color": "#2a6fdb", "width": 3},
            name=field,
            uid="field",
        )
    ]
    inside = [(float(c), str(t)) for c, t in marks if a[0] <= c <= a[-1]]
    if inside:
        xs = np.array([c for c, _ in inside])
        ys = np.interp(xs, a, values)
        traces.append(
            go.Scatter(
                x=xs,
                y=ys,
                mode="markers+text",
                text=[t for _, t in inside],
                textposition="top center",
                marker={
                    "size": 11,
                    "color": "#e0201b",
                    "line": {"color": "white", "width": 1},
                },
                cliponaxis=False,
                name="marked points",
                uid="marks",
            )
        )
    fig = go.Figure(traces)
    yaxis: dict[str, Any] = {"title": field}
    yaxis.update(log_axis(values) if use_log else {"type": "linear"})
    fig.update_layout(
        title={
            "text": title or f"{field} along {name}",
            "x": 0.02,
            "font": {"size": 15},
        },
        xaxis={"title": axis_title or name},
        yaxis=yaxis,
        showlegend=False,
        margin={"l": 60, "r": 15, "t": 45, "b": 50},
        font=_FONT,
        template="plotly_white",
    )
    return fig
