"""Optimizers as pure ``(init, update)`` pairs.

An :class:`Optimizer` holds two pure functions:

- ``init(params) -> state``: the initial state (a NamedTuple) for parameters of
  any shape, e.g. ``(2,)`` for one point or ``(n_starts, 2)`` for many;
- ``update(grads, state, params) -> (updates, state)``: the change to add to
  the parameters (``params + updates``) and the next state.

Nothing is mutated, so one optimizer runs any number of starts at once: every
operation is elementwise over the parameter array. The learning rate may be a
float or a schedule (a function of the step count, see
:mod:`lossmap.optim._schedules`).

The update rules follow ``torch.optim`` exactly (same order of operations, same
defaults), which the tests check step by step:

- SGD with momentum ``μ`` and no dampening: ``v ← μ·v + g``; ``θ ← θ − η·v``
  (Nesterov: ``θ ← θ − η·(g + μ·v)``); Polyak (1964), Sutskever et al. (2013).
- Adagrad: ``s ← s + g²``; ``θ ← θ − η·g/(√s + ε)``; Duchi, Hazan & Singer (2011).
- RMSprop: ``a ← α·a + (1−α)·g²``; ``θ ← θ − η·g/(√a + ε)``; Hinton, Lecture 6e
  of "Neural Networks for Machine Learning" (2012).
- Adam: bias-corrected first and second moments; Kingma & Ba, ICLR 2015.
- AdamW: Adam with decoupled weight decay ``θ ← θ·(1 − η·λ)``; Loshchilov &
  Hutter, ICLR 2019.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

from lossmap._validation import check_choice, check_float

__all__ = [
    "DEFAULT_LR",
    "AdagradState",
    "AdamState",
    "GDState",
    "Optimizer",
    "RMSpropState",
    "SGDState",
    "adagrad",
    "adam",
    "adamw",
    "apply_updates",
    "available",
    "gd",
    "get",
    "momentum",
    "nesterov",
    "rmsprop",
    "sgd",
]

LearningRate = float | Callable[[Any], Any]


class Optimizer(NamedTuple):
    """A pair of pure functions ``init`` and ``update`` (see module docstring).

    Attributes
    ----------
    init : callable ``params -> state``
    update : callable ``(grads, state, params) -> (updates, state)``
    name : str
        Registry name (``"adam"``, ...), or ``"custom"``.
    hyper : mapping
        The settings it was built with, ``lr`` included; read-only.
    """

    init: Callable[[np.ndarray], Any]
    update: Callable[[np.ndarray, Any, np.ndarray], tuple[np.ndarray, Any]]
    name: str = "custom"
    hyper: Mapping[str, Any] = MappingProxyType({})

    @property
    def lr(self) -> LearningRate | None:
        """The learning rate (float or schedule), if it has one."""
        return self.hyper.get("lr")

    def learning_rate(self, step: Any) -> Any:
        """The learning rate used at ``step`` (NaN if it has none)."""
        lr = self.lr
        if lr is None:
            return np.full(np.shape(step), np.nan) if np.ndim(step) else np.nan
        if callable(lr):
            return lr(step)
        return np.full(np.shape(step), lr) if np.ndim(step) else lr

    @property
    def label(self) -> str:
        """Legend text, e.g. ``"adam (lr=0.001)"``."""
        lr = self.lr
        if lr is None:
            return self.name
        text = (
            lr.label
            if hasattr(lr, "label")
            else (
                f"{lr:g}" if not callable(lr) else getattr(lr, "__name__", "schedule")
            )
        )
        return f"{self.name} (lr={text})"

    def with_lr(self, lr: LearningRate) -> Optimizer:
        """The same optimizer with another learning rate or schedule."""
        if self.name not in _FACTORIES:
            raise ValueError(
                f"`optimizer` {self.name!r} is not a built-in optimizer, so its "
                f"learning rate cannot be replaced; build it with the rate you want"
            )
        return _FACTORIES[self.name](**{**self.hyper, "lr": lr})

    def describe(self) -> dict[str, Any]:
        """JSON-friendly description."""
        out: dict[str, Any] = {"name": self.name}
        for key, value in self.hyper.items():
            if hasattr(value, "describe"):
                value = value.describe()
            elif callable(value):
                value = getattr(value, "__name__", "schedule")
            out[key] = value
        return out


def apply_updates(params: np.ndarray, updates: np.ndarray) -> np.ndarray:
    """``params + updates`` (a new array)."""
    return np.asarray(params) + updates


def _rate(lr: LearningRate, count: int) -> Any:
    return lr(count) if callable(lr) else lr


def _check_lr(lr: Any) -> LearningRate:
    if callable(lr):
        return lr
    return check_float("lr", lr, minimum=0.0, strict_min=True)


def _hyper(**kw: Any) -> Mapping[str, Any]:
    return MappingProxyType(dict(kw))


# ------------------------------------------------------------------ states
class GDState(NamedTuple):
    """Plain gradient descent keeps only the step count."""

    count: int


class SGDState(NamedTuple):
    """Step count and the momentum buffer ``v`` (shape of params)."""

    count: int
    buf: np.ndarray


class AdagradState(NamedTuple):
    """Step count and the running sum of squared gradients."""

    count: int
    sum: np.ndarray


class RMSpropState(NamedTuple):
    """Step count, mean square, mean gradient (centered) and momentum buffer."""

    count: int
    square_avg: np.ndarray
    grad_avg: np.ndarray
    buf: np.ndarray


class AdamState(NamedTuple):
    """Step count and the first (``mu``) and second (``nu``) moment estimates."""

    count: int
    mu: np.ndarray
    nu: np.ndarray


def _zeros(params: Any) -> np.ndarray:
    return np.zeros(np.shape(params), dtype=np.float64)


# -------------------------------------------------------------- factories
def gd(lr: LearningRate) -> Optimizer:
    """Gradient descent: ``θ ← θ − η·∇L(θ)``.

    Parameters
    ----------
    lr : float or schedule
        Learning rate ``η`` (> 0), or a function of the step.
    """
    lr = _check_lr(lr)

    def init(params: np.ndarray) -> GDState:
        return GDState(0)

    def update(g: np.ndarray, state: GDState, params: np.ndarray) -> tuple:
        return -_rate(lr, state.count) * g, GDState(state.count + 1)

    return Optimizer(init, update, "gd", _hyper(lr=lr))


def _sgd(name: str, lr: LearningRate, mom: float, nest: bool, wd: float) -> Optimizer:
    lr = _check_lr(lr)
    mom = check_float("momentum", mom, minimum=0.0, maximum=1.0)
    wd = check_float("weight_decay", wd, minimum=0.0)
    if nest and mom == 0.0:
        raise ValueError("`nesterov` needs `momentum` > 0, got 0.0")

    def init(params: np.ndarray) -> SGDState:
        return SGDState(0, _zeros(params))

    def update(g: np.ndarray, state: SGDState, params: np.ndarray) -> tuple:
        if wd:
            g = g + wd * params
        buf = state.buf
        if mom:
            buf = mom * buf + g
            g = g + mom * buf if nest else buf
        return -_rate(lr, state.count) * g, SGDState(state.count + 1, buf)

    hyper = {"lr": lr}
    if name == "sgd":
        hyper.update(momentum=mom, nesterov=nest)
    else:
        hyper["beta"] = mom
    if wd:
        hyper["weight_decay"] = wd
    return Optimizer(init, update, name, _hyper(**hyper))


def sgd(
    lr: LearningRate,
    *,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> Optimizer:
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    On a full-batch gradient this is gradient descent; it becomes stochastic
    when :func:`lossmap.optim.run` draws mini-batches (``batch_size=``).

    Parameters
    ----------
    lr : float or schedule
    momentum : float, default=0.0
        ``μ`` in ``v ← μ·v + g`` (no dampening, as ``torch.optim.SGD``).
    nesterov : bool, default=False
        Step along ``g + μ·v`` instead of ``v``.
    weight_decay : float, default=0.0
        Adds ``weight_decay·θ`` to the gradient (an L2 penalty).
    """
    return _sgd("sgd", lr, momentum, bool(nesterov), weight_decay)


