"""Grid surfaces of one tanh or logistic neuron with MSE, without a tanh per value.

On the outer grid ``w_r × b_j`` the exponential of the pre-activation
factorises: ``exp(k·(w_r·x_i + b_j)) = exp(k·w_r·x_i) · exp(k·b_j)``. So the
grid needs ``n0·n + n1`` exponentials, not ``n0·n1·n`` calls of ``tanh``, and
each model value costs a product, a sum and a division:

* ``tanh(z) = 1 − 1/(½·e^{2z} + ½)``, residual ``tanh − y = −(u − (1 − y))``;
* ``σ(z) = 1/(e^{−z} + 1)``, residual ``σ − y = u − y``;

with ``u = 1/(α·P + β)``, ``P = e^{k·z}``. The grid is evaluated in row blocks
laid out ``(rows, data, b)``: the long ``b`` axis is innermost, so every NumPy
pass runs over contiguous memory that stays in the CPU cache, and the sum of
squares over the data is one matrix product.

Accuracy: the factorised ``P`` carries a relative error of about
``(|k·w·x| + |k·b| + 2)·ε``; :func:`mse_grid` is used only while that bound
stays below :data:`MAX_EXPONENT`·ε (about 1e-13), which keeps the loss within
1e-12 of a direct evaluation. Larger grids fall back to the direct path.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lossmap.toy.models import MODELS, Model

__all__ = ["MAX_EXPONENT", "mse_grid", "supports"]

#: Largest ``max|k·w·x| + max|k·b|`` served here (exp stays finite and nonzero,
#: and the factorisation's error stays below ~1e-13).
MAX_EXPONENT = 600.0

#: Values per row block (≈ 512 KiB of float64: the block stays in L2).
BLOCK_ELEMENTS = 1 << 16


class _Squash(NamedTuple):
    k: float  # P = exp(k·z)
    alpha: float  # u = 1/(alpha·P + beta)
    beta: float
    flip: bool  # residual is −(u − (1 − y)) rather than u − y


#: Keyed by the built-in models' activation functions (a user's model that
#: borrows a name but not the function is not served here).
_ACTS = {
    MODELS["tanh"].act: _Squash(2.0, 0.5, 0.5, True),
    MODELS["logistic"].act: _Squash(-1.0, 1.0, 1.0, False),
}


def supports(model: Model) -> bool:
    """Whether :func:`mse_grid` knows this model's activation."""
    return model.act in _ACTS


def mse_grid(
    model: Model, x: np.ndarray, y: np.ndarray, w: np.ndarray, b: np.ndarray
) -> np.ndarray | None:
    """``mean_i (act(w_r·x_i + b_j) − y_i)²`` for every ``(w_r, b_j)``.

    ``w`` (n0,) and ``b`` (n1,) are the grid axes, ``x`` and ``y`` (n,) the
    data. Returns an (n0, n1) float64 array, or None when the grid lies outside
    the range where the factorisation is exact to 1e-12 (the caller then
    evaluates directly).
    """
    sq = _ACTS[model.act]
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    kx = sq.k * x
    reach = np.max(np.abs(w)) * np.max(np.abs(kx)) + np.max(np.abs(sq.k * b))
    if not reach <= MAX_EXPONENT:
        return None
    n, n1 = x.size, b.size
    e_rows = sq.alpha * np.exp(np.multiply.outer(w, kx))  # (n0, n)
    e_cols = np.exp(sq.k * b)  # (n1,)
    target = (1.0 - y) if sq.flip else np.asarray(y, dtype=np.float64)
    # planes laid out like one row of a block: operations with them are plain
    # contiguous passes (a NumPy broadcast along the innermost axis costs
    # about twice as much per value at these lengths)
    target_plane = np.ascontiguousarray(np.broadcast_to(target[:, None], (n, n1)))
    # u = 1/(α·e_r·g_j + β) = (1/g_j) / (α·e_r + β/g_j): one pass fewer
    shift_plane = np.ascontiguousarray(np.broadcast_to(sq.beta / e_cols, (n, n1)))
    scale_plane = np.ascontiguousarray(np.broadcast_to(1.0 / e_cols, (n, n1)))
    ones = np.ones(n)
    rows = max(1, BLOCK_ELEMENTS // (n * n1))
    buf = np.empty((rows, n, n1))
    out = np.empty((w.size, n1))
    for start in range(0, w.size, rows):
        stop = min(start + rows, w.size)
        t = buf[: stop - start]
        np.copyto(t, e_rows[start:stop, :, None])
        t += shift_plane
        np.divide(scale_plane, t, out=t)  # u
        t -= target_plane  # ±residual
        np.square(t, out=t)
        np.matmul(ones, t, out=out[start:stop])  # Σ_i over the data
    out /= n
    return out
