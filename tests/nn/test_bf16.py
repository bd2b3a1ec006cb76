"""bfloat16 only where native: the gate, and bf16 planes against a per-point reference.

The reference loads θ₀ + a·d₁ + b·d₂ into a deep copy of the model and runs one
float64 forward pass over all the data per grid point (no engine code).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import lossmap.nn as lnn  # noqa: E402
from lossmap import _cpu  # noqa: E402

#: bf16 keeps 8 bits of mantissa: a loss averaged over 256 samples stays
#: within 2 % of the float value.
RTOL = 2e-2

AVX2_ONLY = (
    "vendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n"
    "flags\t\t: sse avx avx2 fma\n"
)
AMX = (
    "vendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C\n"
    "flags\t\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
)
NATIVE, WHY = _cpu.bf16_status("cpu")


def _setup():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(16, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 32),
        torch.nn.Tanh(),
        torch.nn.Linear(32, 5),
    )
    x = torch.randn(256, 16)
    y = torch.randint(0, 5, (256,))
    dirs = lnn.random_directions(model, 2, seed=3)
    return model, x, y, dirs


def _reference(model, x, y, dirs, a_axis, b_axis):
    net = copy.deepcopy(model).double()
    theta = {k: v.detach().double() for k, v in model.state_dict().items()}
    d1, d2 = ({k: t.double() for k, t in d.tensors.items()} for d in dirs)
    out = np.empty((a_axis.size, b_axis.size))
    with torch.no_grad():
        for i, a in enumerate(a_axis):
            for j, b in enumerate(b_axis):
                net.load_state_dict(
                    {
                        k: theta[k] + a * d1[k] + b * d2[k] if k in d1 else theta[k]
                        for k in theta
                    }
                )
                out[i, j] = F.cross_entropy(net(x.double()), y).item()
    return out


@pytest.fixture
def cpu_is(monkeypatch):
    """Pretend this machine has the CPU of a canned /proc/cpuinfo text."""
    monkeypatch.delenv("LOSSMAP_BF16", raising=False)

    def use(text):
        monkeypatch.setattr(_cpu, "cpu_info", lambda: _cpu.parse_cpuinfo(text))

    return use


def test_refused_without_native_bf16(cpu_is):
    model, x, y, dirs = _setup()
    before = copy.deepcopy(model.state_dict())
    cpu_is(AVX2_ONLY)
    msg = (
        r"`precision` 'bf16' needs native bfloat16 \(a CPU with AMX or AVX-512-BF16, "
        r"or a CUDA GPU from Ampere on\), got AMD EPYC 7B13: no AMX or AVX-512-BF16"
    )
    with pytest.raises(ValueError, match=msg):
        lnn.plane(
            model,
            F.cross_entropy,
            (x, y),
            dirs,
            steps=3,
            precision="bf16",
            progress=False,
        )
    with pytest.raises(ValueError, match=msg):
        lnn.line(
            model,
            F.cross_entropy,
            (x, y),
            dirs[0],
            steps=3,
            precision="bf16",
            progress=False,
        )
    # float still runs there; the model is untouched
    lnn.plane(model, F.cross_entropy, (x, y), dirs, steps=3, progress=False)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_allowed_with_amx_or_override(cpu_is, monkeypatch):
    model, x, y, dirs = _setup()
    cpu_is(AMX)
    s = lnn.plane(
        model, F.cross_entropy, (x, y), dirs, steps=3, precision="bf16", progress=False
    )
    assert s.metadata["precision"] == "bf16-autocast"
    cpu_is(AVX2_ONLY)
    monkeypatch.setenv("LOSSMAP_BF16", "1")  # emulated, on request
    s = lnn.plane(
        model, F.cross_entropy, (x, y), dirs, steps=3, precision="bf16", progress=False
    )
    assert s.metadata["precision"] == "bf16-autocast"


@pytest.mark.skipif(not NATIVE, reason=f"no native bfloat16 here: {WHY}")
@pytest.mark.parametrize("strategy", ["vmap", "loop"])
@pytest.mark.parametrize("batch_size", [None, 48])
def test_bf16_matches_reference_where_native(strategy, batch_size):
    model, x, y, dirs = _setup()
    kw = {
        "steps": (5, 4),
        "span": 0.8,
        "progress": False,
        "strategy": strategy,
        "batch_size": batch_size,
    }
    fast = lnn.plane(model, F.cross_entropy, (x, y), dirs, precision="bf16", **kw)
    full = lnn.plane(model, F.cross_entropy, (x, y), dirs, **kw)
    a_axis, b_axis = fast.coords(0), fast.coords(1)
    ref = _reference(model, x, y, dirs, a_axis, b_axis)
    np.testing.assert_allclose(full.field("loss"), ref, rtol=1e-5)
    np.testing.assert_allclose(fast.field("loss"), ref, rtol=RTOL)
    # the recorded error is what the sampled points really differ by
    pts = [tuple(p) for p in fast.metadata["precision_check_points"]]
    seen = max(abs(fast.field("loss")[p] - full.field("loss")[p]) for p in pts)
    assert fast.metadata["precision_error"] == pytest.approx(seen, rel=1e-3, abs=1e-6)
    assert fast.metadata["engine"]["strategy"] == strategy


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bf16_on_cuda_matches_cpu_reference_or_is_refused():
    model, x, y, dirs = _setup()
    gpu = copy.deepcopy(model).cuda()
    gdirs = [
        lnn.from_tensors(gpu, {k: t.cuda() for k, t in d.tensors.items()}) for d in dirs
    ]
    kw = {"steps": (5, 4), "span": 0.8, "progress": False}
    data = (x.cuda(), y.cuda())
    if not torch.cuda.is_bf16_supported():
        with pytest.raises(ValueError, match="needs native bfloat16"):
            lnn.plane(gpu, F.cross_entropy, data, gdirs, precision="bf16", **kw)
        return
    fast = lnn.plane(gpu, F.cross_entropy, data, gdirs, precision="bf16", **kw)
    full = lnn.plane(gpu, F.cross_entropy, data, gdirs, **kw)
    ref = _reference(model, x, y, dirs, fast.coords(0), fast.coords(1))
    np.testing.assert_allclose(full.field("loss"), ref, rtol=1e-5)
    np.testing.assert_allclose(fast.field("loss"), ref, rtol=RTOL)
    assert fast.metadata["device"].startswith("cuda")
