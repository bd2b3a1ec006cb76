"""``lossmap verify STORE [--repair]``: check every chunk of a surface store.

Every written chunk is read and checked against its CRC-32C checksum and its
recorded SHA-256 digest (see :mod:`lossmap.io.store`); each damaged,
truncated or misplaced chunk is listed with its field. ``--repair`` removes
those chunks, so they count as missing, and recomputes them when the store
records the command that made it (metadata ``_command``, written by the
``lossmap`` command line; it is rerun from the current folder). Otherwise it
says what is needed: a store holds the recipe (directions' seeds,
fingerprints of the model and data), not the model and data themselves.

Exit codes: 0 when every written chunk is sound (or was repaired), 1 when
damaged chunks remain, 2 for a path that is not a store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def _command(metadata: dict[str, Any], store: Path) -> list[str] | None:
    """The recorded ``lossmap`` command, pointed at ``store``; None if absent.

    The command line records it as ``_command`` (underscore keys are not part
    of a store's settings); ``--overwrite`` is dropped, so the rerun resumes
    the store instead of starting it again.
    """
    cmd = metadata.get("_command", metadata.get("command"))
    if (
        not isinstance(cmd, list)
        or len(cmd) < 2
        or not all(isinstance(c, str) for c in cmd)
        or Path(cmd[0]).name != "lossmap"
        or "--store" not in cmd[:-1]
    ):
        return None
    argv = [w for w in cmd[1:] if w != "--overwrite"]
    argv[argv.index("--store") + 1] = str(store)
    return argv


def verify(
    store: Annotated[Path, typer.Argument(help="A surface store (*.zarr).")],
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Remove damaged chunks and recompute them from the recorded command.",
        ),
    ] = False,
) -> None:
    """Check every chunk of a store; list damaged or misplaced ones."""
    from lossmap.io import GridStore

    if not store.exists():
        raise FileNotFoundError(f"`STORE` must be a surface store, got missing {store}")
    gs = GridStore.attach(store)
    total = len(gs.chunk_indices())
    missing = gs.missing()
    problems = gs.verify()
    damaged = sorted({p.chunk for p in problems})
    written = total - len(missing)
    typer.echo(
        f"{store}: {written} of {total} chunks written, {len(missing)} missing, "
        f"{len(damaged)} damaged."
    )
    for p in problems:
        typer.echo(f"  damaged: {p}")
    if not damaged:
        return
    if not repair:
        typer.echo(
            "Rerun the computation that made the store (same call, same store) or "
            "`lossmap verify --repair` to recompute the damaged chunks."
        )
        raise SystemExit(1)  # typer.Exit codes are lost outside standalone mode
    gs.forget(damaged)
    typer.echo(f"removed {len(damaged)} damaged chunk(s); they now count as missing.")
    argv = _command(gs.metadata, store)
    if argv is None:
        typer.echo(
            "The store does not record a `lossmap` command to rerun, and it holds "
            "the recipe, not the model and data. Rerun the call that made it with "
            f"the same model, data and arguments and store={str(store)!r}; only "
            f"the {len(damaged)} removed chunk(s) and any missing ones are computed."
        )
        raise SystemExit(1)  # typer.Exit codes are lost outside standalone mode
    from lossmap.cli import main

    typer.echo("recomputing with: lossmap " + " ".join(argv))
    code = main(argv)
    left = GridStore.attach(store).todo()
    if code != 0 or left:
        typer.echo(f"repair incomplete: {len(left)} chunk(s) still to compute.")
        raise SystemExit(1)  # typer.Exit codes are lost outside standalone mode
    typer.echo("repaired: every chunk is written and verified.")


def register(app: Any) -> None:
    """Add ``verify`` to the typer ``app``."""
    app.command("verify")(verify)
