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
    "fit_view",
    "function_names",
    "landscape_for",
    "landscape_view",
    "loss_view",
    "minimum_for",
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


def _jsonable(a: np.ndarray) -> list[Any]:
    arr = np.asarray(a, dtype=np.float64)
    out = np.where(np.isfinite(arr), arr, np.nan).tolist()

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
    try:
        return toy.problem(
            settings.model,
            settings.preset,
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


def _title(settings: Settings) -> str:
    land = landscape_for(settings)
    if isinstance(settings, FunctionSettings):
        return getattr(land, "title", "") or settings.function
    extra = f", δ = {settings.delta:g}" if settings.loss == "huber" else ""
    l2 = f" + {settings.l2:g}·(w² + b²)" if settings.l2 else ""
    return (
        f"{land.loss_fn.label}{extra} of {land.model.formula}{l2} on {land.data.name}"
    )


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
    start = start if start is not None else default_point(settings.region)
    if view == "3d":
        land = landscape_for(settings)
        return _plotly.surface3d_figure(
            surface,
            minimum=theta,
            start=start,
            current=current,
            paths=runs,
            values_at=land.loss_at,
            title=_title(settings),
        )
    cps = (
        critical_points_for(settings) if isinstance(settings, FunctionSettings) else ()
    )
    return _plotly.landscape_figure(
        surface,
        minimum=theta if not cps else None,
        start=start,
        current=current,
        critical_points=cps,
        paths=runs,
        title=_title(settings),
    )


def readout(settings: Settings, point: tuple[float, float]) -> str:
    """``w = …, b = …, loss = …`` (``x``, ``y`` and ``f`` for test surfaces)."""
    land = landscape_for(settings)
    value = float(land.loss(point[0], point[1]))
    n0, n1 = land.param_names
    name = "loss" if isinstance(settings, ProblemSettings) else "f"
    return f"{n0} = {point[0]:.4f}   {n1} = {point[1]:.4f}   {name} = {value:.6g}"


def fit_view(settings: ProblemSettings, point: tuple[float, float]) -> Any:
    """The fit panel at ``point``: data, prediction curve, residual lines."""
    return _plotly.fit_figure(landscape_for(settings), point[0], point[1])


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


def _schedule(rs: RunSettings) -> Any:
    """The schedule with settings derived from the run length."""
    from lossmap import optim

    n = rs.steps
    kw: dict[str, dict[str, Any]] = {
        "constant": {},
        "step_decay": {"every": max(1, n // 4), "factor": 0.5},
        "exponential": {"decay": 0.5 ** (1.0 / max(1, n // 4))},
        "cosine": {"steps": n},
        "warmup_cosine": {"warmup": max(1, n // 10), "steps": n},
    }
    return optim.schedule(rs.schedule, rs.lr, **kw.get(rs.schedule, {}))


def run_optimizers(
    settings: Settings, rs: RunSettings, start: tuple[float, float]
) -> list[RunRecord]:
    """Run each chosen optimizer from ``start`` on the settings' landscape.

    One learning rate (and schedule) for all; ``momentum`` is the β of the
    momentum and Nesterov methods. SGD draws mini-batches of a quarter of the
    data (seeded, so a rerun repeats itself).
    """
    from lossmap import optim

    land = landscape_for(settings)
    sched = _schedule(rs) if rs.schedule != "constant" else None
    out = []
    for name in rs.optimizers:
        hyper: dict[str, Any] = {"lr": rs.lr}
        if name in ("momentum", "nesterov"):
            hyper["beta"] = rs.momentum
        batch = None
        if name == "sgd" and isinstance(settings, ProblemSettings):
            batch = rs.batch_size or max(1, len(land.data) // 4)
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


def status_lines(runs: list[RunRecord]) -> list[str]:
    """One sentence per run: converged, diverged at step N, or still going."""
    lines = []
    for r in runs:
        finite = r.loss[np.isfinite(r.loss)]
        last = f", loss {finite[-1]:.4g}" if finite.size else ""
        if r.status == "diverged":
            lines.append(f"{r.label}: diverged at step {r.stopped_at}")
        elif r.status == "converged":
            lines.append(f"{r.label}: converged at step {r.stopped_at}{last}")
        else:
            lines.append(
                f"{r.label}: stopped after {r.stopped_at} steps, not converged{last}"
            )
    return lines


def loss_view(runs: list[RunRecord]) -> Any:
    """Loss versus step for every run."""
    return _plotly.loss_curves_figure(runs)


def finite_or_none(v: float) -> float | None:
    return v if math.isfinite(v) else None
