"""The tiling check: a loss whose value changes with the tiling is refused
before any grid point is evaluated."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import torch

from lossmap.nn.batch._data import Batch, Data
from lossmap.nn.batch._objective import Objective

# ---------------------------------------------------- the tiling check
#: Rows of the prefix on which :func:`check_tiling` compares one tile with
#: tiles of :data:`CHECK_TILE` rows.
CHECK_ROWS = 16
CHECK_TILE = 2


def tolerance(dtype: torch.dtype) -> float:
    """Relative difference below which two evaluations count as equal."""
    return {torch.float64: 1e-9, torch.float32: 1e-4}.get(dtype, 1e-2)


def aggregate(objective: Objective, per_tile: list[list[tuple]]) -> dict[str, float]:
    """Field values from per-tile ``(sum, count)`` lists (scalars)."""
    sums = np.array([[float(s.detach()) for s, _ in t] for t in per_tile]).sum(axis=0)
    counts = np.array([[float(c.detach()) for _, c in t] for t in per_tile]).sum(axis=0)
    return {k: float(v) for k, v in objective.finish(sums, counts).items()}


def check_tiling(
    objective: Objective,
    run: Callable[[Batch], list[tuple]],
    data: Data,
    dtype: torch.dtype,
) -> dict[str, float]:
    """Refuse terms or metrics whose value changes when the data is tiled.

    ``run(batch)`` returns the ``(sum, count)`` list of one tile. The first
    ``CHECK_ROWS`` rows are evaluated as one tile and in tiles of
    ``CHECK_TILE`` rows (small tiles make a wrong count show: a token mean
    over rows with different numbers of tokens); every field must agree to
    :func:`tolerance`. Skipped when a term is ``reduction="batch"`` (never
    tiled). Returns the one-tile values.
    """
    head = data.head(CHECK_ROWS)
    whole = aggregate(objective, [run(head)])
    if objective.whole_batch or head.n < 2 * CHECK_TILE:
        return whole
    starts = list(range(0, head.n - CHECK_TILE + 1, CHECK_TILE))
    bounds = [*starts, head.n]
    split = aggregate(
        objective, [run(head.rows(a, b)) for a, b in itertools.pairwise(bounds)]
    )
    sizes = "+".join(str(b - a) for a, b in itertools.pairwise(bounds))
    tol = tolerance(dtype)
    names = [n for n in whole if n != "loss"] + ["loss"]  # name a term first
    for name in names:
        a = whole[name]
        b = split[name]
        if math.isnan(a) and math.isnan(b):
            continue
        if not abs(a - b) <= tol * max(abs(a), abs(b), 1e-12):
            raise ValueError(
                f"{name!r} depends on how the data is tiled: {a:.6g} on {head.n} "
                f"rows at once, {b:.6g} when the same rows are split into tiles of "
                f"{sizes} rows. A scalar loss is read as a per-row mean "
                "(reduction='mean'). If it sums over rows, pass reduction='sum'; if "
                "it averages over some rows or tokens only (padding, ignore_index, "
                "terms on different rows), return per-row values or (sum, count) "
                "(lossmap.nn.sum_count, lossmap.nn.token_cross_entropy); or pass "
                "reduction='batch' to evaluate all data in one tile."
            )
    return whole
