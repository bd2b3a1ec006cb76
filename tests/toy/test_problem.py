"""Exact 2-parameter problems: derivatives, minima, convexity, data and errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lossmap import Surface, toy

TORCH_ACT = {"line": lambda z: z, "tanh": torch.tanh, "logistic": torch.sigmoid}
TORCH_LOSS = {
    "mse": lambda p, y, **k: F.mse_loss(p, y, reduction="none"),
    "mae": lambda p, y, **k: F.l1_loss(p, y, reduction="none"),
    "huber": lambda p, y, delta=1.0: F.huber_loss(p, y, reduction="none", delta=delta),
    "log_cosh": lambda p, y, **k: torch.log(torch.cosh(p - y)),
    "bce": lambda p, y, **k: F.binary_cross_entropy(p, y, reduction="none"),
    "bce_with_logits": lambda p, y, **k: F.binary_cross_entropy_with_logits(
        p, y, reduction="none"
    ),
}


def torch_loss(problem, theta):
    """The same L(w, b), written independently with torch.nn.functional."""
    x = torch.tensor(problem.data.x)
    y = torch.tensor(problem.data.y)
    pred = TORCH_ACT[problem.model.name](theta[0] * x + theta[1])
    value = TORCH_LOSS[problem.loss_fn.name](pred, y, **problem.loss_params).mean()
    return value + problem.l2 * (theta**2).sum() + problem.l1 * theta.abs().sum()


SMOOTH_CASES = [
    ("line", "noisy-line", "mse", {}),
    ("tanh", "noisy-line", "mse", {}),
    ("tanh", "line-with-outliers", "huber", {"delta": 0.2}),
    ("tanh", "two-points", "log_cosh", {}),
    ("line", "line-with-outliers", "log_cosh", {}),
    ("logistic", "binary-overlapping", "bce", {}),
    ("line", "binary-overlapping", "bce_with_logits", {}),
    ("logistic", "binary-overlapping", "mse", {}),
    ("tanh", "sloped-line-through-origin", "mse", {"l2": 0.05}),
]


@pytest.mark.parametrize(("model", "data", "loss", "kw"), SMOOTH_CASES)
def test_value_grad_hessian_match_autograd(model, data, loss, kw, rng):
    reg = {k: kw.pop(k) for k in ("l2", "l1") if k in kw}
    p = toy.problem(model, data, loss, **reg, **kw)
    for w, b in rng.uniform(-2, 2, size=(6, 2)):
        theta = torch.tensor([w, b], dtype=torch.float64, requires_grad=True)
        value = torch_loss(p, theta)
        grad = torch.autograd.grad(value, theta)[0].numpy()
        hess = torch.autograd.functional.hessian(lambda t: torch_loss(p, t), theta)
        assert p.loss(w, b) == pytest.approx(value.item(), rel=1e-11, abs=1e-14)
        np.testing.assert_allclose(p.grad(w, b), grad, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(p.hessian(w, b), hess.numpy(), rtol=1e-8, atol=1e-11)


def test_mae_gradient_matches_autograd_away_from_kinks(rng):
    p = toy.problem("tanh", "noisy-line", "mae", l1=0.01)
    for w, b in rng.uniform(-2, 2, size=(5, 2)):
        theta = torch.tensor([w, b], dtype=torch.float64, requires_grad=True)
        grad = torch.autograd.grad(torch_loss(p, theta), theta)[0].numpy()
        np.testing.assert_allclose(p.grad(w, b), grad, rtol=1e-10, atol=1e-12)


def test_vectorised_over_any_broadcast_shape(rng):
    p = toy.problem("tanh", "noisy-line", "huber", delta=0.3)
    w = rng.normal(size=(3, 1, 4))
    b = rng.normal(size=(5, 1))
    value, grad, hess = p.loss(w, b), p.grad(w, b), p.hessian(w, b)
    assert value.shape == (3, 5, 4)
    assert grad.shape == (3, 5, 4, 2)
    assert hess.shape == (3, 5, 4, 2, 2)
    ww, bb = np.broadcast_arrays(w, b)
    for idx in [(0, 0, 0), (2, 4, 3), (1, 2, 1)]:
        assert value[idx] == pytest.approx(float(p.loss(ww[idx], bb[idx])), rel=1e-14)
        np.testing.assert_allclose(grad[idx], p.grad(ww[idx], bb[idx]), rtol=1e-13)


def test_surface_values_axes_and_metadata():
    p = toy.problem("tanh", "two-points", "mse")
    s = p.surface(w=(-1, 2), b=(-1, 1), steps=(31, 21))
    assert isinstance(s, Surface)
    assert s.names == ("w", "b")
    assert s.shape == (31, 21)
    i, j = 7, 13
    w, b = s.coords("w")[i], s.coords("b")[j]
    assert s.loss[i, j] == pytest.approx(float(p.loss(w, b)), rel=1e-14)
    assert s.metadata["landscape"]["model"] == "tanh"
    assert s.metadata["grid"]["region"] == [[-1.0, 2.0], [-1.0, 1.0]]
    # default region comes from the data preset
    assert p.surface(steps=5).coords("w")[0] == p.data.region[0][0]


@pytest.mark.parametrize("data", ["noisy-line", "line-with-outliers", "two-points"])
def test_line_mse_minimum_is_least_squares(data):
    p = toy.problem("line", data, "mse")
    x, y = p.data.x, p.data.y
    A = np.stack([x, np.ones_like(x)], axis=1)
    (w, b), *_ = np.linalg.lstsq(A, y, rcond=None)
    m = p.minimum()
    assert m.converged
    assert m.w == pytest.approx(w, abs=1e-10)
    assert m.b == pytest.approx(b, abs=1e-10)
    assert m.loss == pytest.approx(np.mean((A @ [w, b] - y) ** 2), abs=1e-14)


def test_ridge_minimum_matches_closed_form():
    # L = mean((wx+b-y)^2) + l2 (w^2 + b^2)  =>  (A^T A / n + l2 I) θ = A^T y / n
    p = toy.problem("line", "noisy-line", "mse", l2=0.3)
    x, y = p.data.x, p.data.y
    A = np.stack([x, np.ones_like(x)], axis=1)
    theta = np.linalg.solve(A.T @ A / len(x) + 0.3 * np.eye(2), A.T @ y / len(x))
    np.testing.assert_allclose(p.minimum().theta, theta, atol=1e-10)


def test_line_mae_minimum_is_least_absolute_deviations():
    # LAD regression as a linear program: min sum(u+ + u-) s.t. A θ + u+ - u- = y
    from scipy.optimize import linprog

    p = toy.problem("line", "line-with-outliers", "mae")
    x, y = p.data.x, p.data.y
    n = len(x)
    A = np.stack([x, np.ones(n)], axis=1)
    c = np.concatenate([[0, 0], np.ones(2 * n)])
    a_eq = np.hstack([A, np.eye(n), -np.eye(n)])
    bounds = [(None, None)] * 2 + [(0, None)] * (2 * n)
    lp = linprog(c, A_eq=a_eq, b_eq=y, bounds=bounds, method="highs")
    m = p.minimum()
    assert m.loss == pytest.approx(lp.fun / n, abs=1e-12)
    np.testing.assert_allclose(m.theta, lp.x[:2], atol=1e-8)


@pytest.mark.parametrize(
    ("model", "data", "loss"),
    [
        ("tanh", "noisy-line", "mse"),
        ("tanh", "line-with-outliers", "log_cosh"),
        ("logistic", "binary-overlapping", "bce"),
        ("tanh", "sloped-line-through-origin", "mse"),
    ],
)
def test_smooth_minimum_is_stationary_and_a_true_minimum(model, data, loss):
    p = toy.problem(model, data, loss)
    m = p.minimum()
    assert m.converged
    assert np.linalg.norm(p.grad(m.w, m.b)) < 1e-10
    assert np.all(np.linalg.eigvalsh(p.hessian(m.w, m.b)) > 0)
    # no grid point of the default view is lower
    assert m.loss <= p.surface(steps=101).loss.min() + 1e-15


@pytest.mark.parametrize("model", ["line", "tanh"])
def test_two_points_minimum_is_shared_by_mse_mae_huber(model):
    minima = [
        toy.problem(model, "two-points", loss).minimum()
        for loss in ("mse", "mae", "huber", "log_cosh")
    ]
    x, y = toy.dataset("two-points").x, toy.dataset("two-points").y
    inv = np.arctanh(y) if model == "tanh" else y
    exact = np.linalg.solve(np.stack([x, np.ones(2)], axis=1), inv)
    for m in minima:
        assert m.converged
        np.testing.assert_allclose(m.theta, exact, atol=1e-8)
        assert m.loss == pytest.approx(0.0, abs=1e-15)


GRID = np.linspace(-3, 3, 41)


@pytest.mark.parametrize(
    ("model", "data", "loss"),
    [
        ("line", "noisy-line", "mse"),
        ("line", "line-with-outliers", "mse"),
        ("logistic", "binary-overlapping", "bce"),
        ("logistic", "binary-separable", "bce"),
    ],
)
def test_convex_problems_have_psd_hessians_everywhere(model, data, loss):
    p = toy.problem(model, data, loss)
    eig = np.linalg.eigvalsh(p.hessian(GRID[:, None], GRID[None, :]))
    assert eig.min() >= -1e-12


def test_tanh_mse_is_not_convex():
    p = toy.problem("tanh", "noisy-line", "mse")
    eig = np.linalg.eigvalsh(p.hessian(GRID[:, None], GRID[None, :]))
    assert (eig.min(axis=-1) < -1e-6).any()


def test_separable_logistic_has_no_minimum_until_regularised():
    p = toy.problem("logistic", "binary-separable", "bce")
    with pytest.raises(ValueError, match="has no minimum"):
        p.minimum()
    m = p.replace(l2=0.01).minimum()
    assert m.converged
    assert np.linalg.norm(p.replace(l2=0.01).grad(m.w, m.b)) < 1e-10


@pytest.mark.parametrize("loss", ["mse", "huber", "log_cosh", "mae"])
@pytest.mark.parametrize("intercept", [1000.0, 1e6])
def test_a_minimum_far_outside_the_default_view_is_found(loss, intercept):
    # y = 1000 + 5x: the grid search widened its 6-unit box 4 times, the best
    # cell stayed on the edge, and minimum() said "has no minimum" although
    # the line fits exactly (least squares: w = 5, b = 1000)
    x = np.array([0.0, 1.0, 2.0, 3.0])
    y = intercept + 5.0 * x
    ref = np.linalg.lstsq(np.c_[x, np.ones_like(x)], y, rcond=None)[0]
    m = toy.problem("line", (x, y), loss).minimum()
    np.testing.assert_allclose(m.theta, ref, rtol=1e-9, atol=1e-7)
    assert m.loss <= 1e-12 * intercept


@pytest.mark.parametrize(
    ("model", "loss"), [("logistic", "bce"), ("line", "bce_with_logits")]
)
def test_soft_labels_in_0_1_are_binary_targets(model, loss):
    # BCE takes any target in [0, 1]; problem() inferred the task from the
    # values alone, called 0.3 a regression target and refused BCE
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    y = np.array([0.1, 0.2, 0.5, 0.7, 0.95])
    p = toy.problem(model, (x, y), loss)
    assert p.data.task == "binary"
    m = p.minimum()
    # logistic regression's normal equations: mean((σ(w·x + b) − y)·[x, 1]) = 0
    s = 1.0 / (1.0 + np.exp(-(m.w * x + m.b)))
    np.testing.assert_allclose([np.mean((s - y) * x), np.mean(s - y)], 0, atol=1e-12)
    with pytest.raises(
        ValueError, match=r"must lie in \[0, 1\], got values from 0 to 2"
    ):
        toy.problem(model, (x, np.array([0.0, 2.0, 1.0, 0.0, 1.0])), loss)


def test_own_data_far_from_the_origin_get_a_view_around_their_minimum():
    # the default view [-3, 3]² of (x, y) arrays showed y ≈ 1000 + 5x without
    # its minimum (and minimum() used to deny there was one)
    x = np.array([0.0, 1.0, 2.0, 3.0])
    y = 1000.0 + 5.0 * x + np.array([0.3, -0.2, 0.1, -0.4])
    p = toy.problem("line", (x, y), "mse")
    ref = np.linalg.lstsq(np.c_[x, np.ones_like(x)], y, rcond=None)[0]
    (w_lo, w_hi), (b_lo, b_hi) = p.region
    assert w_lo < ref[0] < w_hi
    assert b_lo < ref[1] < b_hi
    assert w_hi - w_lo < 20  # a bowl, not a stripe
    assert b_hi - b_lo < 20
    s = p.surface(steps=41)
    best = s.argmin()
    np.testing.assert_allclose(
        [best.coords["w"], best.coords["b"]], ref, atol=0.3 * (b_hi - b_lo) / 40 + 0.2
    )
    # data on the presets' scale keep the default view
    assert toy.problem("line", (x, 0.5 * x - 0.2), "mse").region == ((-3, 3), (-3, 3))


def test_tanh_targets_at_one_say_why_there_is_no_minimum():
    # y = ±1 is reached by tanh only as |w·x + b| → ∞; the message blamed
    # "separable data" (a logistic-regression reason) for a regression set
    p = toy.problem("tanh", ([0.0, 1.0], [1.0, -1.0]), "mae")
    assert float(p.loss(-40.0, 20.0)) < 1e-16  # the infimum 0 is approached
    with pytest.raises(ValueError, match=r"tanh reaches targets at ±1") as err:
        p.minimum()
    assert "separable" not in str(err.value)
    with pytest.raises(ValueError, match="separable data"):
        toy.problem("logistic", "binary-separable", "bce").minimum()


def test_logistic_bce_is_exact_at_extreme_logits():
    # far from the data the probabilities round to 0/1; the loss stays exact
    p = toy.problem("logistic", "binary-overlapping", "bce")
    x, y = p.data.x, p.data.y
    z = 300.0 * x + 5.0
    exact = np.mean(np.logaddexp(0, z) - y * z)
    assert p.loss(300.0, 5.0) == pytest.approx(exact, rel=1e-13)
    assert np.isfinite(p.grad(300.0, 5.0)).all()


def test_predict_residuals_and_subset():
    p = toy.problem("tanh", "noisy-line", "mse")
    np.testing.assert_allclose(
        p.residuals(0.4, 0.1), np.tanh(0.4 * p.data.x + 0.1) - p.data.y
    )
    q = p.subset([0, 3, 5])
    assert len(q.data) == 3
    assert q.loss(0.4, 0.1) == pytest.approx(
        np.mean(p.residuals(0.4, 0.1)[[0, 3, 5]] ** 2)
    )


def test_every_preset_and_model_combination_builds():
    for model, name in itertools.product(toy.MODELS, toy.PRESETS):
        data = toy.dataset(name)
        loss = "bce" if model == "logistic" and data.task == "binary" else "mse"
        s = toy.problem(model, name, loss).surface(steps=9)
        assert np.isfinite(s.loss).all()


def test_user_data_as_arrays():
    p = toy.problem("line", ([0.0, 1.0, 2.0], [1.0, 3.0, 5.0]), "mse")
    assert p.data.task == "regression"
    np.testing.assert_allclose(p.minimum().theta, [2.0, 1.0], atol=1e-10)
    q = toy.problem("logistic", ([0.0, 1.0, 2.0, 3.0], [0, 1, 0, 1]), "bce")
    assert q.data.task == "binary"


def test_own_model_with_mae_has_a_minimum():
    # a user's Model (a softplus neuron) with MAE: minimum() looked up the
    # built-in models' inverses by name and raised KeyError('softplus')
    from scipy.optimize import minimize

    from lossmap.toy.models import Model

    def softplus_d(f, z):
        s = 1.0 / (1.0 + np.exp(-z))
        return s, s * (1.0 - s)

    softplus = Model(
        "softplus", lambda z: np.log1p(np.exp(z)), softplus_d, "value", "sp(w·x + b)"
    )
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    y = np.array([0.1, 0.9, 2.2, 2.8, 4.5])
    m = toy.problem(softplus, (x, y), "mae").minimum()

    def mae(t):
        return float(np.mean(np.abs(np.log1p(np.exp(t[0] * x + t[1])) - y)))

    opts = {"xatol": 1e-12, "fatol": 1e-15, "maxiter": 20000, "maxfev": 40000}
    starts = [(0.5, -1.0), (1.0, 0.0), (2.0, -2.0), (1.5, -1.0)]
    ref = min(
        (minimize(mae, s, method="Nelder-Mead", options=opts) for s in starts),
        key=lambda r: r.fun,
    )
    assert m.loss == pytest.approx(mae(m.theta), abs=1e-15)
    assert m.loss <= ref.fun + 1e-12
    np.testing.assert_allclose(m.theta, ref.x, atol=1e-6)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (
            ("line", ([1.0, 2.0], [1.0]), "mse"),
            {},
            ValueError,
            "`x` and `y` must have the same length, got 2 and 1",
        ),
        (
            ("line", ([1.0, np.nan], [1.0, 2.0]), "mse"),
            {},
            ValueError,
            "`x` must be finite, got 1 NaN/inf",
        ),
        (("line", ([], []), "mse"), {}, ValueError, "at least 1 value"),
        (("line", "nope", "mse"), {}, ValueError, "`data` must be one of"),
        (("quad", "two-points", "mse"), {}, ValueError, "`model` must be one of"),
        (("line", "two-points", "hinge"), {}, ValueError, "`loss` must be one of"),
        (("tanh", "binary-overlapping", "bce"), {}, ValueError, "needs probabilities"),
        (
            ("line", "two-points", "bce_with_logits"),
            {},
            ValueError,
            "needs binary targets",
        ),
        (("line", "two-points", "cross_entropy"), {}, ValueError, "several classes"),
        (("line", "two-points", "mse"), {"l2": -1.0}, ValueError, "`l2` must be >= 0"),
        (
            ("line", "two-points", "mse"),
            {"delta": 1.0},
            TypeError,
            "unexpected \\['delta'\\]",
        ),
        (("line", "two-points", "huber"), {"delta": -1.0}, ValueError, "`delta`"),
        (("line", 42, "mse"), {}, TypeError, "`data` must be a preset name"),
    ],
)
def test_bad_input(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        toy.problem(*args, **kwargs).surface(steps=3)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"steps": 1}, ValueError, "`steps` must be >= 2, got 1"),
        ({"steps": 2.5}, TypeError, "`steps` must be an integer"),
        ({"w": (1.0, 0.0)}, ValueError, "`w` must satisfy lo < hi"),
        ({"b": (0.0, np.inf)}, ValueError, r"`b\[1\]` must be finite"),
        ({"z": (0.0, 1.0)}, TypeError, "named after the parameters"),
    ],
)
def test_bad_surface_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        toy.problem("line", "two-points").surface(**kwargs)
