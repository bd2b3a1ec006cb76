"""Server-side checks of every value that comes from the page.

The page is not trusted: a value can be missing (an emptied number box sends
``None``), of the wrong type, not finite, out of range or an unknown name. Each
check here either returns a clean Python value or raises :class:`InputError`
(a ValueError) whose message the app shows in the page.

The settings objects are frozen and hashable, so they key the caches of
:mod:`lossmap.explorer.callbacks`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_GRID_STEPS",
    "MAX_ABS_COORD",
    "MAX_GRID_STEPS",
    "MAX_OPT_STEPS",
    "MAX_RUNS",
    "FunctionSettings",
    "InputError",
    "ProblemSettings",
    "RunSettings",
    "check_name",
    "check_number",
    "check_point",
    "check_points",
    "check_region",
    "function_settings",
    "loss_names",
    "problem_settings",
    "run_settings",
    "shown",
    "store_path",
]

DEFAULT_GRID_STEPS = 201
MAX_GRID_STEPS = 401
MAX_OPT_STEPS = 2000
MAX_RUNS = 8
MAX_ABS_COORD = 1e4
MAX_LR = 1e3
MAX_L2 = 100.0
MAX_DELTA = 100.0

MODELS = ("line", "tanh", "logistic")
LOSSES = ("mse", "mae", "huber", "log_cosh", "bce")


def loss_names(task: str) -> tuple[str, ...]:
    """Losses the page offers for ``task`` ("regression" or "binary"),
    from the registry: elementwise losses of a predicted value or
    probability with at most a ``delta`` parameter."""
    from lossmap import losses

    out = []
    for name in losses.available():
        fn = losses.get(name)
        if set(fn.params) - {"delta"}:
            continue
        if task == "regression" and fn.task == "regression":
            out.append(name)
        elif task == "binary" and (
            (fn.task == "binary" and fn.prediction == "probability") or name == "mse"
        ):
            out.append(name)
    return tuple(out)


class InputError(ValueError):
    """A value from the page that the explorer refuses (shown in the page)."""


#: Characters of a refused value that a message repeats.
SHOWN_CHARS = 40


def shown(value: Any) -> str:
    """``repr(value)`` cut to :data:`SHOWN_CHARS` characters (a page can send
    megabytes; messages and logs repeat only the start)."""
    if isinstance(value, str | int | float | bool | None):
        text = repr(value)
    else:
        text = f"a {type(value).__name__}"
    if len(text) > SHOWN_CHARS:
        text = text[: SHOWN_CHARS - 1] + f"… ({len(text):,} characters)"
    return text


def check_number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict_min: bool = False,
    integer: bool = False,
) -> float:
    """A finite number within bounds (numeric strings are accepted)."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise InputError(f"`{name}` must be a number, got {shown(value)}") from None
    if value is None:
        raise InputError(f"`{name}` must be a number, got nothing")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"`{name}` must be a number, got {shown(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise InputError(f"`{name}` must be finite, got {value}")
    if integer and value != int(value):
        raise InputError(f"`{name}` must be a whole number, got {value}")
    if minimum is not None:
        if strict_min and value <= minimum:
            raise InputError(f"`{name}` must be > {minimum:g}, got {value:g}")
        if not strict_min and value < minimum:
            raise InputError(f"`{name}` must be >= {minimum:g}, got {value:g}")
    if maximum is not None and value > maximum:
        raise InputError(f"`{name}` must be <= {maximum:g}, got {value:g}")
    return value


def check_name(name: str, value: Any, choices: tuple[str, ...] | list[str]) -> str:
    """One of ``choices``; anything else is refused."""
    if not isinstance(value, str) or value not in choices:
        raise InputError(f"`{name}` must be one of {list(choices)}, got {shown(value)}")
    return value


