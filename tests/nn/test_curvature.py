"""Curvature operators and algorithms against exact dense references.

References are built independently of the operators: the Hessian with
``torch.func.hessian``; the GGN as ``Jᵀ H_L J`` from ``torch.func.jacrev`` and
the Hessian of the loss in the outputs; the Fishers as sums of outer products
of per-sample gradients from ``torch.func.vmap(grad)``. Eigenvalue errors are
measured relative to the matrix norm (the largest |eigenvalue|), the scale
every eigenvalue of the matrix is computed to.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, hessian, jacrev, vmap

from lossmap.nn import curvature
from lossmap.nn.curvature import (
    EmpiricalFisherOperator,
    FisherOperator,
    GGNOperator,
    HessianOperator,
    block_curvature,
    eigenvalues,
    hutchinson,
    hutchpp,
    lanczos_edges,
    slq,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


OPERATORS = {
    "hessian": HessianOperator,
    "ggn": GGNOperator,
    "empirical_fisher": EmpiricalFisherOperator,
}


# ------------------------------------------------------------------ models
class Attention(nn.Module):
    """One self-attention layer over a short sequence, pooled, then classes."""

    def __init__(self, d: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)
        self.head = nn.Linear(d, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        h = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return self.head(torch.tanh(h).mean(dim=1))


def mlp(dtype=torch.float64, width=8, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, width), nn.Tanh(), nn.Linear(width, 3)).to(dtype)


def bn_net(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 3)
    ).double()
    with torch.no_grad():  # non-trivial running statistics
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    return net


def data(n=40, d=4, classes=3, seed=1, seq=None):
    g = torch.Generator().manual_seed(seed)
    shape = (n, seq, d) if seq else (n, d)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=g)
    return x, y


def reference_model(model, bn, x):
    """A private copy in the state the mode means, for the references."""
    ref = copy.deepcopy(model)
    ref.eval()
    if bn == "batch":
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.train()
                m.track_running_stats = False
    elif bn == "recompute":
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.reset_running_stats()
                m.momentum = None
                m.train()
        with torch.no_grad():
            ref(x)
        ref.eval()
    return ref


def flat_fn(model):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    buffers = {n: b for n, b in model.named_buffers()}

    def out(v, x):
        parts = dict(
            zip(names, [c.view(s) for c, s in zip(torch.split(v, sizes), shapes)])
        )
        return functional_call(model, (parts, buffers), (x,))

    return theta, out


def exact(kind, model, loss_fn, x, y, bn="eval"):
    ref = reference_model(model, bn, x)
    theta, out = flat_fn(ref)
    with _math():
        if kind == "hessian":
            # torch.autograd.functional, not torch.func: under vmap, torch 2.13
            # gets BatchNorm's training-mode Hessian wrong (off by 0.1 where
            # central differences of the gradient agree with this to 5e-11)
            return torch.autograd.functional.hessian(
                lambda v: loss_fn(out(v, x), y), theta
            )
        if kind == "ggn":
            f = out(theta, x).detach()
            J = jacrev(lambda v: out(v, x))(theta).reshape(f.numel(), -1)
            HL = hessian(lambda o: loss_fn(o, y))(f).reshape(f.numel(), f.numel())
            return J.T @ HL @ J
        # empirical Fisher: per-sample gradients at the observed targets
        g = vmap(
            grad(lambda v, xi, yi: loss_fn(out(v, xi[None]), yi[None])),
            in_dims=(None, 0, 0),
        )(theta, x, y)
        return g.T @ g / x.shape[0]


def _math():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(SDPBackend.MATH)


CASES = {
    "mlp": lambda: (mlp(), *data()),
    "attention": lambda: (Attention().double(), *data(seq=5, d=8)),
    "bn": lambda: (bn_net(), *data()),
}


def check_spectrum(op, M, rel):
    lam = np.linalg.eigvalsh(M.numpy())
    norm = np.abs(lam).max()
    top = eigenvalues(op, 5)
    low = eigenvalues(op, 2, which="smallest")
    assert top.converged
    assert low.converged
    assert len(top.values) == 5
    assert len(low.values) == 2
    np.testing.assert_allclose(top.values, lam[::-1][:5], rtol=0, atol=rel * norm)
    np.testing.assert_allclose(low.values, lam[:2], rtol=0, atol=rel * norm)
    for val, vec in zip(top.values, top.vectors):
        r = torch.linalg.vector_norm(M.to(vec) @ vec - float(val) * vec)
        assert float(r) <= 10 * top.tolerance
    return top, low


# ----------------------------------------------------------- the matrices
@pytest.mark.parametrize("kind", list(OPERATORS))
@pytest.mark.parametrize("case", ["mlp", "attention"])
@pytest.mark.parametrize("batch_size", [None, 7])
def test_operator_equals_exact_matrix(kind, case, batch_size):
    model, x, y = CASES[case]()
    M = exact(kind, model, F.cross_entropy, x, y)
    op = OPERATORS[kind](model, F.cross_entropy, (x, y), batch_size=batch_size)
    torch.testing.assert_close(op.dense(), M, rtol=1e-9, atol=1e-11)
    check_spectrum(op, M, 1e-5)


@pytest.mark.parametrize("kind", ["hessian", "ggn"])
@pytest.mark.parametrize("bn", ["eval", "batch", "recompute"])
def test_batchnorm_modes(kind, bn):
    model, x, y = CASES["bn"]()
    M = exact(kind, model, F.cross_entropy, x, y, bn=bn)
    op = OPERATORS[kind](model, F.cross_entropy, (x, y), bn=bn)
    torch.testing.assert_close(op.dense(), M, rtol=1e-9, atol=1e-11)
    check_spectrum(op, M, 1e-5)


def test_batchnorm_modes_differ():
    model, x, y = CASES["bn"]()
    dense = {
        bn: HessianOperator(model, F.cross_entropy, (x, y), bn=bn).dense()
        for bn in ["eval", "batch", "recompute"]
    }
    assert not torch.allclose(dense["eval"], dense["batch"])
    assert not torch.allclose(dense["eval"], dense["recompute"])


def test_empirical_fisher_with_batchnorm_in_eval_mode():
    model, x, y = CASES["bn"]()
    M = exact("empirical_fisher", model, F.cross_entropy, x, y)
    op = EmpiricalFisherOperator(model, F.cross_entropy, (x, y), batch_size=16)
    torch.testing.assert_close(op.dense(), M, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize(
    ("loss_fn", "targets"),
    [
        (F.cross_entropy, lambda n, g: torch.randint(0, 3, (n,), generator=g)),
        (F.mse_loss, lambda n, g: torch.randn(n, 3, generator=g, dtype=torch.float64)),
        (
            F.binary_cross_entropy_with_logits,
            lambda n, g: torch.randint(0, 2, (n, 3), generator=g).double(),
        ),
    ],
)
def test_true_fisher_is_outer_products_of_sampled_gradients(loss_fn, targets):
    model = mlp()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(30, 4, generator=g, dtype=torch.float64)
    y = targets(30, g)
    op = FisherOperator(model, loss_fn, (x, y), samples=3, batch_size=7, seed=5)
    theta, out = flat_fn(model)
    drawn = torch.cat(op.sampled_targets, dim=1)  # (samples, N, ...)

    def one(v, xi, yi):
        return loss_fn(out(v, xi[None]), yi[None])

    G = torch.stack([vmap(grad(one), in_dims=(None, 0, 0))(theta, x, d) for d in drawn])
    terms = 3 if loss_fn is F.binary_cross_entropy_with_logits else 1
    M = terms * torch.einsum("snp,snq->pq", G, G) / (30 * 3)
    torch.testing.assert_close(op.dense(), M, rtol=1e-9, atol=1e-11)
    check_spectrum(op, M, 1e-5)
    # the expectation over draws is the GGN (Martens 2020): many draws approach it
    many = FisherOperator(model, loss_fn, (x, y), samples=400, seed=1).dense()
    ggn = GGNOperator(model, loss_fn, (x, y)).dense()
    assert float((many - ggn).abs().max()) < 0.1 * float(ggn.abs().max())


def test_true_fisher_needs_a_likelihood_for_other_losses():
    model, x, y = CASES["mlp"]()
    with pytest.raises(ValueError, match="`likelihood` must be given"):
        FisherOperator(model, lambda o, t: F.cross_entropy(o, t), (x, y))
    with pytest.raises(ValueError, match="`likelihood` must be one of"):
        FisherOperator(model, F.cross_entropy, (x, y), likelihood="poisson")
    op = FisherOperator(
        model, lambda o, t: F.cross_entropy(o, t), (x, y), likelihood="categorical"
    )
    assert op.sampled_targets[0].shape == (1, 40)


def test_float32_converges_and_is_accurate():
    model = mlp(torch.float32, width=24, seed=2)
    x, y = data(n=200)
    M = exact("hessian", mlp(width=24, seed=2), F.cross_entropy, x, y)
    op = HessianOperator(model, F.cross_entropy, (x.float(), y))
    top, _low = check_spectrum(op, M, 1e-4)
    assert top.tolerance < 1e-4 * top.norm


def test_k_pairs_when_the_krylov_space_closes():
    # H = 2·I: the first Lanczos step already spans an invariant subspace
    net = nn.Linear(2, 2, bias=False).double()
    x = torch.eye(2, dtype=torch.float64) * 2**0.5
    op = HessianOperator(net, lambda o, t: (o**2).sum(1).mean(), (x, torch.zeros(2)))
    e = eigenvalues(op, 3, block=1)
    assert e.values.tolist() == pytest.approx([2.0, 2.0, 2.0], abs=1e-12)
    assert e.converged
    assert e.restarts >= 2
    assert torch.allclose(e.vectors @ e.vectors.T, torch.eye(3, dtype=torch.float64))
    assert len(eigenvalues(op, 4).values) == 4
    with pytest.raises(ValueError, match="`k` must be <= 4, got 5"):
        eigenvalues(op, 5)


def test_unconverged_is_reported():
    model, x, y = CASES["mlp"]()
    op = HessianOperator(model, F.cross_entropy, (x, y))
    e = eigenvalues(op, 3, max_iter=4, block=1)
    assert len(e.values) == 3
    assert not e.converged
    # 4 steps; the residuals come from the Lanczos relation, no product
    assert e.products == op.products == 4
    assert e.iterations == 4
    # verify=True: 3 explicit residual products
    op = HessianOperator(model, F.cross_entropy, (x, y))
    v = eigenvalues(op, 3, max_iter=4, block=1, verify=True)
    assert v.products == op.products == 4 + 3
    np.testing.assert_allclose(v.residuals, e.residuals, rtol=1e-6)


def test_residuals_are_honest_when_the_last_block_is_cut_short():
    # block 4, max_iter 6: the second block holds only 2 of the 4 residual
    # rows; the other two used to drop out of the Lanczos relation, so the
    # reported residuals were up to 10x below the explicit ‖Mv − λv‖
    model, x, y = CASES["mlp"]()
    op = HessianOperator(model, F.cross_entropy, (x, y))
    M = op.dense()
    for k, max_iter in [(4, 6), (3, 7), (2, 3)]:
        e = eigenvalues(op, k, max_iter=max_iter)
        assert len(e.values) == k
        V = e.vectors.to(M.dtype)
        explicit = torch.linalg.vector_norm(
            V @ M - torch.as_tensor(e.values)[:, None] * V, dim=1
        ).numpy()
        np.testing.assert_allclose(e.residuals, explicit, rtol=1e-6, atol=1e-12)
        assert e.converged == bool(np.all(explicit <= e.tolerance))


def test_both_ends_from_one_run_and_products_counted():
    model, x, y = CASES["mlp"]()
    op = HessianOperator(model, F.cross_entropy, (x, y))
    M = op.dense()
    lam = np.linalg.eigvalsh(M.numpy())
    before = op.products
    res = lanczos_edges(op, {"largest": 2, "smallest": 1})
    assert res["largest"].values == pytest.approx(lam[::-1][:2], abs=1e-8)
    assert res["smallest"].values == pytest.approx(lam[:1], abs=1e-8)
    assert res["largest"].products == op.products - before


def test_scipy_eigsh_on_the_operator():
    from scipy.sparse.linalg import eigsh

    model, x, y = CASES["mlp"]()
    op = GGNOperator(model, F.cross_entropy, (x, y))
    M = op.dense().numpy()
    vals = eigsh(op.to_scipy(), k=3, which="LA", return_eigenvectors=False)
    np.testing.assert_allclose(np.sort(vals), np.linalg.eigvalsh(M)[-3:], rtol=1e-8)
    v = np.random.default_rng(0).normal(size=op.dim)
    np.testing.assert_allclose(op.matvec(v), M @ v, rtol=1e-10, atol=1e-12)


def test_batched_products_equal_single_products():
    model, x, y = CASES["attention"]()
    for cls in OPERATORS.values():
        op = cls(model, F.cross_entropy, (x, y))
        V = torch.randn(4, op.dim, dtype=torch.float64)
        single = torch.stack([op.matvec(v) for v in V])
        first = op.matmat(V)
        assert op.products == 8
        assert op._batched is True  # no convolution: batched
        op._batched = False  # force the loop
        torch.testing.assert_close(op.matmat(V), single, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(first, single, rtol=1e-10, atol=1e-12)
        assert op.products == 12


def test_parameter_selection_is_the_diagonal_block():
    model, x, y = CASES["mlp"]()
    H = exact("hessian", model, F.cross_entropy, x, y)
    op = HessianOperator(model, F.cross_entropy, (x, y), params=["2.weight", "2.bias"])
    n0 = 4 * 8 + 8
    torch.testing.assert_close(op.dense(), H[n0:, n0:], rtol=1e-10, atol=1e-12)
    pred = HessianOperator(
        model, F.cross_entropy, (x, y), params=lambda n, p: n.startswith("2.")
    )
    assert pred.names == ["2.weight", "2.bias"]


def test_block_curvature_matches_diagonal_blocks():
    model, x, y = CASES["mlp"]()
    H = exact("hessian", model, F.cross_entropy, x, y)
    op = HessianOperator(model, F.cross_entropy, (x, y))
    blocks = block_curvature(op, k=2, sketch=40)
    assert list(blocks) == ["0", "2"]
    cuts = {"0": slice(0, 40), "2": slice(40, 67)}
    for name, sl in cuts.items():
        B = H[sl, sl]
        lam = np.linalg.eigvalsh(B.numpy())
        assert blocks[name].dim == B.shape[0]
        assert blocks[name].top.values == pytest.approx(lam[::-1][:2], abs=1e-8)
        # the sketch covers the whole block: Hutch++ is exact
        assert blocks[name].trace.value == pytest.approx(
            float(torch.trace(B)), abs=1e-9
        )
        assert blocks[name].trace.stderr == 0.0


# ------------------------------------------------------------ trace, density
@pytest.fixture(scope="module")
def mlp_exact():
    model = mlp(width=6)
    x, y = data(n=60)
    op = HessianOperator(model, F.cross_entropy, (x, y))
    return op, float(torch.trace(op.dense()))


def test_hutchinson_covers_the_exact_trace(mlp_exact):
    op, tr = mlp_exact
    inside = 0
    for seed in range(100):
        est = hutchinson(op, probes=30, batch=30, seed=seed)
        inside += abs(est.value - tr) <= 3 * est.stderr
    assert inside >= 95


def test_hutchpp_covers_the_exact_trace_and_beats_hutchinson(mlp_exact):
    op, tr = mlp_exact
    inside, se_pp, se_h = 0, [], []
    for seed in range(100):
        est = hutchpp(op, sketch=8, probes=30, batch=30, seed=seed)
        inside += abs(est.value - tr) <= 3 * est.stderr
        se_pp.append(est.stderr)
        se_h.append(hutchinson(op, probes=46, batch=46, seed=seed).stderr)
        assert est.products == 2 * 8 + 30
    assert inside >= 95
    assert np.median(se_pp) < np.median(se_h)  # same number of products


def test_target_se_stopping_rule_and_seeds(mlp_exact):
    op, tr = mlp_exact
    loose = hutchinson(op, probes=2000, target_se=0.08 * abs(tr), seed=3)
    tight = hutchinson(op, probes=2000, target_se=0.03 * abs(tr), seed=3)
    assert loose.stderr <= 0.08 * abs(tr)
    assert tight.stderr <= 0.03 * abs(tr)
    assert 10 <= loose.probes < tight.probes < 2000
    assert tight.products == tight.probes
    again = hutchinson(op, probes=2000, target_se=0.03 * abs(tr), seed=3)
    assert again.value == tight.value
    assert again.probes == tight.probes
    pp = hutchpp(op, sketch=8, probes=2000, target_se=0.03 * abs(tr), seed=3)
    assert pp.stderr <= 0.03 * abs(tr)


def test_density_integrates_to_one_and_its_mean_is_trace_over_n(mlp_exact):
    op, tr = mlp_exact
    d = slq(op, iterations=30, probes=8, seed=0)
    assert np.trapezoid(d.density, d.grid) == pytest.approx(1.0, abs=1e-6)
    assert np.allclose(d.weights.sum(axis=1), 1.0)
    assert abs(d.mean - tr / op.dim) <= 3 * d.mean_stderr
    assert d.per_probe.shape == (8, d.grid.size)
    assert np.all(d.spread >= 0)
    assert d.products == 8 * 30


def test_slq_to_exhaustion_finds_the_spectrum():
    model, x, y = CASES["mlp"]()
    op = HessianOperator(model, F.cross_entropy, (x, y))
    lam = np.linalg.eigvalsh(op.dense().numpy())
    d = slq(op, iterations=op.dim, probes=2)
    for nodes, weights in zip(d.nodes, d.weights):
        kept = nodes[weights > 1e-10]
        assert np.min(np.abs(kept[:, None] - lam[None, :]), axis=1).max() < 1e-7


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("hessian", "HessianLinearOperator"),
        ("ggn", "GGNLinearOperator"),
        ("empirical_fisher", "EFLinearOperator"),
    ],
)
def test_agrees_with_curvlinops(kind, name):
    curvlinops = pytest.importorskip("curvlinops")
    model, x, y = CASES["mlp"]()
    params = list(model.parameters())
    theirs = getattr(curvlinops, name)(
        model, nn.CrossEntropyLoss(), params, [(x[:25], y[:25]), (x[25:], y[25:])]
    )
    ours = OPERATORS[kind](model, F.cross_entropy, (x, y), batch_size=25)
    V = torch.randn(ours.dim, 3, dtype=torch.float64)
    torch.testing.assert_close(ours.matmat(V.T).T, theirs @ V, rtol=1e-9, atol=1e-11)


# ------------------------------------------------- the batch contract
def _masked_tokens():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    g = torch.Generator().manual_seed(5)
    x = torch.randn(9, 6, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (9, 6), generator=g)
    y[torch.rand(9, 6, generator=g) < 0.4] = -100  # padding, unevenly per tile
    y[0, :5] = -100

    def masked(out, t):
        keep = t != -100
        total = F.cross_entropy(out[keep], t[keep], reduction="sum")
        return total, keep.sum()

    return model, x, y, masked


@pytest.mark.parametrize("kind", ["hessian", "ggn", "empirical_fisher"])
@pytest.mark.parametrize("batch_size", [None, 2, 4])
def test_masked_token_loss_is_exact_over_tiles(kind, batch_size):
    model, x, y, masked = _masked_tokens()
    keep = y != -100
    theta, out = flat_fn(model)

    def total(v):  # the mean over every kept token of the whole data set
        return F.cross_entropy(out(v, x)[keep], y[keep])

    if kind == "hessian":
        M = torch.autograd.functional.hessian(total, theta)
    elif kind == "ggn":
        f = out(theta, x).detach()
        J = jacrev(lambda v: out(v, x))(theta).reshape(f.numel(), -1)
        HL = hessian(lambda o: F.cross_entropy(o[keep], y[keep]))(f)
        M = J.T @ HL.reshape(f.numel(), f.numel()) @ J
    else:  # per-row (per-sequence) gradients of the summed kept-token loss

        def row(v, xi, yi):
            k = yi != -100
            return F.cross_entropy(out(v, xi[None])[0][k], yi[k], reduction="sum")

        G = torch.stack([grad(row)(theta, x[i], y[i]) for i in range(9)])
        M = G.T @ G / keep.sum()
    op = OPERATORS[kind](model, masked, (x, y), batch_size=batch_size)
    torch.testing.assert_close(op.dense(), M, rtol=1e-9, atol=1e-11)
    assert op.loss() == pytest.approx(float(total(theta)), rel=1e-12)


def test_mapping_batches_call_targets_and_weighted_terms():
    model, x, y = CASES["mlp"]()
    data = {"features": x, "labels": y}
    terms = {"ce": F.cross_entropy, "l2": lambda o, t: (o**2).mean()}
    op = HessianOperator(
        model,
        terms,
        data,
        call=lambda f, b: f(b["features"]),
        targets="labels",
        weights={"ce": 1.0, "l2": 0.1},
        batch_size=16,
    )
    theta, out = flat_fn(model)
    M = torch.autograd.functional.hessian(
        lambda v: F.cross_entropy(out(v, x), y) + 0.1 * (out(v, x) ** 2).mean(), theta
    )
    torch.testing.assert_close(op.dense(), M, rtol=1e-9, atol=1e-11)
    with pytest.raises(ValueError, match="needs one loss term"):
        EmpiricalFisherOperator(
            model, terms, data, call=lambda f, b: f(b["features"]), targets="labels"
        )


def test_selection_by_module_and_pattern():
    model, x, y = CASES["mlp"]()
    by_module = HessianOperator(model, F.cross_entropy, (x, y), params="2")
    by_glob = HessianOperator(model, F.cross_entropy, (x, y), params="*.bias")
    assert by_module.names == ["2.weight", "2.bias"]
    assert by_glob.names == ["0.bias", "2.bias"]
    H = HessianOperator(model, F.cross_entropy, (x, y)).dense()
    idx = list(range(32, 40)) + list(range(64, 67))
    torch.testing.assert_close(by_glob.dense(), H[idx][:, idx], rtol=1e-10, atol=1e-12)


def test_a_1210_parameter_network_in_float32():
    """A digits-sized MLP (64-16-10): top-5 and bottom-2 of the float32
    operator against the float64 dense Hessian, relative to its norm."""
    torch.manual_seed(7)
    net64 = nn.Sequential(nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 10)).double()
    g = torch.Generator().manual_seed(8)
    x = torch.randn(300, 64, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (300,), generator=g)
    theta, out = flat_fn(net64)
    H = torch.autograd.functional.hessian(
        lambda v: F.cross_entropy(out(v, x), y), theta, vectorize=True
    )
    assert H.shape == (1210, 1210)
    net32 = copy.deepcopy(net64).float()
    op = HessianOperator(net32, F.cross_entropy, (x.float(), y))
    check_spectrum(op, H, 1e-4)


class _WithLoss(nn.Module):
    """Returns an object with ``.loss`` and ``.logits``, as HuggingFace models."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3).double()

    def forward(self, x, labels):
        from types import SimpleNamespace

        logits = self.lin(x)
        return SimpleNamespace(loss=F.cross_entropy(logits, labels), logits=logits)


