"""Loss of a PyTorch model along a line or over a plane of its parameters.

:func:`line` and :func:`plane` check every input, then evaluate the loss (and
metrics) on a regular grid of coordinates through the engine
(:mod:`lossmap.nn.engine`), chunk by chunk: in this process, on any
``concurrent.futures.Executor``, and optionally into a resumable store.
:func:`evaluate_params` is the plain one-point reference.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from lossmap._validation import check_choice, check_float, check_int
from lossmap.nn import _bn
from lossmap.nn._data import materialise, resolve_metrics
from lossmap.nn.directions import Direction, random_directions
from lossmap.nn.engine import (
    DEFAULT_MEMORY,
    STRATEGIES,
    EngineSpec,
    Evaluator,
    run_chunk,
)
from lossmap.nn.params import ParamSpace
from lossmap.surface import Surface

__all__ = ["RandomLines", "evaluate_params", "line", "plane", "random_lines"]

MAX_STEPS = 10_001
#: Chunks per axis when ``chunk`` is not given.
CHUNKS_PER_AXIS = 8


# ------------------------------------------------------------------ checks
def _dtype(dtype: Any, default: torch.dtype) -> torch.dtype:
    if dtype is None:
        return default
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None) if dtype.isidentifier() else None
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(
            f"`dtype` must be a floating torch dtype such as torch.float32 or "
            f"'float64', got {dtype!r}"
        )
    return dtype


def _span(span: Any, name: str = "span") -> tuple[float, float]:
    if isinstance(span, int | float | np.number) and not isinstance(span, bool):
        s = check_float(name, span, minimum=0.0, strict_min=True)
        return -s, s
    try:
        lo, hi = span
    except (TypeError, ValueError):
        raise TypeError(
            f"`{name}` must be a positive number or a pair (lo, hi), got {span!r}"
        ) from None
    lo = check_float(f"{name}[0]", lo)
    hi = check_float(f"{name}[1]", hi)
    if not lo < hi:
        raise ValueError(f"`{name}` must satisfy lo < hi, got ({lo}, {hi})")
    return lo, hi


def _plane_spans(span: Any) -> list[tuple[float, float]]:
    """``span`` as a number, a pair (lo, hi), or one of those per axis."""
    if (
        isinstance(span, Sequence)
        and len(span) == 2
        and all(isinstance(s, Sequence) for s in span)
    ):
        return [_span(s, f"span[{i}]") for i, s in enumerate(span)]
    return [_span(span)] * 2


def _plane_steps(steps: Any) -> list[int]:
    if isinstance(steps, Sequence) and not isinstance(steps, str):
        if len(steps) != 2:
            raise ValueError(f"`steps` must be an int or a pair of ints, got {steps!r}")
        return [
            check_int(f"steps[{i}]", s, minimum=2, maximum=MAX_STEPS)
            for i, s in enumerate(steps)
        ]
    return [check_int("steps", steps, minimum=2, maximum=MAX_STEPS)] * 2


def _center(
    model: nn.Module, center: Any, space: ParamSpace, name: str = "center"
) -> dict[str, torch.Tensor]:
    if center is None:
        return {n: p.detach() for n, p in model.named_parameters()}
    if isinstance(center, nn.Module):
        other = ParamSpace(center)
        if other.shapes != space.shapes:
            raise ValueError(
                "`center` must be a model with the same parameters (names and "
                f"shapes) as `model`, got {other!r}"
            )
        return {n: p.detach() for n, p in center.named_parameters()}
    if isinstance(center, Mapping):
        space.check(center, what=name)
        own = {n: p.detach() for n, p in model.named_parameters()}
        return {
            n: torch.as_tensor(center.get(n, own[n])).detach().to(own[n])
            for n in space.names
        }
    raise TypeError(
        f"`center` must be None, a model or a mapping of parameter name to tensor, "
        f"got {type(center).__name__}"
    )


def _directions(dirs: Any, count: int, space: ParamSpace) -> list[Direction]:
    if isinstance(dirs, Direction):
        dirs = [dirs]
    if not isinstance(dirs, Sequence) or len(dirs) != count:
        what = "one Direction" if count == 1 else f"a pair of {count} Directions"
        raise ValueError(f"`directions` must be {what}, got {dirs!r:.80}")
    out = []
    for i, d in enumerate(dirs):
        if not isinstance(d, Direction):
            raise TypeError(
                f"`directions[{i}]` must be a lossmap.nn.Direction, got "
                f"{type(d).__name__}"
            )
        space.check(d.tensors, what=f"directions[{i}]")
        zeros = space.zeros()
        full = {n: d.tensors.get(n, zeros[n]) for n in space.names}
        out.append(Direction(full, dict(d.meta)))
    return out


def _fingerprint(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        a = t.detach().cpu().contiguous()
        h.update(str((tuple(a.shape), str(a.dtype))).encode())
        h.update(
            a.reshape(-1).view(torch.uint8).numpy().tobytes() if a.numel() else b""
        )
    return h.hexdigest()[:16]


def _probe(spec: EngineSpec) -> None:
    """Run the model once on a few rows at the center; raise clear errors."""
    rows = min(int(spec.inputs.shape[0]), 8)
    device = next(iter(spec.center.values())).device
    x = spec.inputs[:rows].to(device)
    x = x.to(spec.dtype) if x.is_floating_point() else x
    y = spec.targets[:rows].to(device)
    y = y.to(spec.dtype) if y.is_floating_point() else y
    work = _bn.working_copy(spec.model)
    with _bn.ModelGuard(work) as guard, torch.no_grad():
        _bn.configure(guard, work, "batch" if spec.bn == "batch" else "eval")
        params = {n: t.to(spec.dtype) for n, t in spec.center.items()}
        buffers = {
            n: (b.to(spec.dtype) if b.is_floating_point() else b)
            for n, b in work.named_buffers()
        }
        try:
            out = functional_call(work, (params, buffers), (x,))
        except Exception as exc:
            raise ValueError(
                f"`data` does not fit the model: calling it on inputs of shape "
                f"{tuple(x.shape)} ({x.dtype}) failed with {type(exc).__name__}: {exc}"
            ) from exc
        shape = tuple(getattr(out, "shape", ()))
        checks = [
            ("loss_fn", spec.loss_fn),
            *((f"metrics[{k!r}]", f) for k, f in spec.metrics.items()),
        ]
        for name, fn in checks:
            try:
                value = fn(out, y)
            except Exception as exc:
                raise ValueError(
                    f"`{name}` failed on model outputs of shape {shape} and targets "
                    f"of shape {tuple(y.shape)}: {type(exc).__name__}: {exc}"
                ) from exc
            if not isinstance(value, torch.Tensor) or value.numel() != 1:
                got = (
                    tuple(value.shape)
                    if isinstance(value, torch.Tensor)
                    else type(value).__name__
                )
                raise ValueError(
                    f"`{name}` must return a scalar tensor (the mean over the batch), "
                    f"got {got}"
                )


@dataclass(frozen=True)
class _Call:
    spec: EngineSpec
    meta: dict[str, Any]


def _prepare(
    model: Any,
    loss_fn: Any,
    data: Any,
    dirs: Any,
    ndim: int,
    *,
    metrics: Any,
    bn: str,
    center: Any,
    subset: Any,
    seed: Any,
    dtype: Any,
    batch_size: Any,
    bn_data: Any,
    strategy: str,
    memory: Any,
) -> _Call:
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"`model` must be a torch.nn.Module, got {type(model).__name__}"
        )
    if not callable(loss_fn):
        raise TypeError(f"`loss_fn` must be callable, got {loss_fn!r}")
    check_choice("bn", bn, _bn.BN_MODES)
    check_choice("strategy", strategy, STRATEGIES)
    metric_fns = resolve_metrics(metrics)
    space = ParamSpace(model)
    cen = _center(model, center, space, "params" if ndim == 0 else "center")
    dtype = _dtype(dtype, space.dtype)
    directions = _directions(dirs, ndim, space) if ndim else []
    x, y = materialise(data)
    n = int(x.shape[0])
    if subset is not None:
        subset = check_int("subset", subset, minimum=2, maximum=n)
    if seed is not None:
        seed = check_int("seed", seed)
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, minimum=1)
    memory = (
        DEFAULT_MEMORY
        if memory is None
        else check_int("memory", memory, minimum=1 << 20)
    )
    bx = None
    if bn_data is not None:
        if bn != "recompute":
            raise ValueError(
                f"`bn_data` is used only with bn='recompute', got bn={bn!r}"
            )
        bx, _ = materialise(bn_data)
    spec = EngineSpec(
        model=model,
        loss_fn=loss_fn,
        metrics=metric_fns,
        inputs=x,
        targets=y,
        center=cen,
        directions=[d.tensors for d in directions],
        bn=bn,
        dtype=dtype,
        batch_size=batch_size,
        subset=subset if subset is not None and subset < n else None,
        seed=seed,
        bn_inputs=bx,
        strategy=strategy,
        memory=memory,
    )
    _probe(spec)
    import lossmap

    meta = {
        "model": type(model).__name__,
        "n_params": space.size,
        "directions": [d.meta for d in directions],
        "direction_norms": [d.norm() for d in directions],
        "normalisation": [d.meta.get("norm") for d in directions],
        "bn": bn,
        "loss_fn": getattr(loss_fn, "__name__", type(loss_fn).__name__),
        "metrics": list(metric_fns),
        "data": {
            "n_samples": n,
            "subset": spec.subset,
            "seed": seed,
            "batch_size": batch_size,
            "input_shape": list(x.shape[1:]),
        },
        "dtype": str(dtype).removeprefix("torch."),
        "device": str(next(iter(cen.values())).device),
        "fingerprint": {
            "center": _fingerprint(*cen.values()),
            "directions": [_fingerprint(*d.tensors.values()) for d in directions],
            "data": _fingerprint(x, y),
        },
        "versions": {"torch": torch.__version__, "lossmap": lossmap.__version__},
    }
    return _Call(spec, meta)


# --------------------------------------------------------------- the grid
def _chunks(shape: tuple[int, ...], chunk: Any) -> tuple[int, ...]:
    if chunk is None:
        return tuple(max(1, math.ceil(s / CHUNKS_PER_AXIS)) for s in shape)
    if isinstance(chunk, int | np.integer) and not isinstance(chunk, bool):
        chunk = (chunk,) * len(shape)
    if not isinstance(chunk, Sequence) or len(chunk) != len(shape):
        raise ValueError(
            f"`chunk` must be an int or {len(shape)} ints (grid points per chunk "
            f"along each axis), got {chunk!r}"
        )
    return tuple(check_int(f"chunk[{i}]", c, minimum=1) for i, c in enumerate(chunk))


def _run_grid(
    call: _Call,
    axes: dict[str, np.ndarray],
    *,
    chunk: Any,
    store: Any,
    executor: Executor | None,
    progress: bool,
    kind: str,
) -> Surface:
    spec = call.spec
    shape = tuple(len(a) for a in axes.values())
    chunks = _chunks(shape, chunk)
    coords = list(axes.values())
    meta = {"kind": kind, **call.meta, "chunks": list(chunks)}
    fields = spec.fields
    counts = [math.ceil(s / c) for s, c in zip(shape, chunks)]
    all_idx = list(itertools.product(*(range(k) for k in counts)))

    def slices(idx: tuple[int, ...]) -> tuple[slice, ...]:
        return tuple(
            slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(idx, chunks, shape)
        )

    grid_store = None
    todo = all_idx
    if store is not None:
        from lossmap.io import GridStore

        grid_store = GridStore.open(
            store, axes=axes, fields=fields, chunks=chunks, metadata=meta
        )
        todo = [tuple(i) for i in grid_store.missing()]
        slices = grid_store.chunk_slices

    def coeffs_of(idx: tuple[int, ...]) -> np.ndarray:
        """Coordinates of a chunk's points, shape (n_points, ndim), "ij" order."""
        sl = slices(idx)
        mesh = np.meshgrid(*(c[s] for c, s in zip(coords, sl)), indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=1)

    out = {f: np.full(shape, np.nan) for f in fields}
    engine_info: dict[str, Any] = {}

    def store_block(idx: tuple[int, ...], values: dict[str, np.ndarray]) -> None:
        sl = slices(idx)
        bshape = tuple(s.stop - s.start for s in sl)
        block = {f: values[f].reshape(bshape) for f in fields}
        for f in fields:
            out[f][sl] = block[f]
        if grid_store is not None:
            grid_store.write(idx, block)

    total = sum(int(np.prod([s.stop - s.start for s in slices(i)])) for i in todo)
    with _progress(progress, total, kind) as advance:
        if executor is None:
            with Evaluator(spec) as ev:
                # group chunks so that each engine pass is full; every chunk
                # is still stored as soon as its group is done
                group: list[tuple[tuple[int, ...], np.ndarray]] = []
                for k, idx in enumerate(todo):
                    group.append((idx, coeffs_of(idx)))
                    size = sum(len(c) for _, c in group)
                    if size < ev.points_per_pass and k + 1 < len(todo):
                        continue
                    values = ev.evaluate(
                        np.concatenate([c for _, c in group]), callback=advance
                    )
                    start = 0
                    for gidx, c in group:
                        part = {f: v[start : start + len(c)] for f, v in values.items()}
                        store_block(gidx, part)
                        start += len(c)
                    group = []
                engine_info = ev.describe()
        else:
            futures = []
            for idx in todo:
                c = coeffs_of(idx)
                futures.append(executor.submit(run_chunk, spec, idx, c))
            for fut in as_completed(futures):
                idx, values, info = fut.result()
                store_block(tuple(idx), values)
                engine_info = info
                advance(int(values["loss"].size))
    if grid_store is not None:
        surface = grid_store.to_surface()
    else:
        surface = Surface(axes=axes, fields=out, metadata=meta)
    return surface.with_metadata(engine=engine_info)


