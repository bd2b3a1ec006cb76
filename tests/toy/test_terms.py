"""lossmap.toy.terms: weighted multi-term losses, the physics-informed example,
regularisation as terms and its path."""

from __future__ import annotations

import numpy as np
import pytest

from lossmap import optim, toy
from lossmap.analysis import critical_points
from lossmap.toy import terms

EXACT = np.array([-1.0, 1.0])

WEIGHTS = [
    {},
    {"data": 0.0},
    {"boundary": 10.0, "data": 0.1},
    {"residual": 0.01},
    {"data": 5.0, "residual": 2.0, "boundary": 0.5},
]


def _fd_check(f, pts, h=1e-6):
    e = np.eye(2) * h
    g = np.stack(
        [(f.loss_at(pts + e[k]) - f.loss_at(pts - e[k])) / (2 * h) for k in (0, 1)], -1
    )
    hs = np.stack(
        [(f.grad_at(pts + e[k]) - f.grad_at(pts - e[k])) / (2 * h) for k in (0, 1)], -1
    )
    np.testing.assert_allclose(f.grad_at(pts), g, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(f.hessian_at(pts), hs, rtol=1e-6, atol=1e-6)


def test_pinn_terms_and_exact_derivatives(rng):
    pinn = terms.physics_informed()
    assert list(pinn.terms) == ["data", "residual", "boundary"]
    assert pinn.param_names == ("w", "b")
    pts = rng.uniform([-3, -0.5], [1, 2.5], size=(30, 2))
    _fd_check(pinn, pts)
    for t in pinn.terms.values():
        _fd_check(t, pts)
    # the residual of u = b·e^(wx) in u' + u = 0 is b·(w + 1)·e^(wx)
    res = pinn.terms["residual"]
    x = res.x
    w, b = 0.3, 1.7
    assert res.loss(w, b) == pytest.approx(np.mean((b * (w + 1) * np.exp(w * x)) ** 2))
    assert pinn.terms["boundary"].loss(w, b) == pytest.approx((b - 1) ** 2)
    # the residual vanishes on the lines w = −1 and b = 0, nowhere else
    assert res.loss(-1.0, 2.0) == 0.0
    assert res.loss(0.5, 0.0) == 0.0
    assert res.loss(0.5, 0.1) > 0


@pytest.mark.parametrize("weights", WEIGHTS, ids=lambda w: str(w))
def test_exact_solution_stays_the_minimum_for_any_weights(weights):
    pinn = terms.physics_informed(weights=weights)
    assert pinn.loss(*EXACT) == 0.0
    np.testing.assert_allclose(pinn.grad(*EXACT), 0.0, atol=1e-15)
    assert np.all(np.linalg.eigvalsh(pinn.hessian(*EXACT)) > 0)
    s = pinn.surface(steps=41)
    assert s.loss.min() >= 0.0
    best = s.argmin()
    assert (best.coords["w"], best.coords["b"]) == (-1.0, 1.0)
    # the only stationary point in the region is the exact solution
    pts = critical_points(pinn)
    assert [p.kind for p in pts] == ["minimum"]
    np.testing.assert_allclose(pts[0].theta, EXACT, atol=1e-8)
    # and an optimizer finds it
    t = optim.run(pinn, optim.adam(0.05), [0.5, 0.2], steps=3000)
    np.testing.assert_allclose(t.params[-1], EXACT, atol=1e-3)


def test_weights_change_the_landscape():
    a = terms.physics_informed()
    b = a.with_weights(boundary=10.0)
    sa, sb = a.surface(steps=31), b.surface(steps=31)
    assert not np.allclose(sa.loss, sb.loss)
    # per-term fields do not depend on the weights; the total is their sum
    for name in a.terms:
        np.testing.assert_array_equal(sa.field(name), sb.field(name))
    total = sum(b.weights[k] * sb.field(k) for k in b.terms)
    np.testing.assert_allclose(sb.loss, total)
    assert b.weights == {"data": 1.0, "residual": 1.0, "boundary": 10.0}
    # the curvature at the solution changes with the weights
    assert not np.allclose(a.hessian(*EXACT), b.hessian(*EXACT))
    assert sb.metadata["landscape"]["weights"]["boundary"] == 10.0


def test_titles_say_the_weights():
    # two weightings are two landscapes: the physics-informed title used to be
    # the same for both (and with_weights dropped it for a bare formula)
    a = terms.physics_informed()
    b = terms.physics_informed(weights={"boundary": 10.0})
    assert a.title != b.title
    assert b.title.endswith(" · 1·data + 1·residual + 10·boundary")
    assert a.title.startswith("u' + 1u = 0, u(0) = 1")
    c = a.with_weights(boundary=10.0)
    assert c.title == b.title
    assert c.surface(steps=5).metadata["landscape"]["title"] == b.title
    r = terms.regularised(toy.problem("line", "noisy-line"), l2=0.1)
    assert r.title == "w·x + b · MSE · noisy-line · 1·data + 0.1·l2"
    plain = terms.WeightedSum({"data": a.terms["data"]}, {"data": 2.0})
    assert plain.title == "2·data"


def test_noisy_data_moves_the_data_minimum():
    pinn = terms.physics_informed(noise=0.05, seed=0)
    assert pinn.terms["data"].loss(*EXACT) > 0
    assert pinn.terms["residual"].loss(*EXACT) == 0
    with pytest.raises(ValueError, match="`seed` is required"):
        terms.physics_informed(noise=0.05)


def test_other_equation():
    pinn = terms.physics_informed(k=2.0, u0=0.5)
    assert pinn.loss(-2.0, 0.5) == 0.0
    assert pinn.loss(-1.0, 1.0) > 0


@pytest.mark.parametrize(
    ("call", "exc", "message"),
    [
        (lambda: terms.WeightedSum({}), TypeError, "non-empty mapping"),
        (lambda: terms.WeightedSum({"a": 3}), TypeError, "must be a Landscape"),
        (
            lambda: terms.physics_informed(weights={"physics": 1.0}),
            ValueError,
            "unknown terms",
        ),
        (
            lambda: terms.physics_informed(weights={"data": -1.0}),
            ValueError,
            "must be >= 0",
        ),
        (lambda: terms.SquaredResidual("pde", [0.0]), ValueError, "`kind` must be"),
        # a count of collocation points: numpy's "Number of samples, -1" and
        # "`x` must hold at least 1 value(s)" named no argument of the call
        (
            lambda: terms.physics_informed(collocation=-1),
            ValueError,
            "`collocation` must be >= 1, got -1",
        ),
        (
            lambda: terms.physics_informed(collocation=0),
            ValueError,
            "`collocation` must be >= 1, got 0",
        ),
        (
            lambda: terms.physics_informed(collocation=1.5),
            TypeError,
            "`collocation` must be a number of points",
        ),
    ],
)
def test_errors(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


# ------------------------------------------------------------- regularisation
def _ridge(p, lam):
    """Closed form: (XᵀX/n + λI)θ = Xᵀy/n with X = [x, 1]."""
    x, y = p.data.x, p.data.y
    X = np.stack([x, np.ones_like(x)], -1)
    n = x.size
    return np.linalg.solve(X.T @ X / n + lam * np.eye(2), X.T @ y / n)


def test_l2_path_matches_ridge_closed_form_and_shrinks_monotonically():
    p = toy.problem("line", "noisy-line", "mse")
    lam = np.concatenate([[0.0], np.logspace(-3, 2, 25)])
    path = terms.regularisation_path(p, lam)
    for s, th in zip(lam, path.theta):
        np.testing.assert_allclose(th, _ridge(p, s), atol=1e-9)
    assert np.all(np.diff(path.norm) < 0)
    assert np.all(np.diff(path.data_loss) > 0)  # the fit gets worse
    assert path.norm[-1] < 0.05 * path.norm[0]


def test_l1_path_reaches_zero():
    p = toy.problem("line", "noisy-line", "mse")
    path = terms.regularisation_path(p, [0.0, 0.05, 0.2, 2.0], kind="l1")
    assert np.all(np.diff(path.norm) <= 1e-9)
    np.testing.assert_allclose(path.theta[-1], 0.0, atol=1e-8)


def test_regularised_terms_equal_penalised_problem(rng):
    p = toy.problem("tanh", "noisy-line", "mse")
    r = terms.regularised(p, l2=0.3, l1=0.1)
    assert list(r.terms) == ["data", "l2", "l1"]
    q = p.replace(l2=0.3, l1=0.1)
    pts = rng.uniform(-2, 2, size=(20, 2))
    np.testing.assert_allclose(r.loss_at(pts), q.loss_at(pts))
    np.testing.assert_allclose(r.grad_at(pts), q.grad_at(pts))
    np.testing.assert_allclose(r.hessian_at(pts), q.hessian_at(pts))
    assert not r.smooth
    s = r.surface(steps=11)
    assert s.field_names == ("loss", "data", "l2", "l1")


def test_l2_minimum_on_surface_moves_toward_origin():
    p = toy.problem("line", "noisy-line", "mse")
    norms = []
    for lam in (0.0, 0.1, 1.0):
        best = p.replace(l2=lam).surface(steps=201).argmin()
        norms.append(np.hypot(best.coords["w"], best.coords["b"]))
    assert norms[0] > norms[1] > norms[2]
