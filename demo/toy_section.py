"""Demo section: exact 2-parameter landscapes, every loss, fits and minima.

``run(out)`` writes its figures into ``out/toy/`` and returns them with one
line of description each. :func:`hero_figure` also makes the README figure
(``docs/images/landscape_and_fit.png``).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from lossmap import Surface, toy
from lossmap.plot import (
    FitDisplay,
    LandscapeDisplay,
    SliceDisplay,
    Surface3DDisplay,
    landscape_and_fit,
)

REPO = Path(__file__).resolve().parent.parent
HERO = REPO / "docs" / "images" / "landscape_and_fit.png"

#: Rows of the loss grid: (model, data preset).
GRID_ROWS = (
    ("tanh", "two-points"),
    ("line", "noisy-line"),
    ("line", "line-with-outliers"),
)
#: Columns: (loss, loss parameters). δ = 0.1 makes Huber's kink visible on data
#: whose residuals are all below 1 (with δ = 1 it would be MSE / 2 here).
GRID_LOSSES = (
    ("mse", {}),
    ("mae", {}),
    ("huber", {"delta": 0.1}),
    ("log_cosh", {}),
)
DPI = 110


def _save(fig: plt.Figure, path: Path, *, dpi: int = DPI) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def hero_figure(path: Path = HERO, *, dpi: int = 100) -> Path:
    """The README figure: one tanh neuron on noisy-line, MSE, at a point off θ*."""
    p = toy.problem("tanh", "noisy-line", "mse")
    disp = landscape_and_fit(p, 2.2, 0.45, steps=241, start=(-1.5, 1.0))
    return _save(disp.figure_, path, dpi=dpi)


def loss_grid(path: Path) -> Path:
    """Every regression loss (columns) on several presets (rows)."""
    fig, axes = plt.subplots(
        len(GRID_ROWS),
        len(GRID_LOSSES),
        figsize=(19, 4.3 * len(GRID_ROWS)),
        layout="constrained",
    )
    for row, (model, data) in zip(axes, GRID_ROWS):
        for ax, (loss, params) in zip(row, GRID_LOSSES):
            p = toy.problem(model, data, loss, **params)
            disp = LandscapeDisplay.from_problem(
                p, steps=151, ax=ax, legend=False, max_levels=6, marker_scale=0.7
            )
            label = p.loss_fn.label + (f" (δ={params['delta']:g})" if params else "")
            ax.set_title(f"{label} · {p.model.formula} · {data}", fontsize=10)
            m = disp.minimum
            ax.text(
                0.02, 0.03, f"θ* = ({m[0]:.3g}, {m[1]:.3g})",
                transform=ax.transAxes, fontsize=8, color="white",
                bbox={"facecolor": "black", "alpha": 0.45, "pad": 2, "lw": 0},
            )  # fmt: skip
    fig.suptitle(
        "Every regression loss on three data sets (log colour scale; red star: θ*)",
        fontsize=14,
    )
    return _save(fig, path, dpi=80)


def logistic_figure(path: Path) -> Path:
    """Logistic regression + BCE: overlapping classes (a minimum) vs separable."""
    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5), layout="constrained")
    over = toy.problem("logistic", "binary-overlapping", "bce")
    sep = toy.problem("logistic", "binary-separable", "bce")
    LandscapeDisplay.from_problem(over, steps=161, ax=axes[0, 0])
    m = over.minimum()
    FitDisplay.from_problem(over, m.w, m.b, ax=axes[1, 0])
    LandscapeDisplay.from_problem(sep, steps=161, ax=axes[0, 1], current=(10.0, 0.0))
    FitDisplay.from_problem(
        sep, fits={"w = 10, b = 0": (10.0, 0.0), "w = 2, b = 0": (2.0, 0.0)},
        ax=axes[1, 1],
    )  # fmt: skip
    axes[1, 1].set_title(
        f"separable: a steeper sigmoid always fits better\n"
        f"L(2, 0) = {float(sep.loss(2.0, 0.0)):.3g} > "
        f"L(10, 0) = {float(sep.loss(10.0, 0.0)):.3g} > … → 0",
        fontsize=10,
    )
    fig.suptitle("Logistic regression with binary cross-entropy", fontsize=14)
    return _save(fig, path)


def valley_figure(path: Path) -> Path:
    """The long shallow valley of y = 0.5·x on x in [0, 0.6], with two slices.

    The slices run through θ* along the Hessian's eigenvectors: the valley
    floor (smallest curvature) and straight across it.
    """
    p = toy.problem("line", "sloped-line-through-origin", "mse")
    m = p.minimum()
    eig, vec = np.linalg.eigh(p.hessian(m.w, m.b))
    fig, (ax_l, ax_s) = plt.subplots(
        1, 2, figsize=(14, 5.2), layout="constrained",
        gridspec_kw={"width_ratios": [1.25, 1.0]},
    )  # fmt: skip
    LandscapeDisplay(p.surface(steps=241), minimum=m, title=p.title).plot(ax_l)
    t = np.linspace(-3.0, 3.0, 301)
    names = ("along the valley floor", "across the valley")
    for k, (name, colour) in enumerate(zip(names, ("#ff9f1c", "#e377c2"))):
        v = vec[:, k] * np.sign(vec[0, k] or 1.0)
        w, b = m.w + t * v[0], m.b + t * v[1]
        ax_l.plot(w, b, color=colour, lw=1.5, ls="--")
        line = Surface(
            axes={"t": t},
            fields={"loss": p.loss(w, b)},
            metadata={"title": "slices through θ*"},
        )
        label = f"{name}: curvature {eig[k]:.3g}"
        SliceDisplay(line, label=label).plot(ax_s, color=colour, lw=2.2)
    ax_s.set_xlabel("distance t from θ* along the direction")
    ax_s.set_title(
        f"Hessian eigenvalues at θ*: {eig[0]:.3g} and {eig[1]:.3g} "
        f"(condition number {eig[1] / eig[0]:.0f})",
        fontsize=10,
    )
    ax_s.set_ylim(0, None)
    ax_s.grid(alpha=0.3)
    fig.suptitle(
        "A long, shallow valley: x in [0, 0.6] barely pins the slope", fontsize=13
    )
    return _save(fig, path)


def outliers_figure(path: Path) -> Path:
    """Fits at the minima of MSE, MAE and Huber on line-with-outliers."""
    problems = {
        "MSE": toy.problem("line", "line-with-outliers", "mse"),
        "MAE": toy.problem("line", "line-with-outliers", "mae"),
        "Huber (δ=0.1)": toy.problem("line", "line-with-outliers", "huber", delta=0.1),
    }
    fig, ax = plt.subplots(figsize=(8.5, 5.5), layout="constrained")
    disp = FitDisplay.from_minima(problems, ax=ax)
    slopes = ", ".join(f"{c.label}: w = {c.w:.2f}" for c in disp.curves)
    ax.set_title(
        "Three outliers pull the MSE fit down; MAE ignores them, Huber nearly so\n"
        + slopes,
        fontsize=10,
    )
    return _save(fig, path)


def surface3d_figure(path: Path) -> Path:
    """The tanh neuron on noisy-line as a 3-D surface (log10 of the loss)."""
    p = toy.problem("tanh", "noisy-line", "mse")
    disp = Surface3DDisplay.from_problem(p, steps=121, start=(-1.5, 1.0))
    disp.figure_.set_size_inches(8, 6.5)
    return _save(disp.figure_, path)


def run(out: Path) -> list[tuple[Path, str]]:
    """Write the toy figures into ``out/toy/``; return (path, description) pairs."""
    folder = Path(out) / "toy"
    return [
        (loss_grid(folder / "losses_by_preset.png"),
         "MSE, MAE, Huber and log-cosh landscapes on three data sets"),
        (logistic_figure(folder / "logistic_bce.png"),
         "logistic + BCE: overlapping classes (minimum) vs separable (none)"),
        (valley_figure(folder / "long_valley.png"),
         "the long shallow valley of sloped-line-through-origin, with slices"),
        (hero_figure(folder / "landscape_and_fit.png"),
         "landscape and fit side by side: tanh neuron, noisy-line, MSE"),
        (outliers_figure(folder / "outliers_fits.png"),
         "fits at the minima of MSE, MAE and Huber on line-with-outliers"),
        (surface3d_figure(folder / "surface_3d.png"),
         "3-D surface of log10 MSE for a tanh neuron on noisy-line"),
    ]  # fmt: skip


if __name__ == "__main__":
    print(hero_figure())