def momentum(lr: LearningRate, *, beta: float = 0.9) -> Optimizer:
    """Heavy-ball momentum (Polyak 1964): ``v ← β·v + g``; ``θ ← θ − η·v``."""
    return _sgd("momentum", lr, beta, False, 0.0)


def nesterov(lr: LearningRate, *, beta: float = 0.9) -> Optimizer:
    """Nesterov momentum in the form of Sutskever et al. (2013), as torch uses."""
    return _sgd("nesterov", lr, beta, True, 0.0)


def adagrad(
    lr: LearningRate = 0.01,
    *,
    lr_decay: float = 0.0,
    eps: float = 1e-10,
    initial_accumulator: float = 0.0,
    weight_decay: float = 0.0,
) -> Optimizer:
    """Adagrad: per-coordinate rates ``η / (√Σg² + ε)``.

    The rate at step ``t`` is ``η / (1 + t·lr_decay)``.
    """
    lr = _check_lr(lr)
    lr_decay = check_float("lr_decay", lr_decay, minimum=0.0)
    eps = check_float("eps", eps, minimum=0.0)
    acc0 = check_float("initial_accumulator", initial_accumulator, minimum=0.0)
    wd = check_float("weight_decay", weight_decay, minimum=0.0)

    def init(params: np.ndarray) -> AdagradState:
        return AdagradState(0, np.full(np.shape(params), acc0))

    def update(g: np.ndarray, state: AdagradState, params: np.ndarray) -> tuple:
        if wd:
            g = g + wd * params
        clr = _rate(lr, state.count) / (1.0 + state.count * lr_decay)
        total = state.sum + g * g
        return -clr * (g / (np.sqrt(total) + eps)), AdagradState(state.count + 1, total)

    hyper = _hyper(lr=lr, lr_decay=lr_decay, eps=eps, initial_accumulator=acc0)
    if wd:
        hyper = _hyper(**hyper, weight_decay=wd)
    return Optimizer(init, update, "adagrad", hyper)


