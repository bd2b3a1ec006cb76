"""What a batch may be: nested tensors (:class:`Batch`), the data cut into
tiles (:class:`Data`) and :func:`materialise`."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

ROWS_DENSE = 1024
ROWS_IMAGES = 128
#: Token tensors (integer, two or more dims): about this many tokens per tile.
TOKENS_PER_TILE = 8192

_CONTRACT = (
    "a tensor, an (inputs, targets) pair, a tuple or list of tensors, a "
    "mapping of names to tensors (nesting allowed), or a DataLoader/iterable "
    "yielding one of these"
)


# ------------------------------------------------------------ structures
def _flatten(value: Any, path: str, leaves: list[torch.Tensor]) -> Any:
    """Structure of ``value`` with each tensor replaced by its leaf index."""
    if isinstance(value, torch.Tensor):
        leaves.append(value)
        return len(leaves) - 1
    if isinstance(value, np.ndarray) and value.dtype != object:
        leaves.append(torch.as_tensor(value))
        return len(leaves) - 1
    if isinstance(value, Mapping):
        keys = list(value)
        for k in keys:
            if not isinstance(k, str):
                raise TypeError(
                    f"`{path}` keys must be strings, got {k!r}; a batch must be "
                    f"{_CONTRACT}"
                )
        return (
            "map",
            tuple(keys),
            tuple(_flatten(value[k], f"{path}[{k!r}]", leaves) for k in keys),
        )
    if isinstance(value, tuple | list):
        kind = "tuple" if isinstance(value, tuple) else "list"
        return (
            kind,
            len(value),
            tuple(_flatten(v, f"{path}[{i}]", leaves) for i, v in enumerate(value)),
        )
    raise TypeError(
        f"`{path}` is a {type(value).__name__}; a batch must be {_CONTRACT}, "
        "with tensors as its only leaves"
    )


def _build(spec: Any, leaves: Sequence[torch.Tensor]) -> Any:
    if isinstance(spec, int):
        return leaves[spec]
    kind, keys, children = spec
    if kind == "map":
        return {k: _build(c, leaves) for k, c in zip(keys, children)}
    items = [_build(c, leaves) for c in children]
    return tuple(items) if kind == "tuple" else items


def _describe_spec(spec: Any, leaves: Sequence[torch.Tensor]) -> Any:
    """The structure with each leaf as ``"dtype[shape…]"`` (for metadata)."""
    if isinstance(spec, int):
        t = leaves[spec]
        dims = ", ".join(["n", *map(str, t.shape[1:])])
        return f"{str(t.dtype).removeprefix('torch.')}[{dims}]"
    kind, keys, children = spec
    if kind == "map":
        return {k: _describe_spec(c, leaves) for k, c in zip(keys, children)}
    return [_describe_spec(c, leaves) for c in children]


@dataclass(frozen=True, eq=False)
class Batch:
    """Tensors sharing a leading (row) dimension, in the user's structure.

    Attributes
    ----------
    spec : nested tuples
        The structure (mapping keys, tuple/list lengths) with leaf indices.
    leaves : tuple of torch.Tensor
        Every tensor, each of shape ``(n, ...)``.
    """

    spec: Any
    leaves: tuple[torch.Tensor, ...]

    @classmethod
    def of(cls, value: Any, what: str = "data") -> Batch:
        """Check ``value`` against the contract and wrap it."""
        leaves: list[torch.Tensor] = []
        spec = _flatten(value, what, leaves)
        if not leaves:
            raise ValueError(f"`{what}` holds no tensors; a batch must be {_CONTRACT}")
        for t in leaves:
            if t.dim() == 0:
                shapes = [tuple(x.shape) for x in leaves]
                raise ValueError(
                    f"`{what}` tensors need a leading sample dimension, got a "
                    f"0-d tensor among shapes {shapes}"
                )
        sizes = {int(t.shape[0]) for t in leaves}
        if len(sizes) != 1:
            shapes = [tuple(t.shape) for t in leaves]
            raise ValueError(
                f"`{what}` tensors must share their leading (row) dimension, which "
                f"is tiled for all of them together; got shapes {shapes}"
            )
        if sizes == {0}:
            raise ValueError(f"`{what}` holds no samples")
        return cls(spec, tuple(leaves))

    @property
    def n(self) -> int:
        """Rows."""
        return int(self.leaves[0].shape[0])

    @property
    def value(self) -> Any:
        """The batch in the user's structure (mappings as ``dict``)."""
        return _build(self.spec, self.leaves)

    @property
    def kind(self) -> str:
        """``"tensor"``, ``"pair"`` (a 2-element tuple or list), ``"mapping"``
        or ``"sequence"``."""
        if isinstance(self.spec, int):
            return "tensor"
        if self.spec[0] == "map":
            return "mapping"
        return "pair" if self.spec[1] == 2 else "sequence"

    def describe(self) -> Any:
        """JSON-friendly structure, e.g. ``["float32[n, 3]", "int64[n]"]``."""
        return _describe_spec(self.spec, self.leaves)

    def signature(self) -> tuple:
        """Structure, dtypes and trailing shapes: batches with equal signatures
        can be concatenated."""
        return (
            self.spec,
            tuple((t.dtype, tuple(t.shape[1:])) for t in self.leaves),
        )

    def rows(self, start: int, stop: int) -> Batch:
        return Batch(self.spec, tuple(t[start:stop] for t in self.leaves))

    def take(self, index: torch.Tensor) -> Batch:
        return Batch(self.spec, tuple(t[index.to(t.device)] for t in self.leaves))

    def to(
        self,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
        *,
        channels_last: bool = False,
    ) -> Batch:
        """Leaves on ``device``; floating leaves in ``dtype``; contiguous."""
        out = []
        for t in self.leaves:
            t = t.to(device=device) if device is not None else t
            if dtype is not None and t.is_floating_point():
                t = t.to(dtype)
            if channels_last and t.dim() == 4 and t.is_floating_point():
                t = t.contiguous(memory_format=torch.channels_last)
            else:
                t = t.contiguous()
            out.append(t)
        return Batch(self.spec, tuple(out))


