"""tanh computed as expm1(2x)/(expm1(2x)+2) where torch's own tanh is slow."""

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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_expm1_tanh_is_as_accurate_as_tanh(dtype):
    mag = torch.logspace(-30, 3, 20_000, dtype=torch.float64)
    x = torch.cat([mag, -mag, torch.zeros(1, dtype=torch.float64)])
    exact = np.tanh(x.numpy())  # float64 reference from NumPy
    got = _split.expm1_tanh(x.to(dtype)).double().numpy()
    eps = torch.finfo(dtype).eps
    rel = np.abs(got - exact) / np.maximum(np.abs(exact), np.finfo(np.float64).tiny)
    assert rel.max() <= 4 * eps


def test_expm1_tanh_special_values():
    x = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 1e30, -1e30])
    got = _split.expm1_tanh(x)
    assert torch.isnan(got[0])
    assert got[1:3].tolist() == [1.0, -1.0]
    assert got[3].item() == 0.0
    assert torch.signbit(got[3])
    assert got[4:].tolist() == [1.0, -1.0]


def test_form_follows_the_machine_and_the_override(form, monkeypatch):
    form("")
    intel = _cpu.cpu_info().vendor == "GenuineIntel"
    mkl = torch.backends.mkl.is_available()
    assert _split.tanh_form() == ("expm1" if mkl and not intel else "torch")
    form("torch")
    assert _split.tanh_form() == "torch"
    form("expm1")
    assert _split.tanh_form() == "expm1"
    form("fast")
    with pytest.raises(ValueError, match="LOSSMAP_TANH must be 'torch' or 'expm1'"):
        _split.tanh_form()


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


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("strategy", ["vmap", "loop"])
def test_plane_with_either_form_matches_loading_the_weights(form, dtype, strategy):
    torch.manual_seed(0)
    net = Neurons()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(37, 70, generator=g), torch.randint(0, 3, (37,), generator=g)
    d = lnn.random_plane(net, seed=2)
    surfaces = {}
    for value in ("torch", "expm1"):
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
            batch_size=10,
        )
    split = surfaces["expm1"].metadata["engine"]["split"]
    assert split["tanh"].startswith("expm1 form (3 calls")
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


def test_rewritten_model_on_an_executor_matches_in_process(form):
    from concurrent.futures import ThreadPoolExecutor

    form("expm1")
    torch.manual_seed(0)
    net = Neurons()
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(29, 70, generator=g), torch.randint(0, 3, (29,), generator=g)
    d = lnn.random_plane(net, seed=4)
    kw = dict(steps=5, progress=False, batch_size=6)
    here = lnn.plane(net, F.cross_entropy, (x, y), d, **kw)
    with ThreadPoolExecutor(2) as pool:
        there = lnn.plane(net, F.cross_entropy, (x, y), d, executor=pool, chunk=2, **kw)
    assert there.metadata["engine"]["split"]["tanh"].startswith("expm1 form")
    np.testing.assert_allclose(there.loss, here.loss, rtol=1e-6, atol=1e-7)
