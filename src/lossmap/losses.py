"""Elementwise losses and their derivatives with respect to the prediction.

Every loss here is *unreduced*: it maps a prediction and a target of the same
shape to one value per element (per sample for :func:`cross_entropy`). Reduce
with :func:`mean` (or ``.mean()``). Each :class:`Loss` also carries its first
and second derivative with respect to the prediction, so exact gradients and
Hessians of composite problems can be assembled by the chain rule
(see :mod:`lossmap.toy`).

All functions accept NumPy arrays or torch tensors and return the same kind.
torch is never imported here: a tensor is recognised only when torch is
already loaded by the caller.

Examples
--------
>>> from lossmap import losses
>>> round(float(losses.bce(0.9, 1.0)), 3), round(float(losses.bce(0.1, 1.0)), 3)
(0.105, 2.303)
>>> float(losses.get("huber").value(3.0, 0.0, delta=1.0))
2.5
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lossmap._array import NUMPY, ops_for
from lossmap._array import prepare as _prepare_arrays

__all__ = [
    "BINARY",
    "CATEGORICAL",
    "REGRESSION",
    "Loss",
    "available",
    "bce",
    "bce_with_logits",
    "cross_entropy",
    "get",
    "huber",
    "log_cosh",
    "mae",
    "mean",
    "mse",
]


def prepare(pred: Any, target: Any) -> tuple[Any, Any, Any]:
    """Backend and arrays of ``pred`` and ``target``; warns on a cross broadcast.

    ``pred`` may carry leading axes that ``target`` lacks (a grid of
    predictions against one target vector, as :mod:`lossmap.toy` uses), and
    a scalar broadcasts against anything. When *both* would be expanded, as
    ``pred`` of shape ``(n, 1)`` against ``target`` of shape ``(n,)`` giving
    ``(n, n)``, the loss is almost surely not what was meant: a
    ``UserWarning`` says so (``torch.nn.functional.mse_loss`` warns too).
    """
    ops, p, y = _prepare_arrays(pred, target)
    ps, ys = tuple(p.shape), tuple(y.shape)
    if ps != ys:
        try:
            out = tuple(np.broadcast_shapes(ps, ys))
        except ValueError:
            raise ValueError(
                f"`pred` and `target` must have broadcastable shapes, got {ps} and {ys}"
            ) from None
        if out != ps and out != ys:
            warnings.warn(
                f"`pred` of shape {ps} and `target` of shape {ys} broadcast to "
                f"{out}, larger than both: every prediction is compared with "
                f"every target. Reshape one to the other's shape (e.g. "
                f"pred.reshape(target.shape)) unless that is what you want.",
                UserWarning,
                stacklevel=3,
            )
    return ops, p, y


#: Probabilities are clipped to [EPS, 1 - EPS] before taking logs.
EPS = 1e-12
_LOG2 = math.log(2.0)


# ------------------------------------------------------------------ regression
def mse(pred: Any, target: Any) -> Any:
    """Squared error ``(pred - target)**2``, elementwise."""
    _, p, y = prepare(pred, target)
    return (p - y) ** 2


def _mse_d1(pred: Any, target: Any) -> Any:
    _, p, y = prepare(pred, target)
    return 2.0 * (p - y)


def _mse_d2(pred: Any, target: Any) -> Any:
    _, p, y = prepare(pred, target)
    return 0.0 * (p - y) + 2.0


def mae(pred: Any, target: Any) -> Any:
    """Absolute error ``|pred - target|``, elementwise (not differentiable at 0)."""
    ops, p, y = prepare(pred, target)
    return ops.abs(p - y)


def _mae_d1(pred: Any, target: Any) -> Any:
    ops, p, y = prepare(pred, target)
    return ops.sign(p - y)


def _mae_d2(pred: Any, target: Any) -> Any:
    _, p, y = prepare(pred, target)
    return 0.0 * (p - y)


def _check_delta(delta: float) -> float:
    if not (
        isinstance(delta, int | float | np.number)
        and delta > 0
        and math.isfinite(delta)
    ):
        raise ValueError(f"`delta` must be a finite number > 0, got {delta!r}")
    return float(delta)


def huber(pred: Any, target: Any, *, delta: float = 1.0) -> Any:
    """Huber loss: quadratic ``r**2 / 2`` for ``|r| <= delta``, linear beyond.

    Matches ``torch.nn.functional.huber_loss(..., reduction="none", delta=delta)``.
    """
    delta = _check_delta(delta)
    ops, p, y = prepare(pred, target)
    r = p - y
    a = ops.abs(r)
    return ops.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def _huber_d1(pred: Any, target: Any, *, delta: float = 1.0) -> Any:
    delta = _check_delta(delta)
    ops, p, y = prepare(pred, target)
    r = p - y
    return ops.where(ops.abs(r) <= delta, r, delta * ops.sign(r))


def _huber_d2(pred: Any, target: Any, *, delta: float = 1.0) -> Any:
    delta = _check_delta(delta)
    ops, p, y = prepare(pred, target)
    r = p - y
    return ops.where(ops.abs(r) <= delta, 1.0 + 0.0 * r, 0.0 * r)


def log_cosh(pred: Any, target: Any) -> Any:
    """``log(cosh(pred - target))``, accurate and without overflow.

    For ``|r| < 20`` it uses ``log1p(2·sinh²(r/2))`` (``cosh r − 1 = 2 sinh²(r/2)``),
    exact to rounding even where the value is ~r²/2 far below 1e-16; beyond,
    ``|r| + log1p(exp(−2|r|)) − log 2``, finite for any finite residual
    (``cosh`` itself overflows beyond |r| ~ 710).
    """
    ops, p, y = prepare(pred, target)
    a = ops.abs(p - y)
    s = ops.sinh(0.5 * ops.minimum(a, 20.0))
    near = ops.log1p(2.0 * s * s)
    far = a + ops.log1p(ops.exp(-2.0 * a)) - _LOG2
    return ops.where(a < 20.0, near, far)


def _log_cosh_d1(pred: Any, target: Any) -> Any:
    ops, p, y = prepare(pred, target)
    return ops.tanh(p - y)


def _log_cosh_d2(pred: Any, target: Any) -> Any:
    ops, p, y = prepare(pred, target)
    t = ops.tanh(p - y)
    return 1.0 - t * t


# ---------------------------------------------------------------------- binary
def bce(pred: Any, target: Any) -> Any:
    """Binary cross-entropy of a probability ``pred`` against a label in [0, 1].

    ``pred`` is clipped to ``[EPS, 1 - EPS]`` so the value stays finite.
    """
    ops, p, y = prepare(pred, target)
    p = ops.clip(p, EPS, 1.0 - EPS)
    return -(y * ops.log(p) + (1.0 - y) * ops.log1p(-p))


def _bce_d1(pred: Any, target: Any) -> Any:
    ops, p, y = prepare(pred, target)
    p = ops.clip(p, EPS, 1.0 - EPS)
    return (p - y) / (p * (1.0 - p))


def _bce_d2(pred: Any, target: Any) -> Any:
    ops, p, y = prepare(pred, target)
    p = ops.clip(p, EPS, 1.0 - EPS)
    return y / (p * p) + (1.0 - y) / ((1.0 - p) * (1.0 - p))


def bce_with_logits(pred: Any, target: Any) -> Any:
    """Binary cross-entropy of a logit ``pred``: ``softplus(z) - y*z``, stable.

    Written as ``max(z, 0) - y*z + log1p(exp(-|z|))``; finite at any logit.
    """
    ops, z, y = prepare(pred, target)
    return ops.relu(z) - y * z + ops.log1p(ops.exp(-ops.abs(z)))


def _bce_logits_d1(pred: Any, target: Any) -> Any:
    ops, z, y = prepare(pred, target)
    return ops.sigmoid(z) - y


def _bce_logits_d2(pred: Any, target: Any) -> Any:
    ops, z, y = prepare(pred, target)
    s = ops.sigmoid(z)
    return s * (1.0 - s) + 0.0 * y


# ----------------------------------------------------------------- categorical
def _class_target(ops: Any, p: Any, target: Any) -> tuple[Any, bool]:
    """Return (target, is_index) after checking shapes."""
    tshape = tuple(target.shape)
    pshape = tuple(p.shape)
    if tshape == pshape:
        return target, False
    if tshape == pshape[:-1]:
        return target, True
    raise ValueError(
        f"`target` must hold class indices of shape {pshape[:-1]} or class "
        f"probabilities of shape {pshape}, got shape {tshape}"
    )


def _prep_ce(pred: Any, target: Any) -> tuple[Any, Any, Any]:
    ops = ops_for(pred, target)
    torch = sys.modules.get("torch")
    if ops is NUMPY:
        p = np.asarray(pred, dtype=np.float64)
        t = np.asarray(target)
    else:
        p = pred if isinstance(pred, torch.Tensor) else torch.as_tensor(pred)
        t = target if isinstance(target, torch.Tensor) else torch.as_tensor(target)
        p = ops.asarray(p)
    if p.ndim < 1:
        raise ValueError(f"`pred` must have a class axis (last), got shape {p.shape}")
    return ops, p, t


def cross_entropy(pred: Any, target: Any, *, from_logits: bool = True) -> Any:
    """Categorical cross-entropy per sample; the class axis is the last one.

    Parameters
    ----------
    pred : array of shape (..., n_classes)
        Logits (``from_logits=True``) or probabilities.
    target : array of shape (...) of class indices, or (..., n_classes) of
        class probabilities.

    Returns
    -------
    array of shape (...)
        Matches ``torch.nn.functional.cross_entropy(..., reduction="none")`` for
        logits (class axis moved last).
    """
    ops, p, t = _prep_ce(pred, target)
    t, is_index = _class_target(ops, p, t)
    logq = ops.log_softmax(p) if from_logits else ops.log(ops.clip(p, EPS, 1.0))
    if is_index:
        return -ops.take(logq, t)
    return -ops.sum_last(t * logq)


def _ce_d1(pred: Any, target: Any, *, from_logits: bool = True) -> Any:
    """d loss / d pred, shape (..., n_classes)."""
    ops, p, t = _prep_ce(pred, target)
    t, is_index = _class_target(ops, p, t)
    y = ops.onehot(t, p) if is_index else t
    if from_logits:
        s = ops.exp(ops.log_softmax(p))
        return s * ops.sum_last(y)[..., None] - y
    return -y / ops.clip(p, EPS, 1.0)


def _ce_d2(pred: Any, target: Any, *, from_logits: bool = True) -> Any:
    """d² loss / d pred², shape (..., n_classes, n_classes)."""
    ops, p, t = _prep_ce(pred, target)
    t, is_index = _class_target(ops, p, t)
    y = ops.onehot(t, p) if is_index else t
    eye = ops.eye_like(p)
    if from_logits:
        s = ops.exp(ops.log_softmax(p))
        mass = ops.sum_last(y)[..., None, None]
        return mass * (s[..., :, None] * eye - ops.outer_last(s, s))
    q = ops.clip(p, EPS, 1.0)
    return (y / (q * q))[..., :, None] * eye


# -------------------------------------------------------------------- registry
REGRESSION = "regression"
BINARY = "binary"
CATEGORICAL = "categorical"


@dataclass(frozen=True)
class Loss:
    """An elementwise loss with its derivatives with respect to the prediction.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"huber"``.
    value, d1, d2 : callable ``(pred, target, **params) -> array``
        The loss, its first and its second derivative in ``pred``
        (elementwise; for ``cross_entropy`` a vector and a matrix per sample).
    task : {"regression", "binary", "categorical"}
        What kind of target the loss expects.
    params : dict
        Names and defaults of the keyword parameters (e.g. ``{"delta": 1.0}``).
    smooth : bool
        Whether ``d2`` is a true second derivative everywhere (False for MAE,
        and for Huber at ``|r| = delta``).
    prediction : {"value", "probability", "logit"}
        What ``pred`` means.
    """

    name: str
    value: Callable[..., Any]
    d1: Callable[..., Any]
    d2: Callable[..., Any]
    task: str
    params: dict[str, Any] = field(default_factory=dict)
    smooth: bool = True
    prediction: str = "value"
    label: str = ""

    def __call__(self, pred: Any, target: Any, **params: Any) -> Any:
        """The elementwise loss (same as :attr:`value`)."""
        return self.value(pred, target, **self.check_params(params))

    def mean(self, pred: Any, target: Any, **params: Any) -> Any:
        """The loss averaged over all samples."""
        return mean(self.value(pred, target, **self.check_params(params)))

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Reject keyword parameters this loss does not take."""
        unknown = set(params) - set(self.params)
        if unknown:
            raise TypeError(
                f"loss {self.name!r} takes parameters {sorted(self.params) or 'none'}, "
                f"got unexpected {sorted(unknown)}"
            )
        return params


