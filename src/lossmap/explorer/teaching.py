"""What the teaching view shows, as plain functions of checked settings.

Nothing here knows about Dash: each function takes settings from
:mod:`lossmap.explorer.validate` and returns figures, text or JSON-friendly
records, so the callbacks stay thin and the unit tests call these directly.

Landscapes, minima and critical points are cached per settings
(``functools.lru_cache`` on the frozen settings), so moving the current point
or re-running optimizers never recomputes a 201×201 grid.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np

from lossmap import toy
from lossmap.explorer.validate import (
    FunctionSettings,
    InputError,
    ProblemSettings,
    RunSettings,
)
from lossmap.plot import _plotly
from lossmap.surface import Surface

__all__ = [
    "RunRecord",
    "default_point",
    "edit_data",
    "fit_view",
    "function_names",
    "landscape_for",
    "landscape_view",
    "loss_view",
    "minimum_for",
    "problem_spec",
    "readout",
    "run_optimizers",
    "runs_from_json",
    "status_lines",
    "surface_for",
]

Settings = ProblemSettings | FunctionSettings


class RunRecord(NamedTuple):
    """One optimizer run as the page stores it (JSON-friendly).

    ``params`` has shape (n + 1, 2) and ``loss`` shape (n + 1,); non-finite
    entries are None in JSON and NaN here.
    """

    label: str
    params: np.ndarray
    loss: np.ndarray
    status: str
    stopped_at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "params": _jsonable(self.params),
            "loss": _jsonable(self.loss),
            "status": self.status,
            "stopped_at": int(self.stopped_at),
        }


#: Significant digits of run values sent to the page (8 runs of 2,000 steps
#: stay under 1 MB; the paths are drawn, not computed, from them).
RUN_DIGITS = 7


def _jsonable(a: np.ndarray) -> list[Any]:
    arr = np.asarray(a, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.where(
            np.isfinite(arr) & (arr != 0),
            10.0 ** (RUN_DIGITS - 1 - np.floor(np.log10(np.abs(arr)))),
            1.0,
        )
    rounded = np.round(arr * mag) / mag
    rounded = np.where(np.isfinite(rounded), rounded, arr)
    out = np.where(np.isfinite(arr), rounded, np.nan).tolist()

    def clean(v: Any) -> Any:
        if isinstance(v, list):
            return [clean(x) for x in v]
        return None if v != v else v  # NaN -> None

    return clean(out)


def runs_from_json(data: Any) -> list[RunRecord]:
    """Runs back from the page's store; malformed entries are refused."""
    if not data:
        return []
    if not isinstance(data, list) or len(data) > 8:
        raise InputError("the stored runs are malformed (expected at most 8 runs)")
    try:
        out = []
        for r in data:
            params = np.array(
                [[np.nan if v is None else v for v in row] for row in r["params"]],
                dtype=np.float64,
            ).reshape(-1, 2)
            loss = np.array(
                [np.nan if v is None else v for v in r["loss"]], dtype=np.float64
            )
            status = str(r["status"])
            if status not in ("converged", "diverged", "max_steps"):
                raise ValueError(f"unknown status {status[:20]!r}")
            if loss.shape != (params.shape[0],) or params.shape[0] > 20_001:
                raise ValueError("params and loss do not match")
            out.append(
                RunRecord(
                    str(r["label"])[:80], params, loss, status, int(r["stopped_at"])
                )
            )
        return out
    except (TypeError, KeyError, ValueError) as exc:
        raise InputError(f"the stored runs are malformed ({exc})") from None


# ------------------------------------------------------------- landscapes
def function_names() -> tuple[str, ...]:
    """Names of the classic test surfaces (empty if they are not installed)."""
    try:
        from lossmap.toy import functions
    except ImportError:
        return ()
    return tuple(functions.available())


