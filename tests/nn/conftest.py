"""Fixtures shared by the tests of runs on real networks."""

from __future__ import annotations

import pytest


@pytest.fixture
def small_problem():
    """An MLP 5-8-3 with tanh, 40 random rows, and a random plane (seed 0)."""
    torch = pytest.importorskip("torch")
    import lossmap.nn as lnn

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    )
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(40, 5, generator=gen)
    y = torch.randint(0, 3, (40,), generator=gen)
    return net, (x, y), lnn.random_plane(net, seed=0)
