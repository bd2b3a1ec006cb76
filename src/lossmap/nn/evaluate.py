"""Loss of a PyTorch model along a line or over a plane of its parameters.

:func:`line` and :func:`plane` check every input, then evaluate the loss (and
metrics) on a regular grid of coordinates through the engine
(:mod:`lossmap.nn.engine`), chunk by chunk: in this process, on any
``concurrent.futures.Executor``, and optionally into a resumable store.
:func:`evaluate_params` is the plain one-point reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from lossmap._validation import check_choice, check_int
from lossmap.nn._grid import run_grid
from lossmap.nn._prepare import MAX_STEPS, plane_spans, plane_steps, prepare, span_of
from lossmap.nn.directions import Direction, random_directions
from lossmap.nn.engine import PRECISIONS, Evaluator
from lossmap.nn.trajectory import fit_spans
from lossmap.surface import Surface

__all__ = ["RandomLines", "evaluate_params", "line", "plane", "random_lines"]

# ---------------------------------------------------------------- public
_DOC_OPTIONS = """
    metrics : None, str, list of str or dict of str to callable
        Extra fields, e.g. ``"accuracy"``, or ``{name: fn(outputs, targets)}``
        returning a batch mean.
    bn : {"eval", "batch", "recompute"}
        BatchNorm statistics: running (default), of each tile, or re-estimated
        from the data at every point (see :mod:`lossmap.nn._bn`).
    store : path, optional
        Write each chunk to a resumable store as it finishes.
    executor : concurrent.futures.Executor, optional
        Evaluate chunks as jobs on it (model, loss and metrics must pickle for
        process pools).
    progress : bool
        Show a progress bar.
    center : None, model or dict
        The point at the origin (default: the model's parameters).
    subset : int, optional
        Evaluate on this many random samples (``seed``); adds
        ``<field>_stderr`` fields.
    seed : int, optional
        Seed of the subset draw.
    dtype : torch dtype or str, optional
        Evaluation precision (default: the model's).
    chunk : int or tuple of int, optional
        Grid points per chunk along each axis (default: an eighth of each axis).
    batch_size : int, optional
        Rows per data tile (default 1,024, or 128 for images).
    bn_data : (inputs, targets) or DataLoader, optional
        Data for ``bn="recompute"`` (default ``data``).
    strategy : {"auto", "vmap", "loop"}
        Force the engine's strategy (default: chosen from the model's cost).
    memory : int, optional
        Byte budget for vmap batches and cached activations (default 1 GiB;
        one vmap pass also stays within 64 MiB, to stay near the cache).
    precision : {"float", "bf16"}
        ``"bf16"`` is a fast preview: forward passes run under bfloat16
        autocast (float32 evaluation only; losses still averaged in float64),
        about twice as fast on CPUs with bfloat16 matrix units. Only where
        bfloat16 is native (AMX or AVX-512-BF16, see ``lossmap._cpu``; CUDA
        from Ampere on); elsewhere it is refused with a ValueError. The centre,
        corners and edge midpoints of the grid (9 points on a plane) are then
        re-evaluated in full precision; metadata records
        ``precision="bf16-autocast"`` and ``precision_error``, the largest loss
        difference at those points. It is a sample, not a bound: elsewhere on
        the grid the difference can be several times larger.
    metadata : mapping, optional
        Extra JSON-friendly provenance added to the result's (and the store's)
        metadata, e.g. the command that made it. Keys starting with ``_`` are
        not part of a store's settings.
