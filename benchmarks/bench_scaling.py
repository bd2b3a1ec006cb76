"""How a W1-like plane's cost grows: grid points, samples, parameters.

A W1-like model is an MLP 784-h-h-10 with ReLU, cross-entropy on random data,
a filter-normalised random plane. Three sweeps, each changing one thing:

* ``grid``: 11², 21², 41² grid points (h=512, 256 samples);
* ``samples``: 1,024 … 16,384 samples (h=512, 7²);
* ``width``: h = 256, 512, 1,024 (2,048 samples, 7²).

Scaled down from W1 (8,192 samples, 21²) to keep this short on a shared
machine. The configurations of a sweep run in turn, round by round, and each
run is preceded by a short float32 matrix product: its rate is the peak that
run is measured against, so other work slowing the machine down slows both
alike. Each row records its best run (highest fraction of its adjacent peak),
the growth of peak resident memory, the share of the peak it reached, and
its time rescaled to one reference peak (``peak_normalised_s``), from which
``linearity`` gives the cost per unit (point, sample-point or forward GFLOP)
relative to the first row. Fractions of peak:

* ``naive`` counts every forward FLOP of every point (as a plain per-point
  evaluation would execute them);
* ``executed`` counts what lossmap ran: the first Linear's products once per
  direction (it is cached as an affine map of the coordinates, see
  ``nn/_split.py``), then per point the weighted sum of the cached outputs
  and layers 2–3.

Run: ``python -m benchmarks scaling`` (about half a minute on a quiet 2-core VM).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from benchmarks._machine import load, matmul_peak, measure, threads
from lossmap import _cpu
from lossmap import nn as lnn

ROUNDS = 2
IN, OUT = 784, 10

SWEEPS: dict[str, list[dict[str, int]]] = {
    "grid": [{"h": 512, "n": 256, "steps": s} for s in (11, 21, 41)],
    "samples": [
        {"h": 512, "n": n, "steps": 7} for n in (1024, 2048, 4096, 8192, 16384)
    ],
    "width": [{"h": h, "n": 2048, "steps": 7} for h in (256, 512, 1024)],
}


def mlp(h: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(IN, h),
        nn.ReLU(),
        nn.Linear(h, h),
        nn.ReLU(),
        nn.Linear(h, OUT),
    ).eval()


def data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, IN, generator=g), torch.randint(0, OUT, (n,), generator=g)


def flops(h: int, n: int, points: int, directions: int = 2) -> dict[str, float]:
    """Forward FLOPs: all of them per point, and what the affine split runs."""
    first = 2 * IN * h * n
    rest = 2 * (h * h + h * OUT) * n
    combine = 2 * directions * h * n  # y0 + a·y1 + b·y2 per point
    return {
        "naive": (first + rest) * points,
        "executed": first * (directions + 1) + (rest + combine) * points,
    }


def _setup(cfg: dict[str, int]) -> tuple[Any, ...]:
    model, (x, y) = mlp(cfg["h"]), data(cfg["n"])
    return model, (x, y), lnn.random_plane(model, seed=0, norm="filter")


def _run(cfg: dict[str, int], setup: tuple[Any, ...]) -> dict[str, Any]:
    model, xy, dirs = setup
    out: dict[str, Any] = {}
    with measure(out):
        s = lnn.plane(
            model, F.cross_entropy, xy, dirs, steps=cfg["steps"], progress=False
        )
    out["engine"] = {
        k: s.metadata["engine"].get(k)
        for k in ("strategy", "points_per_pass", "tile_rows", "split")
    }
    return out


def _row(cfg: dict[str, int], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The best run of a configuration, against the peak measured beside it."""
    h, n, steps = cfg["h"], cfg["n"], cfg["steps"]
    points = steps * steps
    fl = flops(h, n, points)
    # each run's rate as a share of the matrix-product rate measured just
    # before it: other work on the machine slows both alike
    for r in runs:
        r["naive_fraction_of_peak"] = fl["naive"] / r["seconds"] / 1e9 / r["peak"]
    best = max(runs, key=lambda r: r["naive_fraction_of_peak"])
    t, peak = best["seconds"], best["peak"]
    return {
        **cfg,
        "points": points,
        "seconds": round(t, 3),
        "adjacent_peak_gflops": round(peak, 1),
        "all_seconds": [round(r["seconds"], 3) for r in runs],
        "all_adjacent_peaks": [round(r["peak"], 1) for r in runs],
        "naive_gflop": round(fl["naive"] / 1e9, 2),
        "executed_gflop": round(fl["executed"] / 1e9, 2),
        "peak_over_start_mib": round(
            max(r["peak_rss_mib"] - r["rss_before_mib"] for r in runs), 1
        ),
        # what the engine keeps: X·W₀ᵀ, X·D₁ᵀ, X·D₂ᵀ of the first layer (float32)
        "cached_first_layer_mib": round(3 * n * h * 4 / 2**20, 1),
        "naive_fraction_of_peak": round(fl["naive"] / t / 1e9 / peak, 3),
        "executed_fraction_of_peak": round(fl["executed"] / t / 1e9 / peak, 3),
        # time a machine running at the reference peak would have taken
        "peak_normalised_s": round(t * peak / REFERENCE_PEAK[0], 3),
        "engine": best["engine"],
        "load_avg": best["load_avg"],
    }


