"""CLI commands: ``lossmap report`` (one HTML page) and ``lossmap import``.

``lossmap report plane.zarr pca.zarr hessian.json --out report.html`` writes
one self-contained page of every result (see :mod:`lossmap.plot._report`);
``lossmap import surface.h5 surface.zarr`` converts a file written by Li et
al.'s reference code (or an ``.npz`` of named arrays) into a lossmap store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

#: JSON results ``lossmap report`` shows, by their ``kind``.
JSON_KINDS = ("nn.hessian", "nn.embedding")


def read_result(path: Path) -> Any:
    """A surface store (``*.zarr``) or a ``lossmap hessian --out`` result (.json)."""
    from lossmap import io

    if not path.exists():
        raise FileNotFoundError(
            f"`STORE` must be a surface store or a Hessian .json, got missing {path}"
        )
    if path.suffix == ".json":
        try:
            result = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"`STORE` {path.name} is not valid JSON ({exc})") from None
        if not isinstance(result, dict) or result.get("kind") not in JSON_KINDS:
            raise ValueError(
                f"`STORE` {path.name} must be written by lossmap hessian --out or "
                f"lossmap embed, got JSON without kind {' or '.join(JSON_KINDS)}"
            )
        return result
    return io.load(path, allow_incomplete=True)


def report(
    stores: Annotated[
        list[Path],
        typer.Argument(
            help="Surface stores (*.zarr), Hessian and embedding results (*.json)."
        ),
    ],
    out: Annotated[Path, typer.Option(help="The page to write (.html).")] = Path(
        "report.html"
    ),
    title: Annotated[str, typer.Option(help="Title of the page.")] = "lossmap report",
) -> None:
    """Write one self-contained HTML page of every surface, path and spectrum."""
    from lossmap.plot._report import report_html

    if out.suffix.lower() != ".html":
        raise ValueError(f"`--out` must end in .html, got {out.name!r}")
    results = [(str(p), read_result(p)) for p in stores]
    page = report_html(results, title=title)
    out.write_text(page, encoding="utf-8")
    typer.echo(f"wrote {out} ({len(results)} result(s), {len(page) // 1024} KiB)")


def import_(
    source: Annotated[
        Path, typer.Argument(help="A .h5 (Li et al. 2018) or .npz file.")
    ],
    out: Annotated[Path, typer.Argument(help="The store to write (*.zarr).")],
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing store at OUT.")
    ] = False,
) -> None:
    """Convert a surface file of Li et al.'s reference code (.h5) or an .npz."""
    from lossmap import io
    from lossmap.io.importers import import_file

    surface = import_file(source)
    io.save(surface, out, overwrite=overwrite)
    kind = "plane" if surface.ndim == 2 else "line"
    typer.echo(
        f"wrote {out}: a {kind} of {' × '.join(map(str, surface.shape))} points, "
        f"fields {', '.join(surface.field_names)}"
    )


def register(app: Any) -> None:
    """Add ``report`` and ``import`` to the typer ``app``."""
    app.command("report")(report)
    app.command("import")(import_)
