"""Running a grid through the engine, chunk by chunk.

In this process (chunks grouped so each engine pass is full), or as one job
per chunk on any ``concurrent.futures.Executor``; each finished chunk goes to
the resumable store when one is given.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import sys
import uuid
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import as_completed
from typing import Any

import numpy as np

from lossmap._progress import progress as _progress
from lossmap._validation import check_int
from lossmap.nn import _checks
from lossmap.nn._prepare import Call
from lossmap.nn.engine import Evaluator, run_chunk
from lossmap.nn.options import Options
from lossmap.surface import Surface

#: Chunks per axis when ``chunk`` is not given.
CHUNKS_PER_AXIS = 8


def check_chunks(shape: tuple[int, ...], chunk: Any) -> tuple[int, ...]:
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


def run_grid(
    call: Call, axes: dict[str, np.ndarray], options: Options, *, kind: str
) -> Surface:
    """Evaluate every grid point of ``axes`` (chunked, stored, on an executor
    as ``options`` say) and return the surface."""
    spec = call.spec
    chunk, store, executor = options.chunk, options.store, options.executor
    progress = options.progress
    _checks.check_reach(spec.center, spec.directions, axes, spec.dtype)
    shape = tuple(len(a) for a in axes.values())
    chunks = check_chunks(shape, chunk)
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
            store,
            axes=axes,
            fields=fields,
            chunks=chunks,
            metadata=meta,
            overwrite=options.overwrite,
        )
        todo, problems = grid_store.plan()  # missing or damaged
        todo = [tuple(i) for i in todo]
        slices = grid_store.chunk_slices
        _say_resuming(store, kind, shape, todo, problems, slices, enabled=progress)

    def coeffs_of(idx: tuple[int, ...]) -> np.ndarray:
        """Coordinates of a chunk's points, shape (n_points, ndim), "ij" order."""
        parts = [c[s] for c, s in zip(coords, slices(idx))]
        n = len(parts)
        out = np.empty((*(len(p) for p in parts), n))
        for i, p in enumerate(parts):  # axis i's coordinate, broadcast
            out[..., i] = p.reshape([-1 if j == i else 1 for j in range(n)])
        return out.reshape(-1, n)

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
    with _progress(total, kind, enabled=progress) as advance:
        if executor is None:
            with Evaluator(spec) as ev:
                _run_local(ev, todo, coeffs_of, store_block, advance)
                engine_info = ev.describe()
        else:
            engine_info = _run_executor(
                executor, spec, todo, coeffs_of, store_block, advance
            )
    if grid_store is not None:
        surface = grid_store.to_surface()
        surface = _checks.count_nonfinite(surface.with_metadata(engine=engine_info))
    else:  # one Surface (each copies the fields and converts the metadata)
        nonfinite = _checks.nonfinite_points(out["loss"])
        meta.update(engine=engine_info, nonfinite_points=nonfinite)
        surface = Surface(axes=axes, fields=out, metadata=meta)
    if spec.precision != "float":
        surface = surface.with_metadata(**precision_check(call, surface))
    return surface


def _say_resuming(
    store: Any,
    kind: str,
    shape: tuple[int, ...],
    todo: list[tuple[int, ...]],
    problems: list[Any],
    slices: Callable[[tuple[int, ...]], tuple[slice, ...]],
    *,
    enabled: bool,
) -> None:
    """Tell the user that a run resumes a store, and what it recomputes.

    Damaged chunks are a warning (always shown): they were on disk and are
    being replaced. The "resuming" line goes with the progress output.
    """
    damaged = sorted({p.chunk for p in problems})
    if damaged:
        where = ", ".join(str(i) for i in damaged[:8])
        more = f" and {len(damaged) - 8} more" if len(damaged) > 8 else ""
        warnings.warn(
            f"{len(damaged)} damaged chunk(s) in the store {str(store)!r} are "
            f"computed again: {where}{more} (first: {problems[0]})",
            RuntimeWarning,
            stacklevel=4,
        )
    n_all = math.prod(shape)
    n_todo = sum(math.prod(s.stop - s.start for s in slices(i)) for i in todo)
    if not enabled or n_todo == n_all:
        return
    if n_todo == 0:
        text = f"{kind}: {store} holds all {n_all} points already; nothing to compute"
    else:
        text = (
            f"{kind}: resuming {store}: {n_all - n_todo} of {n_all} points "
            f"already saved, computing the other {n_todo}"
        )
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _run_executor(
    executor: Any,
    spec: Any,
    todo: list[tuple[int, ...]],
    coeffs_of: Callable[[tuple[int, ...]], np.ndarray],
    store_block: Callable[[tuple[int, ...], dict[str, np.ndarray]], None],
    advance: Callable[[int], None],
) -> dict[str, Any]:
    """Evaluate the chunks ``todo`` as one job each on ``executor``.

    Each chunk is stored as its result arrives. When the run stops early (a
    chunk failed, Ctrl-C, the store could not be written), the jobs not yet
    started are cancelled, so the user's executor does not go on computing
    chunks nobody stores (a ``with ProcessPoolExecutor()`` block would wait
    for all of them before the error reached the user), and every chunk that
    has already finished is stored before the error is raised again.
    """
    futures = []
    stored: set[int] = set()
    info: dict[str, Any] = {}
    try:
        for idx in todo:
            futures.append(executor.submit(run_chunk, spec, idx, coeffs_of(idx)))
        for fut in as_completed(futures):
            idx, values, info = fut.result()
            store_block(tuple(idx), values)
            stored.add(id(fut))
            advance(int(values["loss"].size))
    except BaseException:
        for fut in futures:
            fut.cancel()
        for fut in futures:  # keep what is finished
            if id(fut) in stored or not fut.done() or fut.cancelled():
                continue
            if fut.exception() is not None:
                continue
            try:
                idx, values, _ = fut.result()
                store_block(tuple(idx), values)
            except BaseException:  # the first error is the one to report
                break
        raise
    return info


