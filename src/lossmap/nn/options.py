"""The options shared by :func:`~lossmap.nn.plane`, :func:`~lossmap.nn.line`,
:func:`~lossmap.nn.random_lines` and :func:`~lossmap.nn.evaluate_params`.

One frozen :class:`Options` object holds them; each entry point takes
``options=`` and/or the same names as keyword arguments (keywords win), so
``plane(..., batch_size=64)`` and ``plane(..., options=Options(batch_size=64))``
are the same call.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from lossmap._validation import check_choice, check_int
from lossmap.nn._bn import BN_MODES
from lossmap.nn.engine import PRECISIONS, STRATEGIES

__all__ = ["Options"]

#: Options that only make sense for a grid (not for one point).
GRID_ONLY = ("store", "overwrite", "executor", "progress", "chunk")


@dataclass(frozen=True)
class Options:
    """How a line, plane or single point is evaluated.

    Parameters
    ----------
    metrics : None, str, list of str or dict of str to callable
        Extra fields, e.g. ``"accuracy"``, or ``{name: fn(logits, targets)}``
        returning a batch mean, per-row values or ``(sum, count)``.
    params : None, str, module, callable or list of these
        The parameters the directions move (names, glob patterns such as
        ``"*.attention.*"``, compiled regular expressions matched against
        whole names, sub-modules, or ``predicate(name, tensor)``);
        direction components outside the selection are set to zero.
        Default: all.
    call : {"auto", "kwargs", "positional", "single"} or callable
        How the model is called on a batch's inputs, or
        ``call(model, batch) -> output`` (see :mod:`lossmap.nn.batch`).
    targets : "auto", "batch", key, index or callable
        What the loss and metrics receive beside the output: ``"auto"`` the
        targets of an ``(inputs, targets)`` pair, else the whole batch.
    logits : "auto", attribute name or callable
        Where metrics find the logits in the output (``"auto"``: the output
        itself when it is a tensor, else its ``.logits``).
    reduction : {"mean", "sum", "batch"} or dict of term name to one
        How a scalar loss value is reduced over a tile's rows.
    weights : dict of term name to float, optional
        Weights of named loss terms in the total (default 1 each).
    optimize : bool
        ``False`` evaluates every point by a plain forward pass (no ``torch.fx``
        split, no ``vmap``); the engine also falls back to that by itself when
        an optimisation would change what the model or loss computes.
    bn : {"eval", "batch", "recompute"}
        BatchNorm statistics: running (default), of each tile, or re-estimated
        from the data at every point (see :mod:`lossmap.nn._bn`).
    center : None, model or dict
        The point at the origin (default: the model's parameters).
    subset : int, optional
        Evaluate on this many random samples (``seed``); adds
        ``<field>_stderr`` fields.
    seed : int, optional
        Seed of the subset draw.
    dtype : torch dtype or str, optional
        Evaluation precision (default: the model's).
    batch_size : int, optional
        Rows per data tile (default 1,024; 128 for images; about 8,192 tokens
        for token tensors). Values never depend on it, except where the
        batch is part of what is asked: with ``bn="batch"`` each tile is
        normalised by its own statistics, with ``bn="recompute"`` the running
        statistics are averaged over tiles of this size (the BN update), and
        the ``_stderr`` fields of ``subset=`` come from the spread between
        tiles. Without a ``batch_size`` those use a size fixed by the data
        (the defaults above; at least 8 tiles for ``subset=``), never one
        the engine picks for speed.
    bn_data : batch or DataLoader, optional
        Data for ``bn="recompute"`` (default ``data``).
    strategy : {"auto", "vmap", "loop"}
        Force the engine's strategy (default: chosen from the model's cost).
    memory : int, optional
        Byte budget for vmap batches and cached activations (default 1 GiB;
        one vmap pass also stays within 64 MiB, to stay near the cache).
    precision : {"float", "bf16"}
        ``"bf16"`` is a fast preview: forward passes run under bfloat16
        autocast (float32 evaluation only; values still added in float64),
        about twice as fast on CPUs with bfloat16 matrix units. Only where
        bfloat16 is native (AMX or AVX-512-BF16, see ``lossmap._cpu``; CUDA
        from Ampere on); elsewhere it is refused with a ValueError. The
        centre, corners and edge midpoints of the grid are re-evaluated in
        full precision; metadata records ``precision="bf16-autocast"`` and
        ``precision_error``, the largest loss difference at those points, a
        sample, not a bound.
    store : path, optional
        Write each chunk to a resumable store as it finishes (grids only).
        Rerunning the same call resumes it; a store made with other settings
        is refused (the message names what differs).
    overwrite : bool
        Start the ``store`` again: an existing lossmap store at that path is
        removed and every point computed afresh. A path holding anything
        else is refused with a ValueError and left untouched. Needs
        ``store``.
    executor : concurrent.futures.Executor, optional
        Evaluate chunks as jobs on it (model, loss and metrics must pickle for
        process pools; grids only).
    progress : bool
        Show a progress bar (grids only).
    chunk : int or tuple of int, optional
        Grid points per chunk along each axis (default: an eighth of each
        axis; grids only).
    """

    metrics: Any = None
    params: Any = None
    call: Any = "auto"
    targets: Any = "auto"
    logits: Any = "auto"
    reduction: Any = "mean"
    weights: Any = None
    optimize: bool = True
    bn: str = "eval"
    center: Any = None
    subset: int | None = None
    seed: int | None = None
    dtype: Any = None
    batch_size: int | None = None
    bn_data: Any = None
    strategy: str = "auto"
    memory: int | None = None
    precision: str = "float"
    store: Any = None
    overwrite: bool = False
    executor: Executor | None = None
    progress: bool = True
    chunk: Any = None

    def __post_init__(self) -> None:
        check_choice("bn", self.bn, BN_MODES)
        check_choice("strategy", self.strategy, STRATEGIES)
        check_choice("precision", self.precision, PRECISIONS)
        if not isinstance(self.optimize, bool):
            raise TypeError(f"`optimize` must be True or False, got {self.optimize!r}")
        if not isinstance(self.overwrite, bool):
            raise TypeError(
                f"`overwrite` must be True or False, got {self.overwrite!r}"
            )
        if not isinstance(self.progress, bool):
            raise TypeError(f"`progress` must be True or False, got {self.progress!r}")
        if self.subset is not None:
            check_int("subset", self.subset, minimum=2)
        if self.seed is not None:
            check_int("seed", self.seed)
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size, minimum=1)
        if self.memory is not None:
            check_int("memory", self.memory, minimum=1 << 20)
        if self.bn_data is not None and self.bn != "recompute":
            raise ValueError(
                f"`bn_data` is used only with bn='recompute', got bn={self.bn!r}"
            )

    @classmethod
    def merge(
        cls,
        options: Options | None,
        overrides: dict[str, Any],
        *,
        caller: str,
        grid: bool = True,
    ) -> Options:
        """``options`` (or the defaults) with ``overrides`` applied.

        Unknown names raise a TypeError listing the valid ones, as Python does
        for an unexpected keyword argument.
        """
        if options is None:
            options = cls()
        elif not isinstance(options, Options):
            raise TypeError(
                f"`options` must be a lossmap.nn.Options, got {type(options).__name__}"
            )
        names = [f.name for f in dataclasses.fields(cls)]
        allowed = names if grid else [n for n in names if n not in GRID_ONLY]
        unknown = sorted(set(overrides) - set(allowed))
        if unknown:
            raise TypeError(
                f"{caller}() got unexpected keyword argument(s) {unknown}; its "
                f"options are {allowed}"
            )
        if not grid:
            merged = {n: getattr(options, n) for n in GRID_ONLY}
            merged.update({n: v for n, v in overrides.items() if n in GRID_ONLY})
            set_grid = [
                n for n in ("store", "executor", "chunk") if merged[n] is not None
            ] + (["overwrite"] if merged["overwrite"] else [])
            if set_grid:
                raise TypeError(
                    f"{caller}() evaluates one point; options {set_grid} apply to "
                    "grids only"
                )
        merged_opts = (
            dataclasses.replace(options, **overrides) if overrides else options
        )
        if merged_opts.overwrite and merged_opts.store is None:
            raise ValueError(
                f"{caller}() got overwrite=True without a `store`: overwrite "
                "starts a stored computation again, so give store=PATH too"
            )
        return merged_opts
