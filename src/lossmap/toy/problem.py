"""Exact 2-parameter problems: a model, a data set and a loss.

``L(w, b) = mean_i loss(f(x_i; w, b), y_i) + l2·(w² + b²) + l1·(|w| + |b|)``

Value, gradient and Hessian are exact (chain rule through
:mod:`lossmap.losses` and :mod:`lossmap.toy.models`) and vectorised over any
broadcastable ``w``, ``b``: no Python loop runs per grid point.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from lossmap import losses as _losses
from lossmap._validation import check_float
from lossmap.toy import _squash
from lossmap.toy._base import Landscape, Region
from lossmap.toy.data import Dataset, dataset
from lossmap.toy.models import MODELS, Model, get_model

__all__ = ["Minimum", "Problem", "problem"]


class Minimum(NamedTuple):
    """The minimiser θ* = (w, b) of a problem and the loss there."""

    w: float
    b: float
    loss: float
    converged: bool
    method: str

    @property
    def theta(self) -> np.ndarray:
        """``array([w, b])``."""
        return np.array([self.w, self.b])


@dataclass(frozen=True, eq=False)
class Problem(Landscape):
    """A model, a data set and a loss, as an exact :class:`Landscape`.

    Build one with :func:`problem`. Attributes are read-only; use
    :meth:`replace` for a variant (e.g. another ``l2``).
    """

    model: Model
    data: Dataset
    loss_fn: _losses.Loss
    loss_params: dict[str, Any] = field(default_factory=dict)
    l2: float = 0.0
    l1: float = 0.0

    param_names = ("w", "b")

    def __post_init__(self) -> None:
        loss = self.loss_fn
        if loss.task == _losses.CATEGORICAL:
            raise ValueError(
                f"`loss` {loss.name!r} needs several classes; 2-parameter problems "
                f"take {list(_REGRESSION_OR_BINARY)}"
            )
        if loss.prediction == "probability" and self.model.output != "probability":
            raise ValueError(
                f"`loss` {loss.name!r} needs probabilities, but model "
                f"{self.model.name!r} predicts values; use model='logistic' or "
                f"loss='bce_with_logits'"
            )
        if loss.task == _losses.BINARY and self.data.task != "binary":
            raise ValueError(
                f"`loss` {loss.name!r} needs binary targets in [0, 1], but data "
                f"{self.data.name!r} is a regression set"
            )
        loss.check_params(self.loss_params)
        check_float("l2", self.l2, minimum=0.0)
        check_float("l1", self.l1, minimum=0.0)

    # ----------------------------------------------------- Landscape protocol
    @property
    def region(self) -> Region:  # type: ignore[override]
        """The data set's suggested view of the (w, b) plane."""
        return self.data.region

    @property
    def smooth(self) -> bool:  # type: ignore[override]
        """False for MAE and Huber (and any l1), whose Hessian jumps."""
        return self.loss_fn.smooth and self.l1 == 0.0

    @property
    def title(self) -> str:  # type: ignore[override]
        return f"{self.model.formula} · {self.loss_fn.label} · {self.data.name}"

    def _through_logits(self) -> bool:
        # sigmoid + BCE is computed as BCE-with-logits on z: same function,
        # but exact at any z (no clipping of probabilities).
        return self.model is MODELS["logistic"] and self.loss_fn.name == "bce"

    def _elementwise(self) -> tuple[Model, _losses.Loss]:
        if self._through_logits():
            return get_model("line"), _losses.get("bce_with_logits")
        return self.model, self.loss_fn

    def _penalty(self, w: np.ndarray, b: np.ndarray) -> Any:
        out = 0.0
        if self.l2:
            out = out + self.l2 * (w * w + b * b)
        if self.l1:
            out = out + self.l1 * (np.abs(w) + np.abs(b))
        return out

    def loss(self, w: Any, b: Any) -> np.ndarray:
        """``L(w, b)``; ``w`` and ``b`` broadcast, the result has their shape."""
        w, b = np.broadcast_arrays(
            np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64)
        )
        model, loss = self._elementwise()
        x, y = self.data.x, self.data.y
        pred = w[..., None] * x
        pred += b[..., None]
        if model.act is np.tanh:
            np.tanh(pred, out=pred)  # in place: the hot path of tanh surfaces
        elif model is not MODELS["line"]:  # by identity: a user's model may
            pred = model.act(pred)  # share a built-in one's name
        if loss.name == "mse":
            pred -= y
            value = np.einsum("...i,...i->...", pred, pred) / x.size
        else:
            value = loss.value(pred, y, **self.loss_params).mean(axis=-1)
        return value + self._penalty(w, b)

    def grad(self, w: Any, b: Any) -> np.ndarray:
        """``∇L(w, b)``, shape ``broadcast(w, b).shape + (2,)``."""
        w, b = np.broadcast_arrays(
            np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64)
        )
        model, loss = self._elementwise()
        d = model.derivatives(self.data.x, w, b)
        g = loss.d1(d.f, self.data.y, **self.loss_params)
        out = np.stack([(g * d.f_w).mean(-1), (g * d.f_b).mean(-1)], axis=-1)
        if self.l2:
            out = out + 2.0 * self.l2 * np.stack([w, b], axis=-1)
        if self.l1:
            out = out + self.l1 * np.sign(np.stack([w, b], axis=-1))
        return out

    def hessian(self, w: Any, b: Any) -> np.ndarray:
        """``∇²L(w, b)``, shape ``broadcast(w, b).shape + (2, 2)``.

        For MAE and Huber this is the Hessian of the smooth piece each point
        lies on (MAE's is zero away from its kinks).
        """
        w, b = np.broadcast_arrays(
            np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64)
        )
        model, loss = self._elementwise()
        d = model.derivatives(self.data.x, w, b)
        g1 = loss.d1(d.f, self.data.y, **self.loss_params)
        g2 = loss.d2(d.f, self.data.y, **self.loss_params)
        hww = (g2 * d.f_w * d.f_w + g1 * d.f_ww).mean(-1)
        hwb = (g2 * d.f_w * d.f_b + g1 * d.f_wb).mean(-1)
        hbb = (g2 * d.f_b * d.f_b + g1 * d.f_bb).mean(-1)
        out = np.stack([np.stack([hww, hwb], -1), np.stack([hwb, hbb], -1)], -2)
        if self.l2:
            out = out + 2.0 * self.l2 * np.eye(2)
        return out

    def _work_per_point(self) -> int:
        return len(self.data)

    def evaluate_grid(self, a0: np.ndarray, a1: np.ndarray) -> np.ndarray:
        """``loss`` on the outer grid ``a0 x a1``.

        A tanh or logistic neuron with MSE takes the factorised path of
        :mod:`lossmap.toy._squash` (no ``tanh`` per value, cache-sized blocks);
        everything else, and grids too wide for that path, the direct one.
        """
        model, loss = self._elementwise()
        if loss.name == "mse" and _squash.supports(model):
            values = _squash.mse_grid(model, self.data.x, self.data.y, a0, a1)
            if values is not None:
                return values + self._penalty(a0[:, None], a1[None, :])
        return super().evaluate_grid(a0, a1)

    # ------------------------------------------------------------ extras
    def predict(self, x: Any, w: float, b: float) -> np.ndarray:
        """The model's prediction at inputs ``x`` for parameters ``(w, b)``."""
        return self.model.predict(np.asarray(x, dtype=np.float64), w, b)

    def residuals(self, w: float, b: float) -> np.ndarray:
        """``f(x_i; w, b) - y_i`` for every data point, shape ``(n,)``."""
        return self.predict(self.data.x, w, b) - self.data.y

    def subset(self, indices: Any) -> Problem:
        """The same problem on the data points at ``indices`` (a mini-batch)."""
        return dataclasses.replace(self, data=self.data.subset(indices))

    def replace(self, **changes: Any) -> Problem:
        """A copy with some fields changed, e.g. ``replace(l2=0.1)``."""
        return dataclasses.replace(self, **changes)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "Problem",
            "model": self.model.name,
            "data": self.data.describe(),
            "loss": self.loss_fn.name,
            "loss_params": dict(self.loss_params),
            "l2": self.l2,
            "l1": self.l1,
        }

    def minimum(self, *, steps: int = 201) -> Minimum:
        """The global minimiser θ* and L(θ*).

        The best cell of a ``steps x steps`` grid over :attr:`region` (doubled
        around the best cell, up to 4 times, while that cell sits on its
        edge) seeds a damped Newton iteration
        for smooth losses, which reaches θ* to about 1e-10. MAE and any l1
        penalty are refined without derivatives (Nelder–Mead), then snapped to
        the vertex where two residuals vanish when that is lower.

        Raises
        ------
        ValueError
            If the loss keeps falling toward infinity (e.g. logistic loss on
            separable data without ``l2``): there is no minimum. A point
            refined from the edge that is a strict minimum (the loss rises
            in every direction) is returned however far out it lies.
        """
        (lo0, hi0), (lo1, hi1) = self.region
        for _ in range(_WIDENINGS):
            surf = self.surface(((lo0, hi0), (lo1, hi1)), steps=steps)
            best = surf.argmin()
            i, j = best.index
            edge = i in (0, steps - 1) or j in (0, steps - 1)
            if not edge:
                break
            c0, c1 = best.coords["w"], best.coords["b"]
            h0, h1 = (hi0 - lo0), (hi1 - lo1)
            lo0, hi0, lo1, hi1 = c0 - h0, c0 + h0, c1 - h1, c1 + h1
        start = np.array([best.coords["w"], best.coords["b"]])
        if self.loss_fn.name == "mae" or self.l1:
            theta, conv, method = self._nelder_mead(start)
        else:
            theta, conv = _newton(self, start)
            method = "newton"
            if not conv and not self.loss_fn.smooth:
                theta, conv, method = self._nelder_mead(theta)
        value = float(self.loss(*theta))
        if edge and self._strict_minimum(theta):
            edge = False  # far outside the searched boxes, but a true minimum
        if edge:
            raise ValueError(
                f"{self.title} has no minimum: the loss keeps falling toward the "
                f"edge near (w, b) = ({theta[0]:.3g}, {theta[1]:.3g}); "
                f"{self._why_no_minimum()}"
            )
        return Minimum(float(theta[0]), float(theta[1]), value, bool(conv), method)

    def _strict_minimum(self, theta: np.ndarray) -> bool:
        """Whether the loss rises in every direction from ``theta``.

        Where the loss only levels off toward infinity (separable logistic
        data, tanh targets at ±1) the gradient and the Hessian both vanish,
        and far enough out the loss is 0.0 in floating point: no point there
        passes. Kinked losses (MAE, l1) are probed in 16 directions; the
        others need a vanishing gradient and a positive definite Hessian
        (of the quadratic piece, for Huber).
        """
        if self.loss_fn.name == "mae" or self.l1:
            r = 1e-4 * max(1.0, float(np.linalg.norm(theta)))
            angles = np.linspace(0.0, 2.0 * np.pi, 16, endpoint=False)
            probe = theta + r * np.stack([np.cos(angles), np.sin(angles)], -1)
            return bool(np.all(self.loss_at(probe) > self.loss(*theta)))
        g = self.grad(*theta)
        lam = np.linalg.eigvalsh(self.hessian(*theta))
        scale = max(float(np.max(np.abs(lam))), 1.0)
        return bool(lam[0] > 1e-8 * scale and np.linalg.norm(g) < 1e-8)

    def _why_no_minimum(self) -> str:
        """The likely reason for a loss without a minimum, in plain words."""
        y = self.data.y
        if self.model is MODELS["tanh"] and np.any(np.abs(y) >= 1.0):
            return (
                "tanh reaches targets at ±1 or beyond only as |w·x + b| → ∞ "
                "(the presets keep targets inside (-1, 1)); scale y into "
                "(-1, 1) or add an l2 penalty"
            )
        if self.data.task == "binary":
            return "separable data? add an l2 penalty"
        return "add an l2 penalty"

    def _nelder_mead(self, start: np.ndarray) -> tuple[np.ndarray, bool, str]:
        from scipy.optimize import minimize

        f = lambda t: float(self.loss(t[0], t[1]))  # noqa: E731
        res = minimize(
            f,
            start,
            method="Nelder-Mead",
            options={"xatol": 1e-12, "fatol": 1e-15, "maxiter": 20000, "maxfev": 40000},
        )
        theta, value = res.x, res.fun
        vertex = self._vertex_near(theta)
        if vertex is not None and self.loss(*vertex) <= value + 1e-15:
            return vertex, True, "nelder-mead+vertex"
        return theta, bool(res.success), "nelder-mead"

    def _vertex_near(self, theta: np.ndarray) -> np.ndarray | None:
        """Where the two residuals closest to zero both vanish (MAE's kinks).

        For every built-in model a residual vanishes on a line in (w, b):
        ``w·x_i + b = act⁻¹(y_i)``; None for a user's own model.
        """
        x, y = self.data.x, self.data.y
        # by identity: a user's Model may share a built-in one's name, and one
        # of its own has no known inverse (then Nelder-Mead's point stands)
        inverses = {
            "line": lambda v: v,
            "tanh": np.arctanh,
            "logistic": lambda v: np.log(v / (1 - v)),
        }
        name = self.model.name
        if name not in inverses or MODELS.get(name) is not self.model:
            return None
        inv = inverses[name]
        with np.errstate(all="ignore"):
            target = inv(y)
        r = np.abs(self.residuals(*theta))
        order = [k for k in np.argsort(r) if np.isfinite(target[k])]
        for a in range(min(len(order), 4)):
            for c in range(a + 1, min(len(order), 4)):
                i, k = order[a], order[c]
                A = np.array([[x[i], 1.0], [x[k], 1.0]])
                if abs(np.linalg.det(A)) < 1e-12:
                    continue
                return np.linalg.solve(A, np.array([target[i], target[k]]))
        return None