def rmsprop(
    lr: LearningRate = 0.01,
    *,
    alpha: float = 0.99,
    eps: float = 1e-8,
    momentum: float = 0.0,
    centered: bool = False,
    weight_decay: float = 0.0,
) -> Optimizer:
    """RMSprop: divide by a running root mean square of the gradient.

    Parameters
    ----------
    lr : float or schedule, default=0.01
    alpha : float, default=0.99
        Smoothing of the mean square.
    eps : float, default=1e-8
        Added to the root mean square.
    momentum : float, default=0.0
        Momentum on the scaled step.
    centered : bool, default=False
        Divide by an estimate of the variance instead of the mean square.
    weight_decay : float, default=0.0
    """
    lr = _check_lr(lr)
    alpha = check_float("alpha", alpha, minimum=0.0, maximum=1.0)
    eps = check_float("eps", eps, minimum=0.0)
    mom = check_float("momentum", momentum, minimum=0.0, maximum=1.0)
    wd = check_float("weight_decay", weight_decay, minimum=0.0)
    centered = bool(centered)

    def init(params: np.ndarray) -> RMSpropState:
        z = _zeros(params)
        return RMSpropState(0, z, z, z)

    def update(g: np.ndarray, state: RMSpropState, params: np.ndarray) -> tuple:
        if wd:
            g = g + wd * params
        sq = alpha * state.square_avg + (1.0 - alpha) * g * g
        ga = state.grad_avg
        if centered:
            ga = alpha * ga + (1.0 - alpha) * g
            avg = np.sqrt(sq - ga * ga) + eps
        else:
            avg = np.sqrt(sq) + eps
        step = g / avg
        buf = state.buf
        if mom:
            buf = mom * buf + step
            step = buf
        lr_t = _rate(lr, state.count)
        return -lr_t * step, RMSpropState(state.count + 1, sq, ga, buf)

    hyper = {"lr": lr, "alpha": alpha, "eps": eps, "momentum": mom}
    hyper["centered"] = centered
    if wd:
        hyper["weight_decay"] = wd
    return Optimizer(init, update, "rmsprop", _hyper(**hyper))


