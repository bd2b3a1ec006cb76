"""Loss of a PyTorch model along a line or over a plane of its parameters.

:func:`line` and :func:`plane` check every input, then evaluate the loss (and
metrics) on a regular grid of coordinates through the engine
(:mod:`lossmap.nn.engine`), chunk by chunk: in this process, on any
``concurrent.futures.Executor``, and optionally into a resumable store.
:func:`evaluate_params` is the plain one-point reference.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from lossmap._validation import check_int
from lossmap.nn._grid import check_chunks, run_grid
from lossmap.nn._prepare import MAX_STEPS, plane_spans, plane_steps, prepare, span_of
from lossmap.nn.directions import Direction, random_directions
from lossmap.nn.engine import Evaluator
from lossmap.nn.options import Options
from lossmap.nn.trajectory import fit_spans
from lossmap.surface import Surface

__all__ = ["RandomLines", "evaluate_params", "line", "plane", "random_lines"]


# ---------------------------------------------------------------- public
def plane(
    model: nn.Module,
    loss_fn: Any,
    data: Any,
    directions: Sequence[Direction],
    *,
    span: Any = 1.0,
    steps: Any = 51,
    options: Options | None = None,
    metadata: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Surface:
    """The loss over the plane ``θ₀ + α·d₁ + β·d₂``.

    Parameters
    ----------
    model : torch.nn.Module
        Never modified: its ``state_dict()`` and train/eval flags are the same
        afterwards.
    loss_fn : callable, "output.loss" or dict of str to either
        ``loss_fn(output, targets)`` (a batch mean, per-row values or
        ``(sum, count)``); ``"output.loss"`` reads the model output's own
        loss (HuggingFace); a dict gives named terms, each a field, added
        with ``weights`` into ``"loss"``. See :mod:`lossmap.nn.batch`.
    data : batch or DataLoader
        ``(inputs, targets)``, a mapping or tuple of tensors, or an iterable of
        these; read once into memory.
    directions : pair of Direction
        ``d₁`` and ``d₂``.
    span : float or (lo, hi), or one per axis, or "auto"
        Coordinates run over ``[-span, span]`` or ``[lo, hi]``. ``"auto"``
        (PCA directions): the grid covers the recorded path and the centre,
        with a 10 % margin; a given span that cuts the path is warned about.
    steps : int or (int, int)
        Grid points per axis, 2 to 10,001.
    options : Options, optional
        Shared options (see :class:`~lossmap.nn.Options`); any of its fields
        can also be given as a keyword argument, which wins.
    metadata : mapping, optional
        Extra JSON-friendly provenance added to the result's (and the store's)
        metadata, e.g. the command that made it. Keys starting with ``_`` are
        not part of a store's settings.

    Returns
    -------
    Surface
        Axes ``"alpha"`` (shape ``(n_alpha,)``) and ``"beta"``; fields
        ``"loss"``, one per named loss term, and metrics, shape
        ``(n_alpha, n_beta)`` ("ij" indexing); metadata records how to
        recompute it (directions' ``meta``, span, steps, BatchNorm mode, data
        size, structure and subset, the loss terms and conventions, the
        parameter selection, dtype, versions, fingerprints of center,
        directions and data) and, under ``"engine"``, how the work was
        organised.

    Notes
    -----
    With ``store=PATH`` each chunk is saved as it finishes and rerunning the
    same call resumes; ``overwrite=True`` starts the store again (it removes
    only a lossmap store, see :meth:`lossmap.io.GridStore.remove`).

    With a ``ProcessPoolExecutor`` use the ``"spawn"`` start method
    (``mp_context=multiprocessing.get_context("spawn")``): forking a process
    whose torch thread pool is running can hang the workers.
    """
    opts = Options.merge(options, kwargs, caller="plane")
    auto = isinstance(span, str) and span == "auto"
    spans = None if auto else plane_spans(span)
    steps_ = plane_steps(steps)
    check_chunks(tuple(steps_), opts.chunk)
    call = prepare(model, loss_fn, data, directions, 2, opts)
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
    return run_grid(call, axes, opts, kind="nn.plane")


def line(
    model: nn.Module,
    loss_fn: Any,
    data: Any,
    direction: Direction,
    *,
    span: Any = 1.0,
    steps: int = 51,
    options: Options | None = None,
    metadata: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Surface:
    """The loss along the line ``θ₀ + α·d``.

    Same arguments and options as :func:`plane` (``span`` a number, one
    (lo, hi) pair or ``"auto"``, ``steps`` an int); ``span=(0, 1)`` with
    ``center=model_a`` and ``direction=interpolation(model_a, model_b)`` runs
    from A to B.

    Returns
    -------
    Surface
        Axis ``"alpha"``, fields of shape ``(steps,)``.
    """
    opts = Options.merge(options, kwargs, caller="line")
    auto = isinstance(span, str) and span == "auto"
    lo_hi = None if auto else span_of(span)
    steps = check_int("steps", steps, minimum=2, maximum=MAX_STEPS)
    check_chunks((steps,), opts.chunk)
    call = prepare(model, loss_fn, data, direction, 1, opts)
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
    return run_grid(call, axes, opts, kind="nn.line")


def evaluate_params(
    model: nn.Module,
    loss_fn: Any,
    data: Any,
    params: Mapping[str, torch.Tensor] | None = None,
    *,
    options: Options | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """Loss and metrics at one parameter setting, by a plain forward pass.

    ``params`` gives values for some or all parameters (others keep the
    model's); they are loaded with ``functional_call`` and the data run in
    tiles. This is the per-point reference the batched engine must match.
    ``options`` and keyword arguments as for :func:`plane`, except the grid
    options (``store``, ``executor``, ``chunk``) and ``center`` (``params``
    is the point).

    Returns
    -------
    dict of str to float
        ``{"loss": ..., <term>: ..., <metric>: ...}``.
    """
    if "center" in kwargs or (options is not None and options.center is not None):
        raise TypeError("evaluate_params() takes the point as `params`, not `center`")
    opts = Options.merge(options, kwargs, caller="evaluate_params", grid=False)
    opts = dataclasses.replace(
        opts, center=params, subset=None, strategy="auto", params=None
    )
    call = prepare(model, loss_fn, data, None, 0, opts)
    spec = call.spec
    spec.strategy = "loop-plain"
    with Evaluator(spec) as ev:
        values = ev.evaluate(np.zeros((1, 0)))
    return {k: float(v[0]) for k, v in values.items()}


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
    options: Options | None = None,
    **kwargs: Any,
) -> RandomLines:
    """``count`` random directions (seed, indices 0…count−1), one line each.

    Shows how much a single random picture depends on its seed. ``options``
    and keyword arguments are those of :func:`line`; ``params=`` restricts
    the directions to a parameter selection.
    """
    opts = Options.merge(options, kwargs, caller="random_lines")
    if params is not None:  # one selection for the directions and the lines
        opts = dataclasses.replace(opts, params=params)
    params = opts.params
    count = check_int("count", count, minimum=1)
    if opts.store is not None and count > 1:
        # one store holds one grid: the second line would be refused (or, with
        # overwrite=True, would delete the first line's values)
        raise ValueError(
            f"`store` holds one line, got count={count}: call line() with a "
            "store per direction, or leave store=None"
        )
    dirs = random_directions(
        model, count, seed=seed, norm=norm, ignore=ignore, params=params
    )
    surfaces = [
        line(model, loss_fn, data, d, span=span, steps=steps, options=opts)
        for d in dirs
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
