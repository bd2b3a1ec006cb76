"""Save and load any :class:`~lossmap.Surface` as a zarr v3 store.

The store is the same layout :class:`~lossmap.io.GridStore` uses, so a store
written chunk by chunk by a computation and one written by :func:`save` are
read by the same :func:`load`, and both open in
``xarray.open_zarr(path)`` with their coordinates.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from lossmap.io._settings import as_path
from lossmap.io.store import GridStore
from lossmap.surface import Surface

__all__ = ["load", "save"]

_MAX_CHUNK = 256


def save(
    surface: Surface,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    chunks: tuple[int, ...] | None = None,
) -> Path:
    """Write ``surface`` (coordinates, every field, metadata) to a zarr store.

    The store is written in a temporary sibling folder and renamed into place
    when complete, so an error or a killed process never leaves a half-written
    store at ``path``.

    Parameters
    ----------
    surface : Surface
        A 1-D or 2-D surface.
    path : path-like
        Folder of the new store; its parent must exist.
    overwrite : bool, default False
        Replace an existing lossmap store at ``path``. Anything else at
        ``path`` is never replaced.
    chunks : tuple of int, optional
        Chunk shape; by default up to 256 points along each axis.

    Returns
    -------
    Path
        ``path``.
    """
    if not isinstance(surface, Surface):
        raise TypeError(f"`surface` must be a Surface, got {type(surface).__name__}")
    if not isinstance(overwrite, bool):
        raise TypeError(f"`overwrite` must be True or False, got {overwrite!r}")
    path = as_path(path)
    if path.exists() and not (path.is_dir() and not any(path.iterdir())):
        if not overwrite:
            raise FileExistsError(
                f"{str(path)!r} already exists; pass overwrite=True to replace a "
                f"stored surface"
            )
        GridStore.attach(path)  # raises ValueError unless it is a lossmap store
    if chunks is None:
        chunks = tuple(min(n, _MAX_CHUNK) for n in surface.shape)
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"cannot save to {str(path)!r}: folder {str(path.parent)!r} does not exist"
        )
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.saving"
    old = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.replaced"
    try:
        store = GridStore.open(
            tmp,
            axes=dict(surface.axes),
            fields=list(surface.field_names),
            chunks=chunks,
            metadata=dict(surface.metadata),
        )
        for idx in store.chunk_indices():
            sl = store.chunk_slices(idx)
            store.write(idx, {f: surface.fields[f][sl] for f in surface.field_names})
        if path.exists():
            os.rename(path, old)
        os.rename(tmp, path)
    finally:
        for leftover in (tmp, old):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
    return path


def load(path: str | os.PathLike[str], *, allow_incomplete: bool = False) -> Surface:
    """Read a stored surface (coordinates, every field, metadata).

    Parameters
    ----------
    path : path-like
        A store written by :func:`save` or by a computation with ``store=``.
    allow_incomplete : bool, default False
        Return a surface with NaN at the chunks not yet computed instead of
        raising.

    Raises
    ------
    ValueError
        If the store is incomplete and ``allow_incomplete`` is False, or if
        ``path`` is not a lossmap store.
    """
    store = GridStore.attach(as_path(path))
    if not allow_incomplete:
        missing = store.missing()
        if missing:
            raise ValueError(
                f"the store at {str(path)!r} is incomplete: {len(missing)} of "
                f"{len(store.chunk_indices())} chunks are missing (run the same "
                f"computation again to finish it, or pass allow_incomplete=True)"
            )
    return store.to_surface()
