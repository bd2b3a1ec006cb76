"""The fused convolution + ReLU of the per-point graph (``_split.conv2d_relu``)
against the two plain calls, and where the rewrite applies."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lossmap.nn as lnn
from lossmap.nn import _split

pytestmark = pytest.mark.skipif(
    _split._FUSED_CONV is None, reason="this torch has no oneDNN pointwise conv"
)

SHAPES = [  # (in, out, kernel, stride, padding, dilation, groups, bias)
    (3, 8, 3, 1, 1, 1, 1, True),
    (8, 16, 3, 2, 1, 1, 1, True),
    (4, 8, 5, 1, 0, 2, 2, False),
    (6, 6, 1, (2, 1), (0, 1), 1, 3, True),
]


def _args(shape, seed=0):
    cin, cout, k, stride, pad, dil, groups, bias = shape
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(5, cin, 13, 11, generator=g)
    w = torch.randn(cout, cin // groups, k, k, generator=g)
    b = torch.randn(cout, generator=g) if bias else None
    as_pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    return x, w, b, as_pair(stride), as_pair(pad), as_pair(dil), groups


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_float32_equals_the_plain_calls(shape, layout):
    x, w, b, *rest = _args(shape)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        got = _split.conv2d_relu(x, w, b, *rest)
        want = F.relu(F.conv2d(x, w, b, *rest))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert got.shape == want.shape


@pytest.mark.parametrize("shape", SHAPES)
def test_bfloat16_autocast_equals_autocast_of_the_plain_calls(shape):
    x, w, b, *rest = _args(shape, seed=1)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        got = _split.conv2d_relu(x, w, b, *rest)
        want = F.relu(F.conv2d(x, w, b, *rest))
    assert got.dtype == want.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want.float(), rtol=2e-2, atol=2e-2)


def test_gradients_and_vmap_take_the_plain_calls():
    x, w, b, *rest = _args(SHAPES[0])
    w = w.clone().requires_grad_(True)
    _split.conv2d_relu(x, w, b, *rest).sum().backward()
    ref = w.detach().clone().requires_grad_(True)
    F.relu(F.conv2d(x, ref, b, *rest)).sum().backward()
    torch.testing.assert_close(w.grad, ref.grad)
    ws = torch.stack([w.detach(), 2 * w.detach()])
    with torch.no_grad():
        got = torch.vmap(lambda v: _split.conv2d_relu(x, v, b, *rest))(ws)
        want = torch.stack([F.relu(F.conv2d(x, v, b, *rest)) for v in ws])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


class _Net(nn.Module):
    def __init__(self, padding_mode: str = "zeros", reuse: bool = False) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1, padding_mode=padding_mode)
        self.c2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8, 3)
        self.reuse = reuse

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c1(x)
        a = F.relu(h)
        if self.reuse:
            a = a + h  # the conv output is read twice: no fusion here
        h = torch.relu(self.c2(a))
        return self.fc(h.mean(dim=(2, 3)))


@pytest.mark.parametrize(
    ("net", "fused"),
    [(_Net(), 2), (_Net(padding_mode="reflect"), 1), (_Net(reuse=True), 1)],
    ids=["both", "reflect-padding", "read-twice"],
)
@pytest.mark.parametrize("batch_size", [1, 7, None])
def test_a_cnn_plane_equals_the_per_point_reference(net, fused, batch_size):
    torch.manual_seed(0)
    x, y = torch.randn(20, 3, 12, 12), torch.randint(0, 3, (20,))
    dirs = lnn.random_plane(net, seed=0)
    kw = dict(steps=4, progress=False, batch_size=batch_size)
    s = lnn.plane(net, F.cross_entropy, (x, y), dirs, **kw)
    ref = lnn.plane(net, F.cross_entropy, (x, y), dirs, optimize=False, **kw)
    assert s.metadata["engine"]["rewritten"].get("conv_relu") == fused
    np.testing.assert_allclose(s.loss, ref.loss, rtol=2e-6, atol=1e-6)
