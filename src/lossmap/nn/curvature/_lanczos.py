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
* Convergence is judged after every step (no product is spent on it) on the
  residuals ``‖M v − λ v‖`` of the returned pairs, read off the Lanczos
  relation ``M Q = Q T + W Eᵀ`` (exact up to rounding with full
  reorthogonalisation; ``verify=True`` recomputes them with one product per
  pair), against ``tol · ‖M‖``, with ``‖M‖`` estimated by the largest Ritz
  value in magnitude and ``tol`` never below a multiple of the dtype's machine
  epsilon (products in float32 carry rounding errors of about ``eps·‖M‖``
  that no number of steps removes). For a symmetric matrix each returned
  eigenvalue is then within the residual of an exact eigenvalue, and
  typically within ``residual² / gap`` (Kato-Temple).
* ``rtol`` asks for the *values* to a relative accuracy instead: the
  iteration stops as soon as each wanted value's error estimate
  ``min(r, r² / gap)`` is at most ``rtol · |value|``, usually several steps
  before the residual test would (the value converges twice as fast as the
  vector). ``rtol=1e-3`` is what to ask for "λmax to three digits".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lossmap._validation import check_choice, check_float, check_int
from lossmap.nn.curvature._protocol import count, held, matmat

__all__ = ["WHICH", "Eigen", "default_tol", "eigenvalues", "lanczos_edges"]

WHICH = ("largest", "smallest", "magnitude")
#: Tolerance is at least this many machine epsilons (relative to ‖M‖).
EPS_FACTOR = 100.0
TINY = float(np.finfo(float).tiny)
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
        ``‖M v − λ v‖`` of each pair, from the Lanczos relation (explicit
        products with ``verify=True``).
    iterations : int
        Lanczos steps taken.
    products : int
        Matrix-vector products used (the basis size, plus one per pair with
        ``verify=True``).
    tolerance : float
        Absolute residual threshold the pairs were tested against.
    norm : float
        Estimate of ‖M‖ (largest Ritz value in magnitude).
    which : str
    restarts : int
        Times the Krylov space closed and a new random vector was drawn.
    errors : ndarray (k,)
        Estimated error of each value, ``min(r, r² / gap)`` with the gap to
        the nearest other Ritz value (Kato-Temple; an estimate), and never
        below the products' rounding ``eps · ‖M‖``.
    rtol : float or None
        The relative accuracy asked of the values, if any.
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
    errors: np.ndarray | None = None
    rtol: float | None = None

    @property
    def converged(self) -> bool:
        """Whether every pair met the residual :attr:`tolerance` or, with
        :attr:`rtol`, has an estimated error at most ``rtol · |value|``."""
        ok = self.residuals <= self.tolerance
        if self.rtol is not None and self.errors is not None:
            ok = ok | (self.errors <= self.rtol * np.abs(self.values))
        return bool(np.all(ok))


def _pick(lam: np.ndarray, which: str, k: int) -> np.ndarray:
    if which == "largest":
        key = -lam
    elif which == "smallest":
        key = lam
    else:
        key = -np.abs(lam)
    return np.argsort(key, kind="stable")[:k]


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


def _eigh(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of the small projected matrix, by torch's LAPACK.

    NumPy's OpenBLAS would start its own thread pool, whose threads keep
    spinning after each call and take the cores the products run on (on a
    2-core machine that made every step after it several times slower).
    """
    lam, S = torch.linalg.eigh(torch.from_numpy(np.ascontiguousarray(T)))
    return lam.numpy(), S.numpy()


def _work_dtype(op: Any) -> torch.dtype:
    """The basis's dtype: float64 on a CPU (the orthogonalisation and the
    projected matrix then carry no rounding beyond the products', as in
    ARPACK driving a float32 operator), else the operator's."""
    dev = torch.device(op.device) if op.device is not None else torch.device("cpu")
    if dev.type == "cpu" and op.dtype in (torch.float32, torch.float16, torch.bfloat16):
        return torch.float64
    return op.dtype