_REGRESSION_OR_BINARY = [n for n in _losses.available() if n != "cross_entropy"]
#: Times minimum() widens its search box (doubling it around the best cell)
#: while the best grid cell sits on the edge. Wider boxes reach logits where
#: a separable data set's loss is exactly 0.0 in floating point, which would
#: look like an interior minimum.
_WIDENINGS = 4


def _newton(
    f: Landscape, start: np.ndarray, *, max_iter: int = 200
) -> tuple[np.ndarray, bool]:
    """Damped Newton with backtracking; the Hessian is made positive definite."""
    theta = start.astype(np.float64)
    value = float(f.loss(*theta))
    for _ in range(max_iter):
        g = f.grad(*theta)
        if np.linalg.norm(g) < 1e-13 * max(1.0, abs(value)):
            return theta, True
        h = f.hessian(*theta)
        lam, vec = np.linalg.eigh(h)
        lam = np.maximum(np.abs(lam), 1e-10 * max(1.0, float(np.max(np.abs(lam)))))
        step = -(vec @ ((vec.T @ g) / lam))
        t = 1.0
        while t > 1e-12:
            cand = theta + t * step
            new = float(f.loss(*cand))
            if new <= value + 1e-4 * t * float(g @ step):
                break
            t *= 0.5
        else:
            return theta, np.linalg.norm(g) < 1e-9
        small = np.linalg.norm(cand - theta) < 1e-15 * max(1.0, np.linalg.norm(theta))
        theta, value = cand, new
        if small:
            return theta, True
    return theta, bool(np.linalg.norm(f.grad(*theta)) < 1e-9)


