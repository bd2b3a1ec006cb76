"""Multi-term losses: a weighted sum of named terms, each with its own points.

``L(θ) = Σₖ λₖ·Lₖ(θ)``, where every term ``Lₖ`` is itself an exact
:class:`~lossmap.toy.Landscape`. Physics-informed training is the standard
example: a data-fit term on measured points, an equation-residual term on
collocation points and a boundary-condition term (Raissi, Perdikaris &
Karniadakis, J. Comput. Phys. 378, 2019). :func:`physics_informed` builds a
2-parameter instance with a known exact solution:

- equation ``u' + k·u = 0`` on [0, 1] with ``u(0) = u₀`` (default ``k = 1``,
  ``u₀ = 1``), exact solution ``u(x) = u₀·e^(−k·x)``;
- trial function ``u(x; w, b) = b·e^(w·x)``, so the exact answer is
  ``(w, b) = (−k, u₀)``;
- terms ``data`` (mean squared misfit to samples of the exact solution),
  ``residual`` (mean squared ``u' + k·u`` at collocation points) and
  ``boundary`` (``(u(0) − u₀)²``).

Every term is zero at the exact answer, so it stays a global minimum for any
non-negative weights, while the shape of the landscape around it changes with
them. :meth:`WeightedSum.surface` returns the total as ``loss`` and each term
as a field of the same :class:`~lossmap.Surface`.

:func:`regularised` shows an L2/L1 penalty the same way (terms ``data`` and
``l2``/``l1``), and :func:`regularisation_path` follows the minimum as the
penalty grows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lossmap._validation import check_finite_array, check_float, check_int
from lossmap.surface import Surface
from lossmap.toy._base import Landscape, Region

__all__ = [
    "Penalty",
    "RegularisationPath",
    "SquaredResidual",
    "WeightedSum",
    "physics_informed",
    "regularisation_path",
    "regularised",
]


class WeightedSum(Landscape):
    """``Σₖ weights[k]·terms[k]``, an exact Landscape built from named terms.

    Parameters
    ----------
    terms : mapping of str to Landscape
        The terms, in display order; all take the same two parameters.
    weights : mapping of str to float, optional
        Non-negative weight per term (default 1 each).
    region : ((lo0, hi0), (lo1, hi1)), optional
        Default view; defaults to the first term's region.
    title : str, optional
        What the sum is; the title (:attr:`title`) adds the weighted terms,
        e.g. ``"pinn · 1·data + 10·boundary"``.
    """

    def __init__(
        self,
        terms: Mapping[str, Landscape],
        weights: Mapping[str, float] | None = None,
        *,
        region: Region | None = None,
        title: str = "",
    ) -> None:
        if not isinstance(terms, Mapping) or not terms:
            raise TypeError(
                f"`terms` must be a non-empty mapping of name to Landscape, "
                f"got {type(terms).__name__}"
            )
        for name, term in terms.items():
            if not isinstance(term, Landscape):
                raise TypeError(
                    f"term {name!r} must be a Landscape, got {type(term).__name__}"
                )
            if name == "loss":
                raise ValueError("a term cannot be called 'loss' (the total's field)")
        weights = dict(weights or {})
        unknown = set(weights) - set(terms)
        if unknown:
            raise ValueError(
                f"`weights` names unknown terms {sorted(unknown)}; terms are "
                f"{list(terms)}"
            )
        self.terms: dict[str, Landscape] = dict(terms)
        self.weights: dict[str, float] = {
            k: check_float(f"weights[{k!r}]", weights.get(k, 1.0), minimum=0.0)
            for k in terms
        }
        first = next(iter(terms.values()))
        self.param_names = tuple(first.param_names)  # type: ignore[assignment]
        self.region = region if region is not None else first.region
        self.smooth = all(t.smooth for t in terms.values())
        # the weights are part of every title: the same problem with other
        # weights is another landscape, and its figure must say which
        self.name = title
        self.formula = " + ".join(f"{w:g}·{k}" for k, w in self.weights.items())
        self.title = f"{title} · {self.formula}" if title else self.formula

    def with_weights(self, **weights: float) -> WeightedSum:
        """A copy with some weights changed, e.g. ``with_weights(boundary=10)``."""
        return WeightedSum(
            self.terms,
            {**self.weights, **weights},
            region=self.region,
            title=self.name,
        )

    def _sum(self, method: str, p0: Any, p1: Any) -> np.ndarray:
        out = None
        for name, term in self.terms.items():
            w = self.weights[name]
            if w == 0.0:
                continue
            part = w * getattr(term, method)(p0, p1)
            out = part if out is None else out + part
        if out is None:  # all weights zero
            ref = getattr(next(iter(self.terms.values())), method)(p0, p1)
            out = np.zeros_like(ref)
        return out

    def loss(self, p0: Any, p1: Any) -> np.ndarray:
        """``Σ λₖ·Lₖ``; arrays broadcast."""
        return self._sum("loss", p0, p1)

    def grad(self, p0: Any, p1: Any) -> np.ndarray:
        """``Σ λₖ·∇Lₖ``, shape ``S + (2,)``."""
        return self._sum("grad", p0, p1)

    def hessian(self, p0: Any, p1: Any) -> np.ndarray:
        """``Σ λₖ·∇²Lₖ``, shape ``S + (2, 2)``."""
        return self._sum("hessian", p0, p1)

    def term_values(self, p0: Any, p1: Any) -> dict[str, np.ndarray]:
        """Each term's unweighted value at ``(p0, p1)``."""
        return {k: t.loss(p0, p1) for k, t in self.terms.items()}

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "WeightedSum",
            "title": self.title,
            "name": self.name,
            "formula": self.formula,
            "weights": dict(self.weights),
            "terms": {k: t.describe() for k, t in self.terms.items()},
        }

    def surface(
        self,
        region: Region | None = None,
        *,
        steps: int | tuple[int, int] = 201,
        **ranges: Any,
    ) -> Surface:
        """Total and per-term landscapes on one grid.

        Returns
        -------
        Surface
            Field ``loss`` (the weighted total) and one field per term name
            (each term unweighted), all of shape ``(steps0, steps1)``.
        """
        a0, a1 = self.grid(region, steps=steps, **ranges)
        parts = {k: t.evaluate_grid(a0, a1) for k, t in self.terms.items()}
        total = sum(self.weights[k] * v for k, v in parts.items())
        return Surface(
            axes={self.param_names[0]: a0, self.param_names[1]: a1},
            fields={"loss": total, **parts},
            metadata={
                "source": "toy",
                "landscape": self.describe(),
                "grid": {
                    "steps": [a0.size, a1.size],
                    "region": [[a0[0], a0[-1]], [a1[0], a1[-1]]],
                },
            },
        )


