"""Demo section: curvature of a small network trained on the digits data.

``run(out)`` trains a tanh MLP (64-16-10, 1,210 parameters) on scikit-learn's
bundled 8×8 digits by full-batch gradient descent at two learning rates,
recording snapshots, then computes and draws

* the Hessian's eigenvalue density (SLQ, several probes) with its top
  eigenvalues and the Hutch++ trace,
* the trace and top eigenvalue of each layer's block,
* a curvature map (λmax, λmin, |λmin/λmax|) over a random plane,
* the loss over the plane spanned by the two top Hessian eigenvectors,
* the sharpness (λmax) along both training runs against 2/η
  (edge of stability).

Every number comes from :mod:`lossmap.nn.curvature`; the curvature map is
written to a resumable store in ``out/curvature/``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

import lossmap.nn as lnn
from demo._digits import digits
from lossmap.nn import curvature as cv
from lossmap.plot import (
    BlockTraceDisplay,
    CurvatureMapDisplay,
    PlaneDisplay,
    SharpnessDisplay,
    SpectrumDisplay,
)

DPI = 110
SEED = 0
LRS = (0.5, 2.0)
STEPS = 300
RECORD_EVERY = 10


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _model() -> torch.nn.Module:
    torch.manual_seed(SEED)
    return torch.nn.Sequential(
        torch.nn.Linear(64, 16), torch.nn.Tanh(), torch.nn.Linear(16, 10)
    )


def _train(lr: float, data: tuple[torch.Tensor, torch.Tensor]):
    """Full-batch gradient descent; a Recorder keeps every 10th step."""
    net = _model()
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    rec = lnn.Recorder(net, every=RECORD_EVERY)
    for step in range(STEPS + 1):
        rec(step)
        opt.zero_grad()
        F.cross_entropy(net(data[0]), data[1]).backward()
        opt.step()
    return net, rec.recording()


def run(out: Path) -> list[tuple[Path, str]]:
    folder = out / "curvature"
    folder.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small products: one thread is fastest on a busy CPU
    try:
        return _run(folder)
    finally:
        torch.set_num_threads(threads)


def _run(folder: Path) -> list[tuple[Path, str]]:
    data = digits()
    files: list[tuple[Path, str]] = []
    t0 = time.perf_counter()
    runs = {lr: _train(lr, data) for lr in LRS}
    net, _ = runs[LRS[0]]
    print(f"   trained at η = {LRS} ({time.perf_counter() - t0:.1f} s)", flush=True)

    # spectrum, trace, per-layer curvature at the trained weights
    t0 = time.perf_counter()
    op = cv.HessianOperator(net, F.cross_entropy, data)
    top = cv.eigenvalues(op, 5)
    low = cv.eigenvalues(op, 1, which="smallest")
    trace = cv.hutchpp(op, sketch=64, probes=64, seed=SEED)
    density = cv.slq(op, iterations=60, probes=4, seed=SEED)
    disp = SpectrumDisplay(density, top=top, trace=trace).plot(
        title=f"Hessian spectrum of the digits MLP ({op.dim} parameters)"
    )
    files.append((_save(disp.figure_, folder / "spectrum.png"), "Hessian spectrum"))
    blocks = cv.block_curvature(op, k=1, sketch=64, probes=64, seed=SEED)
    bd = BlockTraceDisplay(blocks).plot()
    files.append((_save(bd.figure_, folder / "per_layer.png"), "per-layer curvature"))
    print(
        f"   top eigenvalues {np.round(top.values, 3).tolist()} (converged "
        f"{top.converged}), smallest {low.values[0]:.3g}, trace "
        f"{trace.value:.4g} ± {trace.stderr:.2g}, density mean × n "
        f"{density.mean * op.dim:.4g} ± {density.mean_stderr * op.dim:.2g}; "
        f"per layer: "
        + ", ".join(f"{k}: {b.trace.value:.3g}" for k, b in blocks.items())
        + f" ({op.products} products, {time.perf_counter() - t0:.1f} s)",
        flush=True,
    )

    # curvature map over a random plane (resumable store)
    t0 = time.perf_counter()
    plane = lnn.random_plane(net, seed=SEED)
    store = folder / "curvature_map.zarr"
    shutil.rmtree(store, ignore_errors=True)
    cmap = cv.curvature_map(
        net, F.cross_entropy, data, plane, steps=5, span=1.0, store=store, tol=1e-4
    )
    files.append(
        (
            _save(
                CurvatureMapDisplay(cmap).plot().figure_, folder / "curvature_map.png"
            ),
            "curvature map over a random plane",
        )
    )
    ratio = cmap.fields["ratio"]
    print(
        f"   curvature map 5×5: centre λmax {cmap.fields['lambda_max'][2, 2]:.4g} "
        f"(direct {top.values[0]:.4g}), |λmin/λmax| from "
        f"{np.nanmin(ratio):.2g} to {np.nanmax(ratio):.2g} "
        f"({time.perf_counter() - t0:.1f} s)",
        flush=True,
    )

    # the plane of the two sharpest directions
    t0 = time.perf_counter()
    dirs = cv.hessian_directions(net, F.cross_entropy, data, k=2)
    span = 2.0 / np.sqrt(top.values[0])
    surf = lnn.plane(
        net, F.cross_entropy, data, dirs, steps=31, span=span, progress=False
    )
    pd = PlaneDisplay(surf).plot(title="Loss along the two top Hessian eigenvectors")
    files.append(
        (_save(pd.figure_, folder / "eigen_plane.png"), "top-eigenvector plane")
    )
    print(f"   eigenvector plane ({time.perf_counter() - t0:.1f} s)", flush=True)

    # sharpness along training against 2/η
    t0 = time.perf_counter()
    sharp = {
        f"η={lr:g}": cv.sharpness(rec, _model(), F.cross_entropy, data, lr=lr, tol=1e-4)
        for lr, (_, rec) in runs.items()
    }
    sd = SharpnessDisplay(sharp).plot()
    files.append((_save(sd.figure_, folder / "sharpness.png"), "sharpness vs 2/η"))
    print(
        "   sharpness: "
        + "; ".join(
            f"{k}: λmax {s.lambda_max[0]:.3g} → {s.lambda_max[-1]:.3g} "
            f"(2/η = {s.threshold[0]:.3g})"
            for k, s in sharp.items()
        )
        + f" ({time.perf_counter() - t0:.1f} s)",
        flush=True,
    )
    return files