@functools.lru_cache(maxsize=64)
def landscape_for(settings: Settings) -> Any:
    """The Landscape the settings describe (a Problem or a test function)."""
    if isinstance(settings, FunctionSettings):
        from lossmap.toy import functions

        return functions.get(settings.function)
    data: Any = settings.preset
    if settings.points is not None:
        from lossmap.toy.data import Dataset

        base = toy.dataset(settings.preset)
        x, y = (np.array(v, dtype=float) for v in zip(*settings.points))
        data = Dataset(
            x, y, task=base.task, name=f"{base.name} (edited)", region=base.region
        )
    try:
        return toy.problem(
            settings.model,
            data,
            settings.loss,
            l2=settings.l2,
            **settings.loss_params,
        )
    except (ValueError, TypeError) as exc:
        raise InputError(str(exc)) from None


@functools.lru_cache(maxsize=32)
def surface_for(settings: Settings) -> Surface:
    """The landscape on the settings' grid (cached)."""
    return landscape_for(settings).surface(settings.region, steps=settings.steps)


@functools.lru_cache(maxsize=64)
def minimum_for(settings: Settings) -> tuple[np.ndarray | None, str]:
    """θ* (or None) and a sentence about it."""
    land = landscape_for(settings)
    if isinstance(settings, FunctionSettings):
        minima = np.asarray(getattr(land, "minima", ()), dtype=float).reshape(-1, 2)
        if minima.size == 0:
            return None, "no minimum: the surface is unbounded below"
        vals = land.loss_at(minima)
        best = minima[int(np.argmin(vals))]
        return best, f"global minimum {float(np.min(vals)):.4g}"
    try:
        m = land.minimum()
    except ValueError as exc:
        return None, str(exc)
    return m.theta, f"θ* = ({m.w:.4f}, {m.b:.4f}), loss {m.loss:.4g}"


@functools.lru_cache(maxsize=32)
def critical_points_for(settings: FunctionSettings) -> tuple[Any, ...]:
    """Critical points of a test surface inside the settings' region."""
    try:
        from lossmap.analysis import critical_points
    except ImportError:
        return ()
    return tuple(critical_points(landscape_for(settings), settings.region))


def default_point(region: Any) -> tuple[float, float]:
    """A start that is not at the minimum: a fifth in from the top-left."""
    (lo0, hi0), (lo1, hi1) = region
    return (
        float(np.round(lo0 + 0.2 * (hi0 - lo0), 3)),
        float(np.round(lo1 + 0.8 * (hi1 - lo1), 3)),
    )


#: Classic starts where the literature has one (Rosenbrock's (-1.2, 1)).
_CLASSIC_STARTS = {"rosenbrock": (-1.2, 1.0), "beale": (1.0, 1.5)}
#: Fractions of the region tried for a start, in order.
_CANDIDATE_STARTS = ((0.2, 0.8), (0.8, 0.8), (0.2, 0.2), (0.8, 0.2), (0.5, 0.85))


def default_start(settings: Settings) -> tuple[float, float]:
    """The start the page opens with: away from every known minimum.

    Classic starts where there is one; otherwise the first of a few points
    near the region's corners that lies at least 15 % of the region's size
    from every known (global or local) minimum.
    """
    region = settings.region
    if isinstance(settings, ProblemSettings):
        return default_point(region)
    if settings.function in _CLASSIC_STARTS:
        return _CLASSIC_STARTS[settings.function]
    land = landscape_for(settings)
    known = [*getattr(land, "minima", ()), *getattr(land, "local_minima", ())]
    mins = np.asarray(known, dtype=float).reshape(-1, 2)
    (lo0, hi0), (lo1, hi1) = region
    span = np.array([hi0 - lo0, hi1 - lo1])
    for u, v in _CANDIDATE_STARTS:
        p = np.array([lo0 + u * span[0], lo1 + v * span[1]])
        if mins.size == 0 or np.min(np.linalg.norm((mins - p) / span, axis=1)) >= 0.15:
            return float(np.round(p[0], 3)), float(np.round(p[1], 3))
    return default_point(region)


