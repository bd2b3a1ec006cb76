"""Transitional: the ``(inputs, targets)`` view of :mod:`lossmap.nn.batch`.

Kept only for the curvature operators (``nn/curvature``) and mode
connectivity (``nn/connect.py``) until they read data through
:mod:`lossmap.nn.batch` like the rest of ``nn``; new code must not use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lossmap.nn.batch import METRICS, accuracy
from lossmap.nn.batch import materialise as _materialise

__all__ = ["METRICS", "Tiles", "accuracy", "materialise"]


def materialise(data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs, targets)`` tensors of data made of such pairs."""
    d = _materialise(data)
    if d.kind != "pair" or len(d.first.leaves) != 2 or len(d.blocks) != 1:
        raise TypeError(
            "`data` must be (inputs, targets) tensors or a DataLoader of them here, "
            f"got a batch of {d.first.describe()}"
        )
    x, y = d.first.leaves
    return x, y


@dataclass(frozen=True)
class Tiles:
    """``(inputs, targets)`` tiles and each tile's share of the rows."""

    tiles: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    weights: torch.Tensor
    n_total: int
    indices: np.ndarray | None
    rows: int

    @property
    def n_used(self) -> int:
        return sum(int(x.shape[0]) for x, _ in self.tiles)

    @classmethod
    def build(
        cls,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        *,
        device: torch.device,
        dtype: torch.dtype,
        rows: int | None = None,
    ) -> Tiles:
        d = _materialise((inputs, targets))
        rows = d.default_rows() if rows is None else max(1, min(int(rows), d.n))
        tiles = tuple(
            (t.leaves[0], t.leaves[1])
            for t in d.tiles(rows, device=device, dtype=dtype)
        )
        weights = torch.tensor(
            [x.shape[0] / d.n for x, _ in tiles], dtype=torch.float64
        )
        return cls(tiles, weights, d.n, None, rows)
