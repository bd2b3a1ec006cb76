"""A Dask worker killed with SIGKILL mid-run: the run completes, the surface
is identical to the last bit, and the local cluster is back to full size."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("zarr")
pytest.importorskip("distributed")

from lossmap.distributed import dask_executor
from lossmap.io import GridStore


def _done(store):
    folder = store / "__digests__"
    return (
        sum(1 for p in folder.iterdir() if p.name[0].isdigit())
        if folder.is_dir()
        else 0
    )


def _run_killing(job, store, ex, victim):
    """Run the job into ``store`` on ``ex``, SIGKILL ``victim`` once 2 chunks
    are stored; the surface and ``{"chunks_at_kill": n}``."""
    seen = {}

    def killer():
        deadline = time.monotonic() + 120
        while _done(store) < 2 and time.monotonic() < deadline:
            time.sleep(0.002)
        seen["chunks_at_kill"] = _done(store)
        os.kill(victim, signal.SIGKILL)

    thread = threading.Thread(target=killer)
    thread.start()
    result = job.run(store, executor=ex)
    thread.join()
    return result, seen


@pytest.mark.slow
def test_killed_worker_run_completes_identically(tmp_path, record, job_module):
    job = job_module
    here = job.run(tmp_path / "here.zarr")
    with dask_executor(n_workers=2) as ex:
        client = ex._client
        reference = job.run(tmp_path / "reference.zarr", executor=ex)
        pids = client.run(os.getpid)
        victim = sorted(pids.values())[0]
        store = tmp_path / "p.zarr"
        result, seen = _run_killing(job, store, ex, victim)
        deadline = time.monotonic() + 60
        while len(client.scheduler_info()["workers"]) < 2:
            assert time.monotonic() < deadline, "the killed worker was not replaced"
            time.sleep(0.2)
        after = client.run(os.getpid)
    assert victim not in after.values()
    assert seen["chunks_at_kill"] < 49, "the run ended before the kill"
    for f in ("loss", "accuracy"):
        np.testing.assert_array_equal(result.field(f), reference.field(f))
        np.testing.assert_allclose(result.field(f), here.field(f), rtol=1e-6)
    assert GridStore.attach(store).verify() == []
    record(
        "dask_worker",
        {
            "faults": 1,
            "chunks_done_at_kill": seen["chunks_at_kill"],
            "chunks": 49,
            "workers_after": len(after),
            "points_lost": int(np.isnan(result.loss).sum()),
            "bit_identical": True,
        },
    )


@pytest.mark.slow
def test_only_worker_killed_the_spec_task_is_recomputed(tmp_path, record, job_module):
    """The call's spec lives on the cluster as a task: when the one worker
    holding it dies, Dask computes it again on the replacement worker (data
    merely scattered would be lost, and the run with it)."""
    job = job_module
    here = job.run(tmp_path / "here.zarr")
    with dask_executor(n_workers=1) as ex:
        client = ex._client
        job.run(tmp_path / "warm.zarr", executor=ex)  # imports in the worker
        (victim,) = client.run(os.getpid).values()
        store = tmp_path / "p.zarr"
        result, seen = _run_killing(job, store, ex, victim)
        after = client.run(os.getpid)
        sent = ex.specs_sent - 1  # the warm-up call sent one
    assert sent == 1  # once per call, however the worker fared
    assert victim not in after.values()
    assert seen["chunks_at_kill"] < 49, "the run ended before the kill"
    for f in ("loss", "accuracy"):
        np.testing.assert_allclose(result.field(f), here.field(f), rtol=1e-6)
    assert GridStore.attach(store).verify() == []
    record(
        "dask_only_worker",
        {
            "faults": 1,
            "workers": 1,
            "chunks_done_at_kill": seen["chunks_at_kill"],
            "chunks": 49,
            "specs_sent_by_client": sent,
            "points_lost": int(np.isnan(result.loss).sum()),
        },
    )