def _adam(
    name: str,
    lr: LearningRate,
    b1: float,
    b2: float,
    eps: float,
    wd: float,
    decoupled: bool,
) -> Optimizer:
    lr = _check_lr(lr)
    b1 = check_float("b1", b1, minimum=0.0, maximum=1.0)
    b2 = check_float("b2", b2, minimum=0.0, maximum=1.0)
    if b1 == 1.0 or b2 == 1.0:
        raise ValueError(f"`b1` and `b2` must be < 1, got {b1} and {b2}")
    eps = check_float("eps", eps, minimum=0.0)
    wd = check_float("weight_decay", wd, minimum=0.0)

    def init(params: np.ndarray) -> AdamState:
        z = _zeros(params)
        return AdamState(0, z, z)

    def update(g: np.ndarray, state: AdamState, params: np.ndarray) -> tuple:
        t = state.count + 1
        lr_t = _rate(lr, state.count)
        if wd and not decoupled:
            g = g + wd * params
        mu = b1 * state.mu + (1.0 - b1) * g
        nu = b2 * state.nu + (1.0 - b2) * g * g
        step_size = lr_t / (1.0 - b1**t)
        denom = np.sqrt(nu) / np.sqrt(1.0 - b2**t) + eps
        upd = -step_size * (mu / denom)
        if wd and decoupled:
            upd = upd - lr_t * wd * params
        return upd, AdamState(t, mu, nu)

    hyper = {"lr": lr, "b1": b1, "b2": b2, "eps": eps}
    if wd or decoupled:
        hyper["weight_decay"] = wd
    return Optimizer(init, update, name, _hyper(**hyper))


def adam(
    lr: LearningRate = 0.001,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> Optimizer:
    """Adam (Kingma & Ba 2015) with bias-corrected moments.

    ``weight_decay`` adds ``weight_decay·θ`` to the gradient (coupled L2, as
    ``torch.optim.Adam``); see :func:`adamw` for the decoupled form.
    """
    return _adam("adam", lr, b1, b2, eps, weight_decay, False)


def adamw(
    lr: LearningRate = 0.001,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.01,
) -> Optimizer:
    """AdamW (Loshchilov & Hutter 2019): Adam plus ``θ ← θ − η·λ·θ``."""
    return _adam("adamw", lr, b1, b2, eps, weight_decay, True)


_FACTORIES: dict[str, Callable[..., Optimizer]] = {
    "gd": gd,
    "sgd": sgd,
    "momentum": momentum,
    "nesterov": nesterov,
    "adagrad": adagrad,
    "rmsprop": rmsprop,
    "adam": adam,
    "adamw": adamw,
}

#: Learning rate used by :func:`get` when none is given (torch's defaults where
#: it has one).
DEFAULT_LR: dict[str, float] = {
    "gd": 0.01,
    "sgd": 0.01,
    "momentum": 0.01,
    "nesterov": 0.01,
    "adagrad": 0.01,
    "rmsprop": 0.01,
    "adam": 0.001,
    "adamw": 0.001,
}


def available() -> tuple[str, ...]:
    """Names accepted by :func:`get`."""
    return tuple(_FACTORIES)


def get(name: str | Optimizer, **hyper: Any) -> Optimizer:
    """An optimizer by name, e.g. ``get("adam", lr=0.01, b1=0.8)``.

    ``lr`` defaults to :data:`DEFAULT_LR`; an :class:`Optimizer` passes
    through unchanged (``hyper`` must then be empty).
    """
    if isinstance(name, Optimizer):
        if hyper:
            raise TypeError(
                f"settings {sorted(hyper)} cannot be applied to an existing Optimizer"
            )
        return name
    check_choice("optimizer", name, _FACTORIES)
    hyper.setdefault("lr", DEFAULT_LR[name])
    try:
        return _FACTORIES[name](**hyper)
    except TypeError as exc:
        if "unexpected keyword" in str(exc):
            raise TypeError(
                f"optimizer {name!r} does not take {exc.args[0].split()[-1]}"
            ) from None
        raise