#: Learning rates of the plain-gradient methods (GD, SGD, momentum,
#: Nesterov) per test surface: large enough to move, small enough not to
#: diverge from :func:`default_start` (tests check both).
_SURFACE_LR = {
    "quadratic": 0.1,
    "rosenbrock": 0.001,
    "himmelblau": 0.01,
    "beale": 0.003,
    "booth": 0.05,
    "saddle": 0.05,
    "monkey-saddle": 0.05,
    "rastrigin": 0.01,
    "ackley": 0.05,
    "six-hump-camel": 0.05,
}
#: Methods whose step size is about ``lr`` whatever the gradient's size.
ADAPTIVE = ("adagrad", "rmsprop", "adam", "adamw")
#: Settings shown next to each optimizer besides its learning rate.
_HYPER_LABELS = {
    "beta": "β",
    "b1": "β₁",
    "b2": "β₂",
    "alpha": "α",
    "weight_decay": "weight decay",
}


def optimizer_hyper(name: str) -> dict[str, float]:
    """The settings of optimizer ``name`` the page shows: ``lr`` and its
    decay rates (β, β₁, β₂, α…), with the library's defaults."""
    from lossmap import optim

    hyper = dict(optim.get(name).hyper)
    out = {"lr": float(hyper.pop("lr"))}
    for k, v in hyper.items():
        if isinstance(v, float) and 0.0 < v < 1.0 and k != "eps":
            out[k] = v
    return out


def hyper_label(key: str) -> str:
    """How a setting reads on the page (``b2`` → ``β₂``)."""
    return "learning rate" if key == "lr" else _HYPER_LABELS.get(key, key)


def default_hyper(settings: Settings) -> dict[str, dict[str, float]]:
    """Every optimizer's settings for ``settings``' landscape.

    Plain-gradient methods get a learning rate that suits the surface
    (:data:`_SURFACE_LR`, 0.1 for model + data); adaptive methods, whose
    step is about ``lr`` in each coordinate, 1 % of the region's width.
    """
    if isinstance(settings, ProblemSettings):
        plain, adaptive = 0.1, 0.05
    else:
        (lo0, hi0), (lo1, hi1) = settings.region
        plain = _SURFACE_LR.get(settings.function, 0.01)
        adaptive = float(f"{0.01 * max(hi0 - lo0, hi1 - lo1):.2g}")
    out = {}
    for name in optimizer_names():
        h = optimizer_hyper(name)
        h["lr"] = adaptive if name in ADAPTIVE else plain
        out[name] = h
    return out


#: Characters of a landscape title's line: a phone's panel holds about 55
#: at the title's 15 px, a laptop's about 70.
TITLE_LINE = 50


def _title(settings: Settings) -> str:
    """The landscape's title, broken into lines of at most
    :data:`TITLE_LINE` characters (``<br>``) between its parts: Plotly never
    wraps a title, and a long one (Huber, L2, edited data) ran off the
    panel, on a laptop too."""
    land = landscape_for(settings)
    if isinstance(settings, FunctionSettings):
        return getattr(land, "title", "") or settings.function
    extra = f", δ = {settings.delta:g}" if settings.loss == "huber" else ""
    parts = [f"{land.loss_fn.label}{extra}", f"of {land.model.formula}"]
    if settings.l2:
        parts.append(f"+ {settings.l2:g}·(w² + b²)")
    parts.append(f"on {land.data.name}")
    lines = [parts[0]]
    for part in parts[1:]:
        if len(lines[-1]) + 1 + len(part) <= TITLE_LINE:
            lines[-1] += " " + part
        else:
            lines.append(part)
    return "<br>".join(lines)


def _room_for_title(fig: Any, title: str) -> Any:
    """A top margin that holds every line of ``title``."""
    lines = title.count("<br>") + 1
    if lines > 1:
        # Plotly places a title by its first line and runs the others down
        # (centred in the top margin, they ran over the plot): anchor it
        # above the plot, lifted by the lines below the first
        top = fig.layout.margin.t or 45
        fig.update_layout(
            margin={"t": max(top, 26 + 20 * lines)},
            title={
                "yref": "paper",
                "y": 1,
                "yanchor": "bottom",
                "pad": {"b": 14 + 20 * (lines - 1)},
            },
        )
    return fig


