"""Analysis of exact 2-parameter landscapes.

- :func:`critical_points`: every stationary point in a region, classified as
  minimum, maximum, saddle or degenerate, minima marked global or local;
- :func:`convexity`: Hessian PSD fraction over a grid plus a Jensen chord test;
- :func:`basins`: which minimum an optimizer reaches from each start of a grid.

All three return frozen results holding plain arrays, ready to plot.
"""

from lossmap.analysis.basins import DIVERGED_LABEL, UNSETTLED_LABEL, Basins, basins
from lossmap.analysis.convexity import Convexity, convexity
from lossmap.analysis.critical import KINDS, CriticalPoint, classify, critical_points

__all__ = [
    "DIVERGED_LABEL",
    "KINDS",
    "UNSETTLED_LABEL",
    "Basins",
    "Convexity",
    "CriticalPoint",
    "basins",
    "classify",
    "convexity",
    "critical_points",
]
