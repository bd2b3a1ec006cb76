"""Losses against torch.nn.functional, worked examples, derivatives, stability."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lossmap import losses

REGRESSION = [
    # (name, params, torch reference, elementwise)
    ("mse", {}, lambda p, y: F.mse_loss(p, y, reduction="none")),
    ("mae", {}, lambda p, y: F.l1_loss(p, y, reduction="none")),
    ("huber", {"delta": 1.0}, lambda p, y: F.huber_loss(p, y, reduction="none")),
    (
        "huber",
        {"delta": 0.3},
        lambda p, y: F.huber_loss(p, y, reduction="none", delta=0.3),
    ),
    # log-cosh has no torch.nn.functional twin: the textbook formula, in float64
    ("log_cosh", {}, lambda p, y: torch.log(torch.cosh(p - y))),
]


@pytest.mark.parametrize(("name", "params", "ref"), REGRESSION, ids=lambda v: str(v))
def test_regression_losses_match_torch(name, params, ref, rng):
    pred = rng.normal(size=200) * 2
    target = rng.normal(size=200)
    expected = ref(torch.from_numpy(pred), torch.from_numpy(target)).numpy()
    got = losses.get(name).value(pred, target, **params)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    # the same function on tensors returns a tensor with the same values
    t = losses.get(name).value(
        torch.from_numpy(pred), torch.from_numpy(target), **params
    )
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-12, atol=1e-14)


def test_bce_matches_torch(rng):
    p = rng.uniform(0.01, 0.99, size=300)
    y = rng.uniform(0, 1, size=300)
    ref = F.binary_cross_entropy(
        torch.from_numpy(p), torch.from_numpy(y), reduction="none"
    )
    np.testing.assert_allclose(losses.bce(p, y), ref.numpy(), rtol=1e-12)


def test_bce_with_logits_matches_torch(rng):
    z = rng.normal(size=300) * 5
    y = (rng.uniform(size=300) > 0.5).astype(float)
    ref = F.binary_cross_entropy_with_logits(
        torch.from_numpy(z), torch.from_numpy(y), reduction="none"
    )
    np.testing.assert_allclose(
        losses.bce_with_logits(z, y), ref.numpy(), rtol=1e-12, atol=1e-14
    )


def test_cross_entropy_matches_torch_indices_and_probabilities(rng):
    logits = rng.normal(size=(40, 5)) * 3
    idx = rng.integers(0, 5, size=40)
    ref = F.cross_entropy(
        torch.from_numpy(logits), torch.from_numpy(idx), reduction="none"
    )
    np.testing.assert_allclose(
        losses.cross_entropy(logits, idx), ref.numpy(), rtol=1e-12
    )
    probs = rng.dirichlet(np.ones(5), size=40)
    ref_p = F.cross_entropy(
        torch.from_numpy(logits), torch.from_numpy(probs), reduction="none"
    )
    np.testing.assert_allclose(
        losses.cross_entropy(logits, probs), ref_p.numpy(), rtol=1e-12
    )
    # from probabilities: -log p[y]
    q = rng.dirichlet(np.ones(5), size=40)
    np.testing.assert_allclose(
        losses.cross_entropy(q, idx, from_logits=False),
        -np.log(q[np.arange(40), idx]),
        rtol=1e-12,
    )
    # torch tensors: class indices as int64
    t = losses.cross_entropy(torch.from_numpy(logits), torch.from_numpy(idx))
    np.testing.assert_allclose(t.numpy(), ref.numpy(), rtol=1e-12)


def test_worked_examples_from_the_course():
    # y = 1 at ŷ = 0.9 → −log 0.9 = 0.105; at ŷ = 0.1 → −log 0.1 = 2.303
    assert round(float(losses.bce(0.9, 1.0)), 3) == 0.105
    assert round(float(losses.bce(0.1, 1.0)), 3) == 2.303
    # the bad prediction costs about 22 times more
    assert 21 < losses.bce(0.1, 1.0) / losses.bce(0.9, 1.0) < 22


def test_mean_reduction():
    pred = np.array([1.0, 2.0, 4.0])
    assert losses.get("mse").mean(pred, np.zeros(3)) == pytest.approx(7.0)
    assert losses.mean(losses.mae(pred, np.zeros(3))) == pytest.approx(7 / 3)


def test_numerical_safety():
    # log-cosh at a residual of 1e4 is |r| - log 2, no overflow
    assert losses.log_cosh(1e4, 0.0) == pytest.approx(1e4 - np.log(2.0), rel=1e-15)
    with np.errstate(over="raise", invalid="raise"):
        losses.log_cosh(np.array([1e4, -1e4, 800.0]), 0.0)
    # and accurate near zero, where the value (≈ r²/2) is far below 1e-16
    assert losses.log_cosh(1e-9, 0.0) == pytest.approx(5e-19, rel=1e-12)
    # bce clips probabilities: finite at exactly 0 and 1
    assert np.isfinite(losses.bce(np.array([0.0, 1.0]), np.array([1.0, 0.0]))).all()
    # bce with logits finite and exact at ±1e3
    z = np.array([1e3, -1e3, 1e3, -1e3])
    y = np.array([1.0, 0.0, 0.0, 1.0])
    got = losses.bce_with_logits(z, y)
    np.testing.assert_allclose(got, [0.0, 0.0, 1e3, 1e3], atol=1e-12)
    ref = F.binary_cross_entropy_with_logits(
        torch.from_numpy(z), torch.from_numpy(y), reduction="none"
    )
    np.testing.assert_allclose(got, ref.numpy())


DERIVATIVE_CASES = [
    ("mse", {}, np.linspace(-3, 3, 41), 0.3),
    ("mae", {}, np.linspace(-3, 3, 40), 0.31),
    ("huber", {"delta": 0.7}, np.linspace(-3, 3, 40), 0.31),
    ("log_cosh", {}, np.linspace(-3, 3, 41), 0.3),
    ("bce", {}, np.linspace(0.05, 0.95, 41), 0.7),
    ("bce_with_logits", {}, np.linspace(-6, 6, 40), 1.0),
]


@pytest.mark.parametrize(("name", "params", "pred", "target"), DERIVATIVE_CASES)
def test_derivatives_match_autograd(name, params, pred, target):
    loss = losses.get(name)
    p = torch.tensor(pred, requires_grad=True)
    y = torch.full_like(p, target)
    (g,) = torch.autograd.grad(loss.value(p, y, **params).sum(), p, create_graph=True)
    if g.requires_grad:
        (h,) = torch.autograd.grad(g.sum(), p)
        h = h.numpy(force=True) if h.layout == torch.strided else np.zeros(p.shape)
    else:  # piecewise-linear loss: autograd sees no second derivative at all
        h = np.zeros(p.shape)
    np.testing.assert_allclose(
        loss.d1(pred, target, **params), g.detach().numpy(), rtol=1e-10, atol=1e-12
    )
    np.testing.assert_allclose(
        loss.d2(pred, target, **params), h, rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("from_logits", [True, False])
def test_cross_entropy_derivatives_match_autograd(from_logits, rng):
    z = rng.normal(size=(6, 4))
    if not from_logits:
        z = rng.dirichlet(np.ones(4), size=6)
    idx = rng.integers(0, 4, size=6)
    zt = torch.tensor(z, requires_grad=True)
    val = losses.cross_entropy(zt, torch.from_numpy(idx), from_logits=from_logits)
    jac = torch.autograd.functional.jacobian(
        lambda a: losses.cross_entropy(
            a, torch.from_numpy(idx), from_logits=from_logits
        ),
        zt,
    )
    grad = torch.stack([jac[i, i] for i in range(6)]).numpy()
    np.testing.assert_allclose(
        losses.get("cross_entropy").d1(z, idx, from_logits=from_logits),
        grad,
        rtol=1e-10,
    )
    for i in range(6):
        hess = torch.autograd.functional.hessian(
            lambda a, i=i: losses.cross_entropy(
                a[None], torch.tensor([idx[i]]), from_logits=from_logits
            ).sum(),
            zt[i].detach(),
        ).numpy()
        d2 = losses.get("cross_entropy").d2(
            z[i : i + 1], idx[i : i + 1], from_logits=from_logits
        )[0]
        np.testing.assert_allclose(d2, hess, rtol=1e-9, atol=1e-12)
    assert val.shape == (6,)


def test_registry_names_and_aliases():
    assert set(losses.available()) == {
        "mse",
        "mae",
        "huber",
        "log_cosh",
        "bce",
        "bce_with_logits",
        "cross_entropy",
    }
    assert losses.get("log-cosh") is losses.get("log_cosh")
    assert losses.get(losses.get("mse")).name == "mse"


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: losses.get("hinge"),
            ValueError,
            r"`loss` must be one of .* got 'hinge'",
        ),
        (lambda: losses.get(3), TypeError, r"`loss` must be a loss name"),
        (
            lambda: losses.huber(1.0, 0.0, delta=0),
            ValueError,
            r"`delta` must be .* > 0",
        ),
        (lambda: losses.huber(1.0, 0.0, delta=float("nan")), ValueError, r"`delta`"),
        (
            lambda: losses.get("mse").mean(1.0, 0.0, delta=1.0),
            TypeError,
            r"loss 'mse' takes parameters none, got unexpected \['delta'\]",
        ),
        (
            lambda: losses.cross_entropy(np.zeros((4, 3)), np.zeros(3)),
            ValueError,
            r"`target` must hold class indices of shape \(4,\)",
        ),
    ],
)
def test_bad_input_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_numpy_path_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, lossmap, lossmap.toy;"
        "from lossmap import losses; losses.mse(1.0, 2.0);"
        "lossmap.toy.problem('tanh','two-points','mse').surface(steps=5);"
        "bad=[m for m in ('torch','matplotlib','plotly','dash') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", ["mse", "mae", "huber", "log_cosh", "bce_with_logits"])
def test_cross_broadcast_warns_and_grids_do_not(name):
    # pred of shape (n, 1) against target (n,) silently gave an (n, n) table
    # whose mean is not the loss; torch's mse_loss warns here as well
    loss = losses.get(name)
    pred = np.array([[0.2], [0.7], [0.4]])
    target = np.array([0.0, 1.0, 1.0])
    with pytest.warns(UserWarning, match=r"broadcast to \(3, 3\), larger than both"):
        table = loss(pred, target)
    assert table.shape == (3, 3)
    # the same numbers with matching shapes: the true loss, no warning
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        right = loss(pred.ravel(), target)
        ref = {
            "mse": F.mse_loss,
            "mae": F.l1_loss,
            "huber": F.huber_loss,
            "log_cosh": lambda p, y, reduction: torch.log(torch.cosh(p - y)),
            "bce_with_logits": F.binary_cross_entropy_with_logits,
        }[name](torch.tensor(pred.ravel()), torch.tensor(target), reduction="none")
        np.testing.assert_allclose(right, ref.numpy(), rtol=1e-12)
        # a grid of predictions against one target vector, and a scalar
        assert loss(np.zeros((4, 5, 3)), target).shape == (4, 5, 3)
        assert loss(0.5, target).shape == (3,)
    assert abs(float(np.mean(table)) - float(np.mean(right))) > 1e-3


def test_shapes_that_do_not_broadcast_are_named():
    with pytest.raises(
        ValueError, match=r"`pred` and `target` must have broadcastable"
    ):
        losses.mse(np.ones(3), np.zeros(2))