"""


def plane(
    model: nn.Module,
    loss_fn: Any,
    data: Any,
    directions: Sequence[Direction],
    *,
    span: Any = 1.0,
    steps: Any = 51,
    metrics: Any = None,
    bn: str = "eval",
    store: Any = None,
    executor: Executor | None = None,
    progress: bool = True,
    center: Any = None,
    subset: int | None = None,
    seed: int | None = None,
    dtype: Any = None,
    chunk: Any = None,
    batch_size: int | None = None,
    bn_data: Any = None,
    strategy: str = "auto",
    memory: int | None = None,
    precision: str = "float",
    metadata: Mapping[str, Any] | None = None,
) -> Surface:
    """The loss over the plane ``θ₀ + α·d₁ + β·d₂``.

    Parameters
    ----------
    model : torch.nn.Module
        Never modified: its ``state_dict()`` and train/eval flags are the same
        afterwards.
    loss_fn : callable
        ``loss_fn(outputs, targets)`` returning the batch mean (a scalar).
    data : (inputs, targets) tensors or a DataLoader
        Read once into tensors.
    directions : pair of Direction
        ``d₁`` and ``d₂``.
    span : float or (lo, hi), or one per axis, or "auto"
        Coordinates run over ``[-span, span]`` or ``[lo, hi]``. ``"auto"``
        (PCA directions): the grid covers the recorded path and the centre,
        with a 10 % margin; a given span that cuts the path is warned about.
    steps : int or (int, int)
        Grid points per axis, 2 to 10,001.
    <options>
    Returns
    -------
    Surface
        Axes ``"alpha"`` (shape ``(n_alpha,)``) and ``"beta"``; fields
        ``"loss"`` and metrics, shape ``(n_alpha, n_beta)`` ("ij" indexing);
        metadata records how to recompute it (directions' ``meta``, span,
        steps, BatchNorm mode, data size and subset, dtype, versions,
        fingerprints of center, directions and data) and, under
        ``"engine"``, how the work was organised.

    Notes
    -----
    With a ``ProcessPoolExecutor`` use the ``"spawn"`` start method
    (``mp_context=multiprocessing.get_context("spawn")``): forking a process
    whose torch thread pool is running can hang the workers.
    """
    check_choice("precision", precision, PRECISIONS)
    auto = isinstance(span, str) and span == "auto"
    spans = None if auto else plane_spans(span)
    steps_ = plane_steps(steps)
    call = prepare(
        model,
        loss_fn,
        data,
        directions,
        2,
        metrics=metrics,
        bn=bn,
        center=center,
        subset=subset,
        seed=seed,
        dtype=dtype,
        batch_size=batch_size,
        bn_data=bn_data,
        strategy=strategy,
        memory=memory,
        precision=precision,
    )
    spec = call.spec
    fitted = fit_spans(
        "auto" if auto else spans,
        call.meta["directions"],
        spec.directions,
        spec.center,
    )
    spans = fitted or spans
    axes = {
        "alpha": np.linspace(*spans[0], steps_[0]),
        "beta": np.linspace(*spans[1], steps_[1]),
    }
    call.meta.update(span=[list(s) for s in spans], steps=steps_)
    call.meta.update(metadata or {})
    return run_grid(
        call,
        axes,
        chunk=chunk,
        store=store,
        executor=executor,
        progress=progress,
        kind="nn.plane",
    )


def line(
    model: nn.Module,
    loss_fn: Any,
    data: Any,
    direction: Direction,
    *,
    span: Any = 1.0,
    steps: int = 51,
    metrics: Any = None,
    bn: str = "eval",
    store: Any = None,
    executor: Executor | None = None,
    progress: bool = True,
    center: Any = None,
    subset: int | None = None,
    seed: int | None = None,
    dtype: Any = None,
    chunk: Any = None,
    batch_size: int | None = None,
    bn_data: Any = None,
    strategy: str = "auto",
    memory: int | None = None,
    precision: str = "float",
    metadata: Mapping[str, Any] | None = None,
) -> Surface:
    """The loss along the line ``θ₀ + α·d``.

    Same options as :func:`plane` (``span`` a number, one (lo, hi) pair or
    ``"auto"``, ``steps`` an int); ``span=(0, 1)`` with ``center=model_a``
    and ``direction=interpolation(model_a, model_b)`` runs from A to B.

    Returns
    -------
    Surface
        Axis ``"alpha"``, fields of shape ``(steps,)``.
    """
    check_choice("precision", precision, PRECISIONS)
    auto = isinstance(span, str) and span == "auto"
    lo_hi = None if auto else span_of(span)
    steps = check_int("steps", steps, minimum=2, maximum=MAX_STEPS)
    call = prepare(
        model,
        loss_fn,
        data,
        direction,
        1,
        metrics=metrics,
        bn=bn,
        center=center,
        subset=subset,
        seed=seed,
        dtype=dtype,
        batch_size=batch_size,
        bn_data=bn_data,
        strategy=strategy,
        memory=memory,
        precision=precision,
    )
    fitted = fit_spans(
        "auto" if auto else [lo_hi],
        call.meta["directions"],
        call.spec.directions,
        call.spec.center,
    )
    lo_hi = fitted[0] if fitted else lo_hi
    call.meta.update(span=[list(lo_hi)], steps=[steps])
    call.meta.update(metadata or {})
    axes = {"alpha": np.linspace(*lo_hi, steps)}
    return run_grid(
        call,
        axes,
        chunk=chunk,
        store=store,
        executor=executor,
        progress=progress,
        kind="nn.line",
    )


def evaluate_params(
    model: nn.Module,
    loss_fn: Any,
    data: Any,
    params: Mapping[str, torch.Tensor] | None = None,
    *,
    metrics: Any = None,
    bn: str = "eval",
    batch_size: int | None = None,
    bn_data: Any = None,
    dtype: Any = None,
) -> dict[str, float]:
    """Loss and metrics at one parameter setting, by a plain forward pass.

    ``params`` gives values for some or all parameters (others keep the
    model's); they are loaded with ``functional_call`` and the data run in
    tiles. This is the per-point reference the batched engine must match.

    Returns
    -------
    dict of str to float
        ``{"loss": ..., <metric>: ...}``.
    """
    call = prepare(
        model,
        loss_fn,
        data,
        None,
        0,
        metrics=metrics,
        bn=bn,
        center=params,
        subset=None,
        seed=None,
        dtype=dtype,
        batch_size=batch_size,
        bn_data=bn_data,
        strategy="auto",
        memory=None,
    )
    spec = call.spec
    spec.strategy = "loop-plain"
    with Evaluator(spec) as ev:
        values = ev.evaluate(np.zeros((1, 0)))
    return {k: float(v[0]) for k, v in values.items()}


plane.__doc__ = (plane.__doc__ or "").replace(
    "    <options>\n", _DOC_OPTIONS.lstrip("\n")
)


# ---------------------------------------------------------- random lines
@dataclass(frozen=True)
class RandomLines:
    """The loss along many seeded random lines through one point.

    Attributes
    ----------
    curves : Surface
        Axes ``"line"`` (0 … count−1) and ``"alpha"``; fields shape
        ``(count, steps)``.
    summary : Surface
        Axis ``"alpha"``; per step the median (``"loss"``), quartiles
        (``"loss_q25"``, ``"loss_q75"``) and range (``"loss_min"``,
        ``"loss_max"``) over lines, likewise for each metric.
    """

    curves: Surface
    summary: Surface


def random_lines(
    model: nn.Module,
    loss_fn: Any,
    data: Any,
    *,
    count: int = 10,
    seed: int,
    norm: str | None = "filter",
    ignore: Any = "biasbn",
    params: Any = None,
    span: Any = 1.0,
    steps: int = 51,
    **options: Any,
) -> RandomLines:
    """``count`` random directions (seed, indices 0…count−1), one line each.

    Shows how much a single random picture depends on its seed. ``params``
    restricts the lines to a parameter selection (:func:`select`); ``options``
    are passed to :func:`line`.
    """
    count = check_int("count", count, minimum=1)
    dirs = random_directions(
        model, count, seed=seed, norm=norm, ignore=ignore, params=params
    )
    surfaces = [
        line(model, loss_fn, data, d, span=span, steps=steps, **options) for d in dirs
    ]
    alpha = surfaces[0].coords("alpha")
    names = [f for f in surfaces[0].field_names if not f.endswith("_stderr")]
    stacked = {f: np.stack([s.field(f) for s in surfaces]) for f in names}
    meta = dict(surfaces[0].metadata)
    if "precision_error" in meta:  # the worst line's check, not the first's
        meta["precision_error"] = max(s.metadata["precision_error"] for s in surfaces)
        meta["precision_errors"] = {
            f: max(s.metadata["precision_errors"][f] for s in surfaces)
            for f in meta["precision_errors"]
        }
    meta.update(
        kind="nn.random_lines",
        count=count,
        seed=seed,
        directions=[d.meta for d in dirs],
    )
    curves = Surface(
        axes={"line": np.arange(count), "alpha": alpha}, fields=stacked, metadata=meta
    )
    summary: dict[str, np.ndarray] = {}
    for f, v in stacked.items():
        summary[f] = np.median(v, axis=0)
        summary[f"{f}_q25"], summary[f"{f}_q75"] = np.percentile(v, [25, 75], axis=0)
        summary[f"{f}_min"], summary[f"{f}_max"] = v.min(axis=0), v.max(axis=0)
    return RandomLines(
        curves, Surface(axes={"alpha": alpha}, fields=summary, metadata=meta)
    )
