"""Planes through real networks: lossmap's engine against per-point evaluation.

Workloads (see issue 4):

* W1: MLP 784-512-512-10, 8,192 samples, 21×21 filter-normalised plane;
* W2: CNN (conv 3→32, conv 32→64 stride 2, global average pooling, linear
  64→10) on 2,048 images 3×32×32, 21×21;
* W3: one tanh neuron ``tanh(w·x + b)`` as a torch model, 50 points, 501×501;
* W1s: W1's model on 2,048 samples and a 9×9 plane — short enough for several
  interleaved rounds on a machine shared with other work.

Each is timed in one process against

* ``reference``: a per-point loop that loads θ₀ + a·d₁ + b·d₂ into the model
  and runs one forward pass over all data (what existing tools do), and
* ``loss-landscapes`` (PyPI package, if installed): its ``random_plane``.

Slow baselines are timed on an evenly spread subset of the grid and scaled
to the full grid (per-point cost does not depend on the coordinates); the
result says so (``points_timed`` < ``points``). Set ``LOSSMAP_BENCH_FULL=1``
to time every point. W1 and W2 are also timed with ``precision="bf16"``
(bfloat16 autocast preview; key ``lossmap_bf16``, with its error against the
reference and the float surface) where the CPU computes bfloat16 natively
(``lossmap._cpu``); elsewhere the key says why not. Each method's
``fraction_of_f32_peak`` is its forward FLOPs (Linear and Conv2d layers,
counted with hooks, every point) per second over the float32 matrix-product
rate measured at the start (``matmul_peak_f32``). Peak memory is the
process's peak resident set size during each run (``VmHWM`` after resetting
it through ``/proc/self/clear_refs``), in MiB.

Run: ``python -m benchmarks nn`` (``LOSSMAP_BENCH_WORKLOADS=W1,W3`` for a
subset, ``LOSSMAP_BENCH_ROUNDS=1`` for one round each, and
``LOSSMAP_BENCH_THREADS=1`` on a machine shared with other work).
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from benchmarks._machine import matmul_peak, measure, threads
from lossmap import _cpu
from lossmap import nn as lnn

FULL = os.environ.get("LOSSMAP_BENCH_FULL") == "1"


# ---------------------------------------------------------------- workloads
def w1() -> dict[str, Any]:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 512),
        nn.ReLU(),
        nn.Linear(512, 512),
        nn.ReLU(),
        nn.Linear(512, 10),
    ).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8192, 784, generator=g)
    y = torch.randint(0, 10, (8192,), generator=g)
    return dict(
        model=model,
        x=x,
        y=y,
        loss=F.cross_entropy,
        steps=21,
        span=1.0,
        ref_points=21 if not FULL else None,
        ll_points=None,
        dirs="random",
    )


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, stride=2, padding=1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv1(x))
        h = F.relu(self.conv2(h))
        return self.fc(h.mean(dim=(2, 3)))


def w2() -> dict[str, Any]:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2048, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (2048,), generator=g)
    return dict(
        model=SmallCNN().eval(),
        x=x,
        y=y,
        loss=F.cross_entropy,
        steps=21,
        span=1.0,
        ref_points=None if FULL else 21,
        ll_points=None if FULL else 7,
        lossmap_steps=None if FULL else 15,
        dirs="random",
    )


class Neuron(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.lin(x))


def w3() -> dict[str, Any]:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x = torch.linspace(-2, 2, 50).reshape(50, 1)
    y = torch.tanh(1.5 * x - 0.5) + 0.05 * torch.randn(50, 1, generator=g)
    return dict(
        model=Neuron().eval(),
        x=x,
        y=y,
        loss=F.mse_loss,
        steps=501,
        span=2.0,
        ref_points=None if FULL else 2004,
        ll_points=None,
        dirs="axes",
    )


def w1s() -> dict[str, Any]:
    """W1's model on 2,048 samples and a 9×9 plane: a short, repeatable check."""
    w = w1()
    w.update(x=w["x"][:2048], y=w["y"][:2048], steps=9, ref_points=9)
    return w


WORKLOADS: dict[str, Callable[[], dict[str, Any]]] = {
    "W1": w1,
    "W2": w2,
    "W3": w3,
    "W1s": w1s,
}


