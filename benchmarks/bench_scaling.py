"""How a W1-like plane's cost grows: grid points, samples, parameters.

A W1-like model is an MLP 784-h-h-10 with ReLU, cross-entropy on random data,
a filter-normalised random plane. Three sweeps, each changing one thing:

* ``grid``: 11², 21², 41² grid points (h=512, 512 samples);
* ``samples``: 1,024 … 16,384 samples (h=512, 7²);
* ``width``: h = 256, 512, 1,024 (2,048 samples, 7²).

Scaled down from W1 (8,192 samples, 21²) to keep this short on a shared
machine; per-point cost is what the sweeps compare. Each run records its time
(best of ``ROUNDS``), the growth of peak resident memory over the run, the
cost per unit (per point, per sample-point, per forward GFLOP), and the share
of the machine's measured float32 matrix-product peak it reached:

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

from benchmarks._machine import load, matmul_peak, measure
from lossmap import _cpu
from lossmap import nn as lnn

ROUNDS = 2
IN, OUT = 784, 10

SWEEPS: dict[str, list[dict[str, int]]] = {
    "grid": [{"h": 512, "n": 512, "steps": s} for s in (11, 21, 41)],
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


def one(cfg: dict[str, int], peak: float) -> dict[str, Any]:
    h, n, steps = cfg["h"], cfg["n"], cfg["steps"]
    model, (x, y) = mlp(h), data(n)
    dirs = lnn.random_plane(model, seed=0, norm="filter")
    runs = []
    for _ in range(ROUNDS):
        out: dict[str, Any] = {}
        with measure(out):
            s = lnn.plane(
                model, F.cross_entropy, (x, y), dirs, steps=steps, progress=False
            )
        runs.append(out)
    best = min(runs, key=lambda r: r["seconds"])
    t = best["seconds"]
    points = steps * steps
    fl = flops(h, n, points)
    return {
        **cfg,
        "points": points,
        "seconds": round(t, 3),
        "all_seconds": [round(r["seconds"], 3) for r in runs],
        "ms_per_point": round(1e3 * t / points, 3),
        "us_per_sample_point": round(1e6 * t / (points * n), 4),
        "s_per_naive_tflop": round(t / (fl["naive"] / 1e12), 3),
        "peak_over_start_mib": round(
            max(r["peak_rss_mib"] - r["rss_before_mib"] for r in runs), 1
        ),
        "naive_gflops": round(fl["naive"] / t / 1e9, 1),
        "executed_gflops": round(fl["executed"] / t / 1e9, 1),
        "naive_fraction_of_peak": round(fl["naive"] / t / 1e9 / peak, 3),
        "executed_fraction_of_peak": round(fl["executed"] / t / 1e9 / peak, 3),
        "engine": {
            k: s.metadata["engine"].get(k)
            for k in ("strategy", "points_per_pass", "tile_rows", "split")
        },
        "load_avg": load(),
    }


def _linearity(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Cost per unit relative to the first row (1.0 everywhere = linear)."""
    base = rows[0][key]
    return {"unit": key, "relative": [round(r[key] / base, 2) for r in rows]}


def run() -> dict[str, Any]:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    peak_before = matmul_peak("float32")
    res: dict[str, Any] = {
        "threads": torch.get_num_threads(),
        "cpu": _cpu.cpu_info().summary(),
        "matmul_peak_f32_before": peak_before,
    }
    if _cpu.bf16_status("cpu")[0]:
        res["matmul_peak_bf16"] = matmul_peak("bfloat16")
    peak = peak_before["gflops_best"]
    for name, configs in SWEEPS.items():
        print(f"-- {name}", flush=True)
        rows = []
        for cfg in configs:
            rows.append(one(cfg, peak))
            print(rows[-1], flush=True)
        unit = {
            "grid": "ms_per_point",
            "samples": "us_per_sample_point",
            "width": "s_per_naive_tflop",
        }[name]
        res[name] = {"runs": rows, "linearity": _linearity(rows, unit)}
    res["matmul_peak_f32_after"] = matmul_peak("float32")
    res["peak_used_gflops"] = peak
    res["note"] = (
        "fractions use the float32 peak measured before the sweeps "
        "(2048x2048 matrix product, 2 threads, best of 5)"
    )
    return res
