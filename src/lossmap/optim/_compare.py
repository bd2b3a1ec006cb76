"""Several runs side by side: a race between optimizers, a learning-rate sweep."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lossmap._validation import check_finite_array
from lossmap.optim._optimizers import Optimizer, get
from lossmap.optim._run import Trajectory, run

__all__ = ["lr_sweep", "race"]


def race(
    landscape: Any,
    optimizers: Sequence[Optimizer | str],
    start: Any,
    *,
    steps: int,
    **run_kw: Any,
) -> list[Trajectory]:
    """Run each optimizer from the same ``start``; one Trajectory each.

    Names get their default settings (:func:`lossmap.optim.get`); pass
    Optimizers to choose rates. ``run_kw`` goes to :func:`lossmap.optim.run`.
    """
    if isinstance(optimizers, str | Optimizer) or not len(optimizers):
        raise TypeError(
            f"`optimizers` must be a non-empty list of optimizers or names, "
            f"got {optimizers!r}"
        )
    return [run(landscape, get(o), start, steps=steps, **run_kw) for o in optimizers]


def lr_sweep(
    landscape: Any,
    optimizer: Optimizer | str,
    start: Any,
    lrs: Sequence[float],
    *,
    steps: int,
    **run_kw: Any,
) -> list[Trajectory]:
    """Run one optimizer at several learning rates from the same ``start``.

    Returns
    -------
    list of Trajectory
        One per rate, in the order of ``lrs``.
    """
    rates = check_finite_array("lrs", lrs, ndim=1)
    opt = get(optimizer)
    return [
        run(landscape, opt.with_lr(float(r)), start, steps=steps, **run_kw)
        for r in rates
    ]
