"""CLI command: ``lossmap widget --out lesson.html`` (a lesson page, no server)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def register(app: Any) -> None:
    """Add this module's command to the typer app."""

    @app.command("widget")
    def widget(
        out: Annotated[
            Path, typer.Option(help="The HTML file to write (one file, no server).")
        ] = Path("lesson.html"),
        model: Annotated[str, typer.Option(help="line, tanh or logistic.")] = "line",
        data: Annotated[
            str | None,
            typer.Option(
                help="A data preset (default two-points; binary-overlapping "
                "for the logistic model)."
            ),
        ] = None,
        loss: Annotated[
            list[str] | None,
            typer.Option(
                help="Losses to switch between (repeat; default mse, mae, huber; "
                "bce, mse on binary data)."
            ),
        ] = None,
        optimizer: Annotated[
            list[str] | None,
            typer.Option(
                help="Optimizers to replay (repeat; default gd, momentum, adam)."
            ),
        ] = None,
        steps: Annotated[int, typer.Option(help="Steps of each optimizer.")] = 100,
        grid: Annotated[int, typer.Option(help="Grid points per axis.")] = 101,
        delta: Annotated[float, typer.Option(help="Huber's δ.")] = 0.5,
        title: Annotated[str | None, typer.Option(help="The page's heading.")] = None,
    ) -> None:
        """Write a self-contained lesson page: click the landscape to fit,
        switch losses, replay optimizers; plotly.js inlined, opens from file://."""
        from lossmap.explorer.widget import write_widget

        binary = model == "logistic"  # as in the explorer: logistic, binary data
        if data is None:
            data = "binary-overlapping" if binary else "two-points"
        losses = loss or (["bce", "mse"] if binary else ["mse", "mae", "huber"])
        path = write_widget(
            out,
            model=model,
            data=data,
            losses=losses,
            optimizers=optimizer or ["gd", "momentum", "adam"],
            steps=steps,
            grid=grid,
            delta=delta,
            title=title,
        )
        size = path.stat().st_size
        typer.echo(f"wrote {path} ({size / 1e6:.1f} MB, self-contained)")
