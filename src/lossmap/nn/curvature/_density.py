"""Eigenvalue density by stochastic Lanczos quadrature (SLQ).

For a unit probe ``q = z/‖z‖`` (Rademacher ``z``), ``m`` Lanczos steps started
at ``q`` give Ritz values ``θⱼ`` and weights ``τⱼ`` (the squared first
components of the eigenvectors of ``T``): the Gauss quadrature of ``qᵀ g(M) q``
for any smooth ``g``, which is an unbiased estimate of ``tr g(M) / n``.
Averaging over probes and smoothing each node with a Gaussian gives the
density (Lin, Saad & Yang 2016, "Approximating spectral densities of large
matrices", SIAM Review; Ghorbani, Krishnan & Xiao 2019, "An investigation into
neural net optimization via Hessian eigenvalue density", ICML). The probes run
together: each Lanczos step is one pass over the data for all of them.

The spread between probes is reported with the result: ``spread`` is the
standard error of the density at each grid point, and ``mean`` /
``mean_stderr`` the first moment (``≈ tr M / n``) with its standard error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lossmap._validation import check_float, check_int
from lossmap.nn.curvature._protocol import count, held, matmat

__all__ = ["Density", "slq"]


@dataclass(frozen=True)
class Density:
    """A smoothed eigenvalue density: ``density[i]`` at ``grid[i]``, ∫ = 1.

    Attributes
    ----------
    grid, density : ndarray (g,)
    nodes, weights : ndarray (probes, m)
        Ritz values and quadrature weights of each probe (weights sum to 1).
    sigma : float
        Gaussian width.
    per_probe : ndarray (probes, g)
        Each probe's smoothed density.
    spread : ndarray (g,)
        Standard error of ``density`` across probes.
    products : int
    """

    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    sigma: float
    per_probe: np.ndarray | None = None
    spread: np.ndarray | None = None
    products: int = 0

    @property
    def probe_means(self) -> np.ndarray:
        """Each probe's first moment ``Σ τⱼ θⱼ`` (≈ tr M / n)."""
        return np.sum(self.nodes * self.weights, axis=1)

    @property
    def mean(self) -> float:
        """First moment of the density (≈ tr M / n)."""
        return float(self.probe_means.mean())

    @property
    def mean_stderr(self) -> float:
        """Standard error of :attr:`mean` across probes (NaN for one probe)."""
        p = self.probe_means
        return float(p.std(ddof=1) / math.sqrt(p.size)) if p.size > 1 else math.nan


def _block_lanczos_paths(
    op: Any, Z: torch.Tensor, m: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``m`` Lanczos steps for each row of ``Z`` at once (independent runs).

    Returns ``alpha`` (p, m), ``beta`` (p, m) and ``length`` (p,): a run
    that closes (invariant subspace) stops there.
    """
    p, n = Z.shape
    Q = torch.zeros((p, m, n), dtype=op.dtype, device=op.device)
    q = Z / torch.linalg.vector_norm(Z, dim=1, keepdim=True)
    alpha = np.zeros((p, m))
    beta = np.zeros((p, m))
    length = np.zeros(p, dtype=int)
    active = np.ones(p, dtype=bool)
    eps = torch.finfo(op.dtype).eps
    for j in range(m):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        Q[idx, j] = q[idx]
        W = matmat(op, q[idx])
        a = torch.sum(W * q[idx], dim=1)
        B = Q[idx, : j + 1]  # (a, j+1, n)
        for _ in range(2):
            W = W - torch.einsum("ajn,aj->an", B, torch.einsum("ajn,an->aj", B, W))
        b = torch.linalg.vector_norm(W, dim=1)
        alpha[idx, j] = a.double().cpu().numpy()
        length[idx] = j + 1
        bn = b.double().cpu().numpy()
        scale = np.maximum(np.abs(alpha[idx, : j + 1]).max(axis=1), 1e-300)
        stop = bn <= 100 * eps * scale
        beta[idx, j] = np.where(stop, 0.0, bn)
        active[idx[stop]] = False
        keep = ~stop
        q = q.clone()
        q[idx[keep]] = W[keep] / b[keep, None]
    return alpha, beta, length


@held
def slq(
    op: Any,
    *,
    iterations: int = 80,
    probes: int = 4,
    grid_points: int = 512,
    sigma: float | None = None,
    seed: int = 0,
) -> Density:
    """Eigenvalue density of a curvature operator by stochastic Lanczos quadrature.

    Parameters
    ----------
    iterations : int, default=80
        Lanczos steps per probe (capped at ``dim``).
    probes : int, default=4
        Independent probes (run together); their spread gives ``spread``.
    grid_points : int, default=512
    sigma : float, optional
        Gaussian width; default 1% of the spectrum's span.
    seed : int, default=0
    """
    m = min(check_int("iterations", iterations, minimum=2), int(op.dim))
    probes = check_int("probes", probes, minimum=1)
    grid_points = check_int("grid_points", grid_points, minimum=16)
    gen = torch.Generator(device="cpu").manual_seed(check_int("seed", seed, minimum=0))
    Z = torch.randint(0, 2, (probes, op.dim), generator=gen).to(op.dtype) * 2 - 1
    before = count(op)
    alpha, beta, length = _block_lanczos_paths(op, Z.to(op.device), m)
    nodes = np.zeros((probes, m))
    weights = np.zeros((probes, m))
    for i in range(probes):
        L = int(length[i])
        T = (
            np.diag(alpha[i, :L])
            + np.diag(beta[i, : L - 1], 1)
            + np.diag(beta[i, : L - 1], -1)
        )
        lam, S = np.linalg.eigh(T)
        nodes[i, :L], weights[i, :L] = lam, S[0] ** 2
        nodes[i, L:] = lam[-1]
    lo, hi = float(nodes.min()), float(nodes.max())
    span = max(hi - lo, 1e-12 * max(1.0, abs(hi)))
    if sigma is None:
        sigma = 0.01 * span
    sigma = check_float("sigma", sigma, minimum=0.0, strict_min=True)
    grid = np.linspace(lo - 6 * sigma, hi + 6 * sigma, grid_points)
    diff = (grid[None, None, :] - nodes[..., None]) / sigma
    gauss = np.exp(-0.5 * diff**2) / (sigma * math.sqrt(2 * math.pi))
    per_probe = np.einsum("pm,pmg->pg", weights, gauss)
    density = per_probe.mean(axis=0)
    spread = (
        per_probe.std(axis=0, ddof=1) / math.sqrt(probes)
        if probes > 1
        else np.full(grid_points, np.nan)
    )
    return Density(
        grid,
        density,
        nodes,
        weights,
        float(sigma),
        per_probe,
        spread,
        count(op) - before,
    )
