"""A Dask 2-worker local cluster against in-process, on the same W1-like plane.

The plane: MLP 784-512-512-10, 1,024 samples (W1 has 8,192), 9×9 points,
cut into chunks of 9², 3², 2² and 1 grid point(s) (1, 9, 25 and 81 chunks);
scaled down to stay short on a shared 2-core machine.

* in-process: ``plane(..., chunk=c)`` with 2 torch threads;
* Dask: ``plane(..., chunk=c, executor=ex)`` on ``dask_executor(n_workers=2,
  threads_per_worker=1)`` (two worker processes of one torch thread each);
  the cluster's start-up is timed separately.

Every chunk travels as one job that carries the whole evaluation spec (model,
directions and data: ``payload_mib``), and each worker builds its evaluator
once per call. The overhead per chunk is the slope of a straight line fitted
to wall time against the number of chunks (runs with at least 4 chunks, so
both workers are busy); ``chunk_advice`` turns it into a rule for choosing
chunk sizes.

Run: ``python -m benchmarks dask`` (about half a minute on a quiet machine).
"""

from __future__ import annotations

import pickle
import time
import warnings
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from benchmarks._machine import load, threads
from benchmarks.bench_scaling import data, mlp
from lossmap import nn as lnn

STEPS = 9
SAMPLES = 1024
CHUNKS = (9, 3, 2, 1)


def _plane(model, xy, dirs, chunk: int, executor=None) -> tuple[float, Any]:
    t0 = time.perf_counter()
    s = lnn.plane(
        model,
        F.cross_entropy,
        xy,
        dirs,
        steps=STEPS,
        chunk=chunk,
        executor=executor,
        progress=False,
    )
    return time.perf_counter() - t0, s


def _fit(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    pts = [(r["n_chunks"], r[key]) for r in rows if r["n_chunks"] >= 4]
    n, t = np.array(pts, dtype=float).T
    slope, intercept = np.polyfit(n, t, 1)
    return {
        "per_chunk_s": round(float(slope), 4),
        "intercept_s": round(float(intercept), 3),
    }


def run() -> dict[str, Any]:
    from lossmap.distributed import dask_executor

    torch.set_num_threads(threads())
    model, xy = mlp(512), data(SAMPLES)
    dirs = lnn.random_plane(model, seed=0, norm="filter")
    payload = len(pickle.dumps((model, xy, dirs)))
    rows = []
    ref = None
    for c in CHUNKS:
        t, s = _plane(model, xy, dirs, c)
        t2, _ = _plane(model, xy, dirs, c)
        ref = s.loss if ref is None else ref
        n_chunks = int(np.ceil(STEPS / c)) ** 2
        rows.append(
            {"chunk": c, "n_chunks": n_chunks, "in_process_s": round(min(t, t2), 3)}
        )
    t0 = time.perf_counter()
    with (
        warnings.catch_warnings(),
        dask_executor(n_workers=2, threads_per_worker=1) as ex,
    ):
        # Dask warns of the large task graph: each chunk carries the spec
        warnings.simplefilter("ignore", UserWarning)
        startup = time.perf_counter() - t0
        _plane(model, xy, dirs, STEPS, ex)  # warm-up: imports in the workers
        max_diff = 0.0
        for row in rows:
            t, s = _plane(model, xy, dirs, row["chunk"], ex)
            row["dask_s"] = round(t, 3)
            row["dask_over_in_process"] = round(t / row["in_process_s"], 2)
            max_diff = max(max_diff, float(np.max(np.abs(s.loss - ref))))
    fit = _fit(rows, "dask_s")
    fit_local = _fit(rows, "in_process_s")
    per_point = rows[0]["in_process_s"] / STEPS**2
    # one worker (one thread) computing every point as a single chunk
    worker_point = max(rows[0]["dask_s"] - max(fit["per_chunk_s"], 0), 0) / STEPS**2
    advice_points = max(1, int(np.ceil(10 * max(fit["per_chunk_s"], 0) / worker_point)))
    return {
        "plane": f"MLP 784-512-512-10, {SAMPLES} samples, {STEPS}x{STEPS}",
        "torch_threads_in_process": torch.get_num_threads(),
        "dask": "LocalCluster, 2 worker processes x 1 thread (dask_executor)",
        "runs": rows,
        "cluster_startup_s": round(startup, 2),
        "payload_mib": round(payload / 2**20, 2),
        "dask_overhead": fit,
        "in_process_overhead": fit_local,
        "in_process_s_per_point": round(per_point, 4),
        "max_abs_diff_dask_vs_in_process": max_diff,
        "worker_s_per_point": round(worker_point, 4),
        "chunk_advice": (
            "keep each chunk's compute well above the per-chunk overhead: with "
            f"{fit['per_chunk_s']:.3f} s per chunk and {worker_point:.4f} s per grid "
            f"point on one worker here, chunks of >= {advice_points} points keep "
            "the overhead under ~10 %, and at least a few chunks per worker keep "
            "every worker busy"
        ),
        "load_avg": load(),
    }