def landscape_view(
    settings: Settings,
    *,
    current: tuple[float, float],
    runs: list[RunRecord] = (),  # type: ignore[assignment]
    start: tuple[float, float] | None = None,
    view: str = "2d",
) -> Any:
    """The landscape figure (2-D heatmap or 3-D surface) with every marker."""
    surface = surface_for(settings)
    theta, _ = minimum_for(settings)
    start = start if start is not None else default_start(settings)
    title = _title(settings)
    if view in ("3d", "3d-linear"):
        land = landscape_for(settings)
        fig3 = _plotly.surface3d_figure(
            surface,
            log=None if view == "3d" else False,
            minimum=theta,
            start=start,
            current=current,
            paths=runs,
            values_at=land.loss_at,
            title=title,
        )
        return _room_for_title(fig3, title)
    cps = (
        critical_points_for(settings) if isinstance(settings, FunctionSettings) else ()
    )
    fig = _plotly.landscape_figure(
        surface,
        minimum=theta if not cps else None,
        start=start,
        current=current,
        critical_points=cps,
        paths=runs,
        title=title,
    )
    return _room_for_title(fig, title)


def readout(settings: Settings, point: tuple[float, float]) -> str:
    """``w = …, b = …, loss = …`` (``x``, ``y`` and ``f`` for test surfaces)."""
    land = landscape_for(settings)
    value = float(land.loss(point[0], point[1]))
    n0, n1 = land.param_names
    name = "loss" if isinstance(settings, ProblemSettings) else "f"
    return f"{n0} = {point[0]:.4f}   {n1} = {point[1]:.4f}   {name} = {value:.6g}"


def fit_view(settings: ProblemSettings, point: tuple[float, float]) -> Any:
    """The fit panel at ``point``: data, prediction curve, residual lines
    (clicks on it edit the data, so it does not zoom)."""
    fig = _plotly.fit_figure(landscape_for(settings), point[0], point[1])
    fig.update_layout(dragmode=False)
    return fig


def edit_data(
    settings: ProblemSettings,
    action: str,
    *,
    at: tuple[float, float] | None = None,
    source: tuple[float, float] | None = None,
    sd: float = 0.1,
    seed: int = 0,
) -> dict[str, list[float]]:
    """The data after one edit, as the page stores it (``{"x", "y"}``).

    ``"add"`` puts a point at ``at`` (its y rounded to 0 or 1 for binary
    data); ``"delete"`` removes the point nearest ``at`` (in units of the
    axes' spans; the last point is kept); ``"move"`` moves the point nearest
    ``source`` to ``at`` (a drag); ``"outlier"`` adds a point at the
    median x, 3 standard deviations (at least 1) above the largest y — for
    binary data, a point with the opposite label at the far end; ``"noise"``
    adds Gaussian noise of standard deviation ``sd`` to y (seeded).
    """
    land = landscape_for(settings)
    x = np.asarray(land.data.x, dtype=float).copy()
    y = np.asarray(land.data.y, dtype=float).copy()
    binary = land.data.task == "binary"
    if action == "add":
        if at is None:
            raise InputError("a point to add needs a position")
        ya = float(at[1] > 0.5) if binary else at[1]
        x, y = np.append(x, at[0]), np.append(y, ya)
    elif action == "delete":
        if at is None:
            raise InputError("a point to delete needs a position")
        if x.size > 1:
            sx = max(float(np.ptp(x)), 1e-12)
            sy = max(float(np.ptp(y)), 1e-12)
            k = int(np.argmin(((x - at[0]) / sx) ** 2 + ((y - at[1]) / sy) ** 2))
            x, y = np.delete(x, k), np.delete(y, k)
    elif action == "move":
        if at is None or source is None:
            raise InputError("moving a point needs where from and where to")
        k = int(np.argmin((x - source[0]) ** 2 + (y - source[1]) ** 2))
        x[k] = at[0]
        y[k] = float(at[1] > 0.5) if binary else at[1]
    elif action == "outlier":
        if binary:
            k = int(np.argmax(x))
            x, y = (
                np.append(x, x[k] + 0.1 * max(float(np.ptp(x)), 1.0)),
                np.append(y, 1.0 - y[k]),
            )
        else:
            spread = max(3.0 * float(np.std(y)), 1.0)
            x, y = np.append(x, float(np.median(x))), np.append(y, y.max() + spread)
    elif action == "noise":
        if binary:
            raise InputError("noise is for regression data (labels are 0 or 1)")
        rng = np.random.default_rng(seed)
        y = y + rng.normal(0.0, sd, size=y.shape)
    else:
        raise InputError(f"unknown data edit {action[:20]!r}")
    if x.size > 200:
        raise InputError("the data may have at most 200 points")
    return {"x": x.tolist(), "y": y.tolist()}


