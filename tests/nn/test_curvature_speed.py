"""The fast paths of the curvature algorithms, against exact dense answers.

References: the Hessian from ``torch.autograd.functional.hessian`` of the loss
as a function of the flat parameter vector, its spectrum from ``eigvalsh``.
No wall-clock assertions: what is checked is the answer, the products
counted, and that the faster paths give the same numbers as the slow ones.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from lossmap.nn.curvature import HessianOperator, eigenvalues, hutchpp, lanczos_edges

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _net(dtype: torch.dtype, dropout: bool = False) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Linear(5, 12), nn.Tanh()]
    if dropout:
        layers.append(nn.Dropout(0.3))
    return nn.Sequential(*layers, nn.Linear(12, 4)).to(dtype)


def _data(dtype: torch.dtype, n: int = 60) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(n, 5, generator=g, dtype=dtype), torch.randint(
        0, 4, (n,), generator=g
    )


def _exact_spectrum(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    model = model.double().eval()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(v: torch.Tensor) -> torch.Tensor:
        parts = [c.view(s) for c, s in zip(torch.split(v, sizes), shapes)]
        out = functional_call(model, dict(zip(names, parts)), (x.double(),))
        return F.cross_entropy(out, y)

    H = torch.autograd.functional.hessian(loss, theta)
    return np.linalg.eigvalsh(H.numpy())[::-1]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("k", [1, 3])
def test_rtol_reaches_the_asked_accuracy_with_fewer_products(dtype, k):
    model, (x, y) = _net(dtype), _data(dtype)
    lam = _exact_spectrum(_net(dtype), x, y)[:k]
    for seed in range(4):
        fast = eigenvalues(
            HessianOperator(model, F.cross_entropy, (x, y)), k, rtol=1e-3, seed=seed
        )
        tight = eigenvalues(
            HessianOperator(model, F.cross_entropy, (x, y)), k, seed=seed
        )
        err = np.abs(fast.values - lam)
        assert np.all(err <= 1e-3 * np.abs(lam))
        assert fast.converged
        assert fast.rtol == 1e-3
        # the estimate is what stopped the run, and it did not undersell
        assert np.all(fast.errors <= 1e-3 * np.abs(fast.values))
        assert np.all(err <= fast.errors + 1e-12)
        assert fast.products < tight.products
        # no product beyond the basis
        assert fast.products == fast.iterations
        np.testing.assert_allclose(tight.values, lam, rtol=1e-5)


def test_rtol_never_stops_on_a_single_ritz_value():
    # one product gives one Ritz value and no gap: only the residual counts
    model, (x, y) = _net(torch.float64), _data(torch.float64)
    e = eigenvalues(HessianOperator(model, F.cross_entropy, (x, y)), 1, rtol=0.5)
    assert e.iterations >= 2 or e.residuals[0] <= 0.5 * abs(e.values[0])


@pytest.mark.parametrize("block", [1, 3])
def test_relation_residuals_equal_explicit_ones(block):
    model, (x, y) = _net(torch.float64), _data(torch.float64)
    op = HessianOperator(model, F.cross_entropy, (x, y))
    M = op.dense()
    for max_iter in (6, 12, 30):
        e = eigenvalues(op, 3, block=block, max_iter=max_iter, seed=1)
        explicit = torch.linalg.vector_norm(
            e.vectors @ M - torch.as_tensor(e.values)[:, None] * e.vectors, dim=1
        ).numpy()
        np.testing.assert_allclose(e.residuals, explicit, rtol=1e-6, atol=1e-12)
        v = eigenvalues(op, 3, block=block, max_iter=max_iter, seed=1, verify=True)
        np.testing.assert_allclose(v.residuals, explicit, rtol=1e-6, atol=1e-12)
        np.testing.assert_array_equal(v.values, e.values)


def test_both_ends_with_rtol():
    model, (x, y) = _net(torch.float64), _data(torch.float64)
    lam = _exact_spectrum(_net(torch.float64), x, y)
    res = lanczos_edges(
        HessianOperator(model, F.cross_entropy, (x, y)),
        {"largest": 2, "smallest": 1},
        rtol=1e-4,
    )
    np.testing.assert_allclose(res["largest"].values, lam[:2], rtol=1e-4)
    # the smallest eigenvalue is near 0: the relative test is on its own scale
    assert abs(res["smallest"].values[0] - lam[-1]) <= res["smallest"].errors[0] + 1e-12
    assert res["largest"].converged
    assert res["smallest"].converged


def test_a_session_configures_once_and_leaves_the_model_alone():
    model, (x, y) = _net(torch.float64, dropout=True), _data(torch.float64)
    model.train()
    flags = [m.training for m in model.modules()]
    op = HessianOperator(model, F.cross_entropy, (x, y))
    v = torch.randn(op.dim, dtype=torch.float64)
    outside = op.matvec(v)
    entered = []
    inner = op._configured

    def counting(*a, **k):
        entered.append(1)
        return inner(*a, **k)

    op._configured = counting
    with op.session():
        with op.session():  # re-entrant
            first = op.matvec(v)
        second = op.matmat(torch.stack([v, 2 * v]))
    assert len(entered) == 1
    torch.testing.assert_close(first, outside, rtol=0, atol=0)
    torch.testing.assert_close(second[1], 2 * outside, rtol=1e-12, atol=1e-14)
    op.matvec(v)  # outside a session: configured per product again
    assert len(entered) == 2
    assert [m.training for m in model.modules()] == flags
    # the algorithms hold a session: one configuration for a whole run
    entered.clear()
    hutchpp(op, sketch=4, probes=6, batch=2)
    eigenvalues(op, 2)
    assert len(entered) == 2


def test_batching_is_chosen_from_the_model_never_from_a_timing():
    """Batched products unless the model has a convolution (on a CPU); the
    same call gives bit-identical products every time, and the count is
    exactly the vectors multiplied."""
    model, (x, y) = _net(torch.float64), _data(torch.float64)
    op = HessianOperator(model, F.cross_entropy, (x, y))
    assert op._batched is True
    V = torch.randn(24, op.dim, dtype=torch.float64)
    out = op.matmat(V)
    assert op.products == V.shape[0]
    M = op.dense()
    torch.testing.assert_close(out, V @ M.T, rtol=1e-10, atol=1e-12)
    again = HessianOperator(model, F.cross_entropy, (x, y)).matmat(V)
    assert torch.equal(again, out)

    conv = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(8, 3)
    ).double()
    xi = torch.randn(10, 1, 4, 4, dtype=torch.float64)
    yi = torch.randint(0, 3, (10,))
    cop = HessianOperator(conv, F.cross_entropy, (xi, yi))
    assert cop._batched is False
    W = torch.randn(5, cop.dim, dtype=torch.float64)
    got = cop.matmat(W)
    assert cop.products == 5
    torch.testing.assert_close(got, W @ cop.dense().T, rtol=1e-10, atol=1e-12)
    assert torch.equal(HessianOperator(conv, F.cross_entropy, (xi, yi)).matmat(W), got)


def test_a_batched_pass_that_torch_loops_switches_to_the_loop(monkeypatch):
    import warnings

    model, (x, y) = _net(torch.float64), _data(torch.float64)
    op = HessianOperator(model, F.cross_entropy, (x, y))
    inner = op._tile_product

    def slow(state, parts, batched):
        if batched:
            warnings.warn("There is a performance drop ...", stacklevel=2)
        return inner(state, parts, batched)

    monkeypatch.setattr(op, "_tile_product", slow)
    V = torch.randn(3, op.dim, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the note is not passed on
        first = op.matmat(V)
    assert op._batched is False
    torch.testing.assert_close(op.matmat(V), first, rtol=1e-10, atol=1e-12)
