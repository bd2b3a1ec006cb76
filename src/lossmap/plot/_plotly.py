"""Plotly figure builders (used by the explorer, usable on their own).

Every builder takes results that were already computed (a
:class:`~lossmap.surface.Surface`, a problem and a point, trajectories,
critical points) and returns a ``plotly.graph_objects.Figure``; none of them
computes a landscape.

Plotly has no logarithmic colour scale, so :func:`landscape_figure` colours
``log10(loss)`` and labels the colour bar and the contour lines with the real
loss values.

The landscape figure keeps its traces in a fixed order, so an app can patch
one of them (e.g. move the current point) without resending the grid:
:data:`TRACE_INDEX` names the positions.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from lossmap.plot import require_plotly
from lossmap.surface import Surface

__all__ = [
    "PATH_COLORS",
    "TRACE_INDEX",
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
#: One colour per optimizer path (none of them red: red marks θ*).
PATH_COLORS = (
    "#ff9f1c",
    "#2ec4f1",
    "#f15bb5",
    "#c5f277",
    "#ffffff",
    "#b388ff",
    "#00e0a4",
    "#ffd6a5",
)
#: Marker symbol and colour per kind of critical point.
KIND_STYLE = {
    "minimum": ("star", "#e0201b"),
    "saddle": ("x", "#ffffff"),
    "maximum": ("triangle-up", "#ff9f1c"),
    "degenerate": ("diamond-open", "#cccccc"),
}
_FRAMES = 40
_FONT = {"family": "Inter, Helvetica, Arial, sans-serif", "size": 13}


# ------------------------------------------------------------ colour scale
class ColorScale:
    """How values map to colours: ``z = log10(value)`` or the value itself.

    Attributes
    ----------
    log : bool
    floor : float
        Smallest value shown on a log scale (values below are clipped to it):
        the smallest positive value, but at most 5 decades below the largest.
    tickvals : list of float
        Colour-bar ticks in plotted units.
    ticktext : list of str
        The same ticks as real values.
    levels : ndarray
        Contour levels in plotted units.
    """

    def __init__(self, values: np.ndarray, *, log: bool | None = None) -> None:
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            raise ValueError("the field has no finite values to show")
        lo, hi = float(finite.min()), float(finite.max())
        self.log = bool(lo >= 0.0 and hi > 0.0) if log is None else bool(log)
        if self.log and hi <= 0.0:
            raise ValueError("a logarithmic colour scale needs positive values")
        if self.log:
            positive = finite[finite > 0]
            # 5 decades at most: an exact fit (loss 0) would otherwise stretch
            # the colours over empty decades around the minimum
            self.floor = max(float(positive.min()), hi * 1e-5)
            zlo, zhi = math.log10(self.floor), math.log10(hi)
            if zhi - zlo < 1e-9:
                zlo -= 0.5
                zhi += 0.5
            ticks = _log_ticks(self.floor, hi)
            self.tickvals = [math.log10(t) for t in ticks]
            self.ticktext = [_fmt(t) for t in ticks]
            self.levels = np.log10(_log_levels(self.floor, hi))
        else:
            self.floor = lo
            zlo, zhi = lo, hi if hi > lo else lo + 1.0
            ticks = _linear_ticks(zlo, zhi)
            self.tickvals = [float(t) for t in ticks]
            self.ticktext = [_fmt(t) for t in ticks]
            self.levels = np.array(self.tickvals)
        self.zmin, self.zmax = zlo, zhi

    def z(self, values: Any) -> np.ndarray:
        """Plotted units for real values (any shape)."""
        v = np.asarray(values, dtype=np.float64)
        if not self.log:
            return v
        with np.errstate(invalid="ignore"):
            return np.log10(np.clip(v, self.floor, None))

    def value(self, z: float) -> float:
        """The real value at plotted level ``z``."""
        return 10.0**z if self.log else z


def color_scale(values: Any, *, log: bool | None = None) -> ColorScale:
    """The colour scale :func:`landscape_figure` uses for ``values``.

    ``log=None`` picks a log scale when every finite value is >= 0.
    """
    return ColorScale(np.asarray(values, dtype=np.float64), log=log)


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if 1e-3 <= a < 1e4:
        return f"{v:.3g}"
    return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e").replace("e+", "e")


_MULTS = (
    (1,),
    (1, 3),
    (1, 2, 5),
    (1, 1.5, 2, 3, 5, 7),
    (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9),
)


def _nice_log_values(lo: float, hi: float, *, fewest: int, most: int) -> list[float]:
    """Round values (1-2-5 and finer per decade) inside [lo, hi]."""
    d0, d1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    best: list[float] = []
    for mults in _MULTS:
        vals = [m * 10.0**d for d in range(d0, d1 + 1) for m in mults]
        vals = [v for v in vals if lo * (1 - 1e-12) <= v <= hi * (1 + 1e-12)]
        if len(vals) > most and best:
            break
        best = vals
        if len(vals) >= fewest:
            break
    while len(best) > most:
        best = best[::2]
    return best


def _log_ticks(lo: float, hi: float) -> list[float]:
    return _nice_log_values(lo, hi, fewest=4, most=10)


def _log_levels(lo: float, hi: float) -> np.ndarray:
    """Contour values: round numbers, about 6 to 12 of them."""
    inner = [v for v in _nice_log_values(lo, hi, fewest=7, most=13) if lo < v < hi]
    return np.array(inner if inner else [math.sqrt(lo * hi)])


def _linear_ticks(lo: float, hi: float) -> np.ndarray:
    raw = (hi - lo) / 8
    mag = 10.0 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 5, 10) if m * mag >= raw), default=mag * 10)
    start = math.ceil(lo / step) * step
    return np.arange(start, hi + step * 1e-9, step)


# ----------------------------------------------------------------- helpers
def _go() -> Any:
    return require_plotly("the explorer's figures")


def _axes2d(surface: Surface) -> tuple[str, np.ndarray, str, np.ndarray]:
    if surface.ndim != 2:
        raise ValueError(f"`surface` must be 2-D, got {surface.ndim}-D")
    (n0, a0), (n1, a1) = surface.axes
    return n0, a0, n1, a1


def _point(p: Any) -> tuple[list[float], list[float]]:
    if p is None:
        return [], []
    x, y = (float(v) for v in np.asarray(p, dtype=np.float64).reshape(2))
    return [x], [y]


def _contour_lines(
    a0: np.ndarray, a1: np.ndarray, z: np.ndarray, levels: np.ndarray
) -> tuple[list[Any], list[Any], list[tuple[float, float, float]]]:
    """Contour polylines (None-separated) and one label position per level."""
    import contourpy

    gen = contourpy.contour_generator(a0, a1, z.T, line_type="Separate")
    span0, span1 = float(a0[-1] - a0[0]), float(a1[-1] - a1[0])
    xs: list[Any] = []
    ys: list[Any] = []
    labels: list[tuple[float, float, float]] = []
    for level in levels:
        lines = gen.lines(float(level))
        longest = None
        for line in lines:
            if len(line) < 2:
                continue
            xs.extend([*line[:, 0].tolist(), None])
            ys.extend([*line[:, 1].tolist(), None])
            if longest is None or len(line) > len(longest):
                longest = line
        small = longest is not None and (
            np.ptp(longest[:, 0]) < 0.1 * span0 and np.ptp(longest[:, 1]) < 0.1 * span1
        )
        if longest is not None and len(longest) >= 8 and not small:
            # the vertex farthest from the plot's border keeps labels readable
            u = (longest[:, 0] - a0[0]) / span0
            v = (longest[:, 1] - a1[0]) / span1
            edge = np.minimum(np.minimum(u, 1 - u), np.minimum(v, 1 - v))
            cand = longest[int(np.argmax(edge))]
            spot = (float(cand[0]), float(cand[1]))
            if all(
                abs(spot[0] - p[0]) > 0.07 * span0 or abs(spot[1] - p[1]) > 0.05 * span1
                for p in labels
            ):
                labels.append((*spot, float(level)))
    return xs, ys, labels


def _finite_path(params: Any) -> np.ndarray:
    p = np.asarray(params, dtype=np.float64).reshape(-1, 2)
    ok = np.all(np.isfinite(p), axis=1)
    if not ok.all():
        p = p[: int(np.argmin(ok))] if ok[0] else p[:0]
    return p


def _path_label(traj: Any, i: int) -> str:
    return str(getattr(traj, "label", "") or f"run {i + 1}")


def _frame_cuts(lengths: Sequence[int]) -> list[int]:
    longest = max(lengths, default=0)
    if longest <= 1:
        return []
    n = min(_FRAMES, longest)
    return sorted({round(v) for v in np.linspace(1, longest, n).tolist()})


def _animation_menu() -> list[dict[str, Any]]:
    return [
        {
            "type": "buttons",
            "showactive": False,
            "x": 1.0,
            "y": 1.01,
            "xanchor": "right",
            "yanchor": "bottom",
            "pad": {"r": 0, "t": 0},
            "direction": "left",
            "buttons": [
                {
                    "label": "▶ replay",
                    "method": "animate",
                    "args": [
                        None,
                        {
                            "frame": {"duration": 60, "redraw": True},
                            "transition": {"duration": 0},
                            "fromcurrent": False,
                            "mode": "immediate",
                        },
                    ],
                }
            ],
        }
    ]


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
    animate: bool = True,
    title: str | None = None,
    colorscale: str = "Viridis",
    marker_names: dict[str, str] | None = None,
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
        non-finite one are dropped.
    animate : bool, default=True
        Add frames that grow the paths step by step and a replay button.
    title : str, optional
    marker_names : dict, optional
        Legend names for ``"minimum"``, ``"start"`` and ``"current"``.

    Returns
    -------
    plotly.graph_objects.Figure
        Traces in the order of :data:`TRACE_INDEX`, then critical points by
        kind, then one trace per path.
    """
    go = _go()
    n0, a0, n1, a1 = _axes2d(surface)
    values = surface.field(field)
    scale = color_scale(values, log=log)
    z = scale.z(values)
    label = field
    names = dict(marker_names or {})
    traces: list[dict[str, Any]] = []
    traces.append(
        dict(
            type="heatmap",
            x=a0,
            y=a1,
            z=z.T.astype(np.float32),
            zmin=scale.zmin,
            zmax=scale.zmax,
            colorscale=colorscale,
            colorbar={
                "title": {"text": label + (" (log scale)" if scale.log else "")},
                "tickvals": scale.tickvals,
                "ticktext": scale.ticktext,
                "len": 0.9,
            },
            hovertemplate=f"{n0}=%{{x:.3f}}<br>{n1}=%{{y:.3f}}<extra></extra>",
            name=label,
        )
    )
    xs: list[Any] = []
    ys: list[Any] = []
    labels: list[tuple[float, float, float]] = []
    if contours:
        xs, ys, labels = _contour_lines(a0, a1, z, scale.levels)
    traces.append(
        dict(
            type="scatter",
            x=xs,
            y=ys,
            mode="lines",
            line={"color": "rgba(255,255,255,0.55)", "width": 1},
            hoverinfo="skip",
            showlegend=False,
            name="contours",
        )
    )
    traces.append(
        dict(
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
    )
    mx, my = _point(minimum)
    traces.append(
        dict(
            type="scatter",
            x=mx,
            y=my,
            mode="markers",
            marker={
                "symbol": "star",
                "size": 18,
                "color": "#e0201b",
                "line": {"color": "white", "width": 1.5},
            },
            name=names.get("minimum", "θ* (minimum)"),
            hovertemplate="θ* = (%{x:.4f}, %{y:.4f})<extra></extra>",
        )
    )
    sx, sy = _point(start)
    traces.append(
        dict(
            type="scatter",
            x=sx,
            y=sy,
            mode="markers",
            marker={
                "symbol": "diamond",
                "size": 12,
                "color": "white",
                "line": {"color": "black", "width": 1.5},
            },
            name=names.get("start", "start θ₀"),
            hovertemplate="θ₀ = (%{x:.4f}, %{y:.4f})<extra></extra>",
        )
    )
    cx, cy = _point(current)
    traces.append(
        dict(
            type="scatter",
            x=cx,
            y=cy,
            mode="markers",
            marker={
                "symbol": "circle",
                "size": 11,
                "color": "white",
                "line": {"color": "black", "width": 2},
            },
            name=names.get(
                "current", "current (w, b)" if n0 == "w" else "current point"
            ),
            hovertemplate="(%{x:.4f}, %{y:.4f})<extra></extra>",
        )
    )
    by_kind: dict[str, list[Any]] = {}
    for cp in critical_points:
        by_kind.setdefault(str(cp.kind), []).append(cp)
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
                customdata=[float(p.value) for p in pts],
                hovertemplate=kind + " (%{x:.3f}, %{y:.3f})<br>value %{customdata:.4g}"
                "<extra></extra>",
            )
        )
    first_path = len(traces)
    drawn = [_finite_path(t.params) for t in paths]
    for i, (traj, p) in enumerate(zip(paths, drawn)):
        color = PATH_COLORS[i % len(PATH_COLORS)]
        traces.append(
            dict(
                type="scatter",
                x=p[:, 0],
                y=p[:, 1],
                mode="lines+markers",
                line={"color": color, "width": 2.5},
                marker={"size": 4, "color": color},
                name=_path_label(traj, i),
                hovertemplate=_path_label(traj, i)
                + " (%{x:.3f}, %{y:.3f})<extra></extra>",
            )
        )
    layout: dict[str, Any] = {
        "title": {"text": title or "", "x": 0.02, "font": {"size": 15}},
        "xaxis": {
            "title": {"text": n0},
            "range": [float(a0[0]), float(a0[-1])],
            "constrain": "domain",
        },
        "yaxis": {"title": {"text": n1}, "range": [float(a1[0]), float(a1[-1])]},
        "legend": {
            "orientation": "h",
            "yanchor": "top",
            "y": -0.12,
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
    frames: list[dict[str, Any]] = []
    if animate and drawn:
        idx = list(range(first_path, first_path + len(drawn)))
        frames = [
            {
                "name": str(k),
                "traces": idx,
                "data": [
                    {"type": "scatter", "x": p[:k, 0], "y": p[:k, 1]} for p in drawn
                ],
            }
            for k in _frame_cuts([len(p) for p in drawn])
        ]
        layout["updatemenus"] = _animation_menu()
    # built without plotly's per-property validation: 201x201 figures are
    # rebuilt on every change of a setting
    return go.Figure(
        {"data": traces, "layout": layout, "frames": frames}, _validate=False
    )


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

    The height is the plotted value (``log10`` on a log scale) and the z-axis
    ticks are labelled with real values. Traces: the surface, θ*, the start,
    the current point (each present, empty when not given), then the paths.
    ``values_at`` maps points of shape ``(m, 2)`` to their real values (e.g.
    ``landscape.loss_at``) so markers and paths sit on the surface; without it
    they are drawn at the surface's nearest grid value.
    """
    go = _go()
    n0, a0, n1, a1 = _axes2d(surface)
    values = surface.field(field)
    scale = color_scale(values, log=log)
    z = scale.z(values)

    def height(pts: np.ndarray) -> np.ndarray:
        if values_at is not None:
            return scale.z(values_at(pts))
        i = np.clip(np.searchsorted(a0, pts[:, 0]), 0, a0.size - 1)
        j = np.clip(np.searchsorted(a1, pts[:, 1]), 0, a1.size - 1)
        return z[i, j]

    fig = go.Figure(
        go.Surface(
            x=a0,
            y=a1,
            z=z.T.astype(np.float32),
            cmin=scale.zmin,
            cmax=scale.zmax,
            colorscale=colorscale,
            colorbar={"tickvals": scale.tickvals, "ticktext": scale.ticktext},
            name=field,
            opacity=0.95,
        )
    )
    marks = (
        (minimum, "θ* (minimum)", "diamond", "#e0201b", 7),
        (start, "start θ₀", "circle-open", "black", 6),
        (current, "current point", "circle", "white", 6),
    )
    for p, name, symbol, color, size in marks:  # always 3 traces (maybe empty)
        pt = np.asarray(p, dtype=float).reshape(1, 2) if p is not None else None
        fig.add_trace(
            go.Scatter3d(
                x=pt[:, 0] if pt is not None else [],
                y=pt[:, 1] if pt is not None else [],
                z=height(pt) if pt is not None else [],
                mode="markers",
                marker={
                    "symbol": symbol,
                    "size": size,
                    "color": color,
                    "line": {"color": "black", "width": 2},
                },
                name=name,
            )
        )
    for i, traj in enumerate(paths):
        p = _finite_path(traj.params)
        color = PATH_COLORS[i % len(PATH_COLORS)]
        fig.add_trace(
            go.Scatter3d(
                x=p[:, 0],
                y=p[:, 1],
                z=height(p) if len(p) else [],
                mode="lines",
                line={"color": color, "width": 6},
                name=_path_label(traj, i),
            )
        )
    fig.update_layout(
        title={"text": title or "", "x": 0.02, "font": {"size": 15}},
        scene={
            "xaxis": {"title": {"text": n0}},
            "yaxis": {"title": {"text": n1}},
            "zaxis": {
                "title": {"text": field},
                "tickvals": scale.tickvals,
                "ticktext": scale.ticktext,
            },
        },
        margin={"l": 0, "r": 0, "t": 50, "b": 0},
        legend={"orientation": "h", "x": 0.0, "y": 0.0, "yanchor": "bottom"},
        font=_FONT,
        uirevision="surface3d",
    )
    return fig


# --------------------------------------------------------------- fit panel
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
    ys = np.concatenate([y, curve[np.isfinite(curve)]])
    ylo, yhi = float(ys.min()), float(ys.max())
    ypad = 0.1 * (yhi - ylo if yhi > ylo else 1.0)
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
            },
            {
                "type": "scatter",
                "x": xs,
                "y": curve,
                "mode": "lines",
                "line": {"color": "#2a6fdb", "width": 3},
                "name": "prediction",
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
            "yaxis": {"title": {"text": "y"}, "range": [ylo - ypad, yhi + ypad]},
            "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0.0},
            "margin": {"l": 55, "r": 15, "t": 70, "b": 50},
            "font": _FONT,
            "template": _white_template(),
        },
    }
    return go.Figure(spec, _validate=False)


@functools.lru_cache(maxsize=1)
def _white_template() -> Any:
    import plotly.io as pio

    return pio.templates["plotly_white"]


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
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0.0},
        margin={"l": 60, "r": 15, "t": 60, "b": 45},
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
