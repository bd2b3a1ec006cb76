"""The interactive landscape explorer (a Dash app).

Serving it blocks until stopped::

    from lossmap.explorer import create_app
    app = create_app(store_root="runs/")
    app.run(host="127.0.0.1", port=8050)

Or from a shell: ``lossmap explore [PATH] [--host 127.0.0.1] [--port 8050]``.
dash and plotly are imported only when the app is created.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "notebook"]


def create_app(*, store_root: Any = None) -> Any:
    """Build the explorer app; see :func:`lossmap.explorer.app.create_app`."""
    from lossmap.explorer.app import create_app as _create

    return _create(store_root=store_root)


def notebook(store_root: Any = None, **kwargs: Any) -> Any:
    """The explorer in a notebook cell (:func:`lossmap.explorer.jupyter.notebook`)."""
    from lossmap.explorer.jupyter import notebook as _notebook

    return _notebook(store_root, **kwargs)