def critical_points_view(settings: FunctionSettings, *, limit: int = 12) -> list[str]:
    """A count by kind, then one line per critical point (the lowest first)."""
    cps = critical_points_for(settings)
    if not cps:
        return ["no critical points found in this range"]
    counts: dict[str, int] = {}
    for cp in cps:
        counts[cp.kind] = counts.get(cp.kind, 0) + 1
    plural = {"minimum": "minima", "maximum": "maxima"}
    parts = [
        f"{n} {plural.get(k, k + 's') if n != 1 else k}" for k, n in counts.items()
    ]
    lines = [f"{len(cps)} in this range: " + ", ".join(parts)]
    for cp in cps[:limit]:
        tag = " (global)" if getattr(cp, "is_global", False) else ""
        lines.append(
            f"{cp.kind}{tag} at ({float(cp.theta[0]):.4f}, {float(cp.theta[1]):.4f}), "
            f"value {float(cp.value):.4g}"
        )
    if len(cps) > limit:
        lines.append(f"… and {len(cps) - limit} more")
    return lines


# ------------------------------------------------------------- optimizers
def optimizer_names() -> tuple[str, ...]:
    """Optimizers the page offers."""
    from lossmap import optim

    return tuple(optim.available())


def schedule_names() -> tuple[str, ...]:
    """Learning-rate schedules the page offers ("constant" first)."""
    from lossmap import optim

    names = tuple(optim.schedule_names())
    return ("constant", *[n for n in names if n != "constant"])


