"""Stationary points of a 2-parameter landscape and their kind.

:func:`critical_points` runs Newton's method on the gradient, ``θ ← θ −
H(θ)⁻¹·∇L(θ)``, from a grid of starts over the region, all starts at once.
Newton on ∇L is attracted to every stationary point (minima, maxima and saddles
alike), so the grid finds them all when it is fine enough to put a start in
each one's basin. Points that agree to ``merge`` are merged; each is
classified by the eigenvalues of the Hessian (second-derivative test, e.g.
Nocedal & Wright, "Numerical Optimization", 2nd ed., Thm 2.3-2.4):

- both > 0: minimum; both < 0: maximum; opposite signs: saddle;
- an eigenvalue within ``degenerate_tol`` of zero (relative to the largest
  curvature of the landscape over the region): degenerate, the test is
  inconclusive (e.g. the monkey saddle at the origin).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lossmap._validation import check_float, check_int
from lossmap.toy._base import Landscape, Region

__all__ = ["KINDS", "CriticalPoint", "classify", "critical_points"]

KINDS = ("minimum", "maximum", "saddle", "degenerate")


@dataclass(frozen=True)
class CriticalPoint:
    """One stationary point.

    Attributes
    ----------
    theta : ndarray of shape (2,)
    value : float
        The landscape's value there.
    kind : {"minimum", "maximum", "saddle", "degenerate"}
    eigenvalues : ndarray of shape (2,)
        Of the Hessian, ascending.
    is_global : bool
        True for the minima of lowest value among those found (False for
        other kinds).
    grad_norm : float
        ``‖∇L(θ)‖`` at the point (how well Newton converged).
    """

    theta: np.ndarray
    value: float
    kind: str
    eigenvalues: np.ndarray
    is_global: bool
    grad_norm: float

    def __post_init__(self) -> None:
        self.theta.setflags(write=False)
        self.eigenvalues.setflags(write=False)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "theta": [float(v) for v in self.theta],
            "value": self.value,
            "kind": self.kind,
            "eigenvalues": [float(v) for v in self.eigenvalues],
            "is_global": self.is_global,
        }


def classify(eigenvalues: Any, *, scale: float = 1.0, tol: float = 1e-6) -> str:
    """Kind of a stationary point from its Hessian's eigenvalues ``(λ1, λ2)``.

    An eigenvalue with ``|λ| <= tol·scale`` counts as zero (degenerate).
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if np.min(np.abs(lam)) <= tol * scale:
        return "degenerate"
    if np.all(lam > 0):
        return "minimum"
    if np.all(lam < 0):
        return "maximum"
    return "saddle"


def _newton_all(
    f: Landscape, theta: np.ndarray, max_step: float, max_iter: int, xtol: float
) -> np.ndarray:
    """Newton's method on ∇L from every row of ``theta`` (n, 2), vectorised.

    A start stops when its Newton step is shorter than ``xtol`` (or its
    gradient is exactly zero).
    """
    live = np.ones(theta.shape[0], dtype=bool)
    theta = theta.copy()
    with np.errstate(all="ignore"):
        for _ in range(max_iter):
            if not live.any():
                break
            t = theta[live]
            g = f.grad_at(t)
            h = f.hessian_at(t)
            det = h[:, 0, 0] * h[:, 1, 1] - h[:, 0, 1] * h[:, 1, 0]
            # closed-form 2x2 solve; a singular Hessian gets a gradient step
            ok = np.abs(det) > 1e-300
            safe = np.where(ok, det, 1.0)
            sx = (h[:, 1, 1] * g[:, 0] - h[:, 0, 1] * g[:, 1]) / safe
            sy = (h[:, 0, 0] * g[:, 1] - h[:, 1, 0] * g[:, 0]) / safe
            step = np.where(ok[:, None], np.stack([sx, sy], -1), 1e-3 * g)
            norm = np.linalg.norm(step, axis=-1)
            step *= np.minimum(1.0, max_step / np.maximum(norm, 1e-300))[:, None]
            theta[live] = t - step
            idx = np.flatnonzero(live)
            done = (
                ~np.isfinite(norm) | (norm <= xtol) | ~np.isfinite(theta[idx]).all(-1)
            )
            live[idx[done]] = False
    return theta


