"""Exact 501×501 surface of a tanh neuron + MSE on 50 points.

Four ways to compute the same grid, timed in turn in one process (best and
median of the interleaved rounds):

* ``plain``: NumPy broadcasting over the whole grid at once,
  ``mean((tanh(w[:,None,None]·x + b[None,:,None]) − y)², −1)`` — what one
  writes by hand; every temporary is a 100 MB array;
* ``blocked``: the generic path (``Landscape.evaluate_grid``): the same
  formula in cache-sized row blocks, ``tanh`` in place;
* ``lossmap``: ``Problem.surface`` — the factorised path of
  ``lossmap.toy._squash`` (``n0·n + n1`` exponentials instead of 12.5 M
  ``tanh`` calls, cache-resident blocks, the square-sum as one matrix product);
* ``per_point``: a Python loop over grid points (timed on every 25th row,
  scaled).

NumPy's elementwise kernels use one core, so all four run on one core.
Agreement: the largest |difference| from ``plain`` (goal ≤ 1e-12).
"""

from __future__ import annotations

import numpy as np

from benchmarks._machine import interleaved, summary
from lossmap import toy
from lossmap.toy._base import Landscape

STEPS = 501
N_POINTS = 50
ROUNDS = 15


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


def run() -> dict:
    problem = _problem()
    region = ((-3.0, 3.0), (-3.0, 3.0))
    w, b = problem.grid(region, steps=STEPS)
    x, y = problem.data.x, problem.data.y

    def plain() -> np.ndarray:
        return np.mean((np.tanh(w[:, None, None] * x + b[None, :, None]) - y) ** 2, -1)

    fns = {
        "plain": plain,
        "blocked": lambda: Landscape.evaluate_grid(problem, w, b),
        "lossmap": lambda: problem.surface(region, steps=STEPS).loss,
    }
    results = {k: f() for k, f in fns.items()}  # warm-up, and the numbers
    times = interleaved(fns, ROUNDS)
    rows = w[::25]
    slow = interleaved({"per_point": lambda: _per_point(problem, rows, b)}, 1)
    per_point_s = min(slow["per_point"]) * w.size / rows.size
    ref_rows = _per_point(problem, rows[:3], b)
    best = {k: min(v) for k, v in times.items()}
    return {
        "grid": f"{STEPS}x{STEPS}",
        "points": N_POINTS,
        **{k: summary(v) for k, v in times.items()},
        "per_point_s": round(per_point_s, 2),
        "per_point_note": f"timed on {rows.size} of {w.size} rows, scaled",
        "speedup_vs_plain": round(best["plain"] / best["lossmap"], 2),
        "speedup_vs_plain_median": round(
            summary(times["plain"])["median_s"] / summary(times["lossmap"])["median_s"],
            2,
        ),
        "speedup_vs_blocked": round(best["blocked"] / best["lossmap"], 2),
        "speedup_vs_per_point": round(per_point_s / best["lossmap"], 1),
        "max_abs_diff_vs_plain": float(
            np.max(np.abs(results["lossmap"] - results["plain"]))
        ),
        "max_abs_diff_blocked_vs_plain": float(
            np.max(np.abs(results["blocked"] - results["plain"]))
        ),
        "max_abs_diff_vs_per_point": float(
            np.max(np.abs(results["lossmap"][::25][:3] - ref_rows))
        ),
        "goal": ">= 3x plain broadcasting, agreement <= 1e-12 in float64",
    }