# ------------------------------------------------------------------ methods
def _directions(w: dict[str, Any]) -> tuple[lnn.Direction, lnn.Direction]:
    if w["dirs"] == "axes":
        return lnn.axis_directions(w["model"], "lin.weight[0, 0]", "lin.bias[0]")
    return lnn.random_plane(w["model"], seed=0, norm="filter")


def run_lossmap(
    w: dict[str, Any], dirs: Any, precision: str = "float"
) -> tuple[dict[str, Any], Any]:
    steps = w.get("lossmap_steps") or w["steps"]
    out: dict[str, Any] = {}
    with measure(out):
        s = lnn.plane(
            w["model"],
            w["loss"],
            (w["x"], w["y"]),
            dirs,
            span=w["span"],
            steps=steps,
            progress=False,
            precision=precision,
        )
    out["points_timed"] = steps * steps
    out["engine"] = dict(s.metadata["engine"])
    return out, s


def _grid_subset(w: dict[str, Any], count: int | None) -> list[tuple[float, float]]:
    coords = np.linspace(-w["span"], w["span"], w["steps"])
    grid = [(a, b) for a in coords for b in coords]
    if count is None or count >= len(grid):
        return grid
    pick = np.linspace(0, len(grid) - 1, count).round().astype(int)
    return [grid[i] for i in pick]


def run_reference(w: dict[str, Any], dirs: Any) -> tuple[dict[str, Any], dict]:
    """Load θ₀ + a·d₁ + b·d₂ into the model, forward all data, per point."""
    model = copy.deepcopy(w["model"]).eval()
    theta = {n: p.detach().clone() for n, p in model.named_parameters()}
    points = _grid_subset(w, w["ref_points"])
    values = {}
    out: dict[str, Any] = {}
    with measure(out), torch.no_grad():
        params = dict(model.named_parameters())
        for a, b in points:
            for n, p in params.items():
                p.copy_(theta[n] + a * dirs[0].tensors[n] + b * dirs[1].tensors[n])
            values[(a, b)] = float(w["loss"](model(w["x"]), w["y"]))
    out["points_timed"] = len(points)
    return out, values


def run_loss_landscapes(w: dict[str, Any]) -> dict[str, Any] | None:
    try:
        import loss_landscapes
        from loss_landscapes.metrics import Loss
    except ImportError:
        return None
    steps = w["ll_points"] or w["steps"]
    model = copy.deepcopy(w["model"])
    metric = Loss(w["loss"], w["x"], w["y"])
    out: dict[str, Any] = {}
    with measure(out):
        loss_landscapes.random_plane(
            model,
            metric,
            distance=1,
            steps=steps,
            normalization="filter",
            deepcopy_model=True,
        )
    out["points_timed"] = steps * steps
    out["version"] = getattr(loss_landscapes, "__version__", "3.0.6")
    return out


def _scale(r: dict[str, Any], points: int) -> dict[str, Any]:
    r["seconds_timed"] = round(r["seconds"], 3)
    r["seconds"] = round(r["seconds"] * points / r["points_timed"], 3)
    r["extrapolated"] = r["points_timed"] < points
    return r


