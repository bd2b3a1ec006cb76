"""A run on a user's executor that stops early leaves no work running.

When a chunk fails (or Ctrl-C arrives) part-way through a plane on an
executor, the chunks not yet started are cancelled, so the user's executor
does not go on computing chunks nobody stores (a ``with`` block around the
executor would otherwise wait for all of them), and the chunks already
finished are in the store: a rerun computes only the rest and equals an
uninterrupted in-process run.
"""

from __future__ import annotations

import threading
from concurrent.futures import Executor, ThreadPoolExecutor

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("zarr")

import lossmap.nn as lnn  # noqa: E402
from lossmap.io import GridStore  # noqa: E402


class _FailingPool(Executor):
    """A one-thread pool whose ``fail_at``-th job raises; counts jobs run."""

    def __init__(self, fail_at: int) -> None:
        self.inner = ThreadPoolExecutor(max_workers=1)
        self.fail_at = fail_at
        self.started = 0
        #: jobs after the failed one wait for this (set once the caller has
        #: seen the failure), so which jobs start does not depend on timing
        self.gate = threading.Event()

    def _job(self, fn, *args):
        self.started += 1  # one worker thread: no race
        if self.started == self.fail_at:
            raise RuntimeError("chunk failed on purpose")
        if self.fail_at > 0 and self.started > self.fail_at:
            self.gate.wait(timeout=60)
        return fn(*args)

    def submit(self, fn, /, *args, **kwargs):
        return self.inner.submit(self._job, fn, *args, **kwargs)

    def shutdown(self, wait=True, **kwargs):
        self.inner.shutdown(wait=wait, **kwargs)


def test_failed_chunk_cancels_queued_chunks_and_keeps_finished(tmp_path, small_problem):
    net, data, dirs = small_problem
    loss = torch.nn.functional.cross_entropy
    path = tmp_path / "p.zarr"
    kw = dict(span=0.5, steps=9, chunk=3)  # 9 chunks
    with _FailingPool(fail_at=4) as ex:
        try:
            with pytest.raises(RuntimeError, match="on purpose"):
                lnn.plane(net, loss, data, dirs, store=path, executor=ex, **kw)
        finally:
            ex.gate.set()
    # the with block waited for every job the pool still had: of the 5
    # chunks after the failed one, only the one the worker thread had taken
    # (waiting at the gate) may have run
    assert ex.started == 5
    store = GridStore.attach(path)
    missing = len(store.todo())
    assert missing == 6  # the 3 chunks finished before the failure are stored

    with _FailingPool(fail_at=-1) as ex:
        resumed = lnn.plane(net, loss, data, dirs, store=path, executor=ex, **kw)
    assert ex.started == missing  # only the missing chunks
    reference = lnn.plane(net, loss, data, dirs, **kw)  # in-process, no store
    for f in reference.field_names:
        np.testing.assert_array_equal(resumed.field(f), reference.field(f))
