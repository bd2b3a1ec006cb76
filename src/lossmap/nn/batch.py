"""The batch contract: what data may be, how a model is called on it, and how
loss terms and metrics are read and added up exactly over tiles.

What a batch may be
-------------------
A *batch* is a tensor, a tuple or list of batches, or a mapping of names to
batches (nesting allowed); every tensor in it is a *leaf* and all leaves share
their leading (row) dimension. ``data`` given to :func:`lossmap.nn.plane` and
friends is one batch, or an iterable of batches (a ``DataLoader``), which is
read once (:func:`materialise`).

* ``(inputs, targets)``: a pair; ``inputs`` may itself be a tensor, a tuple
  or a mapping;
* ``{"input_ids": ..., "attention_mask": ..., "labels": ...}``: a mapping
  (HuggingFace's ``BatchEncoding`` included);
* ``(x, mask, y)`` or ``[x1, x2]``: a tuple or list;
* a single tensor.

The engine cuts the data into tiles along the leading dimension, all leaves
together; nothing is dropped.

How the model is called (``call``) and what the loss sees (``targets``)
-----------------------------------------------------------------------
``targets="auto"`` (default) treats a 2-element tuple or list as
``(inputs, targets)``; any other batch has no separate targets and is the
model's input as a whole. The model's *inputs* are then passed by ``call``:

``"auto"``      a mapping as keyword arguments (``model(**inputs)``), a tuple
                or list positionally (``model(*inputs)``), a tensor as one
                argument;
``"kwargs"``    ``model(**inputs)``; ``"positional"``: ``model(*inputs)``;
``"single"``    ``model(inputs)`` whatever it is;
a callable      ``call(model, batch)`` returns the output; ``model`` is a
                function running the network with the evaluated parameters
                and ``batch`` the whole batch.

The loss and metric functions receive ``(output, t)`` where ``t`` is chosen
by ``targets``: ``"auto"`` the pair's second element, or the whole batch for
any other batch (so ``loss_fn(output, batch)``); ``"batch"`` always the
whole batch (a pair is then not split: the model gets all of it); a string
key or an integer index into the batch; or a callable ``targets(batch)``.

Loss terms and their reduction
------------------------------
``loss`` is a callable ``loss_fn(output, t)``, the string
:data:`OUTPUT_LOSS` (``"output.loss"``: the model output's own ``.loss``, as
HuggingFace models return it when the batch holds ``labels``), or a mapping
``{name: loss}`` of named terms, each one of those, added with ``weights``.

A term (or metric) returns one of:

* a scalar, reduced over the tile's rows as its ``reduction`` says:
  ``"mean"`` (per-row mean, the default of ``torch.nn.functional`` losses),
  ``"sum"`` (the value over the data is the sum of the tiles' values) or
  ``"batch"`` (only meaningful on all data at once: tiling is switched off);
* unreduced values, a tensor whose first dimension is the tile's rows (per row
  or per token): their mean over all entries (their sum with ``"sum"``);
* a pair ``(sum, count)``, e.g. from :func:`sum_count` with a mask: the value
  is the total sum over the total count, which makes masked token losses
  (padding, ``ignore_index``) and terms on different rows (the data rows and
  collocation rows of a physics-informed loss) exact.

Every term and metric is carried across tiles as (sum, count) and divided
once at the end, so no value depends on the tiling. Before any grid point is
evaluated, :func:`check_tiling` compares a prefix of the data evaluated as one
tile with the same rows split in two and refuses a loss whose value changes
(a sum declared as a mean, a token mean returned as a scalar, ...).

The total ``loss`` is ``Σ weight_k · term_k`` of the exact term values; with
more than one term each term is also a field under its own name.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = [
    "CALLS",
    "METRICS",
    "OUTPUT_LOSS",
    "REDUCTIONS",
    "Batch",
    "ContractError",
    "Data",
    "Objective",
    "Term",
    "accuracy",
    "check_tiling",
    "materialise",
    "sum_count",
    "token_cross_entropy",
]

#: The model output's own loss (``output.loss`` or ``output["loss"]``).
OUTPUT_LOSS = "output.loss"
#: How a scalar term is reduced over a tile's rows.
REDUCTIONS = ("mean", "sum", "batch")
#: How the model is called on its inputs (or a callable ``call(model, batch)``).
CALLS = ("auto", "kwargs", "positional", "single")
#: Label value excluded from token metrics (PyTorch's and HuggingFace's
#: ``ignore_index``).
IGNORE_INDEX = -100

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


# --------------------------------------------------------------- metrics
def sum_count(
    values: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum, count)`` of ``values`` where ``mask`` is true (all if None).

    Return this from a loss term or metric to make it exact over tiles when
    it averages over some of the rows or tokens only. Entries outside the
    mask do not contribute, even when they are not finite.
    """
    if mask is None:
        return values.sum(), torch.as_tensor(float(values.numel()))
    mask = mask.to(torch.bool)
    zero = torch.zeros((), dtype=values.dtype, device=values.device)
    picked = torch.where(mask, values, zero)
    return picked.sum(), mask.sum().to(values.dtype)


