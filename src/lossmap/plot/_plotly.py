"""Plotly figure builders (used by the explorer, usable on their own).

Every builder takes results that were already computed (a
:class:`~lossmap.surface.Surface`, a problem and a point, trajectories,
critical points) and returns a ``plotly.graph_objects.Figure``; none of them
computes a landscape.

Plotly has no logarithmic colour scale, so :func:`landscape_figure` colours
``log10(loss)`` and labels the colour bar and the contour lines with the real
loss values.

The landscape figure keeps its traces in a fixed order, so an app can update
one of them (e.g. move the current point) without resending the grid:
:data:`TRACE_INDEX` names the positions. The colour scale and shared styles
live in :mod:`lossmap.plot._plotly_style`, the fit / loss-curve / 1-D panels
in :mod:`lossmap.plot._plotly_panels` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from lossmap.plot._plotly_panels import curve_figure, fit_figure, loss_curves_figure
from lossmap.plot._plotly_style import (
    _FONT,
    KIND_STYLE,
    PATH_COLORS,
    ColorScale,
    _axes2d,
    _contour_lines,
    _finite_path,
    _fmt,
    _go,
    _path_label,
    _point,
    _white_template,
    color_scale,
)
from lossmap.surface import Surface

__all__ = [
    "PATH_COLORS",
    "TRACE_INDEX",
    "UIDS",
    "ColorScale",
    "color_scale",
    "curve_figure",
    "fit_figure",
    "landscape_figure",
    "loss_curves_figure",
    "surface3d_figure",
]

#: Positions of the fixed traces of :func:`landscape_figure`; critical points
#: and optimizer paths follow, in that order.
TRACE_INDEX = {
    "field": 0,
    "contours": 1,
    "contour_labels": 2,
    "minimum": 3,
    "start": 4,
    "current": 5,
}
#: The ``uid`` of every fixed trace (apps find traces by uid, not position);
#: critical points are ``"critical-<kind>"``, optimizer paths ``"path-<i>"``.
UIDS = tuple(k.replace("_", "-") for k in TRACE_INDEX)


# --------------------------------------------------------------- landscape
def landscape_figure(
    surface: Surface,
    *,
    field: str = "loss",
    log: bool | None = None,
    contours: bool = True,
    minimum: Any = None,
    start: Any = None,
    current: Any = None,
    critical_points: Iterable[Any] = (),
    paths: Sequence[Any] = (),
    title: str | None = None,
    colorscale: str = "Viridis",
    marker_names: dict[str, str] | None = None,
    axis_titles: Sequence[str] | None = None,
) -> Any:
    """A heatmap of a 2-D surface on a log colour scale, with markers.

    Parameters
    ----------
    surface : Surface
        2-D; ``surface.field(field)`` of shape ``(n0, n1)`` is drawn with the
        first axis horizontal.
    field : str, default="loss"
    log : bool or None, default=None
        Colour ``log10(value)``; None picks it when every value is >= 0.
    contours : bool, default=True
        Labelled contour lines at the colour bar's ticks.
    minimum, start, current : array-like of shape (2,), optional
        θ* (a red star), the start θ₀ (an open circle) and the current point
        (a white dot).
    critical_points : iterable
        Objects with ``.theta`` (2,), ``.value`` and ``.kind``; one trace per
        kind, styled by :data:`KIND_STYLE`.
    paths : sequence
        Trajectories: objects with ``.params`` of shape (n + 1, 2) and a
        ``.label``; drawn in :data:`PATH_COLORS`, rows after the first
        non-finite one are dropped. The figure has no animation frames (an
        app animates the paths itself, see ``explorer/assets``): frames that
        resend the heatmap or the paths' prefixes are slow and large.
    title : str, optional
    marker_names : dict, optional
        Legend names for ``"minimum"``, ``"start"`` and ``"current"``.
    axis_titles : pair of str, optional
        Titles of the two axes (default: the axis names), e.g. the directions
        in words (:func:`lossmap.describe.direction_names`).

    Returns
    -------
    plotly.graph_objects.Figure
        Traces in the order of :data:`TRACE_INDEX`, then critical points by
        kind, then one trace per path; each has a ``uid`` (:data:`UIDS`,
        ``"critical-<kind>"``, ``"path-<i>"``). ``layout.meta`` holds the
        colour scale (``log``, ``floor``) so a page can place new values.
    """
    go = _go()
    n0, a0, n1, a1 = _axes2d(surface)
    values = surface.field(field)
    scale = color_scale(values, log=log)
    z = scale.z(values)
    traces = [_heatmap_trace(n0, a0, n1, a1, z, scale, field, colorscale)]
    traces += _contour_traces(a0, a1, z, scale, contours)
    names = dict(marker_names or {})
    current_name = "current (w, b)" if n0 == "w" else "current point"
    for point, style, name, hover in (
        (
            minimum,
            ("star", 18, "#e0201b", "white", 1.5),
            names.get("minimum", "θ* (minimum)"),
            "θ* = ",
        ),
        (
            start,
            ("diamond", 12, "white", "black", 1.5),
            names.get("start", "start θ₀"),
            "θ₀ = ",
        ),
        (
            current,
            ("circle", 11, "white", "black", 2),
            names.get("current", current_name),
            "",
        ),
    ):
        traces.append(_marker_trace(point, style, name, hover))
    traces += _critical_traces(critical_points)
    traces += _path_traces(paths)
    for t, uid in zip(traces, UIDS):
        t["uid"] = uid
    layout = _landscape_layout(title, axis_titles or (n0, n1), a0, a1)
    layout["meta"] = {"log": scale.log, "floor": scale.floor, "view": "2d"}
    # built without plotly's per-property validation: 201x201 figures are
    # rebuilt on every change of a setting
    return go.Figure({"data": traces, "layout": layout}, _validate=False)


def _heatmap_trace(
    n0: str,
    a0: Any,
    n1: str,
    a1: Any,
    z: np.ndarray,
    scale: Any,
    label: str,
    colors: str,
) -> dict[str, Any]:
    return dict(
        type="heatmap",
        x=a0,
        y=a1,
        z=z.T.astype(np.float32),
        zmin=scale.zmin,
        zmax=scale.zmax,
        colorscale=colors,
        colorbar={
            # the title runs along the bar: a narrow page keeps its width
            "title": {
                "text": label + (" (log scale)" if scale.log else ""),
                "side": "right",
            },
            "tickvals": scale.tickvals,
            "ticktext": scale.ticktext,
            "len": 0.9,
            "thickness": 16,
        },
        hovertemplate=f"{n0}=%{{x:.3f}}<br>{n1}=%{{y:.3f}}<extra></extra>",
        name=label,
    )


def _contour_traces(
    a0: Any, a1: Any, z: np.ndarray, scale: Any, contours: bool
) -> list[dict[str, Any]]:
    """The contour lines and their labels (two traces, empty without contours)."""
    xs: list[Any] = []
    ys: list[Any] = []
    labels: list[tuple[float, float, float]] = []
    if contours:
        xs, ys, labels = _contour_lines(a0, a1, z, scale.levels)
    lines = dict(
        type="scatter",
        x=xs,
        y=ys,
        mode="lines",
        line={"color": "rgba(255,255,255,0.55)", "width": 1},
        hoverinfo="skip",
        showlegend=False,
        name="contours",
    )
    text = dict(
        type="scatter",
        x=[p[0] for p in labels],
        y=[p[1] for p in labels],
        text=[_fmt(scale.value(p[2])) for p in labels],
        mode="text",
        textfont={"color": "white", "size": 11},
        hoverinfo="skip",
        showlegend=False,
        name="contour labels",
    )
    return [lines, text]


def _critical_traces(critical_points: Iterable[Any]) -> list[dict[str, Any]]:
    """One trace per kind of critical point, styled by :data:`KIND_STYLE`."""
    by_kind: dict[str, list[Any]] = {}
    for cp in critical_points:
        by_kind.setdefault(str(cp.kind), []).append(cp)
    traces = []
    for kind, pts in by_kind.items():
        symbol, color = KIND_STYLE.get(kind, ("circle-open", "#cccccc"))
        th = np.array([np.asarray(p.theta, dtype=float).reshape(2) for p in pts])
        traces.append(
            dict(
                type="scatter",
                x=th[:, 0],
                y=th[:, 1],
                mode="markers",
                marker={
                    "symbol": symbol,
                    "size": 14,
                    "color": color,
                    "line": {"color": "black", "width": 1},
                },
                name=f"{kind} ({len(pts)})",
                uid=f"critical-{kind}",
                customdata=[float(p.value) for p in pts],
                hovertemplate=kind + " (%{x:.3f}, %{y:.3f})<br>value %{customdata:.4g}"
                "<extra></extra>",
            )
        )
    return traces


def _path_traces(paths: Sequence[Any]) -> list[dict[str, Any]]:
    """One trace per trajectory, in :data:`PATH_COLORS`."""
    traces = []
    for i, traj in enumerate(paths):
        p = _finite_path(traj.params)
        color = PATH_COLORS[i % len(PATH_COLORS)]
        traces.append(
            dict(
                type="scatter",
                x=p[:, 0],
                y=p[:, 1],
                mode="lines+markers",
                line={"color": color, "width": 2.5},
                marker={
                    "size": 5,
                    "color": color,
                    "line": {"color": "white", "width": 0.6},
                },
                name=_path_label(traj, i),
                uid=f"path-{i}",
                hovertemplate=_path_label(traj, i)
                + " (%{x:.3f}, %{y:.3f})<extra></extra>",
            )
        )
    return traces


def _landscape_layout(
    title: str | None, axis_titles: Sequence[str], a0: Any, a1: Any
) -> dict[str, Any]:
    return {
        "title": {"text": title or "", "x": 0.02, "font": {"size": 15}},
        "xaxis": {
            "title": {"text": axis_titles[0]},
            "range": [float(a0[0]), float(a0[-1])],
            "constrain": "domain",
        },
        "yaxis": {
            "title": {"text": axis_titles[1]},
            "range": [float(a1[0]), float(a1[-1])],
        },
        "legend": {
            "orientation": "h",
            "yanchor": "top",
            "y": -0.16,
            "x": 0.0,
            "bgcolor": "rgba(255,255,255,0.8)",
        },
        "margin": {"l": 60, "r": 20, "t": 45, "b": 105},
        "font": _FONT,
        "template": _white_template(),
        "clickmode": "event",
        "hovermode": "closest",
        "uirevision": "landscape",
    }


def surface3d_figure(
    surface: Surface,
    *,
    field: str = "loss",
    log: bool | None = None,
    minimum: Any = None,
    start: Any = None,
    current: Any = None,
    paths: Sequence[Any] = (),
    values_at: Any = None,
    title: str | None = None,
    colorscale: str = "Viridis",
) -> Any:
    """A 3-D surface of the same field, with the same markers.

    The height is the plotted value (``log10`` on a log scale, ``log=False``
    for the value itself) and the z-axis ticks are labelled with real values;
    hovering shows the real value. Traces (uids ``"field"``, ``"minimum"``,
    ``"start"``, ``"current"``, then ``"path-<i>"``): the surface, θ*, the
    start, the current point (each present, empty when not given), then the
    paths, each cut where it first leaves the grid so the scene keeps the
    grid's extent. ``values_at`` maps points of shape ``(m, 2)`` to their real
    values (e.g. ``landscape.loss_at``) so markers and paths sit on the
    surface; without it they are drawn at the surface's nearest grid value.
    """
    go = _go()
    n0, a0, n1, a1 = _axes2d(surface)
    values = surface.field(field)
    scale = color_scale(values, log=log)
    z = scale.z(values)
    region = ((float(a0[0]), float(a0[-1])), (float(a1[0]), float(a1[-1])))

    def height(pts: np.ndarray) -> np.ndarray:
        if values_at is not None:
            return scale.z(values_at(pts))
        i = np.clip(np.searchsorted(a0, pts[:, 0]), 0, a0.size - 1)
        j = np.clip(np.searchsorted(a1, pts[:, 1]), 0, a1.size - 1)
        return z[i, j]

    def real(pts: np.ndarray) -> np.ndarray:
        return values_at(pts) if values_at is not None else scale.value(height(pts))

    hover = f"{n0}=%{{x:.3f}}<br>{n1}=%{{y:.3f}}<br>{field}=%{{customdata:.4g}}"
    traces: list[dict[str, Any]] = [
        dict(
            type="surface",
            x=a0,
            y=a1,
            z=z.T.astype(np.float32),
            customdata=np.asarray(values.T, dtype=np.float32),
            hovertemplate=hover + "<extra></extra>",
            cmin=scale.zmin,
            cmax=scale.zmax,
            colorscale=colorscale,
            colorbar={"tickvals": scale.tickvals, "ticktext": scale.ticktext},
            name=field,
            opacity=0.95,
            uid="field",
        )
    ]
    marks = (
        (minimum, "θ* (minimum)", "diamond", "#e0201b", 7, "minimum"),
        (start, "start θ₀", "circle-open", "black", 6, "start"),
        (current, "current point", "circle", "white", 6, "current"),
    )
    for p, name, symbol, color, size, uid in marks:  # always 3 (maybe empty)
        pt = np.asarray(p, dtype=float).reshape(1, 2) if p is not None else None
        traces.append(
            dict(
                type="scatter3d",
                x=pt[:, 0] if pt is not None else [],
                y=pt[:, 1] if pt is not None else [],
                z=height(pt) if pt is not None else [],
                customdata=real(pt) if pt is not None else [],
                hovertemplate=name + "<br>" + hover + "<extra></extra>",
                mode="markers",
                marker={
                    "symbol": symbol,
                    "size": size,
                    "color": color,
                    "line": {"color": "black", "width": 2},
                },
                name=name,
                uid=uid,
            )
        )
    for i, traj in enumerate(paths):
        p = _finite_path(traj.params, region)
        color = PATH_COLORS[i % len(PATH_COLORS)]
        label = _path_label(traj, i)
        traces.append(
            dict(
                type="scatter3d",
                x=p[:, 0],
                y=p[:, 1],
                z=height(p) if len(p) else [],
                customdata=real(p) if len(p) else [],
                hovertemplate=label + "<br>" + hover + "<extra></extra>",
                mode="lines",
                line={"color": color, "width": 6},
                name=label,
                uid=f"path-{i}",
            )
        )
    zr = [scale.zmin, scale.zmax]
    layout = {
        "title": {"text": title or "", "x": 0.02, "font": {"size": 15}},
        "scene": {
            "xaxis": {"title": {"text": n0}, "range": list(region[0])},
            "yaxis": {"title": {"text": n1}, "range": list(region[1])},
            "zaxis": {
                "title": {"text": field + (" (log scale)" if scale.log else "")},
                "tickvals": scale.tickvals,
                "ticktext": scale.ticktext,
                "range": [zr[0] - 0.02 * (zr[1] - zr[0]), zr[1]],
            },
        },
        "margin": {"l": 0, "r": 0, "t": 50, "b": 0},
        "legend": {"orientation": "h", "x": 0.0, "y": 0.0, "yanchor": "bottom"},
        "font": _FONT,
        "uirevision": "surface3d",
        "meta": {"log": scale.log, "floor": scale.floor, "view": "3d"},
    }
    return go.Figure({"data": traces, "layout": layout}, _validate=False)


def _marker_trace(
    point: Any, style: tuple[str, int, str, str, float], name: str, hover: str
) -> dict[str, Any]:
    """One marked point (θ*, θ₀ or the current point); empty when ``point`` is None."""
    symbol, size, color, edge, width = style
    x, y = _point(point)
    return dict(
        type="scatter",
        x=x,
        y=y,
        mode="markers",
        cliponaxis=False,  # a point on the grid's edge is drawn whole
        marker={
            "symbol": symbol,
            "size": size,
            "color": color,
            "line": {"color": edge, "width": width},
        },
        name=name,
        hovertemplate=hover + "(%{x:.4f}, %{y:.4f})<extra></extra>",
    )
