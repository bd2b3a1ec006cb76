"""Property-based checks: invariants that must hold for any input."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lossmap import Surface, losses, toy

finite = st.floats(-50, 50, allow_nan=False, allow_infinity=False)
small = st.floats(-3, 3, allow_nan=False, allow_infinity=False)
prob = st.floats(1e-6, 1 - 1e-6)
label = st.floats(0, 1)
FAST = settings(max_examples=60, deadline=None)


@FAST
@given(finite, finite, st.floats(0.01, 10))
def test_regression_losses_order_and_sign(p, y, delta):
    r = abs(p - y)
    mse = float(losses.mse(p, y))
    huber = float(losses.huber(p, y, delta=delta))
    lc = float(losses.log_cosh(p, y))
    assert min(mse, huber, lc, float(losses.mae(p, y))) >= 0
    # Huber is below both of its pieces; log-cosh below |r| and r²/2
    assert huber <= 0.5 * mse + 1e-9
    assert huber <= delta * r + 1e-9
    assert lc <= r + 1e-12
    assert lc <= 0.5 * r * r + 1e-12


@FAST
@given(st.floats(-30, 30), label)
def test_bce_with_logits_is_bce_of_the_sigmoid(z, y):
    p = 1 / (1 + np.exp(-z))
    if 1e-9 < p < 1 - 1e-9:
        np.testing.assert_allclose(
            losses.bce_with_logits(z, y), losses.bce(p, y), rtol=1e-7, atol=1e-9
        )


@FAST
@given(st.lists(finite, min_size=2, max_size=6), st.integers(0, 5))
def test_cross_entropy_is_shift_invariant_and_positive(logits, k):
    z = np.array(logits)
    k = k % z.size
    a = losses.cross_entropy(z[None], np.array([k]))
    b = losses.cross_entropy(z[None] + 7.5, np.array([k]))
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
    assert a[0] >= 0


CASES = [
    ("line", "noisy-line", "mse"),
    ("tanh", "two-points", "log_cosh"),
    ("logistic", "binary-overlapping", "bce"),
    ("tanh", "noisy-line", "huber"),
]


@FAST
@given(st.sampled_from(CASES), small, small)
def test_gradient_matches_central_differences(case, w, b):
    p = toy.problem(*case)
    h = 1e-6
    g = p.grad(w, b)
    num = [
        (p.loss(w + h, b) - p.loss(w - h, b)) / (2 * h),
        (p.loss(w, b + h) - p.loss(w, b - h)) / (2 * h),
    ]
    np.testing.assert_allclose(g, num, rtol=1e-4, atol=1e-6)
    hess = p.hessian(w, b)
    np.testing.assert_allclose(hess, hess.T, atol=1e-12)


@FAST
@given(st.sampled_from(CASES), st.integers(2, 9), st.integers(2, 9))
def test_surface_is_the_pointwise_loss(case, n0, n1):
    p = toy.problem(*case)
    s = p.surface(steps=(n0, n1))
    w, b = s.mesh()
    np.testing.assert_allclose(s.loss, p.loss(w, b), rtol=1e-13)
    i, j = s.argmin().index
    assert s.loss[i, j] == s.loss.min()


@FAST
@given(st.integers(1, 8), st.integers(1, 8), st.data())
def test_slicing_a_surface_keeps_its_values(n0, n1, data):
    a0 = np.cumsum(np.ones(n0))
    a1 = np.cumsum(np.ones(n1)) / 2
    values = np.arange(n0 * n1, dtype=float).reshape(n0, n1)
    s = Surface(axes={"u": a0, "v": a1}, fields={"loss": values})
    j = data.draw(st.integers(0, n1 - 1))
    np.testing.assert_array_equal(s.slice("v", a1[j]).loss, values[:, j])
    assert s.argmax().coords == {"u": a0[-1], "v": a1[-1]}