def _schedule(rs: RunSettings, lr: float) -> Any:
    """The schedule for base rate ``lr``, with settings from the run length."""
    from lossmap import optim

    n = rs.steps
    kw: dict[str, dict[str, Any]] = {
        "constant": {},
        "step_decay": {"every": max(1, n // 4), "factor": 0.5},
        "exponential": {"decay": 0.5 ** (1.0 / max(1, n // 4))},
        "cosine": {"steps": n},
        "warmup_cosine": {"warmup": max(1, n // 10), "steps": n},
    }
    return optim.schedule(rs.schedule, lr, **kw.get(rs.schedule, {}))


def run_optimizers(
    settings: Settings, rs: RunSettings, start: tuple[float, float]
) -> list[RunRecord]:
    """Run each chosen optimizer from ``start`` on the settings' landscape.

    Each optimizer has its own settings (``rs.hyper``; a schedule scales each
    one's learning rate). SGD draws mini-batches of ``rs.batch_size`` points
    (a quarter of the data by default), seeded so a rerun repeats itself.
    """
    from lossmap import optim

    land = landscape_for(settings)
    out = []
    for name in rs.optimizers:
        hyper = dict(rs.hyper.get(name, {}))
        lr = float(hyper.get("lr", optimizer_hyper(name)["lr"]))
        sched = _schedule(rs, lr) if rs.schedule != "constant" else None
        batch = None
        if name == "sgd" and isinstance(settings, ProblemSettings):
            batch = min(rs.batch_size or max(1, len(land.data) // 4), len(land.data))
        try:
            traj = optim.run(
                land,
                optim.get(name, **hyper),
                np.asarray(start, dtype=float),
                steps=rs.steps,
                schedule=sched,
                seed=rs.seed,
                batch_size=batch,
            )
        except (ValueError, TypeError) as exc:
            raise InputError(f"{name}: {exc}") from None
        out.append(
            RunRecord(
                str(traj.label or name),
                np.asarray(traj.params, dtype=float),
                np.asarray(traj.loss, dtype=float),
                str(traj.status),
                int(traj.stopped_at),
            )
        )
    return out


#: Gradient norm below which ``optim.run`` stops (its default ``tol``).
TOL = 1e-8


def status_lines(runs: list[RunRecord], best: float | None = None) -> list[str]:
    """One sentence per run, in plain words.

    "reached the minimum (gradient below 1e-08) at step N"; "stuck from the
    start: the gradient is already below …" (a flat start, e.g. a saturated
    tanh); "stopped on a flat point … not the minimum" when the loss there is
    above ``best`` (the known minimum value); "diverged at step N"; "step
    limit reached: loss …".
    """
    lines = []
    for r in runs:
        finite = r.loss[np.isfinite(r.loss)]
        last = float(finite[-1]) if finite.size else math.nan
        if r.status == "diverged":
            lines.append(
                f"{r.label}: diverged at step {r.stopped_at} "
                "(try a smaller learning rate)"
            )
        elif r.status == "converged" and r.stopped_at == 0:
            lines.append(
                f"{r.label}: stuck from the start: the gradient is already below "
                f"{TOL:g} (a flat region, e.g. a saturated neuron), loss {last:.4g}"
            )
        elif r.status == "converged":
            above = best is not None and last - best > 1e-6 * (1.0 + abs(best))
            if above:
                lines.append(
                    f"{r.label}: stopped at a local minimum or flat point "
                    f"(gradient below {TOL:g}) at step {r.stopped_at}, loss "
                    f"{last:.4g}, above the lowest known {best:.4g}"
                )
            else:
                lines.append(
                    f"{r.label}: reached the minimum (gradient below {TOL:g}) at "
                    f"step {r.stopped_at}, loss {last:.4g}"
                )
        else:
            lines.append(
                f"{r.label}: step limit reached: loss {last:.4g} after "
                f"{r.stopped_at} steps"
            )
    return lines


def best_value(settings: Settings) -> float | None:
    """The lowest loss known for ``settings`` (None when there is none)."""
    theta, _ = minimum_for(settings)
    if theta is None:
        return None
    return float(landscape_for(settings).loss(theta[0], theta[1]))


#: Most labelled ticks on the loss-per-step axis (its plot is ~120 px tall).
MAX_LOSS_TICKS = 7


def loss_view(runs: list[RunRecord]) -> Any:
    """Loss versus step for every run; on a log axis spanning many decades
    (a run that reaches 1e-18) every k-th tick only, so at most
    :data:`MAX_LOSS_TICKS` labels share the panel's short axis."""
    fig = _plotly.loss_curves_figure(runs)
    axis = fig.layout.yaxis
    vals, text = axis.tickvals, axis.ticktext
    if vals is not None and text is not None and len(vals) > MAX_LOSS_TICKS:
        k = -(-len(vals) // MAX_LOSS_TICKS)
        fig.update_yaxes(tickvals=list(vals)[::k], ticktext=list(text)[::k])
    return fig


def problem_spec(settings: Settings) -> dict[str, Any]:
    """What the page needs to draw the fit and the readout itself.

    The model and loss names, δ, the penalties, the data and the x values of
    the prediction curve (as in :func:`lossmap.plot._plotly.fit_figure`), and
    the path colours; for a test surface only ``kind`` and the colours.
    """
    from lossmap.plot._plotly_style import PATH_COLORS

    if isinstance(settings, FunctionSettings):
        return {"kind": "function", "colors": list(PATH_COLORS)}
    land = landscape_for(settings)
    x = np.asarray(land.data.x, dtype=float)
    lo, hi = float(x.min()), float(x.max())
    pad = 0.15 * (hi - lo if hi > lo else 1.0)
    return {
        "kind": "problem",
        "model": settings.model,
        "loss": settings.loss,
        "delta": float(settings.delta),
        "l2": float(settings.l2),
        "l1": 0.0,
        "x": x.tolist(),
        "y": np.asarray(land.data.y, dtype=float).tolist(),
        "curve_x": np.linspace(lo - pad, hi + pad, 241).tolist(),
        "colors": list(PATH_COLORS),
    }


def finite_or_none(v: float) -> float | None:
    return v if math.isfinite(v) else None