@pytest.mark.parametrize("cls", [GGNOperator, EmpiricalFisherOperator, FisherOperator])
def test_output_space_matrices_refuse_output_loss_with_a_way_out(cls):
    # it used to fail only at the first product, with "needs the model to
    # return one tensor, got SimpleNamespace" and no hint of `call=`
    torch.manual_seed(0)
    model = _WithLoss()
    x = torch.randn(10, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (10,))
    batch = {"x": x, "labels": y}
    kw = {"likelihood": "categorical"} if cls is FisherOperator else {}
    with pytest.raises(
        ValueError, match=r"`loss_fn` as a function of the model's output.*call="
    ):
        cls(model, "output.loss", batch, **kw)
    # the Hessian of the output's own loss is fine, and the way out works
    h = HessianOperator(model, "output.loss", batch).dense()
    g = GGNOperator(
        model,
        F.cross_entropy,
        batch,
        call=lambda m, b: m(b["x"], b["labels"]).logits,
        targets="labels",
    ).dense()
    # a linear model: the GGN equals the Hessian
    torch.testing.assert_close(g, h, rtol=1e-12, atol=1e-14)


def test_trace_says_whether_target_se_was_met(mlp_exact):
    # the estimate stopped at `probes` with a standard error far above the
    # target and said nothing; meta now records it
    op, exact = mlp_exact
    for fn in (hutchinson, hutchpp):
        kw = {"sketch": 4} if fn is hutchpp else {}
        missed = fn(op, probes=12, target_se=1e-9, **kw)
        assert missed.probes == 12
        assert missed.stderr > 1e-9
        assert missed.meta == {"target_se": 1e-9, "target_met": False}
        met = fn(op, probes=400, target_se=0.5, **kw)
        assert met.meta["target_met"]
        assert met.stderr <= 0.5
        assert abs(met.value - exact) < 5 * max(met.stderr, 1e-12)
        assert fn(op, probes=12, **kw).meta == {}


@pytest.mark.parametrize(
    "name",
    ["HessianOperator", "GGNOperator", "FisherOperator", "EmpiricalFisherOperator"],
)
def test_a_loss_that_fails_on_the_batch_is_named_at_construction(name):
    # a bare input tensor is its own "targets": cross-entropy fails on it, and
    # the operator says which function failed on which shapes (not torch alone)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3))
    x = torch.randn(10, 4)
    with pytest.raises(ValueError, match=r"`loss_fn` failed on model outputs of shape"):
        getattr(curvature, name)(net, F.cross_entropy, x)
