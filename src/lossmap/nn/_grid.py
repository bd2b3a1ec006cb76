"""Running a grid through the engine, chunk by chunk.

In this process (chunks grouped so each engine pass is full), or as one job
per chunk on any ``concurrent.futures.Executor``; each finished chunk goes to
the resumable store when one is given.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import uuid
from collections.abc import Sequence
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
        todo = [tuple(i) for i in grid_store.todo()]  # missing or damaged
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
    with _progress(total, kind, enabled=progress) as advance:
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
    surface = _checks.count_nonfinite(surface.with_metadata(engine=engine_info))
    if spec.precision != "float":
        surface = surface.with_metadata(**precision_check(call, surface))
    return surface


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
