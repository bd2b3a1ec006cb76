"""CLI commands for saved surfaces (``lossmap info``, ``show``, ``vtk``).

Surfaces computed by :mod:`lossmap.nn` (or saved with :func:`lossmap.io.save`)
are zarr stores. These commands read one and describe it in plain words, draw
it, or export it for ParaView.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

FORMATS = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def _load(store: Path) -> Any:
    from lossmap import io

    if not store.exists():
        raise FileNotFoundError(f"`STORE` must be a saved surface, got missing {store}")
    try:  # a damaged store raises io.ChunkError, a ValueError naming the chunk
        return io.load(store, allow_incomplete=True)
    except OSError as exc:
        raise ValueError(
            f"`STORE` must be a readable surface store, got {store} ({exc})"
        ) from None


def info(
    store: Annotated[Path, typer.Argument(help="A surface store (*.zarr).")],
) -> None:
    """Describe a saved surface: grid, fields, lowest loss, how it was made."""
    import numpy as np

    from lossmap.describe import describe_metadata
    from lossmap.io import GridStore

    surface = _load(store)
    counts = GridStore.attach(store).point_counts(surface.loss)
    if counts["not_computed"] == counts["points"]:
        typer.echo(
            f"{store}: no point computed yet ({counts['points']} grid points to "
            f"compute; run the computation with this store to fill it)."
        )
        return
    if np.isfinite(surface.loss).any():
        for line in describe_metadata(surface):
            typer.echo(line)
        _recompute(surface.metadata)
    else:
        typer.echo(f"{store}: no computed grid point has a finite loss.")
    if counts["nonfinite"]:
        typer.echo(
            f"{counts['nonfinite']} computed grid point(s) gave a non-finite loss "
            f"(NaN or inf, kept as computed)."
        )
    if counts["not_computed"]:
        typer.echo(
            f"{counts['not_computed']} grid point(s) not computed yet (an "
            f"interrupted run: rerun it with the same store to finish)."
        )


def _recompute(meta: dict[str, Any]) -> None:
    """Print how to recompute a surface the CLI made (issue 9)."""
    import shlex

    command = meta.get("_command")
    if isinstance(command, list):
        typer.echo(f"Recompute with: {shlex.join(str(w) for w in command)}")
    if meta.get("_experiment"):
        typer.echo("It was run from an experiment file (lossmap run FILE.toml):")
        typer.echo(str(meta["_experiment"]).strip("\n"))


def show(
    store: Annotated[Path, typer.Argument(help="A surface store (*.zarr).")],
    out: Annotated[
        Path,
        typer.Option(help="Image (.png, .pdf, .svg, .jpg) or web page (.html)."),
    ] = Path("surface.png"),
    field: Annotated[
        list[str] | None, typer.Option(help="Field(s) to draw (default: all).")
    ] = None,
    three_d: Annotated[
        bool, typer.Option("--3d", help="Draw a plane as a 3-D surface.")
    ] = False,
    dpi: Annotated[int, typer.Option(help="Resolution of raster images.")] = 150,
) -> None:
    """Draw a saved plane (heatmaps) or line (curves) as an image."""
    from lossmap._validation import check_int
    from lossmap.plot import (
        LineDisplay,
        PlaneDisplay,
        Surface3DDisplay,
        require_matplotlib,
    )

    if out.suffix.lower() not in (*FORMATS, ".html"):
        raise ValueError(
            f"`--out` must end in one of {[*FORMATS, '.html']}, got {out.name!r}"
        )
    check_int("--dpi", dpi, minimum=10, maximum=1200)
    surface = _load(store)
    for name in field or []:
        surface.field(name)  # clear error for an unknown field
    if three_d and surface.ndim == 1:
        raise ValueError(
            f"`--3d` needs a plane (2 axes), got a line ({store.name}): draw it "
            "without --3d"
        )
    if out.suffix.lower() == ".html":
        _show_html(surface, store, out, field, three_d)
        return
    if three_d and field and len(field) > 1:
        raise ValueError(
            f"`--3d` draws one field into an image, got --field {field}; write "
            "--out FILE.html for several"
        )
    plt = require_matplotlib("lossmap show")
    if surface.ndim == 1:
        metric = next((f for f in field if f != "loss"), None) if field else "auto"
        disp = LineDisplay.from_surface(surface, metric=metric)
    elif three_d:
        first = field[0] if field else "loss"
        disp = Surface3DDisplay.from_surface(surface, field=first)
    else:
        disp = PlaneDisplay.from_surface(surface, fields=field or None)
    fig = disp.figure_
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    typer.echo(f"wrote {out}")


def _show_html(
    surface: Any, store: Path, out: Path, fields: list[str] | None, three_d: bool
) -> None:
    """The interactive (Plotly) figures of one store as a self-contained page."""
    from lossmap.plot._report import report_html

    page = report_html(
        [(str(store), surface)],
        title=f"lossmap: {store.name}",
        fields=fields,
        three_d=three_d,
    )
    out.write_text(page, encoding="utf-8")
    typer.echo(f"wrote {out}")


def vtk(
    store: Annotated[Path, typer.Argument(help="A surface store (*.zarr).")],
    out: Annotated[Path, typer.Argument(help="The .vtk file to write.")],
) -> None:
    """Export a saved plane as a legacy VTK structured grid (ParaView)."""
    from lossmap import io

    if out.suffix.lower() != ".vtk":
        raise ValueError(f"`OUT` must end in .vtk, got {out.name!r}")
    io.to_vtk(_load(store), out)
    typer.echo(f"wrote {out}")


def register(app: Any) -> None:
    """Add ``info``, ``show`` and ``vtk`` to the typer ``app``."""
    app.command("info")(info)
    app.command("show")(show)
    app.command("vtk")(vtk)