class SquaredResidual(Landscape):
    """Mean squared residual of the trial function ``u(x) = b·e^(w·x)``.

    ``kind="value"``: ``rᵢ = u(xᵢ) − yᵢ`` (data or boundary values);
    ``kind="ode"``: ``rᵢ = u'(xᵢ) + k·u(xᵢ) = b·(w + k)·e^(w·xᵢ)``.
    ``L = mean rᵢ²`` with exact gradient and Hessian (Gauss–Newton part plus
    the residual-curvature part).

    Parameters
    ----------
    kind : {"value", "ode"}
    x : array of shape (n,)
        The term's own points.
    y : array of shape (n,), optional
        Targets for ``kind="value"``.
    k : float, default=1.0
        Decay rate in the equation (``kind="ode"``).
    """

    param_names = ("w", "b")
    region: Region = ((-3.0, 1.0), (-0.5, 2.5))

    def __init__(
        self, kind: str, x: Any, y: Any = None, *, k: float = 1.0, title: str = ""
    ) -> None:
        if kind not in ("value", "ode"):
            raise ValueError(f"`kind` must be one of ['value', 'ode'], got {kind!r}")
        self.kind = kind
        self.x = check_finite_array("x", x, ndim=1)
        if kind == "value":
            if y is None:
                raise ValueError("`y` is required for kind='value'")
            self.y = check_finite_array("y", y, ndim=1)
            if self.y.shape != self.x.shape:
                raise ValueError(
                    f"`y` must have the shape of `x` {self.x.shape}, got {self.y.shape}"
                )
        else:
            self.y = np.zeros_like(self.x)
        self.k = check_float("k", k)
        self.title = title or kind

    def _parts(self, w: Any, b: Any) -> tuple[np.ndarray, ...]:
        """Residual and its derivatives, each of shape ``S + (n,)``."""
        w, b = np.broadcast_arrays(
            np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64)
        )
        w, b, x = w[..., None], b[..., None], self.x
        e = np.exp(w * x)
        if self.kind == "value":
            r = b * e - self.y
            rw, rb = b * x * e, e
            rww, rwb, rbb = b * x * x * e, x * e, np.zeros_like(e)
        else:
            s = w + self.k
            r = b * s * e
            rw, rb = b * e * (1.0 + s * x), s * e
            rww, rwb, rbb = (
                b * x * e * (2.0 + s * x),
                e * (1.0 + s * x),
                np.zeros_like(e),
            )
        return r, rw, rb, rww, rwb, rbb

    def loss(self, w: Any, b: Any) -> np.ndarray:
        r = self._parts(w, b)[0]
        return np.mean(r * r, axis=-1)

    def grad(self, w: Any, b: Any) -> np.ndarray:
        r, rw, rb, *_ = self._parts(w, b)
        return np.stack([np.mean(2 * r * rw, -1), np.mean(2 * r * rb, -1)], -1)

    def hessian(self, w: Any, b: Any) -> np.ndarray:
        r, rw, rb, rww, rwb, rbb = self._parts(w, b)
        hww = np.mean(2 * (rw * rw + r * rww), -1)
        hwb = np.mean(2 * (rw * rb + r * rwb), -1)
        hbb = np.mean(2 * (rb * rb + r * rbb), -1)
        return np.stack([np.stack([hww, hwb], -1), np.stack([hwb, hbb], -1)], -2)

    def _work_per_point(self) -> int:
        return self.x.size

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "SquaredResidual",
            "residual": self.kind,
            "x": self.x.tolist(),
            "y": self.y.tolist(),
            "k": self.k,
        }


