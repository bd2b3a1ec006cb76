"""Build the explorer: ``create_app(store_root=...) -> dash.Dash``.

The app computes nothing at import time; each view is computed on demand by
:mod:`lossmap.explorer.teaching` (cached per settings) and drawn by the Plotly
builders in :mod:`lossmap.plot._plotly`. Serve it with ``lossmap explore``
(127.0.0.1 by default) or any WSGI server via ``app.server``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lossmap._optional import require
from lossmap.explorer import callbacks, layout, teaching

__all__ = ["create_app", "serve"]


def _require_dash() -> Any:
    return require("dash", extra="explorer", what="the explorer")


def _optim_names() -> tuple[tuple[str, ...], tuple[str, ...]]:
    try:
        return teaching.optimizer_names(), teaching.schedule_names()
    except ImportError:
        return (), ("constant",)


def create_app(*, store_root: str | os.PathLike[str] | None = None) -> Any:
    """The explorer as a ``dash.Dash`` app.

    Parameters
    ----------
    store_root : path-like, optional
        Folder whose ``*.zarr`` stores the research tab may open; paths
        outside it are refused. Without it the research tab opens nothing.

    Returns
    -------
    dash.Dash
        ``app.server`` is the underlying WSGI (Flask) app.
    """
    dash = _require_dash()
    root = None
    if store_root is not None:
        root = Path(store_root).expanduser().resolve()
        if not root.exists():
            raise FileNotFoundError(f"`store_root` {str(store_root)!r} does not exist")
    optimizers, schedules = _optim_names()
    app = dash.Dash(
        "lossmap.explorer",
        title="lossmap explorer",
        serve_locally=True,
        update_title=None,
    )
    # the largest legitimate request (8 runs of 2000 steps) is about 1 MB
    app.server.config["MAX_CONTENT_LENGTH"] = 8 * 1024 * 1024
    app.index_string = app.index_string.replace(
        "{%css%}", "{%css%}<style>" + layout.CSS + "</style>"
    )
    app.layout = layout.build_layout(
        functions=teaching.function_names(),
        optimizers=optimizers,
        schedules=schedules,
        has_root=root is not None,
    )
    callbacks.register(app, store_root=root)
    return app


def serve(
    app: Any, *, host: str = "127.0.0.1", port: int = 8050
) -> None:  # pragma: no cover - blocks; exercised by the CLI
    """Serve ``app`` until interrupted (one process, one thread per request).

    Request lines are not logged; errors still are.
    """
    import logging

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server(host, port, app.server, threaded=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
