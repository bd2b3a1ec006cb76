"""A Dask 2-worker local cluster against in-process, on the same W1-like plane.

The plane: MLP 784-512-512-10, 1,024 samples (W1 has 8,192), 9×9 points,
cut into chunks of 9², 5², 3², 2² and 1 grid point(s) (1, 4, 9, 25 and 81
chunks); scaled down to stay short on a shared 2-core machine.

Three ways, interleaved round by round (each round runs every way at every
chunk size once, so a burst of other work on the machine hits all alike):

* ``in_process``: ``plane(..., chunk=c)`` with ``LOSSMAP_BENCH_THREADS`` torch
  threads (chunks are grouped into full engine passes);
* ``dask``: ``plane(..., chunk=c, executor=ex)`` on ``dask_executor(n_workers=2,
  threads_per_worker=1)``, two worker processes of one torch thread each; the
  evaluation spec (model, directions, data: ``payload_mib``) goes to the
  cluster once per call and every chunk job takes it from there;
* ``dask_spec_per_job``: the same cluster through Dask's plain
  ``ClientExecutor``, where every chunk job carries the whole spec (what
  ``dask_executor`` did before).

The cluster's start-up is timed separately, and a warm-up call imports
everything in the workers first. The overhead per chunk is the slope of a
straight line fitted to the best wall time of the rounds against the number
of chunks, of Dask's time and of ``dask − in_process`` (runs with at least 4
chunks, so both workers are busy); the best round is the one least disturbed
by other work on a shared machine (medians are recorded too). A last pass
records Dask's task stream for each chunk size: the seconds the workers spent
computing (``run_chunk``) and, from ``2 × wall − compute``, the time they sat
idle, so the wall time per chunk can be split into the engine's own cost of
smaller passes and the cost of dispatching a job. ``chunk_advice`` turns the
figures into a rule for choosing chunk sizes.

The dispatch floor: a tiny model (MLP 8-16-3, 96 samples) on a 16×16 grid in
1, 16 and 256 chunks, in-process and on the cluster (interleaved), where the
compute is negligible, so the slope is what Dask itself costs per chunk job
(scheduling, the round trip, the client's bookkeeping and store-less write).

Worker against client: the same 81-point evaluation (one evaluator, built
outside the timing) in this process, on a ``dask_executor`` worker, and on a
worker with lossmap's earlier malloc setting (``MALLOC_TRIM_THRESHOLD_`` only,
which turns glibc's sliding mmap threshold off), interleaved.

Run: ``LOSSMAP_BENCH_THREADS=1 python -m benchmarks dask`` (about four minutes
on a lightly loaded 2-core machine).
"""

from __future__ import annotations

import os
import pickle
import statistics
import time
import warnings
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from benchmarks._machine import interleaved, load, threads
from benchmarks.bench_scaling import data, mlp
from lossmap import nn as lnn

STEPS = 9
SAMPLES = 1024
CHUNKS = (9, 5, 3, 2, 1)
ROUNDS = 5
MODES = ("in_process", "dask", "dask_spec_per_job")


def _plane(model, xy, dirs, chunk: int, executor=None) -> Any:
    return lnn.plane(
        model,
        F.cross_entropy,
        xy,
        dirs,
        steps=STEPS,
        chunk=chunk,
        executor=executor,
        progress=False,
    )


def _n_chunks(chunk: int) -> int:
    return int(np.ceil(STEPS / chunk)) ** 2