def check_point(value: Any, name: str = "point") -> tuple[float, float]:
    """A pair of finite coordinates, each within ±:data:`MAX_ABS_COORD`."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise InputError(f"`{name}` must be a pair of numbers, got {shown(value)}")
    a, b = (
        check_number(f"{name}[{k}]", v, minimum=-MAX_ABS_COORD, maximum=MAX_ABS_COORD)
        for k, v in enumerate(value)
    )
    return a, b


def check_region(
    lo0: Any, hi0: Any, lo1: Any, hi1: Any, names: tuple[str, str] = ("w", "b")
) -> tuple[tuple[float, float], tuple[float, float]]:
    """A grid range ``((lo0, hi0), (lo1, hi1))`` with ``lo < hi`` on both axes."""
    out = []
    for name, lo, hi in ((names[0], lo0, hi0), (names[1], lo1, hi1)):
        lo = check_number(
            f"{name} min", lo, minimum=-MAX_ABS_COORD, maximum=MAX_ABS_COORD
        )
        hi = check_number(
            f"{name} max", hi, minimum=-MAX_ABS_COORD, maximum=MAX_ABS_COORD
        )
        if not lo < hi:
            raise InputError(
                f"the {name} range must have min < max, got ({lo:g}, {hi:g})"
            )
        out.append((lo, hi))
    return out[0], out[1]


def _steps(value: Any) -> int:
    return int(
        check_number(
            "grid size", value, minimum=11, maximum=MAX_GRID_STEPS, integer=True
        )
    )


@dataclass(frozen=True)
class ProblemSettings:
    """A teaching problem and the grid it is drawn on (hashable)."""

    model: str
    preset: str
    loss: str
    delta: float
    l2: float
    region: tuple[tuple[float, float], tuple[float, float]]
    steps: int = DEFAULT_GRID_STEPS
    #: The data points when the page edited the preset's data, else None.
    points: tuple[tuple[float, float], ...] | None = None

    @property
    def loss_params(self) -> dict[str, float]:
        return {"delta": self.delta} if self.loss == "huber" else {}

    def key(self) -> list[Any]:
        """A JSON-friendly identity, stored with optimizer runs."""
        out: list[Any] = [
            "problem",
            self.model,
            self.preset,
            self.loss,
            self.delta,
            self.l2,
        ]
        if self.points is not None:
            import hashlib

            out.append(hashlib.sha1(repr(self.points).encode()).hexdigest()[:16])
        return out


@dataclass(frozen=True)
class FunctionSettings:
    """A classic test surface and the grid it is drawn on (hashable)."""

    function: str
    region: tuple[tuple[float, float], tuple[float, float]]
    steps: int = DEFAULT_GRID_STEPS

    def key(self) -> list[Any]:
        return ["function", self.function]


def problem_settings(
    model: Any,
    preset: Any,
    loss: Any,
    delta: Any,
    l2: Any,
    region: tuple[Any, Any, Any, Any],
    steps: Any = DEFAULT_GRID_STEPS,
    *,
    presets: tuple[str, ...],
    points: Any = None,
) -> ProblemSettings:
    """Check the teaching controls; ``presets`` are the known data presets,
    ``points`` the edited data (see :func:`check_points`) or None."""
    from lossmap.toy.models import MODELS as REGISTERED

    model = check_name("model", model, tuple(REGISTERED))
    preset = check_name("data", preset, presets)
    known = tuple(dict.fromkeys(loss_names("regression") + loss_names("binary")))
    loss = check_name("loss", loss, known)
    delta = check_number("δ", delta, minimum=0.0, maximum=MAX_DELTA, strict_min=True)
    l2 = check_number("L2", l2, minimum=0.0, maximum=MAX_L2)
    return ProblemSettings(
        model,
        preset,
        loss,
        delta,
        l2,
        check_region(*region),
        _steps(steps),
        check_points(points),
    )


#: Most data points the page may send.
MAX_POINTS = 200


def check_points(value: Any) -> tuple[tuple[float, float], ...] | None:
    """Edited data from the page: ``{"x": [...], "y": [...]}`` (1 to
    :data:`MAX_POINTS` finite pairs within ±:data:`MAX_ABS_COORD`) or None."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InputError(f"the edited data must be a mapping, got {shown(value)}")
    xs, ys = value.get("x"), value.get("y")
    if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys):
        raise InputError("the edited data must have lists x and y of one length")
    if not 1 <= len(xs) <= MAX_POINTS:
        raise InputError(f"the data must have 1 to {MAX_POINTS} points, got {len(xs)}")
    lim = {"minimum": -MAX_ABS_COORD, "maximum": MAX_ABS_COORD}
    return tuple(
        (check_number(f"x[{i}]", x, **lim), check_number(f"y[{i}]", y, **lim))
        for i, (x, y) in enumerate(zip(xs, ys))
    )


