"""Build the explorer: ``create_app(store_root=...) -> dash.Dash``.

The app computes nothing at import time; each view is computed on demand by
:mod:`lossmap.explorer.teaching` (cached per settings) and drawn by the Plotly
builders in :mod:`lossmap.plot._plotly`. Serve it with ``lossmap explore``
(127.0.0.1 by default) or any WSGI server via ``app.server``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from lossmap._optional import require
from lossmap.explorer import callbacks, layout, teaching

__all__ = ["ASSETS", "MAX_REQUEST", "MAX_RESPONSE", "create_app", "serve"]

#: The page's script and styles (served by Dash from this folder).
ASSETS = Path(__file__).resolve().parent / "assets"
#: Largest request body: the page sends settings and points, well under 1 MB.
MAX_REQUEST = 2 * 1024 * 1024
#: Largest response: a 401×401 landscape in 3-D is about 2 MB.
MAX_RESPONSE = 8 * 1024 * 1024


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
        assets_folder=str(ASSETS),
        assets_ignore=r"widget\.js",  # the standalone lesson page's own script
    )
    app.server.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST
    app.layout = layout.build_layout(
        functions=teaching.function_names(),
        optimizers=optimizers,
        schedules=schedules,
        has_root=root is not None,
        hyper={n: teaching.optimizer_hyper(n) for n in optimizers},
    )
    callbacks.register(app, store_root=root)
    _guard_requests(app)
    return app


def _guard_requests(app: Any) -> None:
    """Refuse malformed callback requests with 400 and cap responses.

    Dash answers a body that is not a JSON object, or names an output no
    callback has, with a 500 and a traceback in the log; here such a request
    gets a short 400. A response above :data:`MAX_RESPONSE` is replaced by a
    413 (requests are capped by Flask's ``MAX_CONTENT_LENGTH``).
    """
    import json

    from flask import Response, request

    log = logging.getLogger("lossmap.explorer")

    def refuse(status: int, why: str) -> Any:
        log.warning("refused a request to %s: %s", request.path[:80], why)
        body = json.dumps({"error": why})
        return Response(body, status=status, mimetype="application/json")

    @app.server.before_request
    def check_callback_request() -> Any:
        if request.method != "POST" or not request.path.endswith(
            "_dash-update-component"
        ):
            return None
        try:
            body = json.loads(request.get_data(cache=True) or b"null")
        except (ValueError, UnicodeDecodeError):
            return refuse(400, "the request is not JSON")
        if not isinstance(body, dict):
            return refuse(400, "the request must be a JSON object")
        output = body.get("output")
        if not isinstance(output, str) or output not in app.callback_map:
            return refuse(400, "the request names no known callback output")
        spec = app.callback_map[output]
        for key in ("inputs", "state"):
            got = body.get(key, [])
            if not isinstance(got, list):
                return refuse(400, f"`{key}` must be a list")
            if len(got) != len(spec.get(key, [])):
                return refuse(
                    400, f"`{key}` must have {len(spec.get(key, []))} entries"
                )
        return None

    @app.server.after_request
    def cap_response(response: Any) -> Any:
        size = response.calculate_content_length()
        if size is not None and size > MAX_RESPONSE:
            return refuse(413, f"the response would be {size:,} bytes; refused")
        return response


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
