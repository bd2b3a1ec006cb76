"""tanh computed by NumPy's SIMD loop or as expm1(2x)/(expm1(2x)+2) where
torch's own tanh is slow."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from lossmap import _cpu  # noqa: E402
from lossmap import nn as lnn  # noqa: E402
from lossmap.nn import _split  # noqa: E402


@pytest.fixture
def form(monkeypatch):
    def set_form(value):
        monkeypatch.setenv("LOSSMAP_TANH", value)
        _split.tanh_form.cache_clear()

    yield set_form
    _split.tanh_form.cache_clear()


FAST = {k: f for k, f in _split.TANH_FORMS.items() if f is not None}


@pytest.mark.parametrize("name", sorted(FAST))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_tanh_is_as_accurate_as_tanh(name, dtype):
    mag = torch.logspace(-30, 3, 20_000, dtype=torch.float64)
    x = torch.cat([mag, -mag, torch.zeros(1, dtype=torch.float64)])
    exact = np.tanh(x.numpy().astype(np.longdouble))  # extended precision
    got = FAST[name](x.to(dtype)).double().numpy()
    eps = torch.finfo(dtype).eps
    rel = np.abs(got - exact) / np.maximum(np.abs(exact), np.finfo(np.float64).tiny)
    assert rel.max() <= 4 * eps


@pytest.mark.parametrize("name", sorted(FAST))
def test_fast_tanh_special_values(name):
    x = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 1e30, -1e30])
    got = FAST[name](x)
    assert torch.isnan(got[0])
    assert got[1:3].tolist() == [1.0, -1.0]
    assert got[3].item() == 0.0
    assert torch.signbit(got[3])
    assert got[4:].tolist() == [1.0, -1.0]


def test_form_follows_the_machine_and_the_override(form, monkeypatch):
    form("")
    intel = _cpu.cpu_info().vendor == "GenuineIntel"
    mkl = torch.backends.mkl.is_available()
    if not mkl or intel:
        assert _split.tanh_form() == "torch"
    else:
        want = "numpy" if _split._numpy_tanh_vectorised() else "expm1"
        assert _split.tanh_form() == want
    for value in ("torch", "expm1", "numpy"):
        form(value)
        assert _split.tanh_form() == value
    form("fast")
    with pytest.raises(
        ValueError, match="LOSSMAP_TANH must be one of 'torch', 'expm1', 'numpy'"
    ):
        _split.tanh_form()


def test_numpy_dispatch_is_read_from_numpy(monkeypatch):
    from numpy.lib import introspect

    info = introspect.opt_func_info(func_name="^tanh$")["tanh"]
    simd = all(not info[k]["current"].startswith("baseline") for k in ("ff", "dd"))
    assert _split._numpy_tanh_vectorised() == simd

    def baseline(func_name=None, signature=None):
        return {"tanh": {k: {"current": "baseline(X86_V2)"} for k in ("ff", "dd")}}

    monkeypatch.setattr(introspect, "opt_func_info", baseline)
    assert not _split._numpy_tanh_vectorised()

    def broken(func_name=None, signature=None):
        raise AttributeError("no such function")

    monkeypatch.setattr(introspect, "opt_func_info", broken)
    assert not _split._numpy_tanh_vectorised()  # unknown: never assumed


def test_numpy_tanh_under_vmap_autograd_and_other_dtypes():
    from torch.func import vmap

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, 3, generator=g) * 3
    exact = torch.from_numpy(np.tanh(x.numpy()))
    assert torch.equal(_split.numpy_tanh(x), exact)
    assert torch.equal(vmap(_split.numpy_tanh)(x), exact)
    # a non-contiguous batched view: the batch dimension is kept in place
    t = vmap(lambda r: _split.numpy_tanh(r.T), in_dims=1)(x)
    assert torch.equal(t, exact.permute(1, 2, 0))
    a = torch.randn(6, 3, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(_split.numpy_tanh, (a,))
    assert torch.autograd.gradgradcheck(_split.numpy_tanh, (a,))
    b = x.bfloat16()  # not NumPy's: torch's own tanh
    assert torch.equal(_split.numpy_tanh(b), torch.tanh(b))


def test_numpy_tanh_batching_rule_nests_with_vmap_and_autograd():
    """The lean batching rule (this torch has the internals it needs) under
    nested vmap, with an unbatched argument, and with autograd outside."""
    from torch.func import vmap

    assert _split._lean_batching_rule() is not None
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 6, 5, dtype=torch.float64, generator=g) * 2
    exact = torch.from_numpy(np.tanh(x.numpy()))
    assert torch.equal(vmap(vmap(_split.numpy_tanh))(x), exact)
    assert torch.equal(vmap(vmap(_split.numpy_tanh), in_dims=2, out_dims=2)(x), exact)
    y = x[0, 0]  # closed over: not batched at the vmap level
    out = vmap(lambda r: _split.numpy_tanh(y) + r)(x[0])
    assert torch.equal(out, torch.from_numpy(np.tanh(y.numpy())) + x[0])
    # backward through a vmapped call (torch.func.grad over the operator is
    # not supported: its derivative is registered with autograd, before too)
    d = 1 - exact**2
    a = x[1].clone().requires_grad_()
    vmap(_split.numpy_tanh)(a).sum().backward()
    torch.testing.assert_close(a.grad, d[1], rtol=1e-12, atol=0)


class Neurons(torch.nn.Module):
    """tanh three ways: nn.Tanh, torch.tanh and the tensor method."""

    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(70, 16)
        self.act = torch.nn.Tanh()
        self.fc2 = torch.nn.Linear(16, 8)
        self.fc3 = torch.nn.Linear(8, 3)

    def forward(self, x):
        h = self.act(self.fc1(x))
        h = torch.tanh(self.fc2(h))
        return self.fc3(h).tanh()


@pytest.mark.parametrize("rows", [1, 10, None])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("strategy", ["vmap", "loop"])
def test_plane_with_either_form_matches_loading_the_weights(
    form, dtype, strategy, rows
):
    torch.manual_seed(0)
    net = Neurons()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(37, 70, generator=g), torch.randint(0, 3, (37,), generator=g)
    d = lnn.random_plane(net, seed=2)
    surfaces = {}
    for value in ("torch", "expm1", "numpy"):
        form(value)
        surfaces[value] = lnn.plane(
            net,
            F.cross_entropy,
            (x, y),
            d,
            steps=5,
            progress=False,
            dtype=dtype,
            strategy=strategy,
            batch_size=rows,
        )
    for value in ("expm1", "numpy"):
        split = surfaces[value].metadata["engine"]["split"]
        assert split["tanh"].startswith(f"{value} form (3 calls")
    assert "tanh" not in surfaces["torch"].metadata["engine"]["split"]
    wdt = getattr(torch, dtype)
    ref_net = Neurons().to(wdt)
    s = surfaces["expm1"]
    ref = np.empty(s.shape)
    for i, a in enumerate(s.coords("alpha")):
        for j, b in enumerate(s.coords("beta")):
            state = {
                n: p.detach().to(wdt)
                + a * d[0].tensors[n].to(wdt)
                + b * d[1].tensors[n].to(wdt)
                for n, p in net.named_parameters()
            }
            ref_net.load_state_dict(state)
            with torch.no_grad():
                ref[i, j] = float(F.cross_entropy(ref_net(x.to(wdt)), y))
    tol = 1e-12 if dtype == "float64" else 1e-5
    for surface in surfaces.values():
        np.testing.assert_allclose(surface.loss, ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("value", ["expm1", "numpy"])
def test_rewritten_model_on_an_executor_matches_in_process(form, value):
    from concurrent.futures import ThreadPoolExecutor

    form(value)
    torch.manual_seed(0)
    net = Neurons()
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(29, 70, generator=g), torch.randint(0, 3, (29,), generator=g)
    d = lnn.random_plane(net, seed=4)
    kw = dict(steps=5, progress=False, batch_size=6)
    here = lnn.plane(net, F.cross_entropy, (x, y), d, **kw)
    with ThreadPoolExecutor(2) as pool:
        there = lnn.plane(net, F.cross_entropy, (x, y), d, executor=pool, chunk=2, **kw)
    assert there.metadata["engine"]["split"]["tanh"].startswith(f"{value} form")
    np.testing.assert_allclose(there.loss, here.loss, rtol=1e-6, atol=1e-7)