def physics_informed(
    *,
    k: float = 1.0,
    u0: float = 1.0,
    data_x: Sequence[float] = (0.2, 0.5, 0.9),
    collocation: Sequence[float] | int = 11,
    weights: Mapping[str, float] | None = None,
    noise: float = 0.0,
    seed: int | None = None,
) -> WeightedSum:
    """The physics-informed example ``u' + k·u = 0``, ``u(0) = u₀``.

    Parameters
    ----------
    k, u0 : float, default=1.0
        Equation and boundary value; exact answer ``(w, b) = (−k, u₀)``.
    data_x : sequence of float, default=(0.2, 0.5, 0.9)
        Where the data term samples the exact solution ``u₀·e^(−k·x)``.
    collocation : int or sequence of float, default=11
        Collocation points of the residual term (a count means evenly spaced
        on [0, 1]).
    weights : mapping, optional
        Weights for ``data``, ``residual``, ``boundary`` (default 1 each).
    noise : float, default=0.0
        Standard deviation of Gaussian noise added to the data (then the
        exact answer is no longer a minimum of the data term); needs ``seed``.
    seed : int, optional

    Returns
    -------
    WeightedSum
        Parameters ``(w, b)``; terms ``data``, ``residual``, ``boundary``.

    Examples
    --------
    >>> from lossmap.toy import terms
    >>> pinn = terms.physics_informed()
    >>> float(pinn.loss(-1.0, 1.0)), list(pinn.terms)
    (0.0, ['data', 'residual', 'boundary'])
    """
    k = check_float("k", k)
    u0 = check_float("u0", u0)
    noise = check_float("noise", noise, minimum=0.0)
    xd = check_finite_array("data_x", data_x, ndim=1)
    yd = u0 * np.exp(-k * xd)
    if noise:
        if seed is None:
            raise ValueError("`seed` is required with `noise` > 0, got None")
        yd = yd + np.random.default_rng(seed).normal(0.0, noise, xd.shape)
    if isinstance(collocation, int | np.integer) and not isinstance(collocation, bool):
        xc = np.linspace(0.0, 1.0, check_int("collocation", collocation, minimum=1))
    elif np.ndim(collocation) == 0:
        raise TypeError(
            f"`collocation` must be a number of points (int) or a sequence of "
            f"points, got {collocation!r}"
        )
    else:
        xc = check_finite_array("collocation", collocation, ndim=1)
    parts = {
        "data": SquaredResidual("value", xd, yd, title="data"),
        "residual": SquaredResidual("ode", xc, k=k, title="residual u' + ku"),
        "boundary": SquaredResidual("value", [0.0], [u0], title="boundary u(0)"),
    }
    region = ((-k - 2.0, -k + 2.0), (u0 - 1.5, u0 + 1.5))
    return WeightedSum(
        parts,
        weights,
        region=region,
        title=f"u' + {k:g}u = 0, u(0) = {u0:g}; u = b·e^(w·x)",
    )