def _fit(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    pts = [(r["n_chunks"], r[key]) for r in rows if r["n_chunks"] >= 4]
    n, t = np.array(pts, dtype=float).T
    slope, intercept = np.polyfit(n, t, 1)
    return {
        "per_chunk_s": round(float(slope), 4),
        "intercept_s": round(float(intercept), 3),
    }


FLOOR_STEPS = 16
FLOOR_CHUNKS = (16, 4, 1)


def _floor(ex: Any) -> dict[str, Any]:
    """Per-chunk cost of Dask with negligible compute (tiny model)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)
    )
    gen = torch.Generator().manual_seed(1)
    xy = (torch.randn(96, 8, generator=gen), torch.randint(0, 3, (96,), generator=gen))
    dirs = lnn.random_plane(net, seed=4)

    def job(chunk: int, executor: Any):
        def go() -> None:
            lnn.plane(
                net,
                F.cross_entropy,
                xy,
                dirs,
                steps=FLOOR_STEPS,
                chunk=chunk,
                executor=executor,
                progress=False,
            )

        return go

    fns = {
        f"{m}/{c}": job(c, e)
        for c in FLOOR_CHUNKS
        for m, e in (("in_process", None), ("dask", ex))
    }
    times = interleaved(fns, ROUNDS)
    rows = []
    for c in FLOOR_CHUNKS:
        row: dict[str, Any] = {"chunk": c, "n_chunks": (FLOOR_STEPS // c) ** 2}
        for m in ("in_process", "dask"):
            row[f"{m}_s"] = round(min(times[f"{m}/{c}"]), 4)
        rows.append(row)
    n, t = np.array([(r["n_chunks"], r["dask_s"]) for r in rows], dtype=float).T
    slope = float(np.polyfit(n, t, 1)[0])
    return {
        "plane": f"MLP 8-16-3, 96 samples, {FLOOR_STEPS}x{FLOOR_STEPS}",
        "runs": rows,
        "dask_per_chunk_s": round(slope, 5),
    }


def _evaluate_s(spec: Any, coeffs: np.ndarray) -> float:
    """Seconds of ``Evaluator.evaluate`` (set-up not timed); runs on workers."""
    from lossmap.nn.engine import Evaluator

    torch.set_num_threads(1)
    with Evaluator(spec) as ev:
        t0 = time.perf_counter()
        ev.evaluate(coeffs)
        return time.perf_counter() - t0


def _malloc_env() -> list[str]:
    return sorted(k for k in os.environ if k.startswith("MALLOC_"))


def _worker_vs_here(model, xy, dirs, ex: Any) -> dict[str, Any]:
    import dask
    import distributed

    from lossmap.nn._prepare import prepare
    from lossmap.nn.options import Options

    opts = Options.merge(None, {"progress": False}, caller="plane")
    spec = prepare(model, F.cross_entropy, xy, dirs, 2, opts).spec
    coeffs = np.random.default_rng(0).uniform(-1, 1, (STEPS**2, 2))
    # the whole dict, so that none of dask_executor's settings leak in
    trim_only = {
        "MALLOC_TRIM_THRESHOLD_": 2**30,
        **{f"{lib}_NUM_THREADS": 1 for lib in ("OMP", "MKL", "OPENBLAS")},
    }
    # Dask's nanny writes its pre-spawn variables into this process's
    # environment too (dask_executor's among them), so take that one out
    saved = os.environ.pop("MALLOC_MMAP_THRESHOLD_", None)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": trim_only}):
            old = distributed.LocalCluster(
                n_workers=1,
                threads_per_worker=1,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
                silence_logs=40,
            )
    finally:
        if saved is not None:
            os.environ["MALLOC_MMAP_THRESHOLD_"] = saved
    try:
        with distributed.Client(old) as c_old:
            env = c_old.run(_malloc_env)
            assert list(env.values()) == [["MALLOC_TRIM_THRESHOLD_"]], env
            c_new = ex._client
            (worker,) = list(c_new.scheduler_info()["workers"])[:1]
            held = {"worker": c_new.scatter(spec, workers=[worker])}
            held["worker_trim_only"] = c_old.scatter(spec)
            clients = {"worker": c_new, "worker_trim_only": c_old}

            def on(name: str):
                def go() -> None:
                    c = clients[name]
                    kw = {"workers": [worker]} if name == "worker" else {}
                    c.submit(_evaluate_s, held[name], coeffs, pure=False, **kw).result()

                return go

            for name in clients:  # warm-up
                on(name)()
            _evaluate_s(spec, coeffs)
            fns = {
                "in_process": lambda: _evaluate_s(spec, coeffs),
                **{n: on(n) for n in clients},
            }
            times = interleaved(fns, ROUNDS)
    finally:
        old.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "points": STEPS**2,
        "evaluate_s": {k: [round(t, 3) for t in v] for k, v in times.items()},
        "median_s": {k: round(v, 3) for k, v in med.items()},
        "worker_over_in_process": round(med["worker"] / med["in_process"], 2),
        "trim_only_over_in_process": round(
            med["worker_trim_only"] / med["in_process"], 2
        ),
    }


def _task_stream(client: Any, fn) -> dict[str, float]:
    """Seconds the workers spent per action on ``run_chunk`` jobs during ``fn``,
    and the seconds they sat idle (2 workers × wall − compute)."""
    from distributed import get_task_stream

    with get_task_stream(client=client) as ts:
        t0 = time.perf_counter()
        fn()
        wall = time.perf_counter() - t0
    spent: dict[str, float] = {}
    jobs = 0
    for task in ts.data:
        if not str(task["key"]).startswith("run_chunk"):
            continue
        jobs += 1
        for ss in task["startstops"]:
            spent[ss["action"]] = (
                spent.get(ss["action"], 0.0) + ss["stop"] - ss["start"]
            )
    out = {"jobs": jobs, "wall_s": round(wall, 3)}
    out.update({f"{k}_s": round(v, 3) for k, v in spent.items()})
    out["idle_s"] = round(2 * wall - spent.get("compute", 0.0), 3)
    return out


def _released(client: Any) -> int:
    """Tasks the scheduler still holds, once the last release arrived."""
    deadline = time.perf_counter() + 30
    while True:
        left = client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
        if not left or time.perf_counter() > deadline:
            return left
        time.sleep(0.05)


def run() -> dict[str, Any]:
    from lossmap.distributed import dask_executor

    torch.set_num_threads(threads())
    model, xy = mlp(512), data(SAMPLES)
    dirs = lnn.random_plane(model, seed=0, norm="filter")
    payload = len(pickle.dumps((model, xy, dirs)))
    first = _plane(model, xy, dirs, STEPS)
    ref = first.loss
    t0 = time.perf_counter()
    with (
        warnings.catch_warnings(),
        dask_executor(n_workers=2, threads_per_worker=1) as ex,
    ):
        # Dask warns of the large graphs of dask_spec_per_job
        warnings.filterwarnings("ignore", "Sending large graph")
        startup = time.perf_counter() - t0
        per_job = ex._inner  # Dask's ClientExecutor: the spec rides with each job
        executors = {"in_process": None, "dask": ex, "dask_spec_per_job": per_job}
        _plane(model, xy, dirs, STEPS, ex)  # warm-up: imports in the workers
        max_diff = {m: 0.0 for m in MODES}
        specs_before = ex.specs_sent

        def job(mode: str, chunk: int):
            def go() -> None:
                s = _plane(model, xy, dirs, chunk, executors[mode])
                diff = float(np.max(np.abs(s.loss - ref)))
                max_diff[mode] = max(max_diff[mode], diff)

            return go

        fns = {f"{m}/{c}": job(m, c) for c in CHUNKS for m in MODES}
        times = interleaved(fns, ROUNDS)
        dask_calls = ROUNDS * len(CHUNKS)
        specs_sent_per_call = (ex.specs_sent - specs_before) / dask_calls
        floor = _floor(ex)
        malloc = _worker_vs_here(model, xy, dirs, ex)
        _plane(model, xy, dirs, 1, ex)
        left = _released(ex._client)
        streams = {
            m: {
                c: _task_stream(
                    ex._client,
                    lambda m=m, c=c: _plane(model, xy, dirs, c, executors[m]),
                )
                for c in CHUNKS
            }
            for m in ("dask", "dask_spec_per_job")
        }
    rows = []
    for c in CHUNKS:
        row: dict[str, Any] = {"chunk": c, "n_chunks": _n_chunks(c)}
        for m in MODES:
            row[f"{m}_s"] = round(min(times[f"{m}/{c}"]), 3)
            row[f"{m}_median_s"] = round(statistics.median(times[f"{m}/{c}"]), 3)
            row[f"{m}_all_s"] = [round(t, 3) for t in times[f"{m}/{c}"]]
        row["dask_minus_in_process_s"] = round(row["dask_s"] - row["in_process_s"], 3)
        row["per_job_minus_in_process_s"] = round(
            row["dask_spec_per_job_s"] - row["in_process_s"], 3
        )
        row["dask_over_in_process"] = round(row["dask_s"] / row["in_process_s"], 2)
        for m in ("dask", "dask_spec_per_job"):
            row[f"{m}_worker_compute_s"] = streams[m][c].get("compute_s")
            row[f"{m}_worker_idle_s"] = streams[m][c]["idle_s"]
        rows.append(row)
    fits = {
        "dask": _fit(rows, "dask_s"),
        "dask_minus_in_process": _fit(rows, "dask_minus_in_process_s"),
        "dask_spec_per_job": _fit(rows, "dask_spec_per_job_s"),
        "per_job_minus_in_process": _fit(rows, "per_job_minus_in_process_s"),
        "in_process": _fit(rows, "in_process_s"),
        "dask_worker_compute": _fit(rows, "dask_worker_compute_s"),
        "dask_worker_idle": _fit(rows, "dask_worker_idle_s"),
        "dask_spec_per_job_worker_idle": _fit(rows, "dask_spec_per_job_worker_idle_s"),
    }
    # one worker (one torch thread) computing all 81 points as one chunk
    single = streams["dask"][CHUNKS[0]]
    worker_point = single.get("compute_s", float("nan")) / STEPS**2
    in_process_point = rows[0]["in_process_s"] / STEPS**2
    per_chunk = max(fits["dask"]["per_chunk_s"], 0.0)
    # 2 workers share the wall time: P points per chunk cost P·t/2 of wall
    # time, so the overhead is under 10 % when P >= 10 · 2 · per_chunk / t
    advice_points = max(1, int(np.ceil(10 * 2 * per_chunk / in_process_point)))
    return {
        "plane": f"MLP 784-512-512-10, {SAMPLES} samples, {STEPS}x{STEPS}",
        "torch_threads_in_process": torch.get_num_threads(),
        "dask": "LocalCluster, 2 worker processes x 1 thread (dask_executor)",
        "rounds": ROUNDS,
        "runs": rows,
        "fits_over_n_chunks": fits,
        "dispatch_floor": floor,
        "worker_vs_in_process": malloc,
        "task_streams": {
            m: {str(c): v for c, v in s.items()} for m, s in streams.items()
        },
        "cluster_startup_s": round(startup, 2),
        "payload_mib": round(payload / 2**20, 2),
        "specs_sent_per_call": specs_sent_per_call,
        "scheduler_tasks_left_after_a_call": left,
        "engine": first.metadata.get("engine"),
        "max_abs_diff_vs_in_process_9x9_chunk": max_diff,
        "worker_s_per_point": round(worker_point, 4),
        "in_process_s_per_point": round(in_process_point, 4),
        "chunk_advice": (
            "keep each chunk's compute well above the per-chunk overhead: with "
            f"{per_chunk:.4f} s of wall time per chunk on 2 workers and "
            f"{in_process_point:.4f} s per grid point on one thread here, chunks "
            f"of >= {advice_points} points keep the overhead under ~10 %; chunks "
            "of at least the engine's points_per_pass keep its passes full, and "
            "a few chunks per worker keep every worker busy"
        ),
        "load_avg": load(),
    }
