"""Fingerprints of a data set that do not depend on the order of its rows.

A shuffled ``DataLoader`` yields the same data set in a different order on
every pass. Its fingerprint (part of a store's settings) must not change with
the order, or a store made with it could never be resumed; and the rows must
be evaluated in one canonical order, or a resumed store would mix chunks whose
sums were taken in different orders (equal only to rounding).

Each row (the row of every tensor of the batch, together) gets a 128-bit hash:
two lanes of a keyed multiply-add over the row's 64-bit words. The data
fingerprint is the SHA-256 of the shapes, dtypes and sorted row hashes; the
canonical order sorts rows by their hashes (identical rows are interchangeable).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["canonical_order", "canonical_rows", "data_fingerprint", "row_hashes"]

#: Per lane, an odd multiplier (so a change of any one word always changes the
#: hash) and an additive key for each of the first 4,096 word positions.
_KEYS = np.random.default_rng(0x10551A9).integers(
    0, 2**63, size=(2, 2, 4096), dtype=np.uint64
) | np.uint64(1)
_BLOCK = 4096  # rows hashed at a time, to bound the temporaries


def _row_words(t: torch.Tensor) -> np.ndarray:
    """The rows of ``t`` as 64-bit words, shape ``(n, w)`` (zero-padded)."""
    a = t.detach().cpu().contiguous()
    n = int(a.shape[0])
    raw = (
        a.reshape(n, -1).view(torch.uint8).numpy()
        if a.numel()
        else np.zeros((n, 0), np.uint8)
    )
    width = -(-raw.shape[1] // 8) * 8
    if width != raw.shape[1]:
        raw = np.pad(raw, ((0, 0), (0, width - raw.shape[1])))
    return np.ascontiguousarray(raw).view(np.uint64)


def row_hashes(tensors: Sequence[torch.Tensor]) -> np.ndarray:
    """A ``(n, 2)`` uint64 hash of each row across ``tensors`` (same leading size)."""
    n = int(tensors[0].shape[0])
    out = np.zeros((n, 2), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k, t in enumerate(tensors):
            words = _row_words(t)
            for lane in range(2):
                mult, add = _KEYS[lane]
                cols = words.shape[1]
                reps = -(-cols // mult.size)
                m = np.tile(mult, reps)[:cols]
                a = np.tile(add, reps)[:cols]
                for s in range(0, n, _BLOCK):
                    block = words[s : s + _BLOCK]
                    h = ((block ^ a) * m).sum(axis=1, dtype=np.uint64)
                    # mix in the tensor's position, so (x, y) differs from (y, x)
                    out[s : s + _BLOCK, lane] = (
                        out[s : s + _BLOCK, lane] * np.uint64(0x9E3779B97F4A7C15)
                        + h
                        + np.uint64(k + 1)
                    )
    return out


def canonical_order(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Row indices sorting the data set by its row hashes (order-independent)."""
    h = row_hashes(tensors)
    return torch.from_numpy(np.lexsort((h[:, 1], h[:, 0])).astype(np.int64))


def data_fingerprint(tensors: Sequence[torch.Tensor]) -> str:
    """16 hex digits identifying the data set, whatever the order of its rows."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
    hashes = row_hashes(tensors)
    hashes = hashes[np.lexsort((hashes[:, 1], hashes[:, 0]))]
    h.update(np.ascontiguousarray(hashes).tobytes())
    return h.hexdigest()[:16]


def canonical_rows(data: Any, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``tensors`` in canonical row order when ``data`` was an iterable of batches.

    A DataLoader (shuffled or not) is read in canonical order, so every pass,
    and every resumed run, sums the rows in the same order. Tensors given
    directly keep the order the user gave.
    """
    given = isinstance(data, tuple | list) and all(
        isinstance(t, torch.Tensor) for t in data
    )
    if given:
        return tensors
    order = canonical_order(tensors)
    return tuple(t[order] for t in tensors)