def problem(
    model: str | Model,
    data: str | Dataset | tuple[Any, Any],
    loss: str | _losses.Loss = "mse",
    *,
    l2: float = 0.0,
    l1: float = 0.0,
    **loss_params: Any,
) -> Problem:
    """Build an exact 2-parameter problem.

    Parameters
    ----------
    model : {"line", "tanh", "logistic"} or Model
    data : preset name, Dataset, or (x, y) arrays of shape (n,)
    loss : loss name or Loss, default="mse"
    l2, l1 : float, default=0.0
        Penalty strengths: ``l2·(w² + b²) + l1·(|w| + |b|)``.
    **loss_params
        Loss parameters, e.g. ``delta=0.5`` for Huber.

    Examples
    --------
    >>> from lossmap import toy
    >>> p = toy.problem("line", "two-points", "mse")
    >>> m = p.minimum()
    >>> round(m.w, 6), round(m.b, 6), m.loss < 1e-20
    (0.333333, -0.066667, True)
    """
    loss_obj = _losses.get(loss)
    if loss_obj.task == _losses.BINARY and not isinstance(data, str | Dataset):
        # BCE takes any target in [0, 1] (soft labels); the task inferred
        # from the values alone would call 0.3 a regression target
        data = dataset(data, task="binary")
    params = {**loss_obj.params, **loss_params}
    loss_obj.check_params(params)
    if loss_params and loss_obj.task != "categorical":
        # the loss checks its parameters' values when it runs: run it once
        # now, so a bad value is refused here rather than at first use
        loss_obj.value(np.array([0.5]), np.array([0.0]), **params)
    return Problem(
        get_model(model),
        dataset(data),
        loss_obj,
        params,
        check_float("l2", l2, minimum=0.0),
        check_float("l1", l1, minimum=0.0),
    )
