"""The digits data and the training loop shared by the demo sections."""

from __future__ import annotations

from collections.abc import Callable

import torch
from sklearn.datasets import load_digits

from lossmap import nn as lnn

BATCH = 64


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 8×8 digits: pixels scaled to [0, 1], labels 0–9."""
    x, y = load_digits(return_X_y=True)
    return torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)


def train_recorded(
    net: torch.nn.Module,
    data: tuple[torch.Tensor, torch.Tensor],
    rec: lnn.Recorder,
    *,
    epochs: int,
    seed: int,
    lr: float = 0.05,
    momentum: float = 0.9,
    on_step: Callable[[], None] | None = None,
) -> lnn.Recording:
    """Mini-batch SGD with momentum, the batch order drawn from ``seed``.

    ``rec`` records the initial weights, every step (at its own interval)
    and the final weights.
    """
    x, y = data
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    step = 0
    rec(step)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), BATCH):
            idx = order[i : i + BATCH]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
            step += 1
            rec(step)
            if on_step is not None:
                on_step()
    rec.record(step, force=True)
    return rec.recording()
