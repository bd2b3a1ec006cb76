"""CLI commands: ``lossmap race`` and ``lossmap critical`` (see lossmap.cli).

``lossmap race --function rosenbrock --optimizers sgd,momentum,adam --lr 1e-3
--steps 500 --out race.gif`` runs the optimizers from one start and writes an
animation (``.gif``) or a still figure (``.png``/``.pdf``/``.svg``) of paths and
loss curves; ``lossmap critical --function himmelblau`` lists every stationary
point by kind (``--out`` draws them). Both take a toy problem instead:
``--model tanh --data noisy-line --loss mse``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

STILL = (".png", ".pdf", ".svg")

#: A start that shows something interesting on each test function.
DEFAULT_STARTS = {
    "quadratic": (-1.8, 1.5),
    "rosenbrock": (-1.2, 1.0),
    "himmelblau": (-0.5, -0.5),
    "beale": (1.0, 1.6),
    "booth": (-8.0, 8.0),
    "saddle": (-1.8, 0.05),
    "monkey-saddle": (1.2, 0.1),
    "rastrigin": (4.3, 3.7),
    "ackley": (3.3, 2.6),
    "six-hump-camel": (-1.5, 0.9),
}

FunctionOpt = Annotated[
    str | None,
    typer.Option(help="Test function, e.g. rosenbrock, himmelblau, six-hump-camel."),
]
ModelOpt = Annotated[
    str | None, typer.Option(help="Toy model (line, tanh, logistic) instead.")
]
DataOpt = Annotated[str, typer.Option(help="Data preset for --model.")]
LossOpt = Annotated[str, typer.Option(help="Loss for --model.")]


def _landscape(function: str | None, model: str | None, data: str, loss: str) -> Any:
    from lossmap import toy
    from lossmap.toy import functions

    if function is not None and model is not None:
        raise ValueError("give either `--function` or `--model`, not both")
    if model is not None:
        return toy.problem(model, data, loss)
    return functions.get(function or "rosenbrock")


def default_start(landscape: Any) -> tuple[float, float]:
    """A start for ``landscape``: a documented one, or 20% in from a corner."""
    name = getattr(landscape, "name", None)
    if name in DEFAULT_STARTS:
        return DEFAULT_STARTS[name]
    (lo0, hi0), (lo1, hi1) = landscape.region
    return (lo0 + 0.2 * (hi0 - lo0), hi1 - 0.2 * (hi1 - lo1))


def race(
    function: FunctionOpt = None,
    model: ModelOpt = None,
    data: DataOpt = "noisy-line",
    loss: LossOpt = "mse",
    optimizers: Annotated[
        str, typer.Option(help="Comma-separated optimizer names.")
    ] = "sgd,momentum,adam",
    lr: Annotated[
        float | None, typer.Option(help="Learning rate for all (default: each's).")
    ] = None,
    steps: Annotated[int, typer.Option(help="Steps per optimizer.")] = 500,
    start: Annotated[
        tuple[float, float] | None, typer.Option(metavar="X Y", help="Start point.")
    ] = None,
    out: Annotated[
        Path, typer.Option(help="race.gif (animation) or .png/.pdf/.svg (still).")
    ] = Path("race.gif"),
    frames: Annotated[int, typer.Option(help="Frames of the animation.")] = 60,
    fps: Annotated[int, typer.Option(help="Frames per second of the GIF.")] = 15,
) -> None:
    """Race optimizers from one start over a landscape; write the picture."""
    from lossmap import optim
    from lossmap._validation import check_int

    suffix = out.suffix.lower()
    if suffix not in (".gif", *STILL):
        raise ValueError(
            f"`--out` must end in .gif or one of {list(STILL)}, got {out.name!r}"
        )
    check_int("--steps", steps, minimum=1, maximum=1_000_000)
    land = _landscape(function, model, data, loss)
    names = [n.strip() for n in optimizers.split(",") if n.strip()]
    if not names:
        raise ValueError(f"`--optimizers` must name at least one, got {optimizers!r}")
    opts = [optim.get(n) if lr is None else optim.get(n, lr=lr) for n in names]
    theta0 = default_start(land) if start is None else start
    runs = optim.race(land, opts, theta0, steps=steps)
    typer.echo(f"{land.title} from ({theta0[0]:g}, {theta0[1]:g}), {steps} steps")
    for t in runs:
        end = t.last_finite
        typer.echo(
            f"  {t.label:<28} {t.status:<10} step {t.stopped_at:>6}  "
            f"end ({end[0]: .4g}, {end[1]: .4g})  loss {t.loss[t.stopped_at]:.4g}"
        )
    _draw_race(land, runs, out, frames=frames, fps=fps)
    typer.echo(f"wrote {out}")


def _draw_race(land: Any, runs: list[Any], out: Path, *, frames: int, fps: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lossmap.plot import LossCurveDisplay, PathsDisplay, RaceAnimation

    surface = land.surface(steps=161)
    minima = _minima(land)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".gif":
        anim = RaceAnimation(
            surface, runs, frames=frames, minima=minima, title=land.title
        )
        anim.save(out, fps=fps)
        plt.close(anim.figure_)
        return
    fig = plt.figure(figsize=(13, 6.4), layout="constrained")
    ax0, ax1 = fig.subplots(1, 2, width_ratios=[1.1, 1.0])
    PathsDisplay(surface, runs, minima=minima, title=land.title).plot(ax0)
    ref = getattr(land, "min_value", None)
    LossCurveDisplay(runs, reference=ref).plot(ax1)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def _minima(land: Any) -> list[Any]:
    if getattr(land, "minima", None):
        return list(land.minima)
    if hasattr(land, "minimum"):
        try:
            m = land.minimum()
        except ValueError:
            return []
        return [(m.w, m.b)]
    return []


def critical(
    function: FunctionOpt = None,
    model: ModelOpt = None,
    data: DataOpt = "noisy-line",
    loss: LossOpt = "mse",
    starts: Annotated[int, typer.Option(help="Newton starts per axis.")] = 24,
    out: Annotated[
        Path | None, typer.Option(help="Also draw them (.png/.pdf/.svg).")
    ] = None,
    convex: Annotated[
        bool, typer.Option("--convexity", help="Also test convexity.")
    ] = False,
) -> None:
    """List the stationary points of a landscape by kind."""
    from lossmap import analysis

    if out is not None and out.suffix.lower() not in STILL:
        raise ValueError(f"`--out` must end in one of {list(STILL)}, got {out.name!r}")
    land = _landscape(function, model, data, loss)
    points = analysis.critical_points(land, starts=starts)
    counts: dict[str, int] = {}
    for p in points:
        counts[p.kind] = counts.get(p.kind, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in counts.items()) or (
        "none (Newton's method looks for a zero gradient; a loss with kinks, "
        "such as mae, has its minimum where the gradient jumps: `lossmap toy` "
        "reports θ*)"
    )
    typer.echo(
        f"{land.title}: {len(points)} stationary point(s) found from a "
        f"{starts}×{starts} grid of starts (more starts may find more): {summary}"
    )
    n0, n1 = land.param_names
    for p in points:
        flag = " (global)" if p.is_global else ""
        lam = ", ".join(f"{v:.4g}" for v in p.eigenvalues)
        typer.echo(
            f"  {p.kind + flag:<18} {n0} = {p.theta[0]: .6f}  {n1} = {p.theta[1]: .6f}"
            f"  value {p.value:.6g}  eigenvalues ({lam})"
        )
    if convex:
        c = analysis.convexity(land)
        verdict = "convex" if c.convex else "not convex"
        typer.echo(
            f"convexity: {verdict}; Hessian PSD at {100 * c.psd_fraction:.1f}% of "
            f"the grid; {c.chord_violations}/{c.chord_pairs} chords violated"
        )
    if out is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from lossmap.plot import CriticalPointsDisplay

        disp = CriticalPointsDisplay(land.surface(steps=201), points, title=land.title)
        disp.plot()
        out.parent.mkdir(parents=True, exist_ok=True)
        disp.figure_.savefig(out, dpi=120)
        plt.close(disp.figure_)
        typer.echo(f"wrote {out}")


def register(app: Any) -> None:
    """Add this module's commands to the typer app."""
    app.command("race")(race)
    app.command("critical")(critical)
