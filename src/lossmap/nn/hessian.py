"""Curvature of a network's loss: Hessian-vector products and their spectra.

The Hessian of the loss with respect to all parameters is never formed. A
:class:`HessianOperator` applies it to a vector by double back-propagation
(reverse-over-reverse: differentiate ``g(θ)·v`` where ``g`` is the gradient
built with ``create_graph=True``). On top of it:

* :func:`top_eigenvalues` — the largest (or smallest) eigenvalues and their
  eigenvectors by the Lanczos method with full reorthogonalisation
  (Lanczos 1950; Golub & Van Loan, *Matrix Computations*, 4th ed., §10.1);
* :func:`hessian_trace` — Hutchinson's estimator ``tr H ≈ mean_k zₖᵀ H zₖ`` with
  Rademacher probes ``z`` (Hutchinson 1989, "A stochastic estimator of the trace
  of the influence matrix for Laplacian smoothing splines"), reported with its
  standard error;
* :func:`spectral_density` — stochastic Lanczos quadrature (Lin, Saad & Yang
  2016, "Approximating spectral densities of large matrices"; Ghorbani,
  Krishnan & Xiao 2019, "An investigation into neural net optimization via
  Hessian eigenvalue density"), a Gaussian-smoothed estimate of the eigenvalue
  density.

Negative eigenvalues mean the point is not a minimum (a saddle, when positive
ones exist too); a spectrum concentrated near zero marks a flat region.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.func import functional_call

from lossmap._validation import check_choice, check_float, check_int

__all__ = [
    "Density",
    "Eigen",
    "HessianOperator",
    "Trace",
    "hessian_trace",
    "spectral_density",
    "top_eigenvalues",
]


def _as_tensors(data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(data, tuple | list) and len(data) == 2:
        x, y = data
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
            return x, y
    if isinstance(data, torch.utils.data.DataLoader):
        xs, ys = zip(*((bx, by) for bx, by in data))
        return torch.cat(xs), torch.cat(ys)
    raise TypeError(
        f"`data` must be a pair of tensors (inputs, targets) or a DataLoader, got "
        f"{type(data).__name__}"
    )


class HessianOperator:
    """The Hessian of ``mean loss`` over ``data`` as a linear operator.

    Parameters
    ----------
    model : torch.nn.Module
        Evaluated with ``torch.func.functional_call``; never modified. It is put
        in eval mode for the products (BatchNorm uses running statistics,
        dropout is off) and its mode is restored afterwards.
    loss_fn : callable ``(outputs, targets) -> scalar tensor``
        A *mean* loss such as ``torch.nn.functional.cross_entropy``.
    data : (inputs, targets) tensors or a DataLoader
    params : sequence of str, optional
        Names of the parameters to differentiate (default: every parameter
        with ``requires_grad``); the others stay fixed.
    batch_size : int, optional
        Rows per tile. Tiles are weighted by their size, so the operator is the
        Hessian of the mean over the whole data set.

    Notes
    -----
    When the data fits in one tile, the gradient graph is built once and kept:
    each product is then one backward pass.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: Callable[..., torch.Tensor],
        data: Any,
        *,
        params: list[str] | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.inputs, self.targets = _as_tensors(data)
        named = dict(model.named_parameters())
        if params is None:
            params = [n for n, p in named.items() if p.requires_grad]
        unknown = [n for n in params if n not in named]
        if unknown:
            raise ValueError(
                f"`params` must name parameters of the model, got unknown {unknown}; "
                f"known: {list(named)}"
            )
        if not params:
            raise ValueError("`params` must name at least one parameter, got none")
        self.names = list(params)
        self.shapes = [named[n].shape for n in self.names]
        self.sizes = [named[n].numel() for n in self.names]
        self.theta = [named[n].detach() for n in self.names]
        self.fixed = {n: p.detach() for n, p in named.items() if n not in self.names}
        self.buffers = {n: b for n, b in model.named_buffers()}
        n_rows = self.inputs.shape[0]
        self.batch_size = (
            n_rows
            if batch_size is None
            else check_int("batch_size", batch_size, minimum=1)
        )
        self.dim = int(sum(self.sizes))
        self.dtype = self.theta[0].dtype
        self.device = self.theta[0].device
        self.products = 0
        self._graph: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None
        self._check_scalar_loss()

    # ------------------------------------------------------------ internals
    def _loss(
        self, theta: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        values = dict(zip(self.names, theta))
        values.update(self.fixed)
        values.update(self.buffers)
        was_training = self.model.training
        self.model.eval()
        try:
            out = functional_call(self.model, values, (x,))
        finally:
            self.model.train(was_training)
        return self.loss_fn(out, y)

    def _check_scalar_loss(self) -> None:
        with torch.no_grad():
            value = self._loss(self.theta, self.inputs[:2], self.targets[:2])
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else value
            raise ValueError(
                f"`loss_fn` must return a scalar (a mean loss), got {shape}"
            )

    def _tiles(self) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
        n = self.inputs.shape[0]
        out = []
        for start in range(0, n, self.batch_size):
            x = self.inputs[start : start + self.batch_size]
            out.append(
                (x, self.targets[start : start + self.batch_size], x.shape[0] / n)
            )
        return out

    def _split(self, v: torch.Tensor) -> list[torch.Tensor]:
        return [c.view(s) for c, s in zip(torch.split(v, self.sizes), self.shapes)]

    def flatten(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """Concatenate per-parameter tensors into one vector of length :attr:`dim`."""
        return torch.cat([t.reshape(-1) for t in tensors])

    def unflatten(self, v: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split a vector of length :attr:`dim` into named parameter-shaped tensors."""
        return dict(zip(self.names, self._split(v)))

    # --------------------------------------------------------------- public
    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``H @ v`` for a vector ``v`` of shape ``(dim,)``."""
        if v.shape != (self.dim,):
            raise ValueError(f"`v` must have shape ({self.dim},), got {tuple(v.shape)}")
        v = v.to(self.dtype).to(self.device)
        parts = self._split(v)
        self.products += 1
        tiles = self._tiles()
        if len(tiles) == 1:
            if self._graph is None:
                theta = [t.clone().requires_grad_(True) for t in self.theta]
                x, y, _ = tiles[0]
                grads = torch.autograd.grad(
                    self._loss(theta, x, y), theta, create_graph=True
                )
                self._graph = (theta, list(grads))
            theta, grads = self._graph
            hv = torch.autograd.grad(
                grads, theta, grad_outputs=parts, retain_graph=True
            )
            return self.flatten([h.detach() for h in hv])
        total = torch.zeros(self.dim, dtype=self.dtype, device=self.device)
        for x, y, weight in tiles:
            theta = [t.clone().requires_grad_(True) for t in self.theta]
            grads = torch.autograd.grad(
                self._loss(theta, x, y), theta, create_graph=True
            )
            hv = torch.autograd.grad(grads, theta, grad_outputs=parts)
            total += weight * self.flatten([h.detach() for h in hv])
        return total

    __matmul__ = matvec

    def dense(self) -> torch.Tensor:
        """The full ``(dim, dim)`` Hessian from ``dim`` products (small models)."""
        eye = torch.eye(self.dim, dtype=self.dtype, device=self.device)
        return torch.stack([self.matvec(e) for e in eye], dim=1)


@dataclass(frozen=True)
class Eigen:
    """Eigenvalues (descending by the chosen order) and unit eigenvectors."""

    values: np.ndarray
    vectors: torch.Tensor
    residuals: np.ndarray
    iterations: int
    products: int

    @property
    def converged(self) -> bool:
        """Whether every residual ``‖Hv − λv‖`` is below 1e-6·max|λ|."""
        scale = max(1.0, float(np.max(np.abs(self.values))))
        return bool(np.all(self.residuals <= 1e-6 * scale))


def _lanczos(
    op: Any, m: int, start: torch.Tensor
) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """m steps of Lanczos with full reorthogonalisation.

    Returns the tridiagonal's diagonal ``alpha`` (m,), off-diagonal ``beta``
    (m-1,) and the basis ``Q`` (m, dim). Stops early (smaller m) on an invariant
    subspace.
    """
    q = start / torch.linalg.vector_norm(start)
    basis = [q]
    alpha: list[float] = []
    beta: list[float] = []
    for j in range(m):
        w = op.matvec(basis[j])
        a = float(torch.dot(w, basis[j]))
        alpha.append(a)
        Q = torch.stack(basis)
        # full reorthogonalisation, twice ("twice is enough")
        for _ in range(2):
            w = w - Q.T @ (Q @ w)
        b = float(torch.linalg.vector_norm(w))
        if j == m - 1 or b < 1e-10 * max(1.0, abs(a)):
            break
        beta.append(b)
        basis.append(w / b)
    return np.array(alpha), np.array(beta), torch.stack(basis[: len(alpha)])


def top_eigenvalues(
    op: HessianOperator,
    k: int = 1,
    *,
    which: str = "largest",
    iterations: int | None = None,
    seed: int = 0,
) -> Eigen:
    """The ``k`` extreme eigenvalues of the Hessian and their eigenvectors.

    Parameters
    ----------
    op : HessianOperator
    k : int, default=1
    which : {"largest", "smallest", "magnitude"}, default="largest"
        Algebraically largest (sharpest directions), smallest (most negative:
        escape directions at a saddle), or largest in absolute value.
    iterations : int, optional
        Lanczos steps (default ``min(dim, max(4k, 40))``).
    seed : int
        Seeds the random start vector.

    Returns
    -------
    Eigen
        ``values`` of shape (k,), ``vectors`` of shape (k, dim), and the
        residual norm of each pair.
    """
    k = check_int("k", k, minimum=1, maximum=op.dim)
    check_choice("which", which, ["largest", "smallest", "magnitude"])
    m = iterations if iterations is not None else min(op.dim, max(4 * k, 40))
    m = check_int("iterations", m, minimum=k, maximum=op.dim)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    start = torch.randn(op.dim, generator=gen, dtype=torch.float64).to(op.dtype)
    before = op.products
    alpha, beta, Q = _lanczos(op, m, start.to(op.device))
    T = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
    lam, S = np.linalg.eigh(T)
    order = {
        "largest": np.argsort(-lam),
        "smallest": np.argsort(lam),
        "magnitude": np.argsort(-np.abs(lam)),
    }[which][:k]
    values = lam[order]
    S_t = torch.as_tensor(S[:, order], dtype=op.dtype, device=op.device)
    vectors = (Q.T @ S_t).T
    vectors = vectors / torch.linalg.vector_norm(vectors, dim=1, keepdim=True)
    residuals = np.array(
        [
            float(torch.linalg.vector_norm(op.matvec(v) - float(val) * v))
            for v, val in zip(vectors, values)
        ]
    )
    return Eigen(values, vectors, residuals, len(alpha), op.products - before)


@dataclass(frozen=True)
class Trace:
    """Hutchinson estimate of ``tr H`` with its standard error."""

    value: float
    stderr: float
    probes: int
    samples: np.ndarray


def hessian_trace(
    op: HessianOperator, *, probes: int = 100, seed: int = 0, rtol: float | None = None
) -> Trace:
    """Hutchinson's trace estimator with Rademacher probes.

    ``tr H = E[zᵀ H z]`` for ``z`` with independent ±1 entries. The standard
    error is ``std(zᵀHz) / sqrt(probes)``.

    Parameters
    ----------
    probes : int, default=100
        Maximum number of probes.
    rtol : float, optional
        Stop early (after at least 10 probes) once the standard error is below
        ``rtol · |estimate|``.
    """
    probes = check_int("probes", probes, minimum=2)
    if rtol is not None:
        rtol = check_float("rtol", rtol, minimum=0.0, strict_min=True)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    samples: list[float] = []
    for _ in range(probes):
        z = torch.randint(0, 2, (op.dim,), generator=gen).to(op.dtype) * 2 - 1
        z = z.to(op.device)
        samples.append(float(torch.dot(z, op.matvec(z))))
        if rtol is not None and len(samples) >= 10:
            est = np.mean(samples)
            if np.std(samples, ddof=1) / math.sqrt(len(samples)) <= rtol * abs(est):
                break
    arr = np.array(samples)
    return Trace(
        float(arr.mean()),
        float(arr.std(ddof=1) / math.sqrt(arr.size)),
        int(arr.size),
        arr,
    )


@dataclass(frozen=True)
class Density:
    """A smoothed eigenvalue density: ``density[i]`` at ``grid[i]``, ∫ = 1.

    ``nodes`` (probes, m) and ``weights`` (probes, m) are the raw Gauss
    quadrature nodes (Ritz values) and weights from each probe.
    """

    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    sigma: float


def spectral_density(
    op: HessianOperator,
    *,
    iterations: int = 80,
    probes: int = 4,
    grid_points: int = 512,
    sigma: float | None = None,
    seed: int = 0,
) -> Density:
    """Eigenvalue density of the Hessian by stochastic Lanczos quadrature.

    For each Rademacher probe ``z``, ``m`` Lanczos steps started at ``z`` give
    Ritz values ``θⱼ`` and weights ``τⱼ = (first component of the j-th
    eigenvector of T)²``; the density is ``mean over probes of Σⱼ τⱼ
    N(λ; θⱼ, σ²)``.

    Parameters
    ----------
    iterations : int, default=80
        Lanczos steps per probe (capped at ``dim``).
    probes : int, default=4
    grid_points : int, default=512
    sigma : float, optional
        Gaussian width; default 1% of the spectrum's span.
    """
    m = min(check_int("iterations", iterations, minimum=2), op.dim)
    probes = check_int("probes", probes, minimum=1)
    grid_points = check_int("grid_points", grid_points, minimum=16)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    nodes, weights = [], []
    for _ in range(probes):
        z = torch.randint(0, 2, (op.dim,), generator=gen).to(op.dtype) * 2 - 1
        alpha, beta, _ = _lanczos(op, m, z.to(op.device))
        T = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
        lam, S = np.linalg.eigh(T)
        pad = m - lam.size
        nodes.append(np.pad(lam, (0, pad), constant_values=lam[-1]))
        weights.append(np.pad(S[0] ** 2, (0, pad)))
    nodes_a, weights_a = np.array(nodes), np.array(weights)
    lo, hi = float(nodes_a.min()), float(nodes_a.max())
    span = max(hi - lo, 1e-12 * max(1.0, abs(hi)))
    if sigma is None:
        sigma = 0.01 * span
    sigma = check_float("sigma", sigma, minimum=0.0, strict_min=True)
    grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, grid_points)
    diff = (grid[None, None, :] - nodes_a[..., None]) / sigma
    gauss = np.exp(-0.5 * diff**2) / (sigma * math.sqrt(2 * math.pi))
    density = np.einsum("pm,pmg->g", weights_a, gauss) / probes
    return Density(grid, density, nodes_a, weights_a, float(sigma))
