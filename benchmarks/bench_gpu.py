"""W1 and W2 on a CUDA GPU: lossmap (float32, bf16) against loss-landscapes there.

Skipped (``{"skipped": ...}``) where no CUDA device is present, so ``make
bench`` runs everywhere; ``benchmarks/gpu_check.sh`` runs it with the CUDA
tests as one script. Each method runs ``ROUNDS`` times in turn, best round
counts; the first round of each is a warm-up (CUDA kernels, cuDNN autotuning).

Methods per workload, all on the same GPU, same model, data and grid:

* ``lossmap``: ``plane(...)`` with the engine's own choice;
* ``lossmap_vmap``: ``strategy="vmap"`` and a 4 GiB memory budget, i.e. many
  grid points per forward pass (where the GPU should gain most);
* ``lossmap_bf16``: ``precision="bf16"`` (autocast), where the GPU supports
  bfloat16, with its error against float;
* ``loss_landscapes``: ``random_plane`` of loss-landscapes 3.0.6, if installed.

Agreement: each lossmap surface against the CPU float surface of the same
plane on an evenly spread subset of points (computed with the per-point
reference of ``bench_nn``).
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch

from benchmarks import bench_nn
from lossmap import _cpu
from lossmap import nn as lnn

ROUNDS = 3
WORKLOADS = ("W1", "W2")


def _sync() -> None:
    torch.cuda.synchronize()


def _timed(fn) -> tuple[float, Any]:
    _sync()
    t0 = time.perf_counter()
    out = fn()
    _sync()
    return time.perf_counter() - t0, out


def _on(w: dict[str, Any], device: str) -> dict[str, Any]:
    w = dict(w)
    w["model"] = copy.deepcopy(w["model"]).to(device)
    w["x"], w["y"] = w["x"].to(device), w["y"].to(device)
    return w


def _methods(w: dict[str, Any], dirs: Any, bf16: bool) -> dict[str, Any]:
    def plane(**kw):
        return lambda: lnn.plane(
            w["model"],
            w["loss"],
            (w["x"], w["y"]),
            dirs,
            span=w["span"],
            steps=w["steps"],
            progress=False,
            **kw,
        )

    methods = {
        "lossmap": plane(),
        "lossmap_vmap": plane(strategy="vmap", memory=4 << 30),
    }
    if bf16:
        methods["lossmap_bf16"] = plane(precision="bf16")
    try:
        import loss_landscapes
        from loss_landscapes.metrics import Loss

        metric = Loss(w["loss"], w["x"], w["y"])
        methods["loss_landscapes"] = lambda: loss_landscapes.random_plane(
            copy.deepcopy(w["model"]),
            metric,
            distance=1,
            steps=w["steps"],
            normalization="filter",
            deepcopy_model=True,
        )
    except ImportError:
        pass
    return methods


def bench(name: str) -> dict[str, Any]:
    cpu_w = bench_nn.WORKLOADS[name]()
    w = _on(cpu_w, "cuda")
    dirs_cpu = bench_nn._directions(cpu_w)
    dirs = [
        lnn.from_tensors(w["model"], {k: t.cuda() for k, t in d.tensors.items()})
        for d in dirs_cpu
    ]
    bf16 = _cpu.bf16_status(torch.device("cuda"))[0]
    methods = _methods(w, dirs, bf16)
    times: dict[str, list[float]] = {k: [] for k in methods}
    errors: dict[str, str] = {}
    surfaces: dict[str, Any] = {}
    for _ in range(ROUNDS):
        for key, fn in list(methods.items()):
            try:
                t, out = _timed(fn)
            except Exception as exc:  # record and drop a method that fails
                errors[key] = f"{type(exc).__name__}: {exc}"[:300]
                del methods[key]
                continue
            times[key].append(t)
            surfaces[key] = out
    res: dict[str, Any] = {
        "points": w["steps"] ** 2,
        "gpu": torch.cuda.get_device_name(0),
        "bf16": bf16,
        "rounds": ROUNDS,
        "errors": errors,
    }
    for key, ts in times.items():
        if ts:
            res[key] = {"best_s": round(min(ts), 4), "all_s": [round(t, 4) for t in ts]}
    # agreement with the per-point reference on the CPU at 21 spread points
    ref_w = dict(cpu_w, ref_points=21)
    _, values = bench_nn.run_reference(ref_w, dirs_cpu)
    for key in ("lossmap", "lossmap_vmap", "lossmap_bf16"):
        if key in surfaces:
            diffs = bench_nn._diffs(surfaces[key], values)
            res[key]["max_abs_diff_vs_cpu_reference"] = float(max(diffs))
            res[key]["engine"] = surfaces[key].metadata.get("engine")
    if "loss_landscapes" in res:
        for key in ("lossmap", "lossmap_vmap", "lossmap_bf16"):
            if key in res:
                res[f"{key}_vs_loss_landscapes"] = round(
                    res["loss_landscapes"]["best_s"] / res[key]["best_s"], 2
                )
    if "lossmap_bf16" in surfaces:
        res["lossmap_bf16"]["max_abs_diff_vs_float"] = float(
            np.max(np.abs(surfaces["lossmap_bf16"].loss - surfaces["lossmap"].loss))
        )
    return res


def run(names: list[str] | None = None) -> dict[str, Any]:
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device (torch.cuda.is_available() is False)"}
    out: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda}
    for name in names or WORKLOADS:
        print(f"-- {name}", flush=True)
        out[name] = bench(name)
        print(out[name], flush=True)
    return out
