"""Hessian operator, Lanczos, Hutchinson and SLQ against the exact Hessian."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, hessian

from lossmap.nn.hessian import (
    HessianOperator,
    hessian_trace,
    spectral_density,
    top_eigenvalues,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)
    ).double()
    x = torch.randn(40, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (40,))
    return model, x, y


def exact_hessian(model, x, y):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def f(v):
        parts = [c.view(s) for c, s in zip(torch.split(v, sizes), shapes)]
        return F.cross_entropy(functional_call(model, dict(zip(names, parts)), (x,)), y)

    return hessian(f)(flat)


def test_matvec_and_dense_match_torch_func_hessian(setup):
    model, x, y = setup
    H = exact_hessian(model, x, y)
    op = HessianOperator(model, F.cross_entropy, (x, y))
    assert op.dim == H.shape[0] == 3 * 6 + 6 + 6 * 3 + 3
    v = torch.randn(op.dim, dtype=torch.float64)
    torch.testing.assert_close(op.matvec(v), H @ v, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(op.dense(), H, rtol=1e-10, atol=1e-12)


def test_tiled_operator_is_the_hessian_of_the_full_mean(setup):
    model, x, y = setup
    H = exact_hessian(model, x, y)
    op = HessianOperator(model, F.cross_entropy, (x, y), batch_size=7)
    v = torch.randn(op.dim, dtype=torch.float64)
    torch.testing.assert_close(op.matvec(v), H @ v, rtol=1e-10, atol=1e-12)


def test_top_eigenvalues_match_exact(setup):
    model, x, y = setup
    lam = torch.linalg.eigvalsh(exact_hessian(model, x, y)).numpy()
    op = HessianOperator(model, F.cross_entropy, (x, y))
    top = top_eigenvalues(op, 3)
    np.testing.assert_allclose(top.values, lam[::-1][:3], rtol=1e-8)
    assert top.converged
    low = top_eigenvalues(op, 2, which="smallest")
    np.testing.assert_allclose(low.values, lam[:2], rtol=1e-7, atol=1e-10)
    # eigenvectors really are eigenvectors
    H = exact_hessian(model, x, y)
    for val, vec in zip(top.values, top.vectors):
        torch.testing.assert_close(H @ vec, val * vec, rtol=1e-6, atol=1e-8)


def test_only_selected_parameters(setup):
    model, x, y = setup
    op = HessianOperator(model, F.cross_entropy, (x, y), params=["2.weight", "2.bias"])
    assert op.dim == 21
    H = exact_hessian(model, x, y)
    idx = slice(3 * 6 + 6, None)
    torch.testing.assert_close(op.dense(), H[idx, idx], rtol=1e-10, atol=1e-12)


def test_hutchinson_trace_within_its_standard_error(setup):
    model, x, y = setup
    exact = float(torch.trace(exact_hessian(model, x, y)))
    op = HessianOperator(model, F.cross_entropy, (x, y))
    est = hessian_trace(op, probes=120, seed=1)
    assert est.probes == 120
    assert abs(est.value - exact) < 4 * est.stderr
    assert est.stderr > 0


def test_hutchinson_is_exact_for_a_diagonal_operator():
    # zᵀ D z = Σ d_i z_i² = tr D for every Rademacher z
    class Diag:
        dim, dtype, device = 5, torch.float64, torch.device("cpu")
        d = torch.tensor([3.0, -1.0, 0.5, 2.0, 7.0], dtype=torch.float64)

        def matvec(self, v):
            return self.d * v

    est = hessian_trace(Diag(), probes=5)
    assert est.value == pytest.approx(11.5)
    assert est.stderr == 0.0


def test_slq_density_integrates_to_one_and_recovers_the_spectrum(setup):
    model, x, y = setup
    lam = torch.linalg.eigvalsh(exact_hessian(model, x, y)).numpy()
    op = HessianOperator(model, F.cross_entropy, (x, y))
    dens = spectral_density(op, iterations=op.dim, probes=3, sigma=1e-3)
    dx = dens.grid[1] - dens.grid[0]
    assert dens.density.sum() * dx == pytest.approx(1.0, abs=1e-3)
    # Lanczos to exhaustion: every Ritz value is an eigenvalue, the top one included
    for nodes, weights in zip(dens.nodes, dens.weights):
        kept = nodes[weights > 1e-12]
        assert np.min(np.abs(kept[:, None] - lam[None, :]), axis=1).max() < 1e-8
        assert kept.max() == pytest.approx(lam.max(), rel=1e-9)
    # the weights' first moment is an unbiased trace/dim estimate: close for 3 probes
    first = float((dens.weights * dens.nodes).sum(axis=1).mean())
    assert first == pytest.approx(lam.mean(), rel=0.5)


def test_model_left_untouched(setup):
    model, x, y = setup
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    op = HessianOperator(model, F.cross_entropy, (x, y))
    top_eigenvalues(op, 1)
    hessian_trace(op, probes=3)
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"params": ["nope"]},
            ValueError,
            "`params` entry 'nope' matches no parameter",
        ),
        ({"params": []}, ValueError, "`params` is an empty list"),
        ({"batch_size": 0}, ValueError, "`batch_size` must be >= 1, got 0"),
        (
            {"loss_fn": lambda o, t: torch.ones(3, dtype=o.dtype)},
            ValueError,
            r"`loss_fn` returned a tensor of shape \(3,\) on a tile of 40 rows",
        ),
        ({"data": [1, 2, 3]}, TypeError, r"`data` .*\(inputs, targets\)"),
        (
            {"data": (torch.zeros(64, 3, dtype=torch.float64), torch.zeros(5).long())},
            ValueError,
            "must share their leading",
        ),
    ],
)
def test_bad_input(setup, kwargs, error, message):
    model, x, y = setup
    args = {"loss_fn": F.cross_entropy, "data": (x, y)}
    args.update(kwargs)
    with pytest.raises(error, match=message):
        HessianOperator(model, args.pop("loss_fn"), args.pop("data"), **args)


def test_bad_spectrum_arguments(setup):
    model, x, y = setup
    op = HessianOperator(model, F.cross_entropy, (x, y))
    with pytest.raises(ValueError, match="`k` must be <= 45"):
        top_eigenvalues(op, 46)
    with pytest.raises(ValueError, match="`which` must be one of"):
        top_eigenvalues(op, 1, which="middle")
    with pytest.raises(ValueError, match="`probes` must be >= 2"):
        hessian_trace(op, probes=1)
    with pytest.raises(ValueError, match=r"`v` must have shape \(45,\)"):
        op.matvec(torch.zeros(3, dtype=torch.float64))


def test_top_eigenvalues_rtol_is_passed_through(setup):
    model, x, y = setup
    lam = torch.linalg.eigvalsh(exact_hessian(model, x, y)).numpy()[::-1]
    op = HessianOperator(model, F.cross_entropy, (x, y))
    loose = top_eigenvalues(op, 1, rtol=1e-3)
    tight = top_eigenvalues(op, 1)
    assert abs(loose.values[0] - lam[0]) <= 1e-3 * abs(lam[0])
    assert loose.rtol == 1e-3
    assert loose.products <= tight.products
