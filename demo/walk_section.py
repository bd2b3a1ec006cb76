"""Demo: walking the landscape (optimizers, critical points, basins, terms)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from lossmap import analysis, optim, toy
from lossmap.plot import (
    BasinDisplay,
    CriticalPointsDisplay,
    LandscapeDisplay,
    LossCurveDisplay,
    LRSweepDisplay,
    PathsDisplay,
    RaceAnimation,
)
from lossmap.toy import functions, terms


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _race(out: Path) -> list[tuple[Path, str]]:
    f = functions.get("rosenbrock")
    surface = f.surface(steps=201)
    opts = [
        optim.gd(1e-3),
        optim.momentum(1e-3, beta=0.9),
        optim.nesterov(1e-3, beta=0.9),
        optim.rmsprop(3e-3),
        optim.adam(0.02),
    ]
    runs = optim.race(f, opts, [-1.2, 1.0], steps=2000, tol=1e-6)
    fig = plt.figure(figsize=(13, 6.6), layout="constrained")
    fig.get_layout_engine().set(wspace=0.06)
    ax0, ax1 = fig.subplots(1, 2, width_ratios=[1.1, 1.0])
    PathsDisplay(
        surface, runs, minima=f.minima, title="Rosenbrock's valley: five optimizers"
    ).plot(ax0)
    LossCurveDisplay(runs, reference=0.0).plot(ax1)
    ax1.set_title("distance to the minimum value, per step")
    png = _save(fig, out / "race_rosenbrock.png")
    gif = out / "race_rosenbrock.gif"
    anim = RaceAnimation(surface, runs, frames=50, minima=f.minima, title=f.title)
    anim.save(gif, fps=12, dpi=70)
    plt.close(anim.figure_)
    return [
        (
            png,
            "race on Rosenbrock's curved valley: gd, momentum, nesterov, rmsprop, adam",
        ),
        (gif, "the same race, animated (GIF)"),
    ]


def _sweep(out: Path) -> list[tuple[Path, str]]:
    q = functions.get("quadratic", condition=10.0, angle=0.5)
    lrs = [0.02, 0.1, 0.18, 0.205]  # 2/λmax = 0.2: the last one diverges
    runs = optim.lr_sweep(q, "gd", [-1.8, 1.5], lrs, steps=150)
    disp = LRSweepDisplay(
        q.surface(steps=161),
        runs,
        reference=0.0,
        minima=q.minima,
        title="gradient descent on a bowl with κ = 10: 2/λmax = 0.2",
    ).plot()
    return [
        (
            _save(disp.figure_, out / "lr_sweep_quadratic.png"),
            "learning-rate sweep: converges below 2/λmax = 0.2, diverges above",
        )
    ]


def _himmelblau(out: Path) -> list[tuple[Path, str]]:
    f = functions.get("himmelblau")
    surface = f.surface(steps=201)
    pts = analysis.critical_points(f)
    disp = CriticalPointsDisplay(
        surface, pts, title="Himmelblau: 4 minima, 4 saddles, 1 maximum"
    ).plot()
    crit = _save(disp.figure_, out / "himmelblau_critical_points.png")
    fig = plt.figure(figsize=(14, 5.4), layout="constrained")
    axes = fig.subplots(1, 2)
    coarse = f.surface(steps=81)
    for ax, opt in zip(axes, [optim.gd(0.01), optim.momentum(0.002, beta=0.95)]):
        b = analysis.basins(f, opt, steps=1500, grid=101)
        BasinDisplay(b, surface=coarse).plot(ax)
    basins_png = _save(fig, out / "himmelblau_basins.png")
    return [
        (crit, "Himmelblau's stationary points by kind (Newton from a grid)"),
        (basins_png, "basins of attraction: gradient descent vs heavy-ball momentum"),
    ]


def _pinn(out: Path) -> list[tuple[Path, str]]:
    pinn = terms.physics_informed()
    surf = pinn.surface(steps=161)
    run = optim.run(pinn, optim.adam(0.05), [0.6, 0.2], steps=1500)
    fig = plt.figure(figsize=(15, 10), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    names = ["data", "residual", "boundary", "loss"]
    titles = [
        "data fit: samples of e^(−x)",
        "equation residual u' + u at 11 points (zero on w = −1 and on b = 0)",
        "boundary (u(0) − 1)²  (zero on b = 1)",
        "total = data + residual + boundary, with an Adam path",
    ]
    for ax, name, title in zip(axes[:3], names, titles):
        LandscapeDisplay(surf, field=name, minimum=(-1.0, 1.0), title=title).plot(ax)
    PathsDisplay(surf, run, minima=[(-1.0, 1.0)], title=titles[-1]).plot(axes[-1])
    fig.suptitle("physics-informed loss for u' + u = 0, u(0) = 1 with u = b·e^(w·x)")
    terms_png = _save(fig, out / "pinn_terms.png")

    fig = plt.figure(figsize=(13, 5.2), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, weights in zip(axes, [{"boundary": 1.0}, {"boundary": 30.0, "data": 0.0}]):
        variant = pinn.with_weights(**weights)
        LandscapeDisplay(
            variant.surface(steps=161),
            minimum=(-1.0, 1.0),
            title=f"weights {variant.weights}",
        ).plot(ax)
    weights_png = _save(fig, out / "pinn_weights.png")
    return [
        (terms_png, "physics-informed example: each term's surface and the total"),
        (weights_png, "reweighting the terms reshapes the landscape; (−1, 1) stays"),
    ]


def _regularisation(out: Path) -> list[tuple[Path, str]]:
    p = toy.problem("line", "noisy-line", "mse")
    lam = np.concatenate([[0.0], np.logspace(-3, 1.5, 40)])
    path = terms.regularisation_path(p, lam)
    fig = plt.figure(figsize=(13, 5.2), layout="constrained")
    ax0, ax1 = fig.subplots(1, 2)
    LandscapeDisplay(
        p.replace(l2=0.3).surface(steps=161), title="w·x + b · MSE + 0.3·(w² + b²)"
    ).plot(ax0)
    ax0.plot(*path.theta.T, "-o", color="#ff3b30", ms=3, lw=1.5, label="θ*(l2)")
    ax0.legend(fontsize=8)
    ax1.semilogx(lam[1:], path.norm[1:], color="#ff3b30", lw=2, label="‖θ*‖")
    ax1.semilogx(lam[1:], path.data_loss[1:], color="#0a84ff", lw=2, label="data MSE")
    ax1.set_xlabel("l2 strength")
    ax1.set_title("the minimum shrinks toward 0 as l2 grows")
    ax1.grid(alpha=0.3)
    ax1.legend()
    return [
        (
            _save(fig, out / "l2_path.png"),
            "L2 regularisation: the minimiser moves to the origin as strength grows",
        )
    ]


def run(out: Path) -> list[tuple[Path, str]]:
    """Write the walk figures into ``out/walk``."""
    folder = Path(out) / "walk"
    folder.mkdir(parents=True, exist_ok=True)
    files: list[tuple[Path, str]] = []
    for part in (_race, _sweep, _himmelblau, _pinn, _regularisation):
        files += part(folder)
    return files