def _correct(
    outputs: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(number correct, number counted); integer targets equal to
    :data:`IGNORE_INDEX` are not counted."""
    if outputs.dim() >= 2 and outputs.shape[-1] > 1:
        pred = outputs.argmax(dim=-1)
        if targets.dim() == outputs.dim() and targets.is_floating_point():
            targets = targets.argmax(dim=-1)
        if pred.shape != targets.shape:
            raise ValueError(
                f"accuracy needs class scores of shape (..., classes) and class "
                f"indices of the same leading shape, got scores {tuple(outputs.shape)} "
                f"and targets {tuple(targets.shape)}"
            )
        hit = (pred == targets).to(outputs.dtype)
        if not targets.is_floating_point():
            return sum_count(hit, targets != IGNORE_INDEX)
        return sum_count(hit)
    n = outputs.shape[0]
    if outputs.numel() != n or targets.numel() != n:
        raise ValueError(
            f"accuracy of binary logits needs one logit and one target per row, "
            f"got outputs {tuple(outputs.shape)} and targets {tuple(targets.shape)}"
        )
    pred = outputs.reshape(n) > 0
    hit = (pred == (targets.reshape(n) > 0.5)).to(outputs.dtype)
    return sum_count(hit)


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Fraction of correct predictions.

    Outputs of shape ``(..., c)`` with ``c > 1`` are class scores (argmax);
    targets are class indices of shape ``(...)`` (entries equal to -100, the
    usual ``ignore_index``, are not counted) or one-hot/probabilities
    ``(..., c)``. Outputs of shape ``(n,)`` or ``(n, 1)`` are logits of the
    positive class (positive when > 0) against targets in {0, 1}.
    """
    s, c = _correct(outputs, targets)
    return s / c


#: Metrics available by name: each returns ``(sum, count)`` from
#: ``(logits, targets)``.
METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor], Any]] = {"accuracy": _correct}


# ------------------------------------------------------------- objective
@dataclass(frozen=True)
class Term:
    """One named, weighted loss term (or metric)."""

    name: str
    fn: Any  # callable(output, t) or OUTPUT_LOSS
    weight: float = 1.0
    reduction: str = "mean"
    builtin: bool = False  # a METRICS entry: reads logits and tensor targets

    def describe(self) -> dict[str, Any]:
        fn = self.fn
        label = (
            fn if isinstance(fn, str) else getattr(fn, "__name__", type(fn).__name__)
        )
        return {"fn": label, "weight": self.weight, "reduction": self.reduction}