def _run_local(
    ev: Evaluator,
    todo: list[tuple[int, ...]],
    coeffs_of: Callable[[tuple[int, ...]], np.ndarray],
    store_block: Callable[[tuple[int, ...], dict[str, np.ndarray]], None],
    advance: Callable[[int], None],
) -> None:
    """Evaluate the chunks ``todo`` in this process, in full engine passes.

    Points are sent to the engine in whole passes of ``ev.points_per_pass``
    (the rest waits for the next chunk's points), so a grid costs
    ``ceil(points / points_per_pass)`` passes however the chunks divide it;
    each chunk is stored as soon as all its points are evaluated. A point's
    value does not depend on which pass computes it.
    """
    step = ev.points_per_pass
    waiting: list[tuple[tuple[int, ...], int]] = []  # chunks not yet stored
    pending: list[np.ndarray] = []  # coordinates not yet evaluated
    n_pending = 0
    done: list[dict[str, np.ndarray]] = []  # values not yet stored
    n_done = 0
    for k, idx in enumerate(todo):
        c = coeffs_of(idx)
        waiting.append((idx, len(c)))
        pending.append(c)
        n_pending += len(c)
        last = k + 1 == len(todo)
        take = n_pending if last else n_pending - n_pending % step
        if not take:
            continue
        points = np.concatenate(pending) if len(pending) > 1 else pending[0]
        pending = [points[take:]] if take < n_pending else []
        n_pending -= take
        done.append(ev.evaluate(points[:take], callback=advance))
        n_done += take
        if waiting[0][1] > n_done:
            continue
        values = {
            f: np.concatenate([d[f] for d in done]) if len(done) > 1 else done[0][f]
            for f in done[0]
        }
        start = 0
        while waiting and start + waiting[0][1] <= n_done:
            gidx, n = waiting.pop(0)
            store_block(gidx, {f: v[start : start + n] for f, v in values.items()})
            start += n
        done = [{f: v[start:] for f, v in values.items()}] if start < n_done else []
        n_done -= start


def check_points(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Grid indices re-evaluated in full precision.

    The centre first, then the lattice of first, middle and last index along
    every axis (corners and edge midpoints): 3 points on a line, 9 on a plane.
    """
    marks = [sorted({0, s // 2, s - 1}) for s in shape]
    points = [tuple(s // 2 for s in shape), *itertools.product(*marks)]
    return list(dict.fromkeys(points))


def precision_check(call: Call, surface: Surface) -> dict[str, Any]:
    """Re-evaluate a few grid points without autocast; record the difference.

    Returns metadata entries: ``precision_error`` (max |reduced − full| of the
    loss over the points), ``precision_errors`` (the same per field) and
    ``precision_check_points`` (their grid indices).
    """
    points = check_points(surface.shape)
    coeffs = np.array(
        [[arr[i] for (_, arr), i in zip(surface.axes, idx)] for idx in points]
    )
    full = dataclasses.replace(call.spec, precision="float", token=uuid.uuid4().hex)
    with Evaluator(full) as ev:
        exact = ev.evaluate(coeffs)
    errors = {}
    for f, v in exact.items():
        reduced = np.array([surface.field(f)[idx] for idx in points])
        errors[f] = float(np.max(np.abs(reduced - v)))
    return {
        "precision_error": errors["loss"],
        "precision_errors": errors,
        "precision_check_points": [list(p) for p in points],
    }
