"""Adam on Rosenbrock: 1,024 starts x 1,000 steps, vectorised vs one at a time.

Both sides call the same ``lossmap.optim.run``; the baseline loops over starts
in Python, the vectorised run advances all starts in one array per step. The
one-at-a-time time is measured on an evenly spread subset of starts and scaled
to 1,024 (every run does exactly 1,000 steps: ``tol=0``, so per-start cost does
not depend on the start). The two must agree bit for bit on the subset.
"""

from __future__ import annotations

import time

import numpy as np

from lossmap import optim
from lossmap.toy import functions

N_STARTS = 1024
STEPS = 1000
SUBSET = 64
REPEATS = 3


def _starts() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform([-2.0, -1.0], [2.0, 3.0], size=(N_STARTS, 2))


def run() -> dict:
    f = functions.get("rosenbrock")
    opt = optim.adam(0.01)
    starts = _starts()
    kw = {"steps": STEPS, "tol": 0.0}

    vec_times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        many = optim.run(f, opt, starts, **kw)
        vec_times.append(time.perf_counter() - t0)

    idx = np.linspace(0, N_STARTS - 1, SUBSET).astype(int)
    loop_times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        singles = [optim.run(f, opt, starts[i], **kw) for i in idx]
        loop_times.append(time.perf_counter() - t0)
    for i, one in zip(idx, singles):
        np.testing.assert_array_equal(one.params, many.params[:, i])

    vec = float(np.median(vec_times))
    loop_subset = float(np.median(loop_times))
    loop_full = loop_subset * N_STARTS / SUBSET
    return {
        "starts": N_STARTS,
        "steps": STEPS,
        "optimizer": "adam(lr=0.01)",
        "vectorised_s": round(vec, 4),
        "one_at_a_time_s_per_start": round(loop_subset / SUBSET, 5),
        "one_at_a_time_s_for_all": round(loop_full, 2),
        "one_at_a_time_measured_starts": SUBSET,
        "speedup": round(loop_full / vec, 1),
        "us_per_start_step_vectorised": round(1e6 * vec / (N_STARTS * STEPS), 3),
        "identical_paths": True,
        "repeats": REPEATS,
    }