def _concat(batches: list[Batch]) -> Batch:
    if len(batches) == 1:
        return batches[0]
    spec = batches[0].spec
    return Batch(
        spec,
        tuple(
            torch.cat([b.leaves[i] for b in batches])
            for i in range(len(batches[0].leaves))
        ),
    )


# ------------------------------------------------------------------ data
@dataclass(frozen=True, eq=False)
class Data:
    """A data set read into memory: one or more blocks of the same structure.

    Consecutive batches of a loader with equal trailing shapes are joined into
    one block; a loader that pads each batch to its own length gives several
    blocks (tiles never cross a block boundary).
    """

    blocks: tuple[Batch, ...]

    @property
    def n(self) -> int:
        return sum(b.n for b in self.blocks)

    @property
    def first(self) -> Batch:
        return self.blocks[0]

    @property
    def kind(self) -> str:
        return self.first.kind

    def describe(self) -> dict[str, Any]:
        """Structure, rows and blocks (JSON-friendly, for metadata)."""
        return {
            "kind": self.kind,
            "structure": self.first.describe(),
            "n_samples": self.n,
            "blocks": len(self.blocks),
        }

    def head(self, rows: int) -> Batch:
        """The first ``rows`` rows of the first block (fewer if it is shorter)."""
        return self.first.rows(0, min(rows, self.first.n))

    def take(self, index: np.ndarray) -> Data:
        """The rows ``index`` (positions over all blocks), as one or more blocks."""
        index = np.asarray(index)
        starts = np.cumsum([0] + [b.n for b in self.blocks])
        out = []
        for k, b in enumerate(self.blocks):
            sel = index[(index >= starts[k]) & (index < starts[k + 1])] - starts[k]
            if len(sel):
                out.append(b.take(torch.as_tensor(sel)))
        return Data(tuple(out))

    def default_rows(self) -> int:
        """Tile rows when the user gives none (measured on a 2-core CPU, see
        ``shared/research/perf-baseline.md``): 1,024 rows of dense inputs, 128
        images, about 8,192 tokens of a token tensor."""
        rows = ROWS_DENSE
        for t in self.first.leaves:
            if t.dim() >= 4:
                rows = min(rows, ROWS_IMAGES)
            elif t.dim() >= 2 and not t.is_floating_point():
                per_row = math.prod(t.shape[1:])
                rows = min(rows, max(1, TOKENS_PER_TILE // max(per_row, 1)))
        return rows

    def tiles(
        self,
        rows: int | None = None,
        *,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
        channels_last: bool = False,
    ) -> list[Batch]:
        """Consecutive tiles of at most ``rows`` rows (default
        :meth:`default_rows`; ``rows >= n`` gives one tile per block)."""
        rows = self.default_rows() if rows is None else max(1, int(rows))
        out = []
        for b in self.blocks:
            moved = b.to(device, dtype)
            for start in range(0, b.n, rows):
                tile = moved.rows(start, start + rows)
                out.append(tile.to(channels_last=channels_last))
        return out

    def row_digests(self) -> list[list[bytes]]:
        """Per block, a 16-byte digest of each row (all its leaves together)."""
        out = []
        for b in self.blocks:
            parts = []
            for t in b.leaves:
                a = t.detach().cpu().contiguous()
                if a.dtype == torch.bfloat16:
                    a = a.view(torch.int16)
                parts.append(a.reshape(b.n, -1).numpy().view(np.uint8))
            rows = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
            rows = np.ascontiguousarray(rows)
            shape_tag = repr(b.signature()[1]).encode()
            out.append(
                [
                    hashlib.blake2b(shape_tag + r.tobytes(), digest_size=16).digest()
                    for r in rows
                ]
            )
        return out

    def fingerprint(self) -> str:
        """Digest of the data that does not depend on the order of the rows.

        Each row (all its leaves) is hashed; the sorted row digests, the
        structure, dtypes and trailing shapes are hashed together.
        """
        h = hashlib.sha256(repr(self.first.describe()).encode())
        for d in sorted(d for block in self.row_digests() for d in block):
            h.update(d)
        return h.hexdigest()[:16]

    def canonical(self) -> Data:
        """The same rows in an order that does not depend on the order they came in.

        Rows of each block are sorted by their digests, blocks by trailing
        shapes and first digest. A shuffled DataLoader thus gives the same
        tensors on every pass, so sums over tiles, subset draws and resumed
        stores are the same to the last bit (identical rows are
        interchangeable).
        """
        keyed = []
        for b, digests in zip(self.blocks, self.row_digests()):
            order = sorted(range(b.n), key=digests.__getitem__)
            first = digests[order[0]] if order else b""
            keyed.append(
                (repr(b.signature()[1]), first, b.take(torch.as_tensor(order)))
            )
        keyed.sort(key=lambda k: (k[0], k[1]))
        return Data(tuple(b for _, _, b in keyed))


def _is_single(value: Any) -> bool:
    """Whether ``value`` is one batch rather than an iterable of batches."""
    if isinstance(value, torch.Tensor | np.ndarray | Mapping | tuple):
        return True
    if isinstance(value, list):
        if all(isinstance(v, torch.Tensor | np.ndarray) for v in value):
            return True
        return (
            len(value) == 2
            and isinstance(value[1], torch.Tensor | np.ndarray)
            and isinstance(value[0], torch.Tensor | np.ndarray | Mapping | tuple)
        )
    return False


def materialise(data: Any, what: str = "data") -> Data:
    """Read ``data`` (one batch, or an iterable of batches) into memory.

    Raises
    ------
    TypeError
        When ``data`` or a batch it yields is not one the contract accepts; the
        message names the offending part.
    ValueError
        When tensors disagree on their number of rows, or there are none.
    """
    if isinstance(data, Data):
        return data
    if _is_single(data):
        return Data((Batch.of(data, what),))
    if not isinstance(data, Iterable) or isinstance(data, str | bytes):
        raise TypeError(f"`{what}` must be {_CONTRACT}; got {type(data).__name__}")
    blocks: list[Batch] = []
    pending: list[Batch] = []
    for i, item in enumerate(data):
        if not _is_single(item):
            raise TypeError(
                f"`{what}` as an iterable must yield batches ({_CONTRACT}); batch "
                f"{i} is a {type(item).__name__}"
            )
        b = Batch.of(item, f"{what} batch {i}")
        if pending and b.spec != pending[0].spec:
            raise TypeError(
                f"`{what}` batches must all have the same structure: batch 0 is "
                f"{pending[0].describe()}, batch {i} is {b.describe()}"
            )
        if blocks and b.spec != blocks[0].spec:
            raise TypeError(
                f"`{what}` batches must all have the same structure: batch 0 is "
                f"{blocks[0].describe()}, batch {i} is {b.describe()}"
            )
        if pending and b.signature() != pending[0].signature():
            blocks.append(_concat(pending))
            pending = []
        pending.append(b)
    if pending:
        blocks.append(_concat(pending))
    if not blocks:
        raise ValueError(f"`{what}` yielded no batches")
    # a loader's order may change from pass to pass (shuffle=True): read it in
    # one canonical order, so every pass and every resumed store agrees
    return Data(tuple(blocks)).canonical()
