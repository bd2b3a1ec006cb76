"""Demo section: slices of a real network trained on the digits data.

``run(out)`` trains a small MLP (64-32-10) on scikit-learn's bundled 8×8
digits (no download) while a :class:`lossmap.nn.Recorder` keeps snapshots,
then computes and draws

* the 1-D interpolation from the initial to the final weights (loss and
  accuracy),
* a filter-normalised random plane around the final weights (loss and
  accuracy heatmaps, a 3-D view, a VTK file for ParaView),
* the spread of the loss along ten random directions,
* the PCA plane of the training path with the path projected onto it and how
  faithful that projection is.

Every computed surface is saved as a zarr store in ``out/nn/`` beside the
figures; the trajectory's snapshots are recorded straight into a store.
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
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import lossmap.nn as lnn
from demo._digits import train_recorded
from lossmap import io
from lossmap.plot import (
    LineDisplay,
    PlaneDisplay,
    RandomLinesDisplay,
    Surface3DDisplay,
    TrajectoryDisplay,
)

DPI = 110
SEED = 0
STEPS = 41  # grid points per plane axis
EPOCHS = 8
RECORD_EVERY = 3


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _model() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)
    )


def _data() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]]:
    x, y = load_digits(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(
        x / 16.0, y, test_size=0.2, random_state=SEED, stratify=y
    )
    f = torch.float32
    return (
        (torch.tensor(xtr, dtype=f), torch.tensor(ytr)),
        (torch.tensor(xte, dtype=f), torch.tensor(yte)),
    )


def train(
    net: torch.nn.Module, data: tuple[torch.Tensor, torch.Tensor], store: Path
) -> lnn.Recording:
    """Plain mini-batch SGD with momentum; the Recorder sits in the loop."""
    from rich.progress import Progress

    batches = (len(data[0]) + 63) // 64
    rec = lnn.Recorder(net, every=RECORD_EVERY, store=store)
    with Progress(transient=False) as bar:
        task = bar.add_task("training the MLP", total=EPOCHS * batches)
        return train_recorded(
            net,
            data,
            rec,
            epochs=EPOCHS,
            seed=SEED,
            on_step=lambda: bar.advance(task),
        )


def run(out: Path) -> list[tuple[Path, str]]:
    """Train, compute every slice, save stores and figures under ``out/nn``."""
    folder = Path(out) / "nn"
    if folder.exists():
        shutil.rmtree(folder)  # a fresh run: stores refuse other settings
    folder.mkdir(parents=True)
    torch.manual_seed(SEED)
    train_data, test_data = _data()
    net = _model()
    initial = _model()
    initial.load_state_dict(net.state_dict())
    loss_fn = torch.nn.functional.cross_entropy
    written: list[tuple[Path, str]] = []
    t0 = time.perf_counter()

    recording = train(net, train_data, folder / "trajectory.zarr")
    acc = lnn.evaluate_params(net, loss_fn, test_data, metrics="accuracy")
    print(
        f"   trained in {time.perf_counter() - t0:.1f} s: {len(recording)} "
        f"snapshots, test accuracy {acc['accuracy']:.3f}",
        flush=True,
    )
    written.append(
        (folder / "trajectory.zarr", f"{len(recording)} parameter snapshots (zarr)")
    )

    # 1-D: from the initial to the final weights
    line = lnn.line(
        net,
        loss_fn,
        train_data,
        lnn.interpolation(initial, net),
        center=initial,
        span=(-0.25, 1.25),
        steps=61,
        metrics="accuracy",
        store=folder / "interpolation.zarr",
    )
    disp = LineDisplay.from_surface(line)
    disp.ax_.set_title(
        "Training loss from the initial (α=0) to the final (α=1) weights"
    )
    written += [
        (_save(disp.figure_, folder / "interpolation.png"), "1-D interpolation"),
        (folder / "interpolation.zarr", "its surface store"),
    ]

    # 2-D: a filter-normalised random plane around the final weights
    d1, d2 = lnn.random_plane(net, seed=SEED)
    plane = lnn.plane(
        net,
        loss_fn,
        train_data,
        (d1, d2),
        span=1.0,
        steps=STEPS,
        metrics="accuracy",
        store=folder / "random_plane.zarr",
    )
    disp = PlaneDisplay.from_surface(plane)
    written += [
        (_save(disp.figure_, folder / "random_plane.png"), "random plane: loss, acc"),
        (folder / "random_plane.zarr", "its surface store"),
    ]
    disp3 = Surface3DDisplay.from_surface(plane, title="Random plane, 3-D view")
    written.append((_save(disp3.figure_, folder / "random_plane_3d.png"), "3-D view"))
    io.to_vtk(plane, folder / "random_plane.vtk")
    written.append((folder / "random_plane.vtk", "the plane for ParaView (VTK)"))

    # how much one random picture depends on its seed
    lines = lnn.random_lines(
        net, loss_fn, train_data, count=10, seed=SEED + 1, steps=41, progress=False
    )
    disp = RandomLinesDisplay.from_surface(lines)
    written.append(
        (_save(disp.figure_, folder / "random_lines.png"), "10 random lines: spread")
    )

    # the PCA plane of the training path, with the path projected onto it
    p1, p2, ratio = lnn.pca_directions(recording)
    pca = lnn.plane(
        net,
        loss_fn,
        train_data,
        (p1, p2),
        span="auto",
        steps=STEPS,
        metrics="accuracy",
        store=folder / "pca_plane.zarr",
    )
    proj = lnn.project(
        recording,
        (p1, p2),
        surface=pca,
        model=net,
        loss_fn=loss_fn,
        data=train_data,
    )
    disp = TrajectoryDisplay.from_projection(pca, proj)
    disp.ax_.set_title(
        f"Training path on its PCA plane ({100 * ratio.sum():.1f} % of its variance)"
    )
    with_path = pca.with_metadata(
        trajectory={"steps": proj.steps.tolist(), "coords": proj.coords.tolist()}
    )
    io.save(with_path, folder / "pca_path.zarr")
    written += [
        (_save(disp.figure_, folder / "pca_path.png"), "path over the PCA plane"),
        (folder / "pca_plane.zarr", "its surface store"),
        (folder / "pca_path.zarr", "the plane with the projected path (explorer)"),
    ]
    gap = np.nanmax(np.abs(proj.loss_gap))
    print(
        f"   PCA plane holds {100 * ratio.sum():.1f} % of the path's variance; "
        f"largest |surface - true| loss along it {gap:.3g}",
        flush=True,
    )
    written += _curvature(net, loss_fn, train_data, folder)
    return written


def _curvature(
    net: torch.nn.Module,
    loss_fn: object,
    data: tuple[torch.Tensor, torch.Tensor],
    folder: Path,
) -> list[tuple[Path, str]]:
    """Hessian spectrum at the trained weights (float64 copy of the model)."""
    import copy

    from lossmap.nn import hessian
    from lossmap.plot import SpectrumDisplay

    t0 = time.perf_counter()
    net64 = copy.deepcopy(net).double()
    op = hessian.HessianOperator(net64, loss_fn, (data[0].double(), data[1]))
    top = hessian.top_eigenvalues(op, 5, iterations=60)
    low = hessian.top_eigenvalues(op, 1, which="smallest", iterations=60)
    trace = hessian.hessian_trace(op, probes=60, seed=SEED)
    density = hessian.spectral_density(op, iterations=60, probes=3, seed=SEED)
    disp = SpectrumDisplay(density, top=top, trace=trace).plot(
        title=f"Hessian spectrum at the trained weights ({op.dim} parameters)"
    )
    print(
        f"   Hessian: top eigenvalues {np.round(top.values, 3).tolist()}, "
        f"smallest {low.values[0]:.3g}, trace {trace.value:.4g} ± "
        f"{trace.stderr:.2g} ({op.products} products, "
        f"{time.perf_counter() - t0:.1f} s)",
        flush=True,
    )
    return [(_save(disp.figure_, folder / "hessian_spectrum.png"), "Hessian spectrum")]


if __name__ == "__main__":
    for path, what in run(Path("out/demo")):
        print(path, "-", what)