def function_settings(
    function: Any,
    region: tuple[Any, Any, Any, Any],
    steps: Any = DEFAULT_GRID_STEPS,
    *,
    functions: tuple[str, ...],
) -> FunctionSettings:
    """Check the test-surface controls; ``functions`` are the known names."""
    name = check_name("surface", function, functions)
    return FunctionSettings(name, check_region(*region, ("x", "y")), _steps(steps))


@dataclass(frozen=True)
class RunSettings:
    """Which optimizers to run and how; ``hyper[name]`` holds each one's
    settings (``lr``, ``beta``, ``b1``…) as a dict."""

    optimizers: tuple[str, ...]
    hyper: dict[str, dict[str, float]]
    steps: int
    schedule: str
    batch_size: int | None = None
    seed: int = 0


#: Decay rates (β, β₁, β₂, α…) must lie in [0, this].
MAX_BETA = 0.9999
_RATE_KEYS = ("beta", "b1", "b2", "alpha")


def _hyper(name: str, values: Any, allowed: Any) -> dict[str, float]:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise InputError(f"`{name}` settings must be a mapping, got {shown(values)}")
    out = {}
    for key, value in values.items():
        key = check_name(f"{name} setting", key, tuple(allowed))
        label = f"{name} {key}" if key != "lr" else f"{name} learning rate"
        if key == "lr":
            out[key] = check_number(
                label, value, minimum=0.0, maximum=MAX_LR, strict_min=True
            )
        elif key in _RATE_KEYS:
            out[key] = check_number(label, value, minimum=0.0, maximum=MAX_BETA)
        else:
            out[key] = check_number(label, value, minimum=0.0, maximum=MAX_LR)
    return out


def run_settings(
    optimizers: Any,
    hyper: Any,
    steps: Any,
    schedule: Any,
    *,
    available: dict[str, Any] | tuple[str, ...],
    schedules: tuple[str, ...],
    batch_size: Any = None,
) -> RunSettings:
    """Check the optimizer controls.

    ``hyper`` maps an optimizer name to its settings; ``available`` maps each
    known optimizer to the setting names it takes (or is a tuple of names,
    then only ``lr`` is accepted).
    """
    if isinstance(optimizers, str):
        optimizers = [optimizers]
    if not isinstance(optimizers, list | tuple) or not optimizers:
        raise InputError("choose at least one optimizer")
    if len(optimizers) > MAX_RUNS:
        raise InputError(
            f"at most {MAX_RUNS} optimizers run at once, got {len(optimizers)}"
        )
    names = tuple(check_name("optimizer", o, tuple(available)) for o in optimizers)
    names = tuple(dict.fromkeys(names))
    hyper = hyper or {}
    if not isinstance(hyper, dict):
        raise InputError(f"optimizer settings must be a mapping, got {shown(hyper)}")
    keys = available if isinstance(available, dict) else {n: ("lr",) for n in names}
    checked = {n: _hyper(n, hyper.get(n), keys.get(n, ("lr",))) for n in names}
    steps_i = int(
        check_number("steps", steps, minimum=1, maximum=MAX_OPT_STEPS, integer=True)
    )
    schedule = check_name("schedule", schedule, schedules)
    bs = None
    if batch_size not in (None, ""):
        bs = int(
            check_number(
                "batch size", batch_size, minimum=1, maximum=10_000, integer=True
            )
        )
    return RunSettings(names, checked, steps_i, schedule, bs)


def store_path(root: Path | None, value: Any) -> Path:
    """Resolve a store path from the page; refuse anything outside ``root``."""
    if root is None:
        raise InputError("no store folder was given: start with `lossmap explore PATH`")
    if not isinstance(value, str) or not value or "\x00" in value:
        raise InputError(
            f"`store` must be a path inside the store folder, got {shown(value)}"
        )
    root = Path(root).resolve()
    path = (root / value).resolve()
    if path != root and not path.is_relative_to(root):
        raise InputError(f"`store` {shown(value)} is outside the store folder; refused")
    if not path.exists():
        raise InputError(f"`store` {shown(value)} does not exist")
    return path
