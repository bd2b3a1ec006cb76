"""Demo section: two digits networks, the paths between them, a map of both runs.

``run(out)`` trains two small MLPs (64-32-10) on scikit-learn's bundled 8×8
digits from different seeds, recording snapshots along the way, then

* evaluates the straight line between the two minima and its loss barrier,
* aligns the second network's hidden units to the first (weight matching)
  and evaluates the straight line again,
* trains a quadratic Bezier curve between the two minima (Garipov et al.
  2018) and evaluates the loss along it,
* computes the loss over the plane through the curve's control points,
* maps both runs' checkpoints with t-SNE and PCA, coloured by loss.

Stores (curve training, loss along the curve, the plane) and figures go to
``out/minima/``.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import torch

import lossmap.nn as lnn
from demo._digits import digits, train_recorded
from lossmap.plot import BarrierDisplay, CurvePlaneDisplay, EmbeddingDisplay

DPI = 110
SEEDS = (0, 1)
EPOCHS = 6
RECORD_EVERY = 8
CURVE_EPOCHS = 25
STEPS = 31  # grid points per plane axis


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _train(seed: int, data: tuple[torch.Tensor, torch.Tensor]) -> tuple:
    """Mini-batch SGD with momentum from ``seed``; snapshots every few steps."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)
    )
    rec = lnn.Recorder(net, every=RECORD_EVERY)
    return net, train_recorded(net, data, rec, epochs=EPOCHS, seed=seed)


def run(out: Path) -> list[tuple[Path, str]]:
    """Train both networks, compute every path, save stores and figures."""
    folder = Path(out) / "minima"
    if folder.exists():
        shutil.rmtree(folder)  # a fresh run: stores refuse other settings
    folder.mkdir(parents=True)
    data = digits()
    loss_fn = torch.nn.functional.cross_entropy
    written: list[tuple[Path, str]] = []
    t0 = time.perf_counter()
    (net_a, rec_a), (net_b, rec_b) = (_train(s, data) for s in SEEDS)
    print(f"   two MLPs trained in {time.perf_counter() - t0:.1f} s", flush=True)

    # the straight line, before and after aligning B's hidden units to A's
    t0 = time.perf_counter()
    linear = lnn.linear_path(net_a, net_b, loss_fn, data, metrics="accuracy")
    aligned = lnn.align(net_a, net_b)
    linear_aligned = lnn.linear_path(net_a, aligned, loss_fn, data, metrics="accuracy")

    # a trained quadratic Bezier curve between the two minima (resumable store)
    curve = lnn.train_curve(
        net_a,
        net_b,
        loss_fn,
        data,
        epochs=CURVE_EPOCHS,
        batch_size=128,
        lr=0.05,
        store=folder / "curve",
        save_every=5,
    )
    along = lnn.curve_path(
        curve,
        net_a,
        loss_fn,
        data,
        steps=25,
        metrics="accuracy",
        store=folder / "curve" / "along.zarr",
    )
    print(f"   paths and curve in {time.perf_counter() - t0:.1f} s", flush=True)
    paths = {"linear": linear, "linear, aligned": linear_aligned, "Bezier curve": along}
    for name, p in paths.items():
        b = p.metadata["barrier"]
        print(
            f"   {name:16s} barrier {b['height']:.3f} (max loss {b['max']:.3f} "
            f"at t={b['t']:.2f}), lowest accuracy "
            f"{float(np.min(p.field('accuracy'))):.3f}",
            flush=True,
        )
    disp = BarrierDisplay.from_paths(paths)
    disp.axes_[0].set_title("Loss between two digits MLPs (seeds 0 and 1)")
    written += [
        (_save(disp.figure_, folder / "barriers.png"), "linear / aligned / curve"),
        (folder / "curve", "the curve's control points per epoch (resumable)"),
        (folder / "curve" / "along.zarr", "loss and accuracy along the curve"),
    ]

    # the plane through the curve's control points: the low-loss tunnel
    t0 = time.perf_counter()
    d1, d2 = curve.plane(net_a)
    controls = np.asarray(d1.meta["controls"])
    lo, hi = controls.min(axis=0), controls.max(axis=0)
    pad = 0.25 * (hi - lo)
    plane = lnn.plane(
        net_a,
        loss_fn,
        data,
        (d1, d2),
        span=[(lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1])],
        steps=STEPS,
        store=folder / "curve_plane.zarr",
        progress=False,
    )
    disp = CurvePlaneDisplay.from_curve(plane, curve, (d1, d2))
    written += [
        (_save(disp.figure_, folder / "curve_plane.png"), "plane through the curve"),
        (folder / "curve_plane.zarr", "its surface store"),
    ]
    print(f"   plane through the curve in {time.perf_counter() - t0:.1f} s")

    # maps of both runs' checkpoints, coloured by their loss
    t0 = time.perf_counter()
    runs = {f"seed {SEEDS[0]}": rec_a, f"seed {SEEDS[1]}": rec_b}
    tsne = lnn.embed(
        runs, "tsne", model=net_a, loss_fn=loss_fn, data=data, metrics="accuracy"
    )
    pca = dataclasses.replace(lnn.embed(runs, "pca"), loss=tsne.loss)
    for method, emb in (("tsne", tsne), ("pca", pca)):
        disp = EmbeddingDisplay.from_embedding(emb)
        written.append(
            (_save(disp.figure_, folder / f"{method}_map.png"), f"{method} map")
        )
    print(
        f"   checkpoint maps ({len(rec_a) + len(rec_b)} checkpoints) in "
        f"{time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    return written