def _gaps(lam: np.ndarray) -> np.ndarray:
    """Distance from each Ritz value to the nearest other one (inf if alone)."""
    if lam.size < 2:
        return np.full(lam.shape, np.inf)
    diff = np.abs(lam[:, None] - lam[None, :])
    np.fill_diagonal(diff, np.inf)
    return diff.min(axis=1)


def _value_errors(res: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """Error estimates of Ritz values: ``min(r, r² / gap)``.

    ``r`` is a pair's residual norm: some exact eigenvalue lies within ``r``
    of its Ritz value, and within ``r² / gap`` when the rest of the spectrum is
    at least ``gap`` away (Kato 1949, Temple 1928; Parlett, *The Symmetric
    Eigenvalue Problem*, §11.7). ``gap`` is estimated by the distance to the
    nearest other Ritz value (:func:`_gaps`), so this is an estimate, not a
    bound: early in the iteration the Ritz values of the rest of the spectrum
    can still be far from the eigenvalues.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        temple = np.where(np.isfinite(gap) & (gap > 0), res**2 / gap, np.inf)
    return np.minimum(res, temple)


def _next_block(
    W: torch.Tensor, Q: torch.Tensor, gen: torch.Generator, tiny: float
) -> tuple[torch.Tensor, int]:
    """The next basis block from ``W``, already orthogonal to ``Q``: one
    normalisation (one vector) or one QR (a block) when no direction is lost;
    else :func:`_orthonormal_rows`, which also draws new random vectors."""
    if W.shape[0] == 1:
        nrm = float(torch.linalg.vector_norm(W[0]))
        if nrm > tiny:
            return W / nrm, 0
    elif W.shape[0] > 1:
        Qr, R = torch.linalg.qr(W.T)
        if float(torch.diagonal(R).abs().min()) > tiny:
            return Qr.T.contiguous(), 0
    return _orthonormal_rows(W, Q, gen, tiny)


@held
def lanczos_edges(
    op: Any,
    wanted: dict[str, int],
    *,
    tol: float | None = None,
    rtol: float | None = None,
    max_iter: int | None = None,
    block: int | None = None,
    seed: int = 0,
    verify: bool = False,
) -> dict[str, Eigen]:
    """Run one (block) Lanczos iteration until the wanted pairs converge.

    ``wanted`` maps ``"largest"``, ``"smallest"`` or ``"magnitude"`` to the
    number of pairs; one Krylov basis serves them all (both ends of the
    spectrum converge together). ``block`` vectors are multiplied per step in
    one pass (default: the largest number of pairs wanted, at most 8): a
    Krylov space grown from ``b`` start vectors holds up to ``b`` copies of a
    repeated eigenvalue, which a single start vector cannot. ``max_iter``
    caps the basis size (the products). The Ritz values come from the
    projection ``Qᵀ M Q`` of the operator on the basis, so they stay exact
    Rayleigh-Ritz values when a block closes and a new random vector is drawn.

    A pair has converged when its residual is at most ``tol · ‖M‖``, or, with
    ``rtol``, when its value's error estimate (:func:`_value_errors`) is at
    most ``rtol · |value|``. The residuals come from the Lanczos relation
    ``M Q = Q T + W Eᵀ`` (``‖W s_last‖`` for a Ritz vector ``Q s``), which
    with full reorthogonalisation equals the explicit ``‖M v − λ v‖`` up to
    rounding, at no product; ``verify=True`` computes the explicit residuals
    instead (one more product per pair). Returns one :class:`Eigen` per key.
    """
    n = int(op.dim)
    for which, k in wanted.items():
        check_choice("which", which, WHICH)
        check_int("k", k, minimum=1, maximum=n)
    kmax = max(wanted.values())
    if tol is None:
        tol = default_tol(op.dtype)
    tol = check_float("tol", tol, minimum=0.0, strict_min=True)
    if rtol is not None:
        rtol = check_float("rtol", rtol, minimum=0.0, strict_min=True)
    eps = torch.finfo(op.dtype).eps
    work = _work_dtype(op)
    tol = max(tol, EPS_FACTOR * eps)
    p = check_int("block", min(kmax, 8) if block is None else block, minimum=1)
    p = min(p, n)
    if max_iter is None:
        item = torch.empty((), dtype=work).element_size()
        cap = max(kmax + p, BASIS_BYTES // max(1, n * item))
        max_iter = min(n, max(300, 10 * kmax), cap)
    max_iter = check_int("max_iter", max_iter, minimum=kmax, maximum=n)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    before = count(op)
    if p == 1:
        result = _single(op, wanted, kmax, tol, rtol, max_iter, gen, verify, work)
        return _counted(result, count(op) - before, rtol)
    Q = torch.empty((max_iter, n), dtype=work, device=op.device)
    T = np.zeros((max_iter, max_iter))
    start = torch.randn(min(p, max_iter), n, generator=gen, dtype=torch.float64)
    Qb, _ = _orthonormal_rows(start.to(work).to(op.device), Q[:0], gen, 1e-3)
    m, restarts, strict, checked = 0, 0, 1.0, 0
    result: dict[str, Eigen] | None = None
    # Rows of a residual block that a truncated next block (max_iter or dim
    # reached mid-block) left out of the basis, and the basis row of the
    # first: they stay in the Lanczos relation ``M Q = Q T + R``.
    left: torch.Tensor | None = None
    left_at = 0
    while True:
        b = Qb.shape[0]
        Q[m : m + b] = Qb
        W = matmat(op, Qb.to(op.dtype)).to(work)
        basis = Q[: m + b]
        C = torch.mm(basis, W.T)
        W = torch.addmm(W, C.T, basis, alpha=-1)
        C2 = torch.mm(basis, W.T)
        W = torch.addmm(W, C2.T, basis, alpha=-1)
        col = C.add_(C2).to(torch.float64).cpu().numpy()
        T[: m + b, m : m + b] = col
        T[m : m + b, :m] = col[:m].T
        diag = T[m : m + b, m : m + b]
        T[m : m + b, m : m + b] = (diag + diag.T) / 2
        m += b
        full = m >= max_iter or m >= n
        if m >= kmax and (full or m - checked >= max(1, checked // 50)):
            checked = m
            R, rows = W, np.arange(m - b, m)
            if left is not None:
                R = torch.cat([W, left])
                rows = np.concatenate([rows, left_at + np.arange(left.shape[0])])
            G = torch.mm(R, R.T).to(torch.float64).cpu().numpy()

            def block_residuals(S: np.ndarray, G=G, rows=rows) -> np.ndarray:
                last = S[rows]
                quad = np.einsum("bi,bc,ci->i", last, G, last)
                return np.sqrt(np.maximum(quad, 0))

            found = _check(
                op,
                Q[:m],
                T[:m, :m],
                block_residuals,
                wanted,
                tol,
                rtol,
                eps,
                strict,
                restarts,
                verify,
                force=full,
            )
            if found is not None:
                result = found
                if full or all(r.converged for r in result.values()):
                    break
                strict *= 0.1  # explicit residuals (verify) disagreed: go on
        norm_now = float(np.max(np.abs(np.diag(T[:m, :m])))) if m else 0.0
        tiny = EPS_FACTOR * eps * max(norm_now, TINY)
        nxt = min(p, max_iter - m, n - m)
        Qb, fresh = _next_block(W[:nxt], Q[:m], gen, tiny)
        restarts += fresh
        if nxt < b and Qb.shape[0]:
            # the rows left out still count in the residuals, less the part
            # that the new block spans
            rest = W[nxt:]
            left = rest - torch.mm(torch.mm(rest, Qb.T), Qb)
            left_at = m - b + nxt
        if Qb.shape[0] == 0:  # the whole space is spanned: M Q = Q T exactly
            result = _check(
                op,
                Q[:m],
                T[:m, :m],
                None,
                wanted,
                tol,
                rtol,
                eps,
                1.0,
                restarts,
                verify,
                force=True,
            )
            break
    return _counted(result, count(op) - before, rtol)


def _counted(
    result: dict[str, Eigen], used: int, rtol: float | None
) -> dict[str, Eigen]:
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
            r.errors,
            rtol,
        )
        for wh, r in result.items()
    }


def _single(
    op: Any,
    wanted: dict[str, int],
    kmax: int,
    tol: float,
    rtol: float | None,
    max_iter: int,
    gen: torch.Generator,
    verify: bool,
    work: torch.dtype,
) -> dict[str, Eigen]:
    """:func:`lanczos_edges` with one start vector: the same iteration and
    tests with vector operations (``mv``/``addmv``), the residuals as
    ``β · |last component|`` and ``‖M‖``'s running estimate kept, so a step
    costs little besides its product."""
    n = int(op.dim)
    eps = torch.finfo(op.dtype).eps
    narrow = work != op.dtype
    Q = torch.empty((max_iter, n), dtype=work, device=op.device)
    T = np.zeros((max_iter, max_iter))
    start = torch.randn(1, n, generator=gen, dtype=torch.float64)
    Qb, _ = _orthonormal_rows(start.to(work).to(op.device), Q[:0], gen, 1e-3)
    q = Qb[0]
    m, restarts, strict, checked, diag = 0, 0, 1.0, 0, 0.0
    while True:
        Q[m] = q
        w = matmat(op, (q.to(op.dtype) if narrow else q)[None])[0]
        if narrow:
            w = w.to(work)
        basis = Q[: m + 1]
        c = torch.mv(basis, w)
        w = torch.addmv(w, basis.T, c, alpha=-1)
        c2 = torch.mv(basis, w)
        w = torch.addmv(w, basis.T, c2, alpha=-1)
        col = c.add_(c2).to(torch.float64).cpu().numpy()
        T[: m + 1, m] = col
        T[m, :m] = col[:m]
        diag = max(diag, abs(float(col[m])))
        m += 1
        beta = float(torch.linalg.vector_norm(w))
        full = m >= max_iter or m >= n
        if m >= kmax and (full or m - checked >= max(1, checked // 50)):
            checked = m
            found = _check(
                op,
                Q[:m],
                T[:m, :m],
                lambda S, m=m, beta=beta: beta * np.abs(S[m - 1]),
                wanted,
                tol,
                rtol,
                eps,
                strict,
                restarts,
                verify,
                force=full,
            )
            if found is not None:
                if full or all(r.converged for r in found.values()):
                    return found
                strict *= 0.1  # explicit residuals (verify) disagreed: go on
        tiny = EPS_FACTOR * eps * max(diag, TINY)
        if beta > tiny:
            q = w / beta
            continue
        Qb, fresh = _orthonormal_rows(w[None], Q[:m], gen, tiny)
        restarts += fresh
        if Qb.shape[0] == 0:  # the whole space is spanned: M Q = Q T exactly
            return _check(
                op,
                Q[:m],
                T[:m, :m],
                None,
                wanted,
                tol,
                rtol,
                eps,
                1.0,
                restarts,
                verify,
                force=True,
            )
        q = Qb[0]


def _check(
    op: Any,
    Q: torch.Tensor,
    T: np.ndarray,
    residuals: Any,
    wanted: dict[str, int],
    tol: float,
    rtol: float | None,
    eps: float,
    strict: float,
    restarts: int,
    verify: bool,
    *,
    force: bool,
) -> dict[str, Eigen] | None:
    """The Ritz pairs of ``T`` as the result, if every wanted pair passes its
    test (or ``force``), else None.

    ``residuals(S)`` gives each pair's residual norm from the eigenvectors
    ``S`` of ``T``; None means the Krylov space is closed (``M Q = Q T``
    exactly: residuals and errors zero). A pair passes when its residual is
    at most ``strict · tol · ‖T‖``, or with ``rtol`` when its error estimate
    is at most ``rtol · |λ|``; no error is reported below ``eps · ‖T‖``.
    """
    lam, S = _eigh(T)
    norm = float(np.max(np.abs(lam)))
    threshold = tol * max(norm, TINY)
    if residuals is None:
        res = errors = np.zeros(T.shape[0])
    else:
        res = residuals(S)
        errors = np.maximum(_value_errors(res, _gaps(lam)), eps * norm)
    if not force:
        idx = np.concatenate([_pick(lam, wh, k) for wh, k in wanted.items()])
        met = res[idx] <= threshold * strict
        if rtol is not None:
            met |= errors[idx] <= rtol * np.abs(lam[idx])
        if not met.all():
            return None
    steps = T.shape[0]
    return _finish(
        op, Q, lam, S, res, errors, wanted, threshold, rtol, steps, restarts, verify
    )


def _finish(
    op: Any,
    Q: torch.Tensor,
    lam: np.ndarray,
    S: np.ndarray,
    res: np.ndarray,
    errors: np.ndarray,
    wanted: dict[str, int],
    threshold: float,
    rtol: float | None,
    steps: int,
    restarts: int,
    verify: bool,
) -> dict[str, Eigen]:
    out = {}
    for wh, k in wanted.items():
        idx = _pick(lam, wh, k)
        Y = torch.as_tensor(S[:, idx], dtype=Q.dtype, device=op.device)
        vecs = (Q.T @ Y).T
        vecs = vecs / torch.linalg.vector_norm(vecs, dim=1, keepdim=True)
        vecs = vecs.to(op.dtype)
        vals = lam[idx]
        r, e = res[idx], errors[idx]
        if verify:
            MV = matmat(op, vecs)
            lam_t = torch.as_tensor(vals, dtype=op.dtype, device=op.device)
            r = torch.linalg.vector_norm(MV - lam_t[:, None] * vecs, dim=1)
            r = r.double().cpu().numpy()
            e = np.maximum(
                _value_errors(r, _gaps(lam)[idx]),
                np.max(np.abs(lam)) * float(torch.finfo(op.dtype).eps),
            )
        out[wh] = Eigen(
            vals.copy(),
            vecs,
            np.asarray(r, dtype=float),
            steps,
            0,
            threshold,
            float(np.max(np.abs(lam))),
            wh,
            restarts,
            np.asarray(e, dtype=float),
            rtol,
        )
    return out


def eigenvalues(
    op: Any,
    k: int = 1,
    *,
    which: str = "largest",
    tol: float | None = None,
    rtol: float | None = None,
    max_iter: int | None = None,
    block: int | None = None,
    seed: int = 0,
    verify: bool = False,
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
    rtol : float, optional
        Relative accuracy wanted of the eigenvalues: stop as soon as each
        value's error estimate ``min(r, r² / gap)`` is at most ``rtol ·
        |value|`` (or its residual meets ``tol``). ``rtol=1e-3`` gets three
        digits with the fewest products; the vectors are then less accurate
        than the values (their residuals are in :attr:`Eigen.residuals`).
    max_iter : int, optional
        Largest basis (default ``min(dim, max(300, 10k))``, less when the
        basis would exceed 1 GiB).
    block : int, optional
        Vectors per Lanczos step, multiplied in one pass (default ``min(k,
        8)``): finds up to ``block`` copies of a repeated eigenvalue.
    seed : int, default=0
        Seeds the start vector (and any restart).
    verify : bool, default=False
        Compute the final residuals explicitly (``k`` more products) instead
        of from the Lanczos relation.

    Returns
    -------
    Eigen
        ``k`` pairs; ``converged`` says whether each met ``tol`` or ``rtol``;
        ``products`` how many matrix-vector products were used.

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
        op,
        {which: k},
        tol=tol,
        rtol=rtol,
        max_iter=max_iter,
        block=block,
        seed=seed,
        verify=verify,
    )[which]