def _linearity(rows: list[dict[str, Any]], unit: str) -> dict[str, Any]:
    """Peak-normalised cost per unit relative to the first row (1.0 = linear)."""
    per = {
        "point": lambda r: r["peak_normalised_s"] / r["points"],
        "sample-point": lambda r: r["peak_normalised_s"] / (r["points"] * r["n"]),
        "executed GFLOP": lambda r: r["peak_normalised_s"] / r["executed_gflop"],
    }[unit]
    base = per(rows[0])
    return {"per": unit, "relative": [round(per(r) / base, 2) for r in rows]}


#: The peak the normalised times refer to (set from the first measurement).
REFERENCE_PEAK = [0.0]
#: Width changes the share of FLOPs the affine first layer saves, so its cost
#: is compared per FLOP lossmap executes.
UNITS = {"grid": "point", "samples": "sample-point", "width": "executed GFLOP"}


def run() -> dict[str, Any]:
    torch.set_num_threads(threads())
    first = matmul_peak("float32")
    REFERENCE_PEAK[0] = first["gflops_best"]
    res: dict[str, Any] = {
        "threads": torch.get_num_threads(),
        "cpu": _cpu.cpu_info().summary(),
        "matmul_peak_f32": first,
    }
    if _cpu.bf16_status("cpu")[0]:
        res["matmul_peak_bf16"] = matmul_peak("bfloat16")
    for name, configs in SWEEPS.items():
        print(f"-- {name}", flush=True)
        setups = [_setup(cfg) for cfg in configs]
        runs: list[list[dict[str, Any]]] = [[] for _ in configs]
        for _ in range(ROUNDS):  # configurations in turn, round by round
            for i, cfg in enumerate(configs):
                peak = matmul_peak("float32", n=1024, reps=3)["gflops_best"]
                r = _run(cfg, setups[i])
                r.update(peak=peak, load_avg=load())
                runs[i].append(r)
        rows = [_row(cfg, r) for cfg, r in zip(configs, runs)]
        for row in rows:
            print(row, flush=True)
        res[name] = {"runs": rows, "linearity": _linearity(rows, UNITS[name])}
    res["reference_peak_gflops"] = REFERENCE_PEAK[0]
    res["note"] = (
        "each run's fraction of peak is against a 1024x1024 float32 matrix "
        "product timed just before it (best of 3, same threads); "
        "peak_normalised_s rescales its time to the first 2048x2048 peak"
    )
    return res
