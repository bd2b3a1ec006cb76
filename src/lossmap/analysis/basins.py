"""Basins of attraction: which minimum an optimizer reaches from each start.

:func:`basins` runs one optimizer from every point of a grid at once
(vectorised, see :func:`lossmap.optim.run`), groups the end points that
coincide, and labels every start with the point its run ended at. The map
shows at a glance where a start "gets stuck in a small dip" and where it
reaches the global minimum, and how the picture changes with the optimizer
(momentum can roll over ridges that stop plain gradient descent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lossmap._validation import check_float, check_int
from lossmap.analysis.critical import classify
from lossmap.optim import DIVERGED, Optimizer, get, run
from lossmap.surface import Surface
from lossmap.toy._base import Landscape, Region

__all__ = ["DIVERGED_LABEL", "UNSETTLED_LABEL", "Basins", "basins"]

#: Label of starts whose run diverged.
DIVERGED_LABEL = -1
#: Label of starts whose run neither converged nor ended near a stationary point.
UNSETTLED_LABEL = -2


@dataclass(frozen=True, eq=False)
class Basins:
    """Result of :func:`basins`.

    Attributes
    ----------
    axes : (ndarray of shape (n0,), ndarray of shape (n1,))
        Start coordinates along each parameter.
    param_names : (str, str)
    labels : ndarray of int of shape (n0, n1)
        ``labels[i, j]`` is the index into :attr:`points` reached from
        ``(axes[0][i], axes[1][j])``; -1 diverged, -2 did not settle.
    points : ndarray of shape (k, 2)
        The distinct end points, sorted by value (lowest first).
    values : ndarray of shape (k,)
        The landscape's value at each end point.
    kinds : tuple of str
        "minimum", "saddle", ... for each end point (from the Hessian).
    counts : ndarray of int of shape (k,)
        Starts ending at each point.
    steps : ndarray of int of shape (n0, n1)
        Steps each run took (its ``stopped_at``).
    final : ndarray of shape (n0, n1, 2)
        Where each run ended.
    optimizer : str
        The optimizer's label.
    """

    axes: tuple[np.ndarray, np.ndarray]
    param_names: tuple[str, str]
    labels: np.ndarray
    points: np.ndarray
    values: np.ndarray
    kinds: tuple[str, ...]
    counts: np.ndarray
    steps: np.ndarray
    final: np.ndarray
    optimizer: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def minima(self) -> list[tuple[float, float]]:
        """The end points that are minima, as ``(x, y)`` (lowest value first)."""
        return [
            (float(p[0]), float(p[1]))
            for p, k in zip(self.points, self.kinds)
            if k == "minimum"
        ]

    @property
    def fractions(self) -> np.ndarray:
        """Share of all starts reaching each point, shape (k,)."""
        return self.counts / self.labels.size

    @property
    def diverged_fraction(self) -> float:
        """Share of starts whose run diverged."""
        return float(np.mean(self.labels == DIVERGED_LABEL))

    def surface(self) -> Surface:
        """The map as a Surface: fields ``loss`` (value at the end point, NaN
        if none), ``basin`` (the label) and ``steps``."""
        end_value = np.full(self.labels.shape, np.nan)
        ok = self.labels >= 0
        end_value[ok] = self.values[self.labels[ok]]
        return Surface(
            axes={self.param_names[0]: self.axes[0], self.param_names[1]: self.axes[1]},
            fields={
                "loss": end_value,
                "basin": self.labels.astype(np.float64),
                "steps": self.steps.astype(np.float64),
            },
            metadata={"source": "basins", **self.metadata},
        )


def basins(
    landscape: Landscape,
    optimizer: Optimizer | str,
    region: Region | None = None,
    *,
    steps: int,
    grid: int | tuple[int, int] = 41,
    tol: float = 1e-6,
    merge: float = 1e-3,
    bound: float = 1e6,
) -> Basins:
    """Run ``optimizer`` from every point of a grid and label where each ends.

    Parameters
    ----------
    landscape : Landscape
    optimizer : Optimizer or str
    region : ((lo0, hi0), (lo1, hi1)), optional
        The grid of starts; defaults to ``landscape.region``.
    steps : int
        Optimizer steps per start.
    grid : int or (int, int), default=41
        Starts per axis.
    tol : float, default=1e-6
        Gradient norm below which a run has converged; a run that used all
        its steps still counts if it ended within ``merge`` of a point others
        converged to.
    merge : float, default=1e-3
        End points closer than ``merge`` times the region's diagonal are the
        same point.
    bound : float, default=1e6
        Divergence bound, as in :func:`lossmap.optim.run`.

    Returns
    -------
    Basins

    Examples
    --------
    >>> from lossmap import optim
    >>> from lossmap.analysis import basins
    >>> from lossmap.toy import functions
    >>> b = basins(functions.get("himmelblau"), optim.gd(0.01), steps=500, grid=21)
    >>> len(b.minima)
    4
    """
    steps = check_int("steps", steps, minimum=1)
    tol = check_float("tol", tol, minimum=0.0, strict_min=True)
    merge = check_float("merge", merge, minimum=0.0, strict_min=True)
    opt = get(optimizer)
    a0, a1 = landscape.grid(region, steps=_check_grid(grid))
    g0, g1 = np.meshgrid(a0, a1, indexing="ij")
    starts = np.stack([g0.ravel(), g1.ravel()], -1)
    traj = run(landscape, opt, starts, steps=steps, tol=tol, bound=bound)
    final = np.asarray(traj.final, dtype=np.float64)
    status = np.asarray(traj.status)
    diag = float(np.hypot(a0[-1] - a0[0], a1[-1] - a1[0]))
    radius = merge * diag

    labels = np.full(starts.shape[0], UNSETTLED_LABEL, dtype=np.int64)
    labels[status == DIVERGED] = DIVERGED_LABEL
    conv = status == "converged"
    centres: list[np.ndarray] = []
    for i in np.flatnonzero(conv):
        d = [np.linalg.norm(final[i] - c) for c in centres]
        if d and min(d) <= radius:
            labels[i] = int(np.argmin(d))
        else:
            centres.append(final[i])
            labels[i] = len(centres) - 1
    if centres:
        cen = np.array(centres)
        others = np.flatnonzero(status == "max_steps")
        if others.size:
            dist = np.linalg.norm(final[others, None, :] - cen[None], axis=-1)
            near = dist.min(-1) <= radius
            labels[others[near]] = dist[near].argmin(-1)
    else:
        cen = np.zeros((0, 2))
    # order the points by value and relabel
    values = landscape.loss_at(cen) if len(cen) else np.zeros(0)
    # equal values (to 9 digits) are ordered by position, so the same minimum
    # gets the same label (and colour) for every optimizer
    key = np.round(np.asarray(values, dtype=np.float64), 9) + 0.0
    order = np.lexsort((cen[:, 1], cen[:, 0], key)) if len(cen) else np.zeros(0, int)
    remap = np.empty(len(cen), dtype=np.int64)
    remap[order] = np.arange(len(cen))
    ok = labels >= 0
    labels[ok] = remap[labels[ok]]
    cen, values = cen[order], np.asarray(values)[order]
    curv = 1.0
    if len(cen):
        lam = np.linalg.eigvalsh(landscape.hessian_at(cen))
        curv = max(1.0, float(np.max(np.abs(lam))))
        kinds = tuple(classify(v, scale=curv, tol=1e-9) for v in lam)
    else:
        kinds = ()
    counts = np.bincount(labels[ok], minlength=len(cen))
    shape = (a0.size, a1.size)
    return Basins(
        axes=(a0, a1),
        param_names=tuple(landscape.param_names),  # type: ignore[arg-type]
        labels=labels.reshape(shape),
        points=cen,
        values=values,
        kinds=kinds,
        counts=counts,
        steps=np.asarray(traj.stopped_at).reshape(shape),
        final=final.reshape((*shape, 2)),
        optimizer=opt.label,
        metadata={
            "landscape": landscape.describe(),
            "optimizer": opt.describe(),
            "steps": steps,
            "tol": tol,
        },
    )


def _check_grid(grid: Any) -> tuple[int, int]:
    """``grid`` as ``(n0, n1)``, each >= 2; errors name `grid`, not `steps`."""
    try:
        n = (grid, grid) if np.ndim(grid) == 0 else tuple(grid)
    except TypeError:
        n = ()
    if len(n) != 2:
        raise TypeError(
            f"`grid` must be an integer or a pair of integers, got {grid!r}"
        )
    return (
        check_int("grid", n[0], minimum=2, maximum=20001),
        check_int("grid", n[1], minimum=2, maximum=20001),
    )
