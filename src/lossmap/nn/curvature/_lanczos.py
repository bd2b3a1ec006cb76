"""Extreme eigenpairs by the Lanczos method with full reorthogonalisation.

Lanczos (1950) builds an orthonormal Krylov basis ``Q`` in which the matrix is
tridiagonal, ``T = Qᵀ M Q``; the eigenvalues of ``T`` (Ritz values) converge to
the extreme eigenvalues of ``M`` first. Every new basis vector is
reorthogonalised against all previous ones, twice ("twice is enough",
Giraud, Langou & Rozložník 2005), so no spurious copies appear (Golub & Van
Loan, *Matrix Computations*, 4th ed., §10.1–10.3; Parlett, *The Symmetric
Eigenvalue Problem*, ch. 13). Several start vectors make it the block
Lanczos method (Golub & Underwood 1977), which also sees repeated
eigenvalues; the block's products run in one pass over the data.

Honest reporting:

* ``k`` pairs always come back: when the Krylov space closes early (an
  invariant subspace, e.g. ``M = 2·I``), the iteration continues from a new
  random vector orthogonal to the basis; ``k > dim`` is refused.
* Convergence is judged on the explicit residuals ``‖M v − λ v‖`` of the
  returned pairs against ``tol · ‖M‖``, with ``‖M‖`` estimated by the largest
  Ritz value in magnitude and ``tol`` never below a multiple of the dtype's
  machine epsilon (products in float32 carry rounding errors of about
  ``eps·‖M‖`` that no number of steps removes). For a symmetric matrix each
  returned eigenvalue is then within the residual of an exact eigenvalue
  (and typically within ``residual² / gap``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lossmap._validation import check_choice, check_float, check_int
from lossmap.nn.curvature._protocol import count, matmat

__all__ = ["WHICH", "Eigen", "default_tol", "eigenvalues", "lanczos_edges"]

WHICH = ("largest", "smallest", "magnitude")
#: Tolerance is at least this many machine epsilons (relative to ‖M‖).
EPS_FACTOR = 100.0
#: Basis memory cap when choosing the default number of steps.
BASIS_BYTES = 1 << 30


def default_tol(dtype: torch.dtype) -> float:
    """Default residual tolerance relative to ‖M‖: 1e-8, or 100 eps if larger."""
    return max(1e-8, EPS_FACTOR * torch.finfo(dtype).eps)


@dataclass(frozen=True)
class Eigen:
    """Eigenvalues in the order asked for, unit eigenvectors and their quality.

    Attributes
    ----------
    values : ndarray (k,)
    vectors : torch.Tensor (k, dim)
    residuals : ndarray (k,)
        Explicit ``‖M v − λ v‖`` of each pair.
    iterations : int
        Lanczos steps taken.
    products : int
        Matrix-vector products used (steps plus the residual check).
    tolerance : float
        Absolute residual threshold the pairs were tested against.
    norm : float
        Estimate of ‖M‖ (largest Ritz value in magnitude).
    which : str
    restarts : int
        Times the Krylov space closed and a new random vector was drawn.
    """

    values: np.ndarray
    vectors: torch.Tensor
    residuals: np.ndarray
    iterations: int
    products: int
    tolerance: float = 0.0
    norm: float = 0.0
    which: str = "largest"
    restarts: int = 0

    @property
    def converged(self) -> bool:
        """Whether every residual is at most :attr:`tolerance`."""
        return bool(np.all(self.residuals <= self.tolerance))


def _pick(lam: np.ndarray, which: str, k: int) -> np.ndarray:
    order = {
        "largest": np.argsort(-lam, kind="stable"),
        "smallest": np.argsort(lam, kind="stable"),
        "magnitude": np.argsort(-np.abs(lam), kind="stable"),
    }[which]
    return order[:k]


def _orthonormal_rows(
    W: torch.Tensor,
    basis: torch.Tensor,
    gen: torch.Generator,
    tiny: float,
) -> tuple[torch.Tensor, int]:
    """Rows of ``W`` made orthonormal to ``basis`` and to each other.

    A row that is (numerically) inside the span already — the Krylov space
    closed in that direction — is replaced by a random vector orthogonal to
    everything, which starts a new Krylov sequence. Returns the rows and the
    number replaced; fewer rows come back when the space is exhausted.
    """
    rows: list[torch.Tensor] = []
    fresh = 0
    for w in W:
        for attempt in range(3):
            for _ in range(2):  # "twice is enough"
                if basis.shape[0]:
                    w = w - basis.T @ (basis @ w)
                for r in rows:
                    w = w - torch.dot(r, w) * r
            nrm = float(torch.linalg.vector_norm(w))
            if nrm > tiny:
                rows.append(w / nrm)
                break
            if attempt == 2 or basis.shape[0] + len(rows) >= w.numel():
                break
            fresh += 1
            w = torch.randn(w.numel(), generator=gen, dtype=torch.float64).to(w)
            tiny = 1e-3  # a random unit vector: "inside" means the space is full
    if not rows:
        return W[:0], fresh
    return torch.stack(rows), fresh


def lanczos_edges(
    op: Any,
    wanted: dict[str, int],
    *,
    tol: float | None = None,
    max_iter: int | None = None,
    block: int | None = None,
    seed: int = 0,
) -> dict[str, Eigen]:
    """Run one (block) Lanczos iteration until the wanted pairs converge.

    ``wanted`` maps ``"largest"``, ``"smallest"`` or ``"magnitude"`` to the
    number of pairs; one Krylov basis serves them all (both ends of the
    spectrum converge together). ``block`` vectors are multiplied per step in
    one pass (default: the largest number of pairs wanted, at most 8): a
    Krylov space grown from ``b`` start vectors holds up to ``b`` copies of a
    repeated eigenvalue, which a single start vector cannot. ``max_iter``
    caps the basis size (products before the final residual check). The
    Ritz values come from the projection ``Qᵀ M Q`` of the operator on the
    basis, so they stay exact Rayleigh-Ritz values when a block closes and a
    new random vector is drawn. Returns one :class:`Eigen` per key.
    """
    n = int(op.dim)
    for which, k in wanted.items():
        check_choice("which", which, WHICH)
        check_int("k", k, minimum=1, maximum=n)
    kmax = max(wanted.values())
    if tol is None:
        tol = default_tol(op.dtype)
    tol = check_float("tol", tol, minimum=0.0, strict_min=True)
    eps = torch.finfo(op.dtype).eps
    tol = max(tol, EPS_FACTOR * eps)
    p = check_int("block", min(kmax, 8) if block is None else block, minimum=1)
    p = min(p, n)
    if max_iter is None:
        item = torch.empty((), dtype=op.dtype).element_size()
        cap = max(kmax + p, BASIS_BYTES // max(1, n * item))
        max_iter = min(n, max(300, 10 * kmax), cap)
    max_iter = check_int("max_iter", max_iter, minimum=kmax, maximum=n)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    before = count(op)
    Q = torch.empty((max_iter, n), dtype=op.dtype, device=op.device)
    T = np.zeros((max_iter, max_iter))
    start = torch.randn(min(p, max_iter), n, generator=gen, dtype=torch.float64)
    Qb, _ = _orthonormal_rows(start.to(op.dtype).to(op.device), Q[:0], gen, 1e-3)
    m, restarts, strict, checked = 0, 0, 1.0, 0
    result: dict[str, Eigen] | None = None
    while True:
        b = Qb.shape[0]
        Q[m : m + b] = Qb
        W = matmat(op, Qb)
        basis = Q[: m + b]
        C = basis @ W.T
        W = W - C.T @ basis
        C2 = basis @ W.T
        W = W - C2.T @ basis
        col = (C + C2).double().cpu().numpy()
        T[: m + b, m : m + b] = col
        T[m : m + b, :m] = col[:m].T
        diag = T[m : m + b, m : m + b]
        T[m : m + b, m : m + b] = (diag + diag.T) / 2
        m += b
        G = (W @ W.T).double().cpu().numpy()
        full = m >= max_iter or m >= n
        if m >= kmax and (full or m - checked >= max(1, checked // 50)):
            checked = m
            lam, S = np.linalg.eigh(T[:m, :m])
            norm = float(np.max(np.abs(lam)))
            threshold = tol * max(norm, np.finfo(float).tiny)
            last = S[m - b : m]
            est = np.sqrt(np.maximum(np.einsum("bi,bc,ci->i", last, G, last), 0))
            ok = all(
                np.all(est[_pick(lam, wh, k)] <= threshold * strict)
                for wh, k in wanted.items()
            )
            if ok or full:
                result = _finish(op, Q[:m], lam, S, wanted, threshold, m, restarts)
                if full or all(r.converged for r in result.values()):
                    break
                strict *= 0.1
        norm_now = float(np.max(np.abs(np.diag(T[:m, :m])))) if m else 0.0
        tiny = EPS_FACTOR * eps * max(norm_now, np.finfo(float).tiny)
        nxt = min(p, max_iter - m, n - m)
        Qb, fresh = _orthonormal_rows(W[:nxt], Q[:m], gen, tiny)
        restarts += fresh
        if Qb.shape[0] == 0:  # the whole space is spanned
            lam, S = np.linalg.eigh(T[:m, :m])
            norm = float(np.max(np.abs(lam)))
            threshold = tol * max(norm, np.finfo(float).tiny)
            result = _finish(op, Q[:m], lam, S, wanted, threshold, m, restarts)
            break
    used = count(op) - before
    return {
        wh: Eigen(
            r.values,
            r.vectors,
            r.residuals,
            r.iterations,
            used,
            r.tolerance,
            r.norm,
            wh,
            r.restarts,
        )
        for wh, r in result.items()
    }


def _finish(
    op: Any,
    Q: torch.Tensor,
    lam: np.ndarray,
    S: np.ndarray,
    wanted: dict[str, int],
    threshold: float,
    steps: int,
    restarts: int,
) -> dict[str, Eigen]:
    out = {}
    for wh, k in wanted.items():
        idx = _pick(lam, wh, k)
        Y = torch.as_tensor(S[:, idx], dtype=op.dtype, device=op.device)
        vecs = (Q.T @ Y).T
        vecs = vecs / torch.linalg.vector_norm(vecs, dim=1, keepdim=True)
        MV = matmat(op, vecs)
        vals = lam[idx]
        lam_t = torch.as_tensor(vals, dtype=op.dtype, device=op.device)
        res = torch.linalg.vector_norm(MV - lam_t[:, None] * vecs, dim=1)
        out[wh] = Eigen(
            vals.copy(),
            vecs,
            res.double().cpu().numpy(),
            steps,
            0,
            threshold,
            float(np.max(np.abs(lam))),
            wh,
            restarts,
        )
    return out


def eigenvalues(
    op: Any,
    k: int = 1,
    *,
    which: str = "largest",
    tol: float | None = None,
    max_iter: int | None = None,
    block: int | None = None,
    seed: int = 0,
) -> Eigen:
    """The ``k`` extreme eigenpairs of a curvature operator.

    Parameters
    ----------
    op : CurvatureOperator (or anything with ``dim``, ``dtype``, ``device``,
        ``matmat`` and ``products``)
    k : int, default=1
    which : {"largest", "smallest", "magnitude"}, default="largest"
        Algebraically largest (sharpest directions), smallest (most negative:
        escape directions at a saddle), or largest in absolute value.
    tol : float, optional
        Residual tolerance relative to ‖M‖ (default :func:`default_tol`;
        never below 100 machine epsilons of the operator's dtype).
    max_iter : int, optional
        Largest basis (default ``min(dim, max(300, 10k))``, less when the
        basis would exceed 1 GiB).
    block : int, optional
        Vectors per Lanczos step, multiplied in one pass (default ``min(k,
        8)``): finds up to ``block`` copies of a repeated eigenvalue.
    seed : int, default=0
        Seeds the start vector (and any restart).

    Returns
    -------
    Eigen
        ``k`` pairs; ``converged`` says whether each residual met the
        tolerance.

    Examples
    --------
    >>> import torch, torch.nn.functional as F
    >>> from lossmap.nn.curvature import HessianOperator, eigenvalues
    >>> net = torch.nn.Linear(2, 1, bias=False).double()
    >>> x = torch.eye(2, dtype=torch.float64)
    >>> op = HessianOperator(net, F.mse_loss, (x, torch.zeros(2, 1).double()))
    >>> e = eigenvalues(op, 2)    # H = 2/N XᵀX = I
    >>> e.values.round(12).tolist(), e.converged
    ([1.0, 1.0], True)
    """
    check_choice("which", which, WHICH)
    k = check_int("k", k, minimum=1, maximum=int(op.dim))
    return lanczos_edges(
        op, {which: k}, tol=tol, max_iter=max_iter, block=block, seed=seed
    )[which]
