"""The explorer's callbacks: each tab is a module that registers its own.

* :mod:`lossmap.explorer.landscape_tab` — model, data, loss, the landscape
  and its overlays, the current point, the URL state;
* :mod:`lossmap.explorer.runs_panel` — the optimizer runs on that tab;
* :mod:`lossmap.explorer.research` — the Saved-stores tab.

All of them wrap their callbacks in :func:`lossmap.explorer.guard.guarded`.
"""

from __future__ import annotations

from typing import Any

from lossmap.explorer import landscape_tab, research, runs_panel
from lossmap.explorer.guard import guarded
from lossmap.explorer.landscape_tab import SETTINGS_INPUTS, settings_from

__all__ = ["SETTINGS_INPUTS", "guarded", "register", "settings_from"]


def register(app: Any, *, store_root: Any = None) -> None:
    """Attach every tab's callbacks to ``app``."""
    landscape_tab.register(app)
    runs_panel.register(app)
    research.register(app, store_root=store_root)