def _loss_terms(loss: Any, weights: Any, reduction: Any) -> tuple[Term, ...]:
    if isinstance(loss, Mapping):
        if not loss:
            raise ValueError("`loss_fn` as a mapping of named terms must not be empty")
        named = dict(loss)
    else:
        named = {"loss": loss}
    for name, fn in named.items():
        what = "loss_fn" if name == "loss" else f"loss_fn[{name!r}]"
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"`loss_fn` term names must be identifiers, got {name!r}")
        if not (callable(fn) or fn == OUTPUT_LOSS):
            raise TypeError(
                f"`{what}` must be a callable loss_fn(output, targets), or "
                f"{OUTPUT_LOSS!r} (the output's own .loss), or a mapping of term "
                f"names to these; got {fn!r}"
            )
    if len(named) > 1 and "loss" in named:
        raise ValueError("a loss term cannot be called 'loss' (the total's field)")
    weights = {} if weights is None else weights
    if not isinstance(weights, Mapping):
        raise TypeError(
            f"`weights` must be a mapping of term name to number, got {weights!r}"
        )
    unknown = sorted(set(weights) - set(named))
    if unknown:
        raise ValueError(
            f"`weights` must name loss terms {sorted(named)}, got unknown {unknown}"
        )
    if isinstance(reduction, Mapping):
        unknown = sorted(set(reduction) - set(named))
        if unknown:
            raise ValueError(
                f"`reduction` must name loss terms {sorted(named)}, got unknown "
                f"{unknown}"
            )
        reds = {n: reduction.get(n, "mean") for n in named}
    else:
        reds = dict.fromkeys(named, reduction)
    terms = []
    for name, fn in named.items():
        red = reds[name]
        if red not in REDUCTIONS:
            raise ValueError(
                f"`reduction` must be one of {list(REDUCTIONS)} (or a mapping of "
                f"term name to one), got {red!r}"
            )
        w = weights.get(name, 1.0)
        if (
            isinstance(w, bool)
            or not isinstance(w, int | float)
            or not math.isfinite(w)
        ):
            raise TypeError(f"`weights[{name!r}]` must be a finite number, got {w!r}")
        terms.append(Term(name, fn, float(w), red))
    return tuple(terms)


def _metric_terms(metrics: Any, taken: set[str]) -> tuple[Term, ...]:
    if metrics is None:
        return ()
    if isinstance(metrics, str):
        metrics = [metrics]
    out: dict[str, Term] = {}
    if isinstance(metrics, Mapping):
        for name, fn in metrics.items():
            out[name] = Term(name, fn)
    elif isinstance(metrics, Iterable):
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
            out[m] = Term(m, METRICS[m], builtin=True)
    else:
        raise TypeError(
            f"`metrics` must be None, a name, a list of names or a mapping, got "
            f"{type(metrics).__name__}"
        )
    for name, t in out.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"metric names must be non-empty strings, got {name!r}")
        if name == "loss" or name.endswith("_stderr") or name in taken:
            raise ValueError(f"metric name {name!r} is reserved or a loss term's name")
        if not callable(t.fn):
            raise TypeError(f"metric {name!r} must be callable, got {t.fn!r}")
    return tuple(out.values())


def _attr(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping) and name in obj:
        return obj[name]
    return getattr(obj, name, None)


