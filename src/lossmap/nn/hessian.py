"""Curvature of a network's loss — the original entry points.

Kept for existing code and the ``lossmap hessian`` command; the
implementation lives in :mod:`lossmap.nn.curvature` (operators for the
Hessian, Gauss-Newton and Fisher matrices; Lanczos, Hutchinson, Hutch++, SLQ;
per-block spectra; curvature maps and sharpness).

* :class:`HessianOperator` — the Hessian as a matrix-free operator;
* :func:`top_eigenvalues` — extreme eigenpairs by Lanczos with full
  reorthogonalisation (:func:`lossmap.nn.curvature.eigenvalues`);
* :func:`hessian_trace` — Hutchinson's estimate with its standard error;
* :func:`spectral_density` — stochastic Lanczos quadrature.
"""

from __future__ import annotations

from typing import Any

from lossmap._validation import check_float
from lossmap.nn.curvature import (
    Density,
    Eigen,
    HessianOperator,
    Trace,
    eigenvalues,
    hutchinson,
    slq,
)

__all__ = [
    "Density",
    "Eigen",
    "HessianOperator",
    "Trace",
    "hessian_trace",
    "spectral_density",
    "top_eigenvalues",
]


def top_eigenvalues(
    op: Any,
    k: int = 1,
    *,
    which: str = "largest",
    iterations: int | None = None,
    seed: int = 0,
    tol: float | None = None,
    rtol: float | None = None,
) -> Eigen:
    """The ``k`` extreme eigenpairs; ``iterations`` caps the Lanczos steps.

    See :func:`lossmap.nn.curvature.eigenvalues` (always ``k`` pairs; the
    convergence test is scaled to the dtype and the operator's norm; ``rtol``
    stops once each eigenvalue's error estimate is at most ``rtol·|λ|``).
    """
    return eigenvalues(
        op, k, which=which, tol=tol, rtol=rtol, max_iter=iterations, seed=seed
    )


def hessian_trace(
    op: Any,
    *,
    probes: int = 100,
    seed: int = 0,
    rtol: float | None = None,
    target_se: float | None = None,
    batch: int = 8,
) -> Trace:
    """Hutchinson's trace estimate with Rademacher probes.

    Stops (after at least 10 probes) once the standard error is at most
    ``target_se``, or at most ``rtol · |estimate|``; else after ``probes``.
    See :func:`lossmap.nn.curvature.hutchinson`.
    """
    if rtol is None:
        return hutchinson(
            op, probes=probes, target_se=target_se, seed=seed, batch=batch
        )
    rtol = check_float("rtol", rtol, minimum=0.0, strict_min=True)
    first = hutchinson(op, probes=min(probes, 10), seed=seed, batch=batch)
    target = rtol * abs(first.value)
    if target_se is not None:
        target = min(target, target_se)
    return hutchinson(op, probes=probes, target_se=target, seed=seed, batch=batch)


def spectral_density(
    op: Any,
    *,
    iterations: int = 80,
    probes: int = 4,
    grid_points: int = 512,
    sigma: float | None = None,
    seed: int = 0,
) -> Density:
    """Eigenvalue density by stochastic Lanczos quadrature (see
    :func:`lossmap.nn.curvature.slq`)."""
    return slq(
        op,
        iterations=iterations,
        probes=probes,
        grid_points=grid_points,
        sigma=sigma,
        seed=seed,
    )
