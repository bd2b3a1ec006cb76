"""Paths between two minima: the straight line, its barrier, and trained curves.

Are two trained networks in one valley or in two? Along the straight line
``θ(t) = (1 − t)·θ_A + t·θ_B`` the loss often rises in the middle: the
*barrier* (:func:`barrier`). A curved path between the same two points can
nevertheless stay low (Garipov, Izmailov, Podoprikhin, Vetrov & Wilson, "Loss
Surfaces, Mode Connectivity, and Fast Ensembling of DNNs", NeurIPS 2018;
Draxler, Veschgini, Salmhofer & Hamprecht, "Essentially No Barriers in Neural
Network Energy Landscape", ICML 2018).

* :func:`linear_path` evaluates the straight line (optionally after
  :func:`lossmap.nn.align`, which removes the barrier that only comes from
  permuted hidden units), with BatchNorm statistics re-estimated at every
  point when the model has BatchNorm (a stale running mean is a known cause
  of false barriers).
* :func:`train_curve` (in :mod:`lossmap.nn._curve`, with :class:`Curve`)
  trains a quadratic Bezier curve (or one of higher degree) or a polygonal
  chain with one or more bends between fixed ends by minimising the loss
  averaged over the curve, ``E_{t∼U(0,1)} L(θ(t))``
  (Garipov et al. 2018, section 3), one random ``t`` per mini-batch. Any
  module works: the curve's point is fed through
  ``torch.func.functional_call``, the user's layers are never rewritten. The
  bends and the optimiser's momentum are saved after every epoch, so an
  interrupted (or extended) training resumes where it stopped.
* :func:`curve_path` evaluates the loss and metrics along a curve, into a
  resumable :class:`~lossmap.io.GridStore` when asked.
* :meth:`Curve.plane` gives the plane through the curve's ends and middle
  control point (:func:`lossmap.nn.plane_through`), in which a quadratic
  Bezier curve lies entirely: computing that plane with
  :func:`lossmap.nn.plane` shows the low-loss tunnel.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from lossmap._validation import check_choice, check_int
from lossmap.nn import _bn
from lossmap.nn._curve import (
    CURVES,
    Curve,
    _fingerprint,
    _module,
    _same_parameters,
    train_curve,
)
from lossmap.nn._prepare import prepare
from lossmap.nn.directions import Direction, interpolation
from lossmap.nn.engine import Evaluator
from lossmap.nn.evaluate import line
from lossmap.nn.options import Options
from lossmap.surface import Surface

__all__ = [
    "CURVES",
    "Curve",
    "barrier",
    "curve_path",
    "linear_path",
    "train_curve",
]

_BN = ("auto", *_bn.BN_MODES)


# ----------------------------------------------------------------- helpers
def _bn_mode(model: nn.Module, bn: str, options: Mapping[str, Any]) -> str:
    """``bn`` resolved; ``"auto"`` defers to an ``options=Options(bn=...)``
    that asks for something other than the default ``"eval"``."""
    check_choice("bn", bn, _BN)
    if bn != "auto":
        return bn
    given = getattr(options.get("options"), "bn", "eval")
    if given != "eval":
        return given
    return "recompute" if _bn.has_batchnorm(model) else "eval"


def barrier(path: Surface, field: str = "loss") -> dict[str, float]:
    """The barrier along a path from ``t = 0`` to ``t = 1``.

    Parameters
    ----------
    path : Surface
        One axis (the path parameter), e.g. from :func:`linear_path` or
        :func:`curve_path`.
    field : str, default "loss"

    Returns
    -------
    dict
        ``height``: the largest value along the path minus the mean of the
        two ends (Frankle, Dziugaite, Roy & Carbin, "Linear Mode Connectivity
        and the Lottery Ticket Hypothesis", ICML 2020); ``chord``: the
        largest value above the straight chord between the ends, ``max_t
        [L(t) − ((1−t)·L(0) + t·L(1))]`` (Entezari, Sedghi, Saukh &
        Neyshabur, ICLR 2022), never negative and zero on a convex loss;
        ``t`` and ``max``: where the largest value is and what it is;
        ``start`` and ``end``: the ends' values.

    Examples
    --------
    >>> import numpy as np
    >>> from lossmap import Surface
    >>> t = np.linspace(0, 1, 5)
    >>> path = Surface(axes={"t": t}, fields={"loss": [1.0, 2.0, 4.0, 3.0, 3.0]})
    >>> b = barrier(path)
    >>> b["height"], b["chord"], b["t"]
    (2.0, 2.0, 0.5)
    """
    if not isinstance(path, Surface) or path.ndim != 1:
        raise TypeError(
            f"`path` must be a 1-D Surface (a path from t=0 to t=1), got "
            f"{type(path).__name__}"
            + (f" with {path.ndim} axes" if isinstance(path, Surface) else "")
        )
    t = path.coords(0)
    v = np.asarray(path.field(field), dtype=np.float64)
    if not (np.isfinite(v[0]) and np.isfinite(v[-1])):
        raise ValueError(
            f"the path's ends must have finite {field!r} values, got {v[0]} and {v[-1]}"
        )
    s = (t - t[0]) / (t[-1] - t[0]) if t.size > 1 else np.zeros(1)
    k = int(np.nanargmax(v))
    chord = np.nanmax(v - ((1.0 - s) * v[0] + s * v[-1]))
    return {
        "height": float(v[k] - 0.5 * (v[0] + v[-1])),
        "chord": float(max(chord, 0.0)),
        "t": float(t[k]),
        "max": float(v[k]),
        "start": float(v[0]),
        "end": float(v[-1]),
    }


def _as_path(surface: Surface, meta: Mapping[str, Any]) -> Surface:
    """A line surface with its axis renamed ``t`` and the barrier recorded."""
    fields = {f: surface.field(f) for f in surface.field_names}
    out = Surface(
        axes={"t": surface.coords(0)},
        fields=fields,
        metadata={**surface.metadata, **meta},
    )
    extra = {"barrier": barrier(out)}
    if "accuracy" in fields and np.all(np.isfinite(fields["accuracy"])):
        # the error barrier: accuracy's largest drop below the ends' mean
        acc = barrier(out.with_fields(loss=1.0 - fields["accuracy"]))
        extra["error_barrier"] = acc
    return out.with_metadata(**extra)


# ------------------------------------------------------------- linear path
def linear_path(
    model_a: Any,
    model_b: Any,
    loss_fn: Any,
    data: Any,
    *,
    steps: int = 25,
    bn: str = "auto",
    progress: bool = False,
    **options: Any,
) -> Surface:
    """The loss on the straight line from model A (``t = 0``) to model B.

    Parameters
    ----------
    model_a, model_b : torch.nn.Module or Alignment
        Two models with the same parameters (B may be ``align(A, B)``).
        Neither is changed.
    loss_fn, data
        As for :func:`lossmap.nn.line`.
    steps : int, default 25
        Points on the line, ends included.
    bn : {"auto", "eval", "batch", "recompute"}
        BatchNorm statistics at each point: ``"auto"`` (default) re-estimates
        them from the data (``"recompute"``) when the model has BatchNorm
        layers; ``"eval"`` uses model A's running statistics everywhere,
        which makes a false barrier when B's differ.
    options
        Any other option of :func:`lossmap.nn.line` (``metrics``,
        ``batch_size``, ``bn_data``, ``dtype``, ...).

    Returns
    -------
    Surface
        Axis ``"t"`` (0 … 1); fields ``"loss"`` and metrics; metadata
        ``kind="nn.linear_path"``, ``barrier`` (see :func:`barrier`) and,
        with accuracy, ``error_barrier``.
    """
    a = _module(model_a, "model_a")
    b = _module(model_b, "model_b")
    _same_parameters(a, b)
    mode = _bn_mode(a, bn, options)
    steps = check_int("steps", steps, minimum=2, maximum=10_001)
    s = line(
        a,
        loss_fn,
        data,
        interpolation(a, b),
        center=a,
        span=(0.0, 1.0),
        steps=steps,
        bn=mode,
        progress=progress,
        **options,
    )
    return _as_path(s, {"kind": "nn.linear_path", "bn": mode, "path": "linear"})


# ------------------------------------------------------------- along curve
def curve_path(
    curve: Curve,
    model: nn.Module,
    loss_fn: Any,
    data: Any,
    *,
    steps: int = 41,
    bn: str = "auto",
    store: str | Path | None = None,
    chunk: int = 8,
    **options: Any,
) -> Surface:
    """The loss (and metrics) at ``steps`` evenly spaced ``t`` along ``curve``.

    The curve lies in the affine span of its control points,
    ``θ(t) = θ_0 + Σ_{j≥1} w_j(t)·(θ_j − θ_0)`` (the weights sum to one), so
    the engine evaluates it like a grid over ``len(points) − 1`` directions
    at the coordinates ``w_1(t) … w_n(t)``: one set-up for all points, many
    points per pass. ``bn="auto"`` re-estimates BatchNorm statistics at every
    point when the model has BatchNorm (Garipov et al. 2018 do the same: the
    bends have no running statistics of their own).

    Parameters
    ----------
    curve : Curve
    model : torch.nn.Module
        The architecture (its parameters are replaced by the curve's).
    steps : int, default 41
    bn : {"auto", "eval", "batch", "recompute"}
    store : path, optional
        A resumable :class:`~lossmap.io.GridStore` on the axis ``t``;
        ``chunk`` points per chunk. Reopening needs the same curve and
        settings.
    options
        Any other option of :func:`lossmap.nn.line` except the grid's own
        (``metrics``, ``batch_size``, ``bn_data``, ``options=`` ...).

    Returns
    -------
    Surface
        Axis ``"t"``; fields ``"loss"`` and metrics; metadata
        ``kind="nn.curve_path"``, the curve's settings and ``barrier``.
    """
    if not isinstance(curve, Curve):
        raise TypeError(f"`curve` must be a Curve, got {type(curve).__name__}")
    model = _module(model, "model")
    mode = _bn_mode(model, bn, options)
    steps = check_int("steps", steps, minimum=2, maximum=10_001)
    chunk = check_int("chunk", chunk, minimum=1)
    ts = np.linspace(0.0, 1.0, steps)
    given = options.pop("options", None)
    opts = Options.merge(
        given, {**options, "bn": mode}, caller="curve_path", grid=False
    )
    base = curve.points[0]
    directions = [
        Direction(
            {n: p[n] - base[n] for n in curve.names},
            {"kind": "curve_control", "index": j},
        )
        for j, p in enumerate(curve.points[1:], start=1)
    ]
    opts = dataclasses.replace(opts, center=base, subset=None, params=None)
    call = prepare(model, loss_fn, data, directions, len(directions), opts)
    fields = list(call.spec.fields)
    meta = {
        **call.meta,
        "kind": "nn.curve_path",
        "path": curve.kind,
        "bn": mode,
        "curve": {
            k: v
            for k, v in curve.meta.items()
            if k not in ("train_loss", "store", "epochs")
        },
    }
    meta["fingerprint"] = {
        **meta.get("fingerprint", {}),
        "curve": _fingerprint([t for p in curve.points for t in p.values()]),
    }
    out = {f: np.full(steps, np.nan) for f in fields}
    grid_store = None
    todo = [(i,) for i in range(math.ceil(steps / chunk))]
    if store is not None:
        from lossmap.io import GridStore

        grid_store = GridStore.open(
            store, axes={"t": ts}, fields=fields, chunks=(chunk,), metadata=meta
        )
        todo = grid_store.missing()
    with Evaluator(call.spec) as ev:
        for idx in todo:
            sl = slice(idx[0] * chunk, min((idx[0] + 1) * chunk, steps))
            values = ev.evaluate(curve.weights(ts[sl])[:, 1:])
            block = {f: np.asarray(values[f], dtype=np.float64) for f in fields}
            for f in fields:
                out[f][sl] = block[f]
            if grid_store is not None:
                grid_store.write(idx, block)
    if grid_store is not None:
        surface = grid_store.to_surface()
    else:
        surface = Surface(axes={"t": ts}, fields=out, metadata=meta)
    return _as_path(surface, {})
