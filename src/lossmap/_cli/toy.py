"""CLI commands: ``lossmap toy`` and ``lossmap presets`` (see lossmap.cli).

``lossmap toy --model tanh --data two-points --loss huber --out landscape.png``
draws the exact landscape of a 2-parameter problem beside the fit at one point
(θ* unless ``--at W B``), or the 3-D surface with ``--3d``, and prints θ* and
L(θ*). ``lossmap presets`` lists the models, data presets and losses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

#: Image formats the figure can be written as.
FORMATS = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def _range(name: str, value: tuple[float, float] | None, default: Any) -> Any:
    from lossmap._validation import check_range

    return default if value is None else check_range(name, value)


def toy(
    model: Annotated[str, typer.Option(help="Model: line, tanh or logistic.")] = "tanh",
    data: Annotated[
        str, typer.Option(help="Data preset (see `lossmap presets`).")
    ] = "two-points",
    loss: Annotated[
        str, typer.Option(help="Loss: mse, mae, huber, log_cosh, bce, ...")
    ] = "mse",
    out: Annotated[
        Path, typer.Option(help="Image to write (.png, .pdf, .svg, .jpg).")
    ] = Path("landscape.png"),
    at: Annotated[
        tuple[float, float] | None,
        typer.Option(metavar="W B", help="Current point (w, b); default θ*."),
    ] = None,
    three_d: Annotated[
        bool, typer.Option("--3d", help="Draw the landscape as a 3-D surface.")
    ] = False,
    delta: Annotated[
        float | None, typer.Option(help="Huber's δ (huber loss only).")
    ] = None,
    l2: Annotated[float, typer.Option(help="L2 penalty l2·(w² + b²).")] = 0.0,
    steps: Annotated[int, typer.Option(help="Grid points per axis.")] = 201,
    w_range: Annotated[
        tuple[float, float] | None,
        typer.Option(metavar="LO HI", help="Range of w (default: the preset's)."),
    ] = None,
    b_range: Annotated[
        tuple[float, float] | None,
        typer.Option(metavar="LO HI", help="Range of b (default: the preset's)."),
    ] = None,
    dpi: Annotated[int, typer.Option(help="Resolution of raster images.")] = 150,
) -> None:
    """Draw the exact loss landscape of a 2-parameter problem and its fit."""
    from lossmap import toy as toy_mod
    from lossmap._validation import check_int

    if out.suffix.lower() not in FORMATS:
        raise ValueError(
            f"`--out` must end in one of {list(FORMATS)}, got {out.name!r}"
        )
    check_int("--steps", steps, minimum=2, maximum=2001)
    check_int("--dpi", dpi, minimum=10, maximum=1200)
    params = {} if delta is None else {"delta": delta}
    problem = toy_mod.problem(model, data, loss, l2=l2, **params)
    (w0, w1), (b0, b1) = problem.region
    region = (
        _range("--w-range", w_range, (w0, w1)),
        _range("--b-range", b_range, (b0, b1)),
    )
    try:
        minimum = problem.minimum()
    except ValueError as exc:
        minimum = None
        typer.echo(f"θ*: none. {exc}")
    else:
        typer.echo(f"θ* = (w, b) = ({minimum.w:.6g}, {minimum.b:.6g})")
        typer.echo(f"L(θ*) = {minimum.loss:.6g}   [{problem.title}]")

    import matplotlib

    matplotlib.use("Agg")
    from lossmap import plot

    if at is not None and not all(
        lo <= v <= hi for v, (lo, hi) in zip(at, region, strict=True)
    ):
        typer.echo(
            f"warning: --at ({at[0]:.4g}, {at[1]:.4g}) lies outside the view "
            f"w ∈ [{region[0][0]:.4g}, {region[0][1]:.4g}], "
            f"b ∈ [{region[1][0]:.4g}, {region[1][1]:.4g}]: no marker is drawn "
            "(widen it with --w-range / --b-range)",
            err=True,
        )
    if at is None and minimum is None:
        best = problem.surface(region, steps=steps).argmin()
        at = (best.coords["w"], best.coords["b"])
        typer.echo(
            f"showing the fit at the lowest grid point ({at[0]:.4g}, {at[1]:.4g})"
        )
    if three_d:
        disp = plot.Surface3DDisplay.from_problem(
            problem, steps=min(steps, 151), region=region, current=at
        )
    else:
        w, b = at if at is not None else (None, None)
        disp = plot.landscape_and_fit(problem, w, b, steps=steps, region=region)
        if at is not None:
            typer.echo(f"L({at[0]:.6g}, {at[1]:.6g}) = {disp.loss:.6g}")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        disp.figure_.savefig(out, dpi=dpi)
    finally:
        matplotlib.pyplot.close(disp.figure_)
    typer.echo(f"wrote {out}")


def presets() -> None:
    """List the models, data presets and losses of `lossmap toy`."""
    from lossmap import losses
    from lossmap.toy import MODELS, PRESETS

    typer.echo("models:")
    for name, m in MODELS.items():
        typer.echo(f"  {name:<28} {m.formula}")
    typer.echo("\ndata presets:")
    for name, make in PRESETS.items():
        d = make()
        typer.echo(f"  {name:<28} [{d.task}, {len(d)} points] {d.description}")
    typer.echo("\nlosses:")
    for name in losses.available():
        loss = losses.get(name)
        extra = ", ".join(f"{k}={v}" for k, v in loss.params.items())
        typer.echo(
            f"  {name:<28} {loss.label} ({loss.task})" + (f"; {extra}" if extra else "")
        )


def register(app: Any) -> None:
    """Add this module's commands to the typer app."""
    app.command("toy")(toy)
    app.command("presets")(presets)
