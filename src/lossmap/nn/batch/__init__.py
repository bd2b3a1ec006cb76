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

Where it lives: :mod:`._data` (the structures and the tiled data),
:mod:`._objective` (calls, terms, metrics, their exact reading) and
:mod:`._tiling` (the check that the tiling changes nothing).
"""

from __future__ import annotations

from lossmap.nn.batch._data import (
    ROWS_DENSE,
    ROWS_IMAGES,
    TOKENS_PER_TILE,
    Batch,
    Data,
    materialise,
)
from lossmap.nn.batch._objective import (
    CALLS,
    IGNORE_INDEX,
    METRICS,
    OUTPUT_LOSS,
    REDUCTIONS,
    ContractError,
    Objective,
    Term,
    accuracy,
    sum_count,
    token_cross_entropy,
)
from lossmap.nn.batch._tiling import CHECK_ROWS, aggregate, check_tiling, tolerance

__all__ = [
    "CALLS",
    "CHECK_ROWS",
    "IGNORE_INDEX",
    "METRICS",
    "OUTPUT_LOSS",
    "REDUCTIONS",
    "ROWS_DENSE",
    "ROWS_IMAGES",
    "TOKENS_PER_TILE",
    "Batch",
    "ContractError",
    "Data",
    "Objective",
    "Term",
    "accuracy",
    "aggregate",
    "check_tiling",
    "materialise",
    "sum_count",
    "token_cross_entropy",
    "tolerance",
]
