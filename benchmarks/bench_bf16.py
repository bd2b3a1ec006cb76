"""bfloat16 against float32 on W1- and W2-like planes, where bf16 is native.

The full W1 (8,192 samples) and W2 (2,048 images) data on 9×9 planes, timed
two ways, float and bf16 interleaved:

* ``lossmap.nn.plane`` as a user calls it: set-up included, and the bf16 time
  includes its float re-evaluation of 9 check points (11 % of a 9×9 grid,
  2 % of a 21×21 one), so small grids understate bfloat16's gain;
* the engine alone (``Evaluator.evaluate`` over the same 81 points, set-up
  and checks excluded): the speed-up of the bfloat16 passes themselves,
  which is what a large grid approaches.
``precision="float"`` and ``"bf16"`` run in turn for ``ROUNDS`` rounds; the
best round of each counts. Recorded beside the ratio: the largest loss
difference over the whole grid and the surface's own ``precision_error``
(its float re-evaluation of 9 points).

Where this CPU has no native bfloat16 the result only says why
(``lossmap._cpu``); ``precision="bf16"`` is refused there.

Run: ``python -m benchmarks bf16``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from benchmarks import bench_nn
from benchmarks._machine import interleaved, load, threads
from lossmap import _cpu
from lossmap import nn as lnn

ROUNDS = 3
SIZES = {"W1": (8192, 9), "W2": (2048, 9)}


def _plane(w: dict[str, Any], dirs: Any, steps: int, precision: str) -> Any:
    return lnn.plane(
        w["model"],
        w["loss"],
        (w["x"], w["y"]),
        dirs,
        span=w["span"],
        steps=steps,
        progress=False,
        precision=precision,
    )


def _engine_times(w: dict[str, Any], dirs: Any, steps: int) -> dict[str, list]:
    """Seconds per grid point of the engine's passes alone, float and bf16."""
    from lossmap.nn._prepare import prepare
    from lossmap.nn.engine import Evaluator
    from lossmap.nn.options import Options

    axis = np.linspace(-w["span"], w["span"], steps)
    coeffs = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    evaluators = {}
    for precision in ("float", "bf16"):
        opts = Options(precision=precision, progress=False)
        call = prepare(w["model"], w["loss"], (w["x"], w["y"]), list(dirs), 2, opts)
        evaluators[precision] = Evaluator(call.spec)
    try:
        times = interleaved(
            {p: (lambda ev=ev: ev.evaluate(coeffs)) for p, ev in evaluators.items()},
            ROUNDS,
        )
    finally:
        for ev in evaluators.values():
            ev.close()
    return {p: [t / len(coeffs) for t in ts] for p, ts in times.items()}


def bench(name: str) -> dict[str, Any]:
    w = bench_nn.WORKLOADS[name]()
    n, steps = SIZES[name]
    w["x"], w["y"] = w["x"][:n], w["y"][:n]
    dirs = bench_nn._directions(w)
    out: dict[str, Any] = {}
    times = interleaved(
        {
            "float": lambda: out.__setitem__("float", _plane(w, dirs, steps, "float")),
            "bf16": lambda: out.__setitem__("bf16", _plane(w, dirs, steps, "bf16")),
        },
        ROUNDS,
    )
    f, b = min(times["float"]), min(times["bf16"])
    engine = _engine_times(w, dirs, steps)
    ef, eb = min(engine["float"]), min(engine["bf16"])
    return {
        "samples": n,
        "grid": f"{steps}x{steps}",
        "float_s": round(f, 3),
        "bf16_s": round(b, 3),
        "all_float_s": [round(t, 3) for t in times["float"]],
        "all_bf16_s": [round(t, 3) for t in times["bf16"]],
        "bf16_speedup": round(f / b, 2),
        "engine_float_s_per_point": round(ef, 4),
        "engine_bf16_s_per_point": round(eb, 4),
        "engine_bf16_speedup": round(ef / eb, 2),
        "max_abs_diff_vs_float": float(
            np.max(np.abs(out["bf16"].loss - out["float"].loss))
        ),
        "recorded_precision_error": out["bf16"].metadata["precision_error"],
        "loss_range": [float(out["float"].loss.min()), float(out["float"].loss.max())],
        "load_avg": load(),
    }


def run() -> dict[str, Any]:
    native, why = _cpu.bf16_status("cpu")
    res: dict[str, Any] = {"cpu": _cpu.cpu_info().summary(), "bf16_native": native}
    if not native:
        res["skipped"] = f"precision='bf16' is refused here: {why}"
        return res
    torch.set_num_threads(threads())
    for name in SIZES:
        print(f"-- {name}", flush=True)
        res[name] = bench(name)
        print(res[name], flush=True)
    return res