def critical_points(
    landscape: Landscape,
    region: Region | None = None,
    *,
    starts: int = 24,
    max_iter: int = 100,
    gtol: float = 1e-9,
    merge: float = 1e-5,
    degenerate_tol: float = 1e-6,
) -> list[CriticalPoint]:
    """Every stationary point Newton's method finds from a grid of starts.

    Parameters
    ----------
    landscape : Landscape
        Needs an exact Hessian (``smooth`` landscapes; on kinked ones such as
        MAE only the smooth pieces are searched).
    region : ((lo0, hi0), (lo1, hi1)), optional
        Where to look; defaults to ``landscape.region``. Points found outside
        it are dropped.
    starts : int, default=24
        Starts per axis (a ``starts x starts`` grid); raise it for landscapes
        with many stationary points (Rastrigin).
    max_iter : int, default=100
        Newton iterations.
    gtol : float, default=1e-9
        A start counts as converged when ``‖∇L‖ <= gtol·(1 + curvature scale)``.
    merge : float, default=1e-5
        Points closer than ``merge`` times the region's diagonal are one point.
    degenerate_tol : float, default=1e-6
        Eigenvalues below this fraction of the largest curvature seen over the
        region count as zero.

    Returns
    -------
    list of CriticalPoint
        Sorted by value, ascending.

    Examples
    --------
    >>> from lossmap.analysis import critical_points
    >>> from lossmap.toy import functions
    >>> pts = critical_points(functions.get("himmelblau"))
    >>> sorted({p.kind for p in pts}), len(pts)
    (['maximum', 'minimum', 'saddle'], 9)
    """
    starts = check_int("starts", starts, minimum=2, maximum=1000)
    max_iter = check_int("max_iter", max_iter, minimum=1)
    gtol = check_float("gtol", gtol, minimum=0.0, strict_min=True)
    merge = check_float("merge", merge, minimum=0.0, strict_min=True)
    degenerate_tol = check_float("degenerate_tol", degenerate_tol, minimum=0.0)
    a0, a1 = landscape.grid(region, steps=starts)
    (lo0, hi0), (lo1, hi1) = (a0[0], a0[-1]), (a1[0], a1[-1])
    diag = float(np.hypot(hi0 - lo0, hi1 - lo1))
    # offset the grid by a third of a cell: symmetric landscapes put
    # stationary points on the symmetry lines, exactly where a centred grid
    # would start Newton on a singular Hessian.
    d0, d1 = (a0[1] - a0[0]) / 3.0, (a1[1] - a1[0]) / 3.0
    g0, g1 = np.meshgrid(a0 + d0, a1 + d1, indexing="ij")
    theta0 = np.stack([g0.ravel(), g1.ravel()], -1)
    with np.errstate(all="ignore"):
        hs = landscape.hessian_at(np.stack([*np.meshgrid(a0, a1, indexing="ij")], -1))
    curv = float(np.nanmax(np.abs(np.linalg.eigvalsh(hs)))) if hs.size else 1.0
    curv = curv if np.isfinite(curv) and curv > 0 else 1.0
    theta = _newton_all(landscape, theta0, 0.1 * diag, max_iter, 1e-14 * diag)
    with np.errstate(all="ignore"):
        gn = np.linalg.norm(landscape.grad_at(theta), axis=-1)
    pad0, pad1 = 1e-9 * (hi0 - lo0), 1e-9 * (hi1 - lo1)
    keep = (
        np.isfinite(gn)
        & (gn <= gtol * (1 + curv))
        & (theta[:, 0] >= lo0 - pad0)
        & (theta[:, 0] <= hi0 + pad0)
        & (theta[:, 1] >= lo1 - pad1)
        & (theta[:, 1] <= hi1 + pad1)
    )
    theta, gn = theta[keep], gn[keep]
    reps = _merge(theta, gn, merge * diag)
    points = []
    for i in reps:
        lam = np.linalg.eigvalsh(landscape.hessian_at(theta[i]))
        kind = classify(lam, scale=curv, tol=degenerate_tol)
        value = float(landscape.loss_at(theta[i]))
        points.append((theta[i].copy(), value, kind, lam, float(gn[i])))
    mins = [v for _, v, k, _, _ in points if k == "minimum"]
    best = min(mins) if mins else None
    atol = 1e-9 * max(1.0, abs(best)) if best is not None else 0.0
    out = [
        CriticalPoint(
            t,
            v,
            k,
            lam,
            bool(k == "minimum" and best is not None and v <= best + atol),
            g,
        )
        for t, v, k, lam, g in points
    ]
    return sorted(out, key=lambda p: (p.value, p.theta[0], p.theta[1]))


def _merge(theta: np.ndarray, gn: np.ndarray, radius: float) -> list[int]:
    """Indices of one representative (smallest gradient) per cluster."""
    order = np.argsort(gn, kind="stable")
    reps: list[int] = []
    for i in order:
        if not reps or np.min(np.hypot(*(theta[reps] - theta[i]).T)) > radius:
            reps.append(int(i))
    return reps
