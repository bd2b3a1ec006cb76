"""``kill -9`` at 10 random moments, each run resuming the last: the finished
store equals an uninterrupted run to the last bit, and nothing is left behind."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("zarr")

from lossmap.io import GridStore, load

N_CHUNKS = 49
SLOW = 0.05  # seconds before each chunk write: about 2.5 s of writes per run


def _done(store):
    if not (store / "zarr.json").exists():
        return 0
    return N_CHUNKS - len(GridStore.attach(store).missing())


def _wait(condition, proc, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


@pytest.mark.slow
def test_kill_9_at_10_random_moments_then_resume_bit_identical(tmp_path, job, record):
    rng = np.random.default_rng(20261202)
    reference = tmp_path / "reference.zarr"
    job.finish(job.start(reference))
    store = tmp_path / "p.zarr"
    kills = []
    for k in range(10):
        before = _done(store)
        proc = job.start(store, SLOW)
        if k == 0:
            # during store creation: as soon as its temporary folder appears
            where = "store creation"
            _wait(lambda: any(tmp_path.glob(".p.zarr.*.creating")), proc)
        else:
            # after a random number of chunks, at a random point of a write
            target = int(rng.integers(before, N_CHUNKS - (9 - k)))
            where = f"after chunk {target} + {SLOW:.2f} s x U(0, 1)"
            _wait(lambda t=target: _done(store) >= t, proc)
            time.sleep(rng.uniform(0, SLOW))
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        after = _done(store)
        if (store / "zarr.json").exists():
            assert GridStore.attach(store).verify() == []  # never a torn chunk
        kills.append(
            {
                "moment": where,
                "killed": proc.returncode == -signal.SIGKILL,
                "chunks_before": before,
                "chunks_after": after,
            }
        )
    assert sum(k["killed"] for k in kills) >= 9
    assert any(k["chunks_after"] > k["chunks_before"] for k in kills)
    job.finish(job.start(store))
    final, ref = load(store), load(reference)
    for f in ("loss", "accuracy"):
        np.testing.assert_array_equal(final.field(f), ref.field(f))
    assert not np.isnan(final.loss).any()
    assert GridStore.attach(store).verify() == []
    assert list(tmp_path.glob(".p.zarr.*")) == []  # no .creating leftovers
    record(
        "kill_resume",
        {
            "faults": len(kills),
            "killed": sum(k["killed"] for k in kills),
            "chunks": N_CHUNKS,
            "points": 13 * 13,
            "points_lost": int(np.isnan(final.loss).sum()),
            "bit_identical": True,
            "kills": kills,
        },
    )
