"""Figures: matplotlib displays and Plotly figure builders.

Compute first, then display: every display takes results (a ``Surface``, a
``Trajectory``, a problem) and never computes a landscape itself. matplotlib
and plotly are imported only when a display is first used.

Names are resolved lazily from the modules below, so ``import lossmap.plot``
stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from lossmap._optional import require

# name -> module under lossmap.plot. Each block belongs to one module.
_EXPORTS: dict[str, str] = {
    # ---- landscapes, 3-D surfaces, slices, fit panels (_landscape.py, _views.py,
    #      _fit.py; shared helpers in _style.py)
    "LandscapeDisplay": "_landscape",
    "Surface3DDisplay": "_views",
    "SliceDisplay": "_views",
    "FitDisplay": "_fit",
    "FitCurve": "_fit",
    "LandscapeFitDisplay": "_fit",
    "landscape_and_fit": "_fit",
    # ---- optimizer paths, loss curves, basins, critical points (_walk.py)
    "PathsDisplay": "_walk",
    "LossCurveDisplay": "_walk",
    "LRSweepDisplay": "_walk",
    "BasinDisplay": "_walk_analysis",
    "CriticalPointsDisplay": "_walk_analysis",
    "RaceAnimation": "_walk_anim",
    "optimizer_color": "_walk",
    # ---- real networks: planes, lines, trajectories (_nn.py)
    "PlaneDisplay": "_nn",
    "LineDisplay": "_nn",
    "RandomLinesDisplay": "_nn",
    "TrajectoryDisplay": "_nn_path",
    "SpectrumDisplay": "_curvature",
    "CurvatureMapDisplay": "_curvature",
    "SharpnessDisplay": "_curvature",
    "BlockTraceDisplay": "_curvature",
    # ---- between minima: checkpoint maps, barriers, curve planes (_minima.py)
    "EmbeddingDisplay": "_minima",
    "BarrierDisplay": "_minima",
    "CurvePlaneDisplay": "_minima",
    "embedding_figure": "_minima",
    # ---- Plotly figure builders for the explorer (_plotly.py)
    "landscape_figure": "_plotly",
    "surface3d_figure": "_plotly",
    "fit_figure": "_plotly",
    "loss_curves_figure": "_plotly",
    "curve_figure": "_plotly",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"lossmap.plot.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'lossmap.plot' has no attribute {name!r}")


def require_matplotlib(what: str) -> Any:
    """Import matplotlib.pyplot, or explain how to install it."""
    return require("matplotlib.pyplot", extra="plot", what=what)


def require_plotly(what: str) -> Any:
    """Import plotly.graph_objects, or explain how to install it."""
    return require("plotly.graph_objects", extra="explorer", what=what)
