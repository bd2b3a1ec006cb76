"""Thread executors: ``torch.fx`` tracing never races and never leaves torch patched.

fx tracing replaces ``torch.nn.Module.__call__`` and ``__getattr__`` while it
runs; two traces at once used to corrupt each other and could leave the patch
in place for good, breaking every later forward pass in the process.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lossmap.nn as lnn  # noqa: E402
from lossmap.nn._split import trace  # noqa: E402

ORIGINAL = {n: torch.nn.Module.__dict__[n] for n in ("__call__", "__getattr__")}


def _untouched() -> bool:
    return all(torch.nn.Module.__dict__[n] is m for n, m in ORIGINAL.items())


def _problem():
    torch.manual_seed(0)
    # 70 inputs: the first Linear becomes an affine map, so the split traces
    net = torch.nn.Sequential(
        torch.nn.Linear(70, 12), torch.nn.Tanh(), torch.nn.Linear(12, 3)
    )
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(48, 70, generator=gen)
    y = torch.randint(0, 3, (48,), generator=gen)
    return net, torch.nn.functional.cross_entropy, (x, y)


def test_concurrent_traces_of_a_deep_model_are_serialised():
    deep = torch.nn.Sequential(
        *[
            torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh())
            for _ in range(20)
        ]
    )
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work():
        start.wait()
        for _ in range(50):
            try:
                gm = trace(deep)
                assert len(list(gm.graph.nodes)) == 42
            except BaseException as exc:  # pragma: no cover - the defect
                errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _untouched()


@pytest.mark.slow
def test_plane_on_threads_equals_in_process_50_runs():
    net, loss_fn, data = _problem()
    dirs = lnn.random_plane(net, seed=3)
    kw = {"span": 0.5, "steps": 6, "chunk": 2, "progress": False}
    here = lnn.plane(net, loss_fn, data, dirs, **kw)
    with ThreadPoolExecutor(4) as ex:
        for _ in range(50):
            there = lnn.plane(net, loss_fn, data, dirs, executor=ex, **kw)
            np.testing.assert_array_equal(there.loss, here.loss)
    assert _untouched()
    # the process is still usable: a plain forward pass works
    assert net(data[0]).shape == (48, 3)


def test_forward_passes_in_other_threads_survive_concurrent_traces():
    net, loss_fn, data = _problem()
    dirs = lnn.random_plane(net, seed=3)
    kw = {"span": 0.5, "steps": 6, "chunk": 2, "progress": False}
    here = lnn.plane(net, loss_fn, data, dirs, **kw)
    deep = torch.nn.Sequential(
        *[
            torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh())
            for _ in range(20)
        ]
    )
    stop = threading.Event()
    traced = []

    def keep_tracing():
        while not stop.is_set():
            traced.append(trace(deep))

    tracer = threading.Thread(target=keep_tracing)
    tracer.start()
    try:
        with ThreadPoolExecutor(3) as ex:
            for _ in range(15):
                there = lnn.plane(net, loss_fn, data, dirs, executor=ex, **kw)
                np.testing.assert_array_equal(there.loss, here.loss)
    finally:
        stop.set()
        tracer.join()
    assert traced
    assert _untouched()