# ------------------------------------------------------------ regularisation
class Penalty(Landscape):
    """``w² + b²`` (``kind="l2"``) or ``|w| + |b|`` (``kind="l1"``)."""

    param_names = ("w", "b")

    def __init__(self, kind: str = "l2", *, region: Region | None = None) -> None:
        if kind not in ("l2", "l1"):
            raise ValueError(f"`kind` must be one of ['l2', 'l1'], got {kind!r}")
        self.kind = kind
        self.smooth = kind == "l2"
        self.title = "w² + b²" if kind == "l2" else "|w| + |b|"
        if region is not None:
            self.region = region

    def loss(self, w: Any, b: Any) -> np.ndarray:
        w, b = np.broadcast_arrays(np.asarray(w, float), np.asarray(b, float))
        return w * w + b * b if self.kind == "l2" else np.abs(w) + np.abs(b)

    def grad(self, w: Any, b: Any) -> np.ndarray:
        w, b = np.broadcast_arrays(np.asarray(w, float), np.asarray(b, float))
        t = np.stack([w, b], -1)
        return 2.0 * t if self.kind == "l2" else np.sign(t)

    def hessian(self, w: Any, b: Any) -> np.ndarray:
        w, _ = np.broadcast_arrays(np.asarray(w, float), np.asarray(b, float))
        eye = np.eye(2) * (2.0 if self.kind == "l2" else 0.0)
        return np.broadcast_to(eye, (*w.shape, 2, 2)).copy()

    def describe(self) -> dict[str, Any]:
        return {"kind": "Penalty", "penalty": self.kind}


def regularised(problem: Any, *, l2: float = 0.0, l1: float = 0.0) -> WeightedSum:
    """A Problem's data loss plus penalties, as named terms.

    Terms ``data`` (the problem without penalty), and ``l2``/``l1`` when their
    strength is > 0, weighted by the strength. Its total equals
    ``problem.replace(l2=l2, l1=l1)``.
    """
    l2 = check_float("l2", l2, minimum=0.0)
    l1 = check_float("l1", l1, minimum=0.0)
    base = problem.replace(l2=0.0, l1=0.0)
    parts: dict[str, Landscape] = {"data": base}
    weights = {"data": 1.0}
    for name, strength in (("l2", l2), ("l1", l1)):
        if strength:
            parts[name] = Penalty(name, region=base.region)
            weights[name] = strength
    return WeightedSum(parts, weights, region=base.region, title=base.title)


@dataclass(frozen=True, eq=False)
class RegularisationPath:
    """Minimum of a problem as a penalty grows.

    Attributes
    ----------
    kind : {"l2", "l1"}
    strengths : ndarray of shape (m,)
    theta : ndarray of shape (m, 2)
        The minimiser ``(w, b)`` at each strength.
    loss : ndarray of shape (m,)
        The penalised loss at the minimiser.
    data_loss : ndarray of shape (m,)
        The unpenalised (data) loss there.
    norm : ndarray of shape (m,)
        ``‖θ*‖₂`` (l2) or ``‖θ*‖₁`` (l1).
    """

    kind: str
    strengths: np.ndarray
    theta: np.ndarray
    loss: np.ndarray
    data_loss: np.ndarray
    norm: np.ndarray


def regularisation_path(
    problem: Any, strengths: Sequence[float], *, kind: str = "l2"
) -> RegularisationPath:
    """The minimiser of ``problem`` with penalty ``kind`` at each strength.

    Parameters
    ----------
    problem : lossmap.toy.Problem
    strengths : sequence of float >= 0
    kind : {"l2", "l1"}, default="l2"

    Returns
    -------
    RegularisationPath
    """
    if kind not in ("l2", "l1"):
        raise ValueError(f"`kind` must be one of ['l2', 'l1'], got {kind!r}")
    lam = check_finite_array("strengths", strengths, ndim=1)
    if np.any(lam < 0):
        raise ValueError(f"`strengths` must be >= 0, got min {lam.min()}")
    base = problem.replace(l2=0.0, l1=0.0)
    thetas, losses = [], []
    for s in lam:
        m = base.replace(**{kind: float(s)}).minimum()
        thetas.append(m.theta)
        losses.append(m.loss)
    theta = np.array(thetas)
    ord_ = 2 if kind == "l2" else 1
    return RegularisationPath(
        kind,
        lam,
        theta,
        np.array(losses),
        base.loss_at(theta),
        np.linalg.norm(theta, ord=ord_, axis=-1),
    )
