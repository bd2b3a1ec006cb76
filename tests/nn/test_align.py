"""Permutation alignment (weight matching) of MLPs and CNNs."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("scipy")

from lossmap.nn import align  # noqa: E402


def _mlp(seed, norm=False):
    torch.manual_seed(seed)
    layers = [torch.nn.Linear(6, 9), torch.nn.ReLU(), torch.nn.Linear(9, 7)]
    if norm:
        layers.append(torch.nn.BatchNorm1d(7))
    layers += [torch.nn.Tanh(), torch.nn.Linear(7, 3)]
    return torch.nn.Sequential(*layers).double()


def _cnn(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 5, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(5 * 4 * 4, 3),
    ).double()


def _randomise_bn(net, seed):
    gen = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                for t in (m.weight, m.bias, m.running_mean):
                    t.copy_(torch.randn(t.shape, generator=gen, dtype=t.dtype))
                m.running_var.copy_(
                    torch.rand(m.running_var.shape, generator=gen) + 0.5
                )


def _permute(net, seed):
    """A copy with the hidden units of every hidden layer shuffled (by hand)."""
    gen = torch.Generator().manual_seed(seed)
    out = copy.deepcopy(net)
    layers = [m for m in out if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)]
    norms = {
        i: m
        for i, m in enumerate(out)
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    }
    index = [
        i for i, m in enumerate(out) if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)
    ]
    with torch.no_grad():
        for k, layer in enumerate(layers[:-1]):
            units = layer.weight.shape[0]
            p = torch.randperm(units, generator=gen)
            layer.weight.copy_(layer.weight[p])
            layer.bias.copy_(layer.bias[p])
            for i, bn in norms.items():
                if index[k] < i < index[k + 1]:
                    for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                        t.copy_(t[p])
            nxt = layers[k + 1]
            w = nxt.weight
            if isinstance(nxt, torch.nn.Linear) and w.shape[1] != units:
                v = w.reshape(w.shape[0], units, -1)[:, p].reshape(w.shape)
                w.copy_(v)
            else:
                w.copy_(w[:, p])
    return out


@pytest.mark.parametrize("norm", [False, True], ids=["plain", "batchnorm"])
def test_permuted_mlp_is_realigned_exactly(norm):
    a = _mlp(0, norm)
    if norm:
        _randomise_bn(a, 1)
    b = _permute(a, 7)
    x = torch.randn(20, 6, dtype=torch.float64)
    a.eval(), b.eval()
    assert torch.allclose(a(x), b(x))  # the permuted copy: same function
    assert not torch.equal(a[0].weight, b[0].weight)  # other parameters
    before = copy.deepcopy(b.state_dict())
    result = align(a, b)
    for (n, t), (n2, t2) in zip(
        a.state_dict().items(), result.model.state_dict().items()
    ):
        assert n == n2
        torch.testing.assert_close(t2, t, rtol=0, atol=0, msg=n)
    # model B itself untouched; the aligned one computes B's function
    for n, t in b.state_dict().items():
        assert torch.equal(t, before[n])
    assert torch.allclose(result.model(x), b(x))
    assert result.meta["similarity_after"] > result.meta["similarity_before"]
    assert result.meta["max_output_difference"] < 1e-12
    assert set(result.permutations) == {"0", "2"}


def test_permuted_cnn_with_flatten_is_realigned():
    a = _cnn(0)
    _randomise_bn(a, 3)
    b = _permute(a, 5)
    x = torch.randn(4, 2, 6, 6, dtype=torch.float64)
    result = align(a, b, inputs=x)
    for (n, t), t2 in zip(a.state_dict().items(), result.model.state_dict().values()):
        torch.testing.assert_close(t2, t, rtol=0, atol=0, msg=n)
    with pytest.raises(ValueError, match="`inputs`"):
        align(a, b)


def test_independent_networks_become_more_similar():
    a, b = _mlp(0), _mlp(1)
    result = align(a, b)
    assert result.meta["similarity_after"] >= result.meta["similarity_before"]
    perm = result.permutations["0"]
    assert sorted(perm.tolist()) == list(range(9))
    x = torch.randn(16, 6, dtype=torch.float64)
    assert torch.allclose(result.model(x), b(x))


class _Residual(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = torch.nn.Linear(4, 8)
        self.l2 = torch.nn.Linear(8, 8)
        self.l3 = torch.nn.Linear(8, 2)

    def forward(self, x):
        h = torch.relu(self.l1(x))
        return self.l3(torch.relu(self.l2(h)) + h)


def test_a_non_chain_is_refused_not_silently_wrong():
    torch.manual_seed(0)
    a, b = _Residual(), _Residual()
    with pytest.raises(ValueError, match="same function"):
        align(a, b)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: torch.nn.Sequential(torch.nn.Linear(3, 2)), "at least two"),
        (
            lambda: torch.nn.Sequential(
                torch.nn.Linear(3, 4), torch.nn.GRU(4, 4), torch.nn.Linear(4, 2)
            ),
            "not supported",
        ),
        (
            lambda: torch.nn.Sequential(
                torch.nn.Conv2d(4, 4, 3, groups=2), torch.nn.Conv2d(4, 2, 1)
            ),
            "groups",
        ),
    ],
    ids=["one-layer", "gru", "groups"],
)
def test_unsupported_architectures(make, match):
    with pytest.raises(ValueError, match=match):
        align(make(), make())


def test_different_architectures_are_refused():
    with pytest.raises(ValueError, match="same architecture"):
        align(_mlp(0), torch.nn.Sequential(torch.nn.Linear(6, 3)).double())
    with pytest.raises(TypeError, match="model_b"):
        align(_mlp(0), np.zeros(3))


@pytest.mark.parametrize("widths", [(3, 5, 4, 6, 2), (7, 2, 9, 3)])
def test_deeper_mlps_with_layernorm_are_realigned(widths):
    torch.manual_seed(sum(widths))
    layers = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
        layers.append(torch.nn.Linear(fan_in, fan_out))
        if i < len(widths) - 2:
            layers += [torch.nn.LayerNorm(fan_out), torch.nn.GELU()]
    a = torch.nn.Sequential(*layers).double()
    with torch.no_grad():
        for m in a:
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.normal_()
                m.bias.normal_()
    b = copy.deepcopy(a)
    gen = torch.Generator().manual_seed(9)
    linears = [m for m in b if isinstance(m, torch.nn.Linear)]
    norms = [m for m in b if isinstance(m, torch.nn.LayerNorm)]
    with torch.no_grad():
        for k, (lin, norm) in enumerate(zip(linears[:-1], norms)):
            p = torch.randperm(lin.out_features, generator=gen)
            for t in (lin.weight, lin.bias, norm.weight, norm.bias):
                t.copy_(t[p])
            nxt = linears[k + 1].weight
            nxt.copy_(nxt[:, p])
    x = torch.randn(10, widths[0], dtype=torch.float64)
    assert torch.allclose(a(x), b(x))
    result = align(a, b)
    for (n, t), t2 in zip(a.state_dict().items(), result.model.state_dict().values()):
        torch.testing.assert_close(t2, t, rtol=0, atol=0, msg=n)
