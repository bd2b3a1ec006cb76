"""Learning-rate schedules: functions of the step count.

A schedule maps the step ``t = 0, 1, 2, ...`` (an int or an integer array) to
the learning rate used for the update from step ``t`` to ``t + 1``. Every
schedule here is a frozen :class:`Schedule`, so it prints, compares and
describes itself; any plain callable ``t -> lr`` works wherever a schedule is
accepted.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lossmap._validation import check_choice, check_float, check_int

__all__ = [
    "Schedule",
    "check_rates",
    "constant",
    "cosine",
    "exponential",
    "schedule",
    "schedule_names",
    "step_decay",
    "warmup_cosine",
]


@dataclass(frozen=True)
class Schedule:
    """A named learning-rate schedule ``t -> lr``.

    Attributes
    ----------
    kind : str
        One of :func:`schedule_names`.
    lr : float
        The base (peak) learning rate.
    params : dict
        The schedule's other settings, e.g. ``{"every": 100, "factor": 0.5}``.
    """

    kind: str
    lr: float
    params: dict[str, Any] = field(default_factory=dict)

    def __call__(self, step: Any) -> Any:
        """The learning rate at ``step`` (int, or integer array of any shape)."""
        t = np.asarray(step, dtype=np.float64)
        out = _FORMULAS[self.kind](t, self.lr, **self.params)
        return float(out) if np.ndim(out) == 0 else out

    @property
    def label(self) -> str:
        """Short text for legends, e.g. ``"cosine(0.1, steps=500)"``."""
        extra = "".join(f", {k}={v:g}" for k, v in self.params.items())
        return f"{self.kind}({self.lr:g}{extra})"

    def describe(self) -> dict[str, Any]:
        """JSON-friendly description."""
        return {"kind": self.kind, "lr": self.lr, **self.params}


def _constant(t: np.ndarray, lr: float) -> np.ndarray:
    return np.full_like(t, lr)


def _step_decay(t: np.ndarray, lr: float, every: int, factor: float) -> np.ndarray:
    return lr * factor ** np.floor(t / every)


def _exponential(t: np.ndarray, lr: float, decay: float) -> np.ndarray:
    return lr * decay**t


def _cosine(t: np.ndarray, lr: float, steps: int, final: float) -> np.ndarray:
    frac = np.clip(t / steps, 0.0, 1.0)
    return final + (lr - final) * 0.5 * (1.0 + np.cos(math.pi * frac))


def _warmup_cosine(
    t: np.ndarray, lr: float, warmup: int, steps: int, final: float
) -> np.ndarray:
    ramp = lr * (t + 1.0) / warmup
    decay = _cosine(t - warmup, lr, steps - warmup, final)
    return np.where(t < warmup, ramp, decay)


_FORMULAS: dict[str, Callable[..., np.ndarray]] = {
    "constant": _constant,
    "step_decay": _step_decay,
    "exponential": _exponential,
    "cosine": _cosine,
    "warmup_cosine": _warmup_cosine,
}


def schedule_names() -> tuple[str, ...]:
    """Names accepted by :func:`schedule`."""
    return tuple(_FORMULAS)


def _lr(lr: Any) -> float:
    return check_float("lr", lr, minimum=0.0, strict_min=True)


def constant(lr: float) -> Schedule:
    """``lr`` at every step."""
    return Schedule("constant", _lr(lr))


def step_decay(lr: float, *, every: int, factor: float) -> Schedule:
    """``lr · factor^floor(t / every)``: multiply by ``factor`` every ``every`` steps.

    Parameters
    ----------
    lr : float
        Rate for steps ``0 .. every-1``.
    every : int
        Steps between drops (>= 1).
    factor : float
        Multiplier per drop, in (0, 1].
    """
    every = check_int("every", every, minimum=1)
    factor = check_float("factor", factor, minimum=0.0, maximum=1.0, strict_min=True)
    return Schedule("step_decay", _lr(lr), {"every": every, "factor": factor})


def exponential(lr: float, *, decay: float) -> Schedule:
    """``lr · decay^t``, with ``decay`` in (0, 1]."""
    decay = check_float("decay", decay, minimum=0.0, maximum=1.0, strict_min=True)
    return Schedule("exponential", _lr(lr), {"decay": decay})


def cosine(lr: float, *, steps: int, final: float = 0.0) -> Schedule:
    """Half a cosine from ``lr`` at ``t = 0`` down to ``final`` at ``t = steps``.

    ``lr_t = final + (lr - final)·(1 + cos(π·min(t, steps)/steps))/2``
    (Loshchilov & Hutter, "SGDR", ICLR 2017, without restarts).
    """
    steps = check_int("steps", steps, minimum=1)
    final = check_float("final", final, minimum=0.0)
    return Schedule("cosine", _lr(lr), {"steps": steps, "final": final})


def warmup_cosine(
    lr: float, *, warmup: int, steps: int, final: float = 0.0
) -> Schedule:
    """Linear warm-up to ``lr`` over ``warmup`` steps, then cosine to ``final``.

    ``lr_t = lr·(t + 1)/warmup`` for ``t < warmup`` (so the first step is not
    zero), then :func:`cosine` over the remaining ``steps - warmup`` steps;
    ``steps`` counts the warm-up too.
    """
    warmup = check_int("warmup", warmup, minimum=1)
    steps = check_int("steps", steps, minimum=warmup + 1)
    final = check_float("final", final, minimum=0.0)
    return Schedule(
        "warmup_cosine", _lr(lr), {"warmup": warmup, "steps": steps, "final": final}
    )


_FACTORIES: dict[str, Callable[..., Schedule]] = {
    "constant": constant,
    "step_decay": step_decay,
    "exponential": exponential,
    "cosine": cosine,
    "warmup_cosine": warmup_cosine,
}


def schedule(name: str, lr: float, **kwargs: Any) -> Schedule:
    """A schedule by name, e.g. ``schedule("cosine", 0.1, steps=500)``.

    Names: ``constant``, ``step_decay``, ``exponential``, ``cosine``,
    ``warmup_cosine`` (``-`` is accepted for ``_``).
    """
    if isinstance(name, str):
        name = name.replace("-", "_")
    check_choice("schedule", name, _FACTORIES)
    factory = _FACTORIES[name]
    params = list(inspect.signature(factory).parameters.values())[1:]
    accepted = [p.name for p in params]
    required = [p.name for p in params if p.default is inspect.Parameter.empty]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        takes = f"takes {accepted}" if accepted else "takes no settings besides lr"
        raise TypeError(
            f"schedule {name!r} {takes}, got {', '.join(unknown)}="
            f"{', '.join(repr(kwargs[k]) for k in unknown)}"
        )
    absent = [k for k in required if k not in kwargs]
    if absent:
        raise TypeError(
            f"schedule {name!r} needs the settings {required}, got no {absent}"
        )
    return factory(lr, **kwargs)


def check_rates(rate: Callable[[np.ndarray], Any], steps: int) -> np.ndarray:
    """The learning rates of steps ``0 .. steps-1``, checked before any update.

    ``rate`` is called once on the integer array ``np.arange(steps)``; it must
    return one finite, non-negative rate per step (a number is broadcast).

    Raises
    ------
    TypeError
        If ``rate`` fails on an array of steps (it is not vectorised).
    ValueError
        If any rate is negative (gradient ascent), NaN or infinite.
    """
    t = np.arange(steps)
    try:
        out = np.asarray(rate(t), dtype=np.float64)
    except Exception as exc:
        raise TypeError(
            f"`lr` must be a number or a schedule that takes an integer array of "
            f"steps and returns one rate per step (e.g. lambda t: np.where(t < 10, "
            f"1e-3, 5e-4)); called on np.arange({steps}) it raised "
            f"{type(exc).__name__}: {str(exc)[:120]}"
        ) from None
    if out.ndim == 0:
        out = np.full(steps, float(out))
    if out.shape != (steps,):
        raise TypeError(
            f"`lr` schedule must return one rate per step: called on "
            f"np.arange({steps}) it returned shape {out.shape}, expected ({steps},)"
        )
    bad = np.flatnonzero(~np.isfinite(out) | (out < 0))
    if bad.size:
        k = int(bad[0])
        raise ValueError(
            f"`lr` must be finite and >= 0 at every step, got {out[k]} at step {k}"
            + (f" ({bad.size} steps in all)" if bad.size > 1 else "")
        )
    return out
