"""The CUDA path gives the CPU's numbers (runs only where a GPU is present)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lossmap.nn as lnn
from lossmap.nn import hessian

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"
)


def _setup():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 4),
    )
    net.eval()
    x, y = torch.randn(64, 3, 8, 8), torch.randint(0, 4, (64,))
    return net, x, y


@pytest.mark.parametrize("bn", ["eval", "recompute"])
def test_plane_on_cuda_matches_cpu(bn):
    net, x, y = _setup()
    dirs = lnn.random_plane(net, seed=3)
    kw = {"steps": 5, "span": 0.5, "metrics": "accuracy", "bn": bn, "progress": False}
    cpu = lnn.plane(net, F.cross_entropy, (x, y), dirs, **kw)
    gpu_net = copy.deepcopy(net).cuda()
    gpu_dirs = lnn.random_plane(gpu_net, seed=3)
    gpu = lnn.plane(gpu_net, F.cross_entropy, (x.cuda(), y.cuda()), gpu_dirs, **kw)
    np.testing.assert_allclose(gpu.loss, cpu.loss, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gpu.field("accuracy"), cpu.field("accuracy"))
    assert gpu.metadata["device"].startswith("cuda")


def test_hessian_on_cuda_matches_cpu():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)
    ).double()
    x, y = torch.randn(40, 3, dtype=torch.float64), torch.randint(0, 2, (40,))
    cpu = hessian.top_eigenvalues(
        hessian.HessianOperator(net, F.cross_entropy, (x, y)), 2
    )
    gnet = copy.deepcopy(net).cuda()
    op = hessian.HessianOperator(gnet, F.cross_entropy, (x.cuda(), y.cuda()))
    np.testing.assert_allclose(
        hessian.top_eigenvalues(op, 2).values, cpu.values, rtol=1e-9
    )
