"""Optional dependencies: one import helper and one message.

Each optional feature imports its library through :func:`require`, which
raises ``ImportError("<what> needs <library>: pip install 'lossmap[<extra>]'")``
when it is missing, so the install hint is written once.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(module: str, *, extra: str, what: str) -> ModuleType:
    """Import ``module`` (e.g. ``"matplotlib.pyplot"``) or explain how to get it.

    Parameters
    ----------
    module : str
        The module to import.
    extra : str
        The lossmap extra that installs it (``plot``, ``io``, ``cli``, ...).
    what : str
        The feature that asked for it, as the message's subject.

    Examples
    --------
    >>> require("json", extra="none", what="reading JSON").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        raise ImportError(
            f"{what} needs {top}: pip install 'lossmap[{extra}]'"
        ) from exc
