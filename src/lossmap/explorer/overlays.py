"""Teaching overlays: why a valley is slow, what a loss does to a residual.

Plain functions of checked settings (no Dash here), drawn by the Landscape tab:

* :func:`gradient_arrows` — the downhill direction (−∇L) on a coarse grid;
* :func:`curvature_at` — the Hessian's eigen-directions and condition number
  at the current point (a long, thin valley has a large κ: gradient descent
  zig-zags across it and crawls along it);
* :func:`slices_figure` — the loss along w and along b through θ*;
* :func:`residual_loss_figure` — the loss of one residual r, with Huber's δ
  marked where it switches from squared to absolute, and the current
  residuals of the data on the curve.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from lossmap.explorer import teaching
from lossmap.explorer.validate import ProblemSettings

__all__ = [
    "ARROWS_STEPS",
    "Curvature",
    "curvature_at",
    "curvature_trace",
    "gradient_arrows",
    "residual_loss_figure",
    "slices_figure",
]

#: Arrows per axis.
ARROWS_STEPS = 13

#: A horizontal legend at the foot of a small panel, measured from the
#: panel's bottom edge (``yref="container"``), so it never sits on the x
#: axis's title however short the plot is.
_FOOT_LEGEND = {
    "orientation": "h",
    "yref": "container",
    "y": 0,
    "yanchor": "bottom",
    "x": 0,
}


def gradient_arrows(settings: Any) -> dict[str, Any]:
    """A scatter trace (uid ``"arrows"``): −∇L as equal-length arrows.

    Each arrow is a segment from a grid point along −∇L/|∇L|, 0.7 of a cell
    long, with an arrowhead at its tip (direction only: the length would hide
    everything but the steepest walls).
    """
    land = teaching.landscape_for(settings)
    (lo0, hi0), (lo1, hi1) = settings.region
    c0 = (hi0 - lo0) / ARROWS_STEPS
    c1 = (hi1 - lo1) / ARROWS_STEPS
    a0 = lo0 + c0 * (np.arange(ARROWS_STEPS) + 0.5)
    a1 = lo1 + c1 * (np.arange(ARROWS_STEPS) + 0.5)
    w, b = np.meshgrid(a0, a1, indexing="ij")
    g = np.asarray(land.grad(w, b), dtype=float)
    # in cell units, so arrows look right whatever the axes' scales
    u, v = -g[..., 0] / c0, -g[..., 1] / c1
    norm = np.hypot(u, v)
    ok = np.isfinite(norm) & (norm > 0)
    u = np.where(ok, u / np.where(ok, norm, 1.0), 0.0) * 0.7 * c0
    v = np.where(ok, v / np.where(ok, norm, 1.0), 0.0) * 0.7 * c1
    xs: list[Any] = []
    ys: list[Any] = []
    sizes: list[float] = []
    for x, y, dx, dy, good in zip(
        w.ravel(), b.ravel(), u.ravel(), v.ravel(), ok.ravel()
    ):
        if not good:
            continue
        xs += [float(x), float(x + dx), None]
        ys += [float(y), float(y + dy), None]
        sizes += [0, 7, 0]
    return dict(
        type="scatter",
        x=xs,
        y=ys,
        mode="lines+markers",
        line={"color": "rgba(255,255,255,0.85)", "width": 1.2},
        marker={
            "symbol": "arrow",
            "size": sizes,
            "angleref": "previous",
            "color": "rgba(255,255,255,0.95)",
        },
        hoverinfo="skip",
        name="downhill (−gradient)",
        uid="arrows",
    )


class Curvature(NamedTuple):
    """The Hessian at a point: eigenvalues (ascending), eigenvectors (columns)
    and the condition number (None unless both eigenvalues are > 0)."""

    values: np.ndarray
    vectors: np.ndarray
    condition: float | None

    def sentence(self) -> str:
        lo, hi = (float(v) for v in self.values)
        text = f"Hessian eigenvalues {lo:.3g} and {hi:.3g}"
        if self.condition is None:
            if lo < 0 < hi:
                return text + ": a saddle (curving up one way, down the other)"
            return text + ": no condition number (flat or curving down)"
        return text + f"; condition number κ = {self.condition:.3g}"


def curvature_at(settings: Any, point: tuple[float, float]) -> Curvature:
    """Eigen-decomposition of the exact Hessian at ``point``."""
    land = teaching.landscape_for(settings)
    h = np.asarray(land.hessian(point[0], point[1]), dtype=float).reshape(2, 2)
    vals, vecs = np.linalg.eigh(0.5 * (h + h.T))
    cond = float(vals[1] / vals[0]) if vals[0] > 0 else None
    return Curvature(vals, vecs, cond)


def curvature_trace(
    settings: Any, point: tuple[float, float], curv: Curvature | None
) -> dict[str, Any]:
    """Segments along the two eigen-directions through ``point`` (uid
    ``"eigen"``): the flatter direction drawn longer (∝ 1/√λ), the steeper
    one 8 % of the region; empty when ``curv`` is None."""
    xs: list[Any] = []
    ys: list[Any] = []
    text: list[str] = []
    if curv is not None:
        (lo0, hi0), (lo1, hi1) = settings.region
        span = np.array([hi0 - lo0, hi1 - lo1])
        mags = np.abs(curv.values)
        top = float(mags.max()) if np.isfinite(mags).all() and mags.max() > 0 else 1.0
        for k in range(2):
            lam = float(mags[k])
            rel = np.sqrt(top / lam) if lam > 0 else 4.0
            half = 0.08 * min(rel, 4.0) * span * curv.vectors[:, k]
            p = np.asarray(point, dtype=float)
            xs += [float(p[0] - half[0]), float(p[0] + half[0]), None]
            ys += [float(p[1] - half[1]), float(p[1] + half[1]), None]
            text += ["", f"λ = {float(curv.values[k]):.3g}", ""]
    return dict(
        type="scatter",
        x=xs,
        y=ys,
        text=text,
        mode="lines+text",
        textposition="top center",
        textfont={"color": "white", "size": 12},
        line={"color": "#ffd166", "width": 3},
        hoverinfo="skip",
        name="Hessian eigen-directions",
        uid="eigen",
    )


def slices_figure(settings: Any) -> Any:
    """The loss along each parameter through θ* (the other one held at θ*)."""
    from lossmap.plot._plotly_style import _FONT, _go

    go = _go()
    land = teaching.landscape_for(settings)
    theta, _ = teaching.minimum_for(settings)
    n0, n1 = land.param_names
    fig = go.Figure()
    if theta is not None:
        (lo0, hi0), (lo1, hi1) = settings.region
        half = 0.5 * max(hi0 - lo0, hi1 - lo1)
        t = np.linspace(-half, half, 241)
        fig.add_scatter(
            x=t,
            y=np.asarray(land.loss(theta[0] + t, theta[1] + 0 * t)),
            name=f"along {n0} ({n1} = {n1}*)",
            line={"color": "#2a6fdb", "width": 2.5},
            uid="slice-0",
        )
        fig.add_scatter(
            x=t,
            y=np.asarray(land.loss(theta[0] + 0 * t, theta[1] + t)),
            name=f"along {n1} ({n0} = {n0}*)",
            line={"color": "#e8720c", "width": 2.5},
            uid="slice-1",
        )
    fig.update_layout(
        title={"text": "slices through θ*", "x": 0.02, "font": {"size": 14}},
        xaxis={"title": "offset from θ*"},
        yaxis={"title": "loss"},
        legend=_FOOT_LEGEND,
        margin={"l": 55, "r": 10, "t": 35, "b": 90},
        font=_FONT,
        template="plotly_white",
    )
    return fig


def residual_loss_figure(
    settings: ProblemSettings, point: tuple[float, float] | None = None
) -> Any:
    """The chosen loss of one residual r = prediction − target, MSE's r² for
    comparison, Huber's ±δ marked, and the data's residuals at ``point``."""
    from lossmap import losses
    from lossmap.plot._plotly_style import _FONT, _go

    go = _go()
    land = teaching.landscape_for(settings)
    fn = losses.get(settings.loss)
    params = dict(settings.loss_params)
    lim = 3.0
    residuals = None
    if point is not None:
        pred = np.asarray(land.predict(land.data.x, point[0], point[1]), dtype=float)
        residuals = pred - np.asarray(land.data.y, dtype=float)
        finite = residuals[np.isfinite(residuals)]
        if finite.size:
            lim = max(lim, min(1.1 * float(np.abs(finite).max()), 20.0))
    r = np.linspace(-lim, lim, 401)
    binary = fn.task == "binary"
    fig = go.Figure()
    if binary:  # BCE: the loss of a prediction p for a target 1 and a target 0
        p = np.linspace(1e-3, 1 - 1e-3, 401)
        for target, colour in ((1.0, "#2a6fdb"), (0.0, "#e8720c")):
            fig.add_scatter(
                x=p - target,
                y=fn.value(p, np.full_like(p, target)),
                name=f"{fn.label}, target {target:g}",
                line={"color": colour, "width": 2.5},
            )
    else:
        fig.add_scatter(
            x=r,
            y=fn.value(r, np.zeros_like(r), **params),
            name=fn.label,
            line={"color": "#2a6fdb", "width": 3},
            uid="loss",
        )
        if settings.loss != "mse":
            fig.add_scatter(
                x=r,
                y=r * r,
                name="MSE (r²), for comparison",
                line={"color": "#999999", "width": 1.5, "dash": "dash"},
            )
    if settings.loss == "huber":
        d = float(settings.delta)
        for s in (-d, d):
            fig.add_vline(x=s, line={"color": "#e0201b", "dash": "dot", "width": 1.5})
        # centred between the ±δ lines, at the top: inside the plot for any δ
        # (anchored at +δ it ran off the panel's right edge)
        fig.add_annotation(
            x=0,
            y=1,
            yref="paper",
            text=f"δ = {d:g}: squared inside, absolute outside",
            showarrow=False,
            xanchor="center",
            yanchor="top",
            bgcolor="rgba(255, 255, 255, 0.85)",
            font={"size": 11, "color": "#e0201b"},
        )
    if residuals is not None and not binary:
        fig.add_scatter(
            x=residuals,
            y=fn.value(residuals, np.zeros_like(residuals), **params),
            mode="markers",
            marker={"size": 8, "color": "#222222"},
            name="the data's residuals now",
            uid="residuals",
        )
    top = float(np.nanmax(fn.value(r, np.zeros_like(r), **params))) if not binary else 5
    fig.update_layout(
        title={"text": "loss of one residual", "x": 0.02, "font": {"size": 14}},
        xaxis={"title": "residual r = prediction − target", "range": [-lim, lim]},
        yaxis={"title": "loss", "range": [0, 1.05 * top]},
        # the legend at the panel's foot, below the axis title whatever the
        # plot's height (at y = -0.3 of a short plot it sat on the title)
        legend=_FOOT_LEGEND,
        margin={"l": 55, "r": 10, "t": 35, "b": 90},
        font=_FONT,
        template="plotly_white",
    )
    return fig
