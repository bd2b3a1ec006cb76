"""Data for the engine: tensors cut into cache-sized tiles, and metrics.

A DataLoader is read once into two tensors; the hot loop only slices tensors.
Default tile sizes come from measurements on a 2-core CPU (see
``shared/research/perf-baseline.md``): about 1,024 rows for dense models,
128 images for convolutional ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["METRICS", "Tiles", "accuracy", "materialise", "resolve_metrics"]

ROWS_DENSE = 1024
ROWS_IMAGES = 128
#: With a random subset, tiles are small enough to give at least this many
#: tile means, from which the standard error is estimated.
MIN_TILES_FOR_STDERR = 8


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Fraction of correct predictions.

    Outputs of shape ``(n, c)`` with ``c > 1`` are class scores (argmax);
    targets are class indices ``(n,)`` or one-hot/probabilities ``(n, c)``.
    Outputs of shape ``(n,)`` or ``(n, 1)`` are logits of the positive class
    (positive when > 0) against targets in {0, 1}.
    """
    if outputs.dim() >= 2 and outputs.shape[-1] > 1:
        pred = outputs.argmax(dim=-1)
        if targets.dim() == outputs.dim() and targets.is_floating_point():
            targets = targets.argmax(dim=-1)
        return (pred == targets).to(outputs.dtype).mean()
    pred = outputs.reshape(outputs.shape[0]) > 0
    return (pred == (targets.reshape(targets.shape[0]) > 0.5)).to(outputs.dtype).mean()


#: Metrics available by name.
METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "accuracy": accuracy
}


def resolve_metrics(metrics: Any) -> dict[str, Callable[..., torch.Tensor]]:
    """``None``, a name, a list of names, or a ``{name: fn}`` mapping."""
    if metrics is None:
        return {}
    if isinstance(metrics, str):
        metrics = [metrics]
    if isinstance(metrics, Mapping):
        out = dict(metrics)
    elif isinstance(metrics, Iterable):
        out = {}
        for m in metrics:
            if not isinstance(m, str):
                raise TypeError(
                    f"`metrics` entries must be metric names, got {m!r}; pass a "
                    f"{{name: function}} mapping for your own metrics"
                )
            if m not in METRICS:
                raise ValueError(
                    f"`metrics` must name known metrics {sorted(METRICS)}, got {m!r}"
                )
            out[m] = METRICS[m]
    else:
        raise TypeError(
            f"`metrics` must be None, a name, a list of names or a mapping, got "
            f"{type(metrics).__name__}"
        )
    for name, fn in out.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"metric names must be non-empty strings, got {name!r}")
        if name == "loss" or name.endswith("_stderr"):
            raise ValueError(f"metric name {name!r} is reserved")
        if not callable(fn):
            raise TypeError(f"metric {name!r} must be callable, got {fn!r}")
    return out


def materialise(data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs, targets)`` tensors from a pair or an iterable of batches."""
    if isinstance(data, tuple | list) and len(data) == 2:
        x, y = data
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise TypeError(
                f"`data` must be (inputs, targets) tensors or a DataLoader, got "
                f"({type(x).__name__}, {type(y).__name__})"
            )
    elif isinstance(data, Iterable) and not isinstance(data, torch.Tensor | str):
        xs, ys = [], []
        for batch in data:
            if not isinstance(batch, tuple | list) or len(batch) != 2:
                raise TypeError(
                    "`data` as a DataLoader must yield (inputs, targets) batches, "
                    f"got {type(batch).__name__}"
                )
            xs.append(torch.as_tensor(batch[0]))
            ys.append(torch.as_tensor(batch[1]))
        if not xs:
            raise ValueError("`data` yielded no batches")
        x, y = torch.cat(xs), torch.cat(ys)
    else:
        raise TypeError(
            f"`data` must be (inputs, targets) tensors or a DataLoader, got "
            f"{type(data).__name__}"
        )
    if x.dim() == 0 or y.dim() == 0:
        raise ValueError(
            f"`data` tensors need a sample dimension, got shapes {tuple(x.shape)} "
            f"and {tuple(y.shape)}"
        )
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"`data` inputs and targets must have the same number of samples, got "
            f"{x.shape[0]} and {y.shape[0]}"
        )
    if x.shape[0] == 0:
        raise ValueError("`data` holds no samples")
    return x, y


@dataclass(frozen=True)
class Tiles:
    """Data cut into tiles, on the evaluation device and dtype.

    Attributes
    ----------
    tiles : tuple of (inputs, targets) pairs
        Consecutive slices of the (possibly subsampled) data.
    weights : torch.Tensor, shape (n_tiles,)
        Each tile's share of the samples (sums to 1).
    n_total : int
        Samples in the full data set.
    indices : numpy.ndarray or None
        The rows used when a random subset was drawn.
    rows : int
        Tile size.
    """

    tiles: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    weights: torch.Tensor
    n_total: int
    indices: np.ndarray | None
    rows: int

    @property
    def n_used(self) -> int:
        """Number of samples evaluated."""
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
        subset: int | None = None,
        seed: int | None = None,
        channels_last: bool = False,
    ) -> Tiles:
        n = int(inputs.shape[0])
        idx = None
        if subset is not None and subset < n:
            rng = np.random.default_rng(seed)
            idx = rng.choice(n, size=subset, replace=False)
            sel = torch.as_tensor(idx, device=inputs.device)
            inputs, targets = inputs[sel], targets[sel]
        used = int(inputs.shape[0])
        if rows is None:
            rows = ROWS_IMAGES if inputs.dim() >= 4 else ROWS_DENSE
            if idx is not None:
                rows = min(rows, max(1, math.ceil(used / MIN_TILES_FOR_STDERR)))
        rows = max(1, min(int(rows), used))
        x = inputs.to(device=device)
        if x.is_floating_point():
            x = x.to(dtype)
        y = targets.to(device=device)
        if y.is_floating_point():
            y = y.to(dtype)
        tiles = []
        for start in range(0, used, rows):
            xt = x[start : start + rows]
            if channels_last and xt.dim() == 4:
                xt = xt.contiguous(memory_format=torch.channels_last)
            else:
                xt = xt.contiguous()
            tiles.append((xt, y[start : start + rows].contiguous()))
        weights = torch.tensor(
            [t[0].shape[0] / used for t in tiles], dtype=torch.float64
        )
        return cls(tuple(tiles), weights, n, idx, rows)

    def stderr(self, tile_values: np.ndarray) -> np.ndarray:
        """Standard error of the sample mean from per-tile means.

        ``tile_values`` has shape ``(n_tiles, ...)``. Uses the between-tile
        spread of the tile means (a batch-means / ratio estimator) with the
        finite-population correction ``1 - n_used / n_total``.
        """
        w = self.weights.numpy()
        t = len(w)
        if t < 2:
            return np.full(tile_values.shape[1:], np.nan)
        shape = (-1,) + (1,) * (tile_values.ndim - 1)
        mean = np.sum(w.reshape(shape) * tile_values, axis=0)
        var = (
            t / (t - 1) * np.sum((w.reshape(shape) * (tile_values - mean)) ** 2, axis=0)
        )
        fpc = max(0.0, 1.0 - self.n_used / self.n_total)
        return np.sqrt(var * fpc)
