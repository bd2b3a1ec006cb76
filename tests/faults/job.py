"""A plane computed into a store, run as a subprocess by the fault tests.

``python job.py STORE [SLOW]``: prints ``ready`` once imports are done, then
computes a 13 × 13 plane (49 chunks of 2 × 2, last row/column 1 wide) with
``SLOW`` seconds of sleep before each chunk is written, and prints ``done``.
One torch thread, so every run sums in the same order.
"""

from __future__ import annotations

import sys
import time

import torch

import lossmap.nn as lnn
from lossmap.io import GridStore

STEPS = 13
CHUNK = 2
N_CHUNKS = 49


def problem():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(6, 12), torch.nn.Tanh(), torch.nn.Linear(12, 3)
    )
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(120, 6, generator=gen)
    y = torch.randint(0, 3, (120,), generator=gen)
    return net, (x, y), lnn.random_plane(net, seed=2)


def run(store, **over):
    torch.set_num_threads(1)
    net, data, dirs = problem()
    kw = {
        "span": 1.0,
        "steps": STEPS,
        "chunk": CHUNK,
        "metrics": "accuracy",
        "progress": False,
    }
    kw.update(over)
    return lnn.plane(
        net, torch.nn.functional.cross_entropy, data, dirs, store=store, **kw
    )


def _slow_writes(seconds: float) -> None:
    write = GridStore.write

    def slow(self, *args, **kwargs):
        time.sleep(seconds)
        return write(self, *args, **kwargs)

    GridStore.write = slow


if __name__ == "__main__":
    if len(sys.argv) > 2 and float(sys.argv[2]) > 0:
        _slow_writes(float(sys.argv[2]))
    print("ready", flush=True)
    run(sys.argv[1])
    print("done", flush=True)