class _progress:
    """A rich progress bar, or nothing."""

    def __init__(self, enabled: bool, total: int, kind: str) -> None:
        self.bar = None
        if enabled and total > 0:
            try:
                from rich.progress import Progress
            except ImportError:  # pragma: no cover - rich is optional
                return
            self.bar = Progress(transient=False)
            self.task = self.bar.add_task(f"{kind} ({total} points)", total=total)

    def __enter__(self) -> Any:
        if self.bar is None:
            return lambda n: None
        self.bar.start()
        return lambda n: self.bar.advance(self.task, n)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()


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
        Byte budget for vmap batches and cached activations (default 1 GiB).
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
) -> Surface:
    (
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
    span : float or (lo, hi), or one per axis
        Coordinates run over ``[-span, span]`` or ``[lo, hi]``.
    steps : int or (int, int)
        Grid points per axis, 2 to 10,001.
    """
        + _DOC_OPTIONS
        + """
    Returns
    -------
    Surface
        Axes ``"alpha"`` (shape ``(n_alpha,)``) and ``"beta"``; fields
        ``"loss"`` and metrics, shape ``(n_alpha, n_beta)`` ("ij" indexing);
        metadata records how to recompute it.
    """
    )
    spans = _plane_spans(span)
    steps_ = _plane_steps(steps)
    call = _prepare(
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
    )
    axes = {
        "alpha": np.linspace(*spans[0], steps_[0]),
        "beta": np.linspace(*spans[1], steps_[1]),
    }
    call.meta.update(span=[list(s) for s in spans], steps=steps_)
    return _run_grid(
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
) -> Surface:
    """The loss along the line ``θ₀ + α·d``.

    Same options as :func:`plane`; ``span=(0, 1)`` with ``center=model_a``
    and ``direction=interpolation(model_a, model_b)`` runs from A to B.

    Returns
    -------
    Surface
        Axis ``"alpha"``, fields of shape ``(steps,)``.
    """
    lo_hi = _span(span)
    steps = check_int("steps", steps, minimum=2, maximum=MAX_STEPS)
    call = _prepare(
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
    )
    call.meta.update(span=[list(lo_hi)], steps=[steps])
    axes = {"alpha": np.linspace(*lo_hi, steps)}
    return _run_grid(
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
    call = _prepare(
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
    span: Any = 1.0,
    steps: int = 51,
    **options: Any,
) -> RandomLines:
    """``count`` random directions (seed, indices 0…count−1), one line each.

    Shows how much a single random picture depends on its seed. ``options``
    are passed to :func:`line`.
    """
    count = check_int("count", count, minimum=1)
    dirs = random_directions(model, count, seed=seed, norm=norm, ignore=ignore)
    surfaces = [
        line(model, loss_fn, data, d, span=span, steps=steps, **options) for d in dirs
    ]
    alpha = surfaces[0].coords("alpha")
    names = [f for f in surfaces[0].field_names if not f.endswith("_stderr")]
    stacked = {f: np.stack([s.field(f) for s in surfaces]) for f in names}
    meta = dict(surfaces[0].metadata)
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
