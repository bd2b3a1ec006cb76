"""Exact 501×501 surface of a tanh neuron + MSE on 50 points.

lossmap's vectorised ``Problem.surface`` against a per-point Python loop that
computes the same values (one NumPy call chain per grid point), in the same
process. The vectorised path uses one core (NumPy elementwise kernels are
single-threaded).
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from lossmap import toy

STEPS = 501
N_POINTS = 50


def _problem() -> toy.Problem:
    x = np.linspace(-2.0, 2.0, N_POINTS)
    y = np.tanh(0.8 * x - 0.3) + 0.05 * np.sin(7 * x)
    return toy.problem("tanh", (x, y), "mse")


def _per_point(problem: toy.Problem, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    x, y = problem.data.x, problem.data.y
    out = np.empty((w.size, b.size))
    for i, wi in enumerate(w):
        for j, bj in enumerate(b):
            r = np.tanh(wi * x + bj) - y
            out[i, j] = np.mean(r * r)
    return out


def _time(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def run() -> dict:
    problem = _problem()
    region = ((-3.0, 3.0), (-3.0, 3.0))
    problem.surface(region, steps=STEPS)  # warm-up
    fast = _time(lambda: problem.surface(region, steps=STEPS), repeats=7)
    w, b = problem.grid(region, steps=STEPS)
    # the loop is slow: time it on every 5th row and scale to the whole grid
    rows = w[::5]
    slow = _time(lambda: _per_point(problem, rows, b), repeats=2)
    slow_full = min(slow) * w.size / rows.size
    # same numbers
    ref = _per_point(problem, rows[:3], b)
    got = problem.surface(region, steps=STEPS).loss[::5][:3]
    max_diff = float(np.max(np.abs(ref - got)))
    best = min(fast)
    return {
        "grid": f"{STEPS}x{STEPS}",
        "points": N_POINTS,
        "vectorised_s_min": round(best, 4),
        "vectorised_s_median": round(statistics.median(fast), 4),
        "per_point_loop_s": round(slow_full, 2),
        "per_point_loop_note": f"timed on {rows.size} of {w.size} rows, scaled",
        "speedup": round(slow_full / best, 1),
        "max_abs_diff": max_diff,
        "goal": "whole surface < 0.05 s on one core",
    }
