"""CLI command: ``lossmap explore [PATH] [--host 127.0.0.1] [--port 8050] [--open]``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

#: Replaced in tests; serves the app until interrupted.
_SERVE: Any = None


def _serve(app: Any, host: str, port: int) -> None:  # pragma: no cover - blocks
    from lossmap.explorer.app import serve

    serve(app, host=host, port=port)


def register(app: Any) -> None:
    """Add this module's commands to the typer app."""

    @app.command("explore")
    def explore(
        path: Annotated[
            Path | None,
            typer.Argument(
                help="Folder of saved stores (*.zarr) to open in the research "
                "view; paths outside it are refused.",
                show_default=False,
            ),
        ] = None,
        host: Annotated[
            str,
            typer.Option(
                help="Address to bind; other machines can reach the explorer "
                "only if you choose a public one."
            ),
        ] = "127.0.0.1",
        port: Annotated[
            int, typer.Option(min=0, max=65535, help="Port to listen on.")
        ] = 8050,
        open_browser: Annotated[
            bool, typer.Option("--open", help="Open the explorer in a web browser.")
        ] = False,
    ) -> None:
        """Serve the interactive landscape explorer (Ctrl-C stops it)."""
        from lossmap.explorer import create_app

        if path is not None and not path.is_dir():
            raise FileNotFoundError(f"`PATH` {str(path)!r} is not a folder")
        web = create_app(store_root=path)
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{port}/"
        typer.echo(f"lossmap explorer at {url}  (Ctrl-C stops it)")
        if path is not None:
            typer.echo(f"stores from {path.resolve()}")
        if host not in ("127.0.0.1", "localhost", "::1"):
            typer.echo(
                f"warning: listening on {host}: anyone who can reach this machine "
                "can use the explorer",
                err=True,
            )
        if open_browser:
            import webbrowser

            webbrowser.open(url)
        (_SERVE or _serve)(web, host, port)