def mean(values: Any) -> Any:
    """Mean over every element (the usual "mean" reduction)."""
    return values.mean()


_REGISTRY: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        Loss("mse", mse, _mse_d1, _mse_d2, REGRESSION, label="MSE"),
        Loss("mae", mae, _mae_d1, _mae_d2, REGRESSION, smooth=False, label="MAE"),
        Loss(
            "huber",
            huber,
            _huber_d1,
            _huber_d2,
            REGRESSION,
            {"delta": 1.0},
            smooth=False,
            label="Huber",
        ),
        Loss(
            "log_cosh",
            log_cosh,
            _log_cosh_d1,
            _log_cosh_d2,
            REGRESSION,
            label="log-cosh",
        ),
        Loss(
            "bce",
            bce,
            _bce_d1,
            _bce_d2,
            BINARY,
            prediction="probability",
            label="binary cross-entropy",
        ),
        Loss(
            "bce_with_logits",
            bce_with_logits,
            _bce_logits_d1,
            _bce_logits_d2,
            BINARY,
            prediction="logit",
            label="binary cross-entropy (logits)",
        ),
        Loss(
            "cross_entropy",
            cross_entropy,
            _ce_d1,
            _ce_d2,
            CATEGORICAL,
            {"from_logits": True},
            prediction="logit",
            label="categorical cross-entropy",
        ),
    )
}


def available() -> tuple[str, ...]:
    """Names accepted by :func:`get`."""
    return tuple(_REGISTRY)


def get(name: str | Loss) -> Loss:
    """Look a loss up by name (``-`` and ``_`` are interchangeable)."""
    if isinstance(name, Loss):
        return name
    if not isinstance(name, str):
        raise TypeError(f"`loss` must be a loss name or Loss, got {name!r}")
    key = name.strip().lower().replace("-", "_")
    if key not in _REGISTRY:
        raise ValueError(f"`loss` must be one of {list(_REGISTRY)}, got {name!r}")
    return _REGISTRY[key]
