"""The explorer inside a Jupyter notebook cell (Dash's Jupyter mode).

::

    from lossmap.explorer import notebook
    notebook("runs/")  # the explorer; its Research tab opens the stores in runs/

Dash serves the app from a background thread on 127.0.0.1 and shows it in
the cell (``mode="inline"``), as a link (``"external"``) or in a JupyterLab
tab (``"jupyterlab"``). Outside Jupyter use ``lossmap explore`` instead.
"""

from __future__ import annotations

import os
import socket
from typing import Any

__all__ = ["notebook"]

MODES = ("inline", "external", "jupyterlab", "tab")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def notebook(
    store_root: str | os.PathLike[str] | None = None,
    *,
    mode: str = "inline",
    height: int = 820,
    port: int | None = None,
) -> Any:
    """Show the explorer in the current notebook cell; returns the Dash app.

    Parameters
    ----------
    store_root : path-like, optional
        Folder whose surface stores the Research tab may open.
    mode : {"inline", "external", "jupyterlab", "tab"}
    height : int
        Height of the inline frame in pixels.
    port : int, optional
        Port on 127.0.0.1 (default: a free one).
    """
    from lossmap._validation import check_choice, check_int
    from lossmap.explorer.app import create_app

    check_choice("mode", mode, MODES)
    height = check_int("height", height, minimum=200)
    from dash._jupyter import jupyter_dash

    if not jupyter_dash.active:
        raise RuntimeError(
            "lossmap.explorer.notebook() shows the explorer in a Jupyter notebook "
            "(it needs IPython and a running kernel); from a shell run "
            "`lossmap explore` instead"
        )
    app = create_app(store_root=store_root)
    app.run(
        jupyter_mode=mode,
        jupyter_height=height,
        host="127.0.0.1",
        port=port if port is not None else _free_port(),
    )
    return app
