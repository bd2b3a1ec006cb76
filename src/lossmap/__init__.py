"""lossmap: compute, analyse and show loss landscapes.

The top-level namespace imports neither torch, matplotlib, plotly nor dash;
subpackages that need them (``lossmap.nn``, ``lossmap.plot``,
``lossmap.explorer``) load them when first imported.
"""

from __future__ import annotations

import importlib
from typing import Any

from lossmap import losses
from lossmap.surface import Point, Surface

__version__ = "0.1.0"

_LAZY_MODULES = (
    "toy",
    "optim",
    "analysis",
    "nn",
    "io",
    "plot",
    "explorer",
    "distributed",
)

__all__ = [
    "Point",
    "Surface",
    "__version__",
    "analysis",
    "distributed",
    "explorer",
    "io",
    "losses",
    "nn",
    "optim",
    "plot",
    "toy",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(f"lossmap.{name}")
    raise AttributeError(f"module 'lossmap' has no attribute {name!r}")