def _best(runs: list[dict[str, Any]], points: int) -> dict[str, Any]:
    best = dict(min(runs, key=lambda r: r["seconds"]))
    best["all_seconds_timed"] = [round(r["seconds"], 3) for r in runs]
    best["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs)
    best["peak_over_start_mib"] = round(
        max(r["peak_rss_mib"] - r["rss_before_mib"] for r in runs), 1
    )
    return _scale(best, points)


def forward_flops(model: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward pass over ``x`` in Linear and Conv2d layers (2·MACs)."""
    total = 0

    def hook(m: nn.Module, inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(m, nn.Linear):
            total += 2 * out.numel() * m.in_features
        elif isinstance(m, nn.Conv2d):
            k = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
            total += 2 * out.numel() * k

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total


def bench(name: str, reps: int, peak: float | None = None) -> dict[str, Any]:
    """Methods run in turn, ``reps`` rounds; the best round of each counts."""
    w = WORKLOADS[name]()
    points = w["steps"] ** 2
    dirs = _directions(w)
    res: dict[str, Any] = {"points": points, "rounds": reps}
    # forward FLOPs per grid point, counted on 64 samples and scaled
    sample = w["x"][:64]
    per_point = forward_flops(w["model"], sample) * w["x"].shape[0] / sample.shape[0]
    res["gflop_per_point"] = round(per_point / 1e9, 3)
    runs: dict[str, list[dict[str, Any]]] = {"lossmap": [], "reference": []}
    bf16, bf16_why = _cpu.bf16_status("cpu")
    if name in BF16 and not bf16:
        res["lossmap_bf16"] = {"refused": bf16_why}
    for _ in range(reps):
        lm, surface = run_lossmap(w, dirs)
        runs["lossmap"].append(lm)
        if name in BF16 and bf16:
            lm16, surface16 = run_lossmap(w, dirs, precision="bf16")
            runs.setdefault("lossmap_bf16", []).append(lm16)
        ref, values = run_reference(w, dirs)
        runs["reference"].append(ref)
        ll = run_loss_landscapes(w)
        if ll is not None:
            runs.setdefault("loss_landscapes", []).append(ll)
    for key, r in runs.items():
        res[key] = _best(r, points)
        if peak:  # naive forward FLOPs over the best time, against the f32 peak
            rate = per_point * points / res[key]["seconds"] / 1e9
            res[key]["naive_gflops"] = round(rate, 1)
            res[key]["fraction_of_f32_peak"] = round(rate / peak, 3)
    # agreement at the reference's points that lie on lossmap's grid
    diffs = _diffs(surface, values)
    res["max_abs_diff_vs_reference"] = float(max(diffs)) if diffs else None
    res["points_compared"] = len(diffs)
    if "lossmap_bf16" in res:
        d16 = _diffs(surface16, values)
        res["lossmap_bf16"].update(
            max_abs_diff_vs_reference=float(max(d16)) if d16 else None,
            max_abs_diff_vs_float=float(np.max(np.abs(surface16.loss - surface.loss))),
            recorded_precision_error=surface16.metadata["precision_error"],
            speedup_vs_lossmap_float=round(
                res["lossmap"]["seconds"] / res["lossmap_bf16"]["seconds"], 2
            ),
        )
    if "loss_landscapes" in res:
        res["speedup_vs_loss_landscapes"] = round(
            res["loss_landscapes"]["seconds"] / res["lossmap"]["seconds"], 2
        )
    res["speedup_vs_reference"] = round(
        res["reference"]["seconds"] / res["lossmap"]["seconds"], 2
    )
    return res


def _diffs(surface: Any, values: dict) -> list[float]:
    a_ax, b_ax = surface.coords("alpha"), surface.coords("beta")
    diffs = []
    for (a, b), v in values.items():
        i, j = np.flatnonzero(np.isclose(a_ax, a)), np.flatnonzero(np.isclose(b_ax, b))
        if i.size and j.size:
            diffs.append(abs(surface.loss[i[0], j[0]] - v))
    return diffs


REPS = {"W1": 2, "W2": 2, "W3": 5, "W1s": 4}
#: Workloads also timed with ``precision="bf16"`` (key ``"lossmap_bf16"``)
#: where this CPU computes bfloat16 natively; elsewhere the key records why not.
BF16 = {"W1", "W2"}


def run(names: list[str] | None = None) -> dict[str, Any]:
    torch.set_num_threads(threads())
    peak = matmul_peak("float32")
    out: dict[str, Any] = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "full_grids": FULL,
        "cpu": _cpu.cpu_info().summary(),
        "matmul_peak_f32": peak,
    }
    if _cpu.bf16_status("cpu")[0]:
        out["matmul_peak_bf16"] = matmul_peak("bfloat16")
    chosen = os.environ.get("LOSSMAP_BENCH_WORKLOADS")  # e.g. "W1,W3"
    names = names or (chosen.split(",") if chosen else list(WORKLOADS))
    for name in names:
        print(f"-- {name}", flush=True)
        reps = int(os.environ.get("LOSSMAP_BENCH_ROUNDS", REPS[name]))
        out[name] = bench(name, reps, peak["gflops_best"])
        print(out[name], flush=True)
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run(sys.argv[1:] or None), indent=2))