@dataclass(frozen=True)
class Objective:
    """How a model is called on a batch and how its terms and metrics are read.

    Build with :meth:`build`; the engine, the one-point reference and the
    curvature operators all evaluate through it.

    Attributes
    ----------
    terms : tuple of Term
        The loss terms (one, called ``"loss"``, for a plain loss).
    metrics : tuple of Term
    call, targets, logits :
        The conventions (see the module documentation).
    """

    terms: tuple[Term, ...]
    metrics: tuple[Term, ...] = ()
    call: Any = "auto"
    targets: Any = "auto"
    logits: Any = "auto"
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(
        cls,
        loss_fn: Any,
        *,
        metrics: Any = None,
        call: Any = "auto",
        targets: Any = "auto",
        logits: Any = "auto",
        reduction: Any = "mean",
        weights: Any = None,
    ) -> Objective:
        """Check every convention and return the objective."""
        terms = _loss_terms(loss_fn, weights, reduction)
        mets = _metric_terms(metrics, {t.name for t in terms})
        if not (callable(call) or call in CALLS):
            raise ValueError(
                f"`call` must be one of {list(CALLS)} or a callable "
                f"call(model, batch), got {call!r}"
            )
        if not (
            callable(targets)
            or isinstance(targets, str)
            or (isinstance(targets, int) and not isinstance(targets, bool))
        ):
            raise TypeError(
                "`targets` must be 'auto', 'batch', a key, an index or a callable "
                f"targets(batch), got {targets!r}"
            )
        if not (callable(logits) or isinstance(logits, str)):
            raise TypeError(
                "`logits` must be 'auto', an attribute or key name such as "
                f"'logits', or a callable logits(output), got {logits!r}"
            )
        return cls(terms, mets, call, targets, logits)

    # ------------------------------------------------------------ fields
    @property
    def fields(self) -> list[str]:
        """``"loss"``, then each term's name (with several terms), then metrics."""
        names = ["loss"]
        if len(self.terms) > 1:
            names += [t.name for t in self.terms]
        return names + [m.name for m in self.metrics]

    @property
    def parts(self) -> tuple[Term, ...]:
        """Every aggregated quantity: terms, then metrics."""
        return self.terms + self.metrics

    @property
    def whole_batch(self) -> bool:
        """Whether a term can only be evaluated on all data at once."""
        return any(t.reduction == "batch" for t in self.terms)

    @property
    def has_sum(self) -> bool:
        return any(t.reduction == "sum" for t in self.terms)

    def describe(self) -> dict[str, Any]:
        def conv(v: Any) -> Any:
            if callable(v):
                return getattr(v, "__name__", type(v).__name__)
            return v

        return {
            "terms": {t.name: t.describe() for t in self.terms},
            "metrics": [m.name for m in self.metrics],
            "call": conv(self.call),
            "targets": conv(self.targets),
            "logits": conv(self.logits),
        }

    # ---------------------------------------------------------- reading
    def is_pair(self, batch: Batch) -> bool:
        return self.targets == "auto" and batch.kind == "pair"

    def inputs_of(self, batch: Batch, value: Any | None = None) -> Any:
        """What the model is called on: a pair's first element, else the batch."""
        value = batch.value if value is None else value
        return value[0] if self.is_pair(batch) else value

    def model_args(self, batch: Batch, value: Any | None = None) -> tuple[tuple, dict]:
        """Positional and keyword arguments of the model (not for a callable
        ``call``)."""
        inputs = self.inputs_of(batch, value)
        how = self.call
        if how == "auto":
            if isinstance(inputs, Mapping):
                return (), dict(inputs)
            if isinstance(inputs, tuple | list):
                return tuple(inputs), {}
            return (inputs,), {}
        if how == "kwargs":
            if not isinstance(inputs, Mapping):
                raise TypeError(
                    f"`call` 'kwargs' needs model inputs that are a mapping, got "
                    f"{type(inputs).__name__}"
                )
            return (), dict(inputs)
        if how == "positional":
            if isinstance(inputs, tuple | list):
                return tuple(inputs), {}
            if isinstance(inputs, Mapping):
                raise TypeError(
                    "`call` 'positional' needs model inputs that are a tensor, tuple "
                    "or list, got a mapping"
                )
            return (inputs,), {}
        return (inputs,), {}

    def single_input(self, batch: Batch) -> bool:
        """Whether the model is called on one tensor (what ``torch.fx`` splits
        and ``channels_last`` need)."""
        if callable(self.call):
            return False
        try:
            args, kwargs = self.model_args(batch)
        except TypeError:
            return False
        return len(args) == 1 and not kwargs and isinstance(args[0], torch.Tensor)

    def forward(self, fn: Callable[..., Any], batch: Batch, value: Any = None) -> Any:
        """The model's output on ``batch``; ``fn(*args, **kwargs)`` runs it."""
        value = batch.value if value is None else value
        if callable(self.call):
            return self.call(fn, value)
        args, kwargs = self.model_args(batch, value)
        return fn(*args, **kwargs)

    def target_of(self, batch: Batch, value: Any) -> Any:
        t = self.targets
        if t == "auto":
            return value[1] if batch.kind == "pair" else value
        if t == "batch":
            return value
        if callable(t):
            return t(value)
        try:
            return value[t]
        except (KeyError, IndexError, TypeError):
            raise ValueError(
                f"`targets` {t!r} is not in the batch; the batch is {batch.describe()}"
            ) from None

    def logits_of(self, output: Any) -> Any:
        how = self.logits
        if callable(how):
            return how(output)
        if how == "auto":
            if isinstance(output, torch.Tensor):
                return output
            found = _attr(output, "logits")
            return output if found is None else found
        found = _attr(output, how.removeprefix("output."))
        if found is None:
            raise ValueError(
                f"`logits` {how!r}: the model output ({type(output).__name__}) has no "
                f"attribute or key {how.removeprefix('output.')!r}"
            )
        return found

    def _tensor_targets(self, target: Any) -> torch.Tensor:
        if isinstance(target, torch.Tensor):
            return target
        labels = _attr(target, "labels") if isinstance(target, Mapping) else None
        if isinstance(labels, torch.Tensor):
            return labels
        raise ValueError(
            "named metrics need target tensors: give (inputs, targets), a batch "
            "with a 'labels' key, or `targets=` naming where they are; got "
            f"{type(target).__name__}"
        )

    def read(
        self, output: Any, batch: Batch, value: Any = None, *, explain: bool = False
    ) -> list[tuple]:
        """``(sum, count)`` tensors of every term and metric on one tile.

        Pure tensor code (``vmap``-able), no data-dependent Python branches.
        ``explain=True`` turns an error inside a term or metric into a
        :class:`ContractError` naming it and the shapes it got (the probe uses
        it; the engine lets the user's own errors through unchanged).
        """
        value = batch.value if value is None else value
        target = self.target_of(batch, value)
        out = []
        for t in self.parts:
            try:
                raw = self._call_term(t, output, target)
            except Exception as exc:
                if isinstance(exc, ContractError) or not explain:
                    raise
                raise ContractError(
                    f"{_what(t, self)} failed on model outputs of "
                    f"{_shape_words(output)} and targets of "
                    f"{_shape_words(target)}: {type(exc).__name__}: {exc}"
                ) from exc
            out.append(_as_parts(raw, t, batch.n, _what(t, self)))
        return out

    def _call_term(self, t: Term, output: Any, target: Any) -> Any:
        if t.builtin:
            return t.fn(self.logits_of(output), self._tensor_targets(target))
        if t.fn == OUTPUT_LOSS:
            raw = _attr(output, "loss")
            if raw is None:
                raise ContractError(
                    f"`loss_fn` {OUTPUT_LOSS!r}: the model output "
                    f"({type(output).__name__}) has no .loss; HuggingFace models "
                    "return one when the batch holds `labels`"
                )
            return raw
        if t in self.metrics:
            return t.fn(self.logits_of(output), target)
        _check_shapes(output, target, t)
        return t.fn(output, target)

    def finish(self, sums: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
        """Field values from totals of shape ``(n_parts, ...)``."""
        vals = {}
        for i, t in enumerate(self.parts):
            if t.reduction == "sum":
                vals[t.name] = sums[i]
            else:
                with np.errstate(invalid="ignore", divide="ignore"):
                    vals[t.name] = sums[i] / counts[i]
        out: dict[str, np.ndarray] = {}
        if len(self.terms) > 1:
            out["loss"] = sum(t.weight * vals[t.name] for t in self.terms)
            out.update({t.name: vals[t.name] for t in self.terms})
        else:
            t = self.terms[0]
            out["loss"] = t.weight * vals[t.name]
        out.update({m.name: vals[m.name] for m in self.metrics})
        return out


class ContractError(ValueError):
    """A loss term or metric that the batch contract cannot read."""


def _what(t: Term, obj: Objective | None = None) -> str:
    if obj is not None and t in obj.metrics:
        return f"`metrics[{t.name!r}]`"
    return "`loss_fn`" if t.name == "loss" else f"`loss_fn[{t.name!r}]`"


def _shape_words(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"shape {tuple(x.shape)}"
    if isinstance(x, Mapping):
        return f"{type(x).__name__} with keys {list(x)}"
    return type(x).__name__


def _check_shapes(output: Any, target: Any, t: Term) -> None:
    """Refuse outputs and targets that broadcast to a larger tensor, such as
    ``(n, 1)`` against ``(n,)``, which gives an ``n × n`` loss."""
    if not (isinstance(output, torch.Tensor) and isinstance(target, torch.Tensor)):
        return
    if not output.is_floating_point():
        return
    if output.shape == target.shape:
        return
    try:
        joint = torch.broadcast_shapes(output.shape, target.shape)
    except RuntimeError:
        return
    if math.prod(joint) > max(output.numel(), target.numel()):
        raise ContractError(
            f"{_what(t)}: model outputs of shape {tuple(output.shape)} and targets "
            f"of shape {tuple(target.shape)} broadcast to {tuple(joint)}, which "
            "compares every output with every target; reshape one of them (e.g. "
            "outputs.squeeze(-1) or targets.unsqueeze(-1))"
        )


def _as_parts(
    raw: Any, t: Term, rows: int, what: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum, count) from what a term returned (see the module documentation)."""
    if isinstance(raw, tuple | list):
        if len(raw) != 2:
            raise ContractError(
                f"{what} returned a {type(raw).__name__} of {len(raw)} items; "
                "return a scalar, per-row values or a (sum, count) pair"
            )
        s, c = (torch.as_tensor(v) for v in raw)
        if s.numel() != 1 or c.numel() != 1:
            raise ContractError(
                f"{what} returned (sum, count) of shapes {tuple(s.shape)} and "
                f"{tuple(c.shape)}; both must be scalars"
            )
        return s.reshape(()), c.reshape(()).to(s.dtype)
    if not isinstance(raw, torch.Tensor):
        if isinstance(raw, int | float):
            raw = torch.as_tensor(float(raw))
        else:
            raise ContractError(
                f"{what} returned a {type(raw).__name__}; return a scalar tensor, "
                "per-row values or a (sum, count) pair"
            )
    if raw.numel() == 1 and raw.dim() <= 1:
        v = raw.reshape(())
        if t.reduction == "mean":
            n = torch.as_tensor(float(rows), dtype=v.dtype, device=v.device)
            return v * n, n
        # "sum": the count is not used; "batch": the value of the one tile
        n = torch.as_tensor(
            float(rows if t.reduction == "sum" else 1), dtype=v.dtype, device=v.device
        )
        return v, n
    if raw.dim() >= 1 and raw.shape[0] == rows:
        c = torch.as_tensor(float(raw.numel()), dtype=raw.dtype, device=raw.device)
        return raw.sum(), c
    raise ContractError(
        f"{what} returned a tensor of shape {tuple(raw.shape)} on a tile of "
        f"{rows} rows; return a scalar, per-row values of shape ({rows}, ...) or a "
        "(sum, count) pair"
    )


def token_cross_entropy(
    *, shift: bool = False, ignore_index: int = IGNORE_INDEX, labels: str = "labels"
) -> Callable[[Any, Any], tuple[torch.Tensor, torch.Tensor]]:
    """A token-level cross-entropy ``loss_fn(output, batch)`` exact over tiles.

    Reads the logits (``output.logits``, or the output itself when it is a
    tensor) and ``batch[labels]`` (or the targets when they are a tensor) and
    returns ``(sum, count)`` over the tokens whose label is not
    ``ignore_index``. ``shift=True`` predicts token ``t + 1`` from position
    ``t``, as HuggingFace's causal language models do; its mean equals their
    ``output.loss`` over the whole data.
    """

    def token_cross_entropy(output: Any, target: Any) -> tuple:
        logits = output if isinstance(output, torch.Tensor) else _attr(output, "logits")
        y = target if isinstance(target, torch.Tensor) else _attr(target, labels)
        if not isinstance(logits, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise ValueError(
                "token_cross_entropy needs logits (a tensor output or output.logits) "
                f"and labels (a tensor target or batch[{labels!r}])"
            )
        if shift:
            logits, y = logits[..., :-1, :], y[..., 1:]
        per = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(),
            y.reshape(-1),
            ignore_index=ignore_index,
            reduction="none",
        ).to(logits.dtype)
        return sum_count(per, y.reshape(-1) != ignore_index)

    return token_cross_entropy


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
