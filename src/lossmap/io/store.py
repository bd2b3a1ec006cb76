"""`GridStore`: a resumable, chunked zarr v3 store for a surface being computed.

A store holds one 1-D coordinate array per axis and one array per field on the
grid, all float64 with NaN as the fill value. The grid is cut into chunks; a
computation writes each chunk of every field whole, as soon as it is ready.
zarr's local store writes each chunk to a temporary file and renames it, so a
chunk file on disk is a finished chunk, even if the process is killed with
``kill -9`` a moment later. Reopening the store with the same settings and
computing only :meth:`GridStore.missing` chunks therefore resumes an
interrupted computation, and several processes may write disjoint chunks at
once.

Layout (readable by ``xarray.open_zarr(path, consolidated=False)``, which
shows the axes as coordinates)::

    path/zarr.json          group; attributes hold the metadata and settings
    path/<axis>/...         coordinates, dimension_names=[axis]
    path/<field>/c/i/j      one file per finished chunk of each field

The store is created in a temporary sibling folder and renamed into place once
complete, so a half-created store is never visible; only the creator writes
the group attributes (zarr rewrites, not merges, them).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lossmap.io._settings import (
    VOLATILE_KEYS,
    _validate,
    require_zarr,
    settings_signature,
)
from lossmap.surface import Surface

__all__ = ["VOLATILE_KEYS", "GridStore", "require_zarr", "settings_signature"]

_zarr = require_zarr

_FORMAT = "lossmap.gridstore/1"
_ATTR_META = "lossmap_metadata"  # JSON string, as Surface.to_xarray writes it
_ATTR_STORE = "lossmap_store"  # settings: axes names, fields, chunks, signature


class GridStore:
    """A chunked zarr store for a surface computed chunk by chunk.

    Create or reopen one with :meth:`open`; open an existing one without
    knowing its settings with :meth:`attach`. A ``GridStore`` pickles as its
    path, so it can be sent to worker processes, which write disjoint chunks.

    Attributes
    ----------
    path : Path
        Folder of the store.
    axes : dict of str to ndarray of shape (n_k,)
        Axis coordinates, in order.
    fields : tuple of str
        Field names.
    chunks : tuple of int
        Chunk shape (grid points per chunk along each axis).
    metadata : dict
        The metadata given by the creator.
    """

    def __init__(
        self,
        path: Path,
        axes: dict[str, np.ndarray],
        fields: Sequence[str],
        chunks: tuple[int, ...],
        metadata: dict[str, Any],
    ) -> None:
        self.path = Path(path)
        self.axes = axes
        self.fields = tuple(fields)
        self.chunks = tuple(chunks)
        self.metadata = metadata
        self._arrays: dict[str, Any] | None = None

    # ------------------------------------------------------------ construction
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        axes: Mapping[str, Any],
        fields: Sequence[str],
        chunks: Sequence[int],
        metadata: Mapping[str, Any],
        volatile: Iterable[str] = VOLATILE_KEYS,
    ) -> GridStore:
        """Create the store at ``path``, or reopen it if made with these settings.

        Parameters
        ----------
        path : path-like
            Folder of the store (created; its parent must exist).
        axes : mapping of str to array-like of shape (n_k,)
            One or two axes with strictly increasing, finite coordinates.
        fields : list of str
            Field names; must include ``"loss"``.
        chunks : tuple of int
            Grid points per chunk along each axis (clipped to the axis length).
        metadata : mapping
            JSON-friendly provenance. Its non-volatile part (see
            :func:`settings_signature`) is part of the settings.
        volatile : iterable of str, optional
            Metadata keys that may differ on reopening.

        Returns
        -------
        GridStore

        Raises
        ------
        ValueError
            If a store at ``path`` was made with different settings (the
            message names what differs; the old store is left untouched), or
            if ``path`` holds something that is not a lossmap store.
        """
        ax, fl, ch, meta = _validate(axes, fields, chunks, metadata)
        path = Path(path)
        signature = settings_signature(meta, volatile=volatile)
        settings = {
            "format": _FORMAT,
            "axes": list(ax),
            "fields": fl,
            "chunks": list(ch),
            "signature": signature,
        }
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()  # an empty folder holds nothing to protect
        if not path.exists():
            if not path.parent.is_dir():
                raise FileNotFoundError(
                    f"cannot create a store at {str(path)!r}: folder "
                    f"{str(path.parent)!r} does not exist"
                )
            cls._create(path, ax, fl, ch, meta, settings)
        existing = cls.attach(path)
        existing._check_same(ax, fl, ch, meta, signature, volatile)
        return existing

    @classmethod
    def _create(
        cls,
        path: Path,
        axes: dict[str, np.ndarray],
        fields: list[str],
        chunks: tuple[int, ...],
        metadata: dict[str, Any],
        settings: dict[str, Any],
    ) -> None:
        """Build the store in a temporary sibling folder, then rename it."""
        zarr = _zarr()
        from zarr.storage import LocalStore

        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.creating"
        try:
            group = zarr.open_group(store=LocalStore(str(tmp)), mode="w-")
            for name, coords in axes.items():
                arr = group.create_array(
                    name,
                    shape=coords.shape,
                    chunks=coords.shape,
                    dtype="float64",
                    fill_value=np.nan,
                    dimension_names=[name],
                )
                arr[:] = coords
            shape = tuple(a.size for a in axes.values())
            for name in fields:
                group.create_array(
                    name,
                    shape=shape,
                    chunks=chunks,
                    dtype="float64",
                    fill_value=np.nan,
                    dimension_names=list(axes),
                    chunk_key_encoding={"name": "default", "separator": "/"},
                )
            group.attrs.update(
                {
                    _ATTR_META: json.dumps(metadata, allow_nan=True),
                    _ATTR_STORE: settings,
                }
            )
            try:
                os.rename(tmp, path)
            except OSError:
                # another process created the store first: use theirs
                if not (path / "zarr.json").exists():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def attach(cls, path: str | os.PathLike[str]) -> GridStore:
        """Open an existing store, reading its settings from disk.

        Raises
        ------
        FileNotFoundError
            If there is nothing at ``path``.
        ValueError
            If ``path`` is not a lossmap store.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no store at {str(path)!r}")
        meta_file = path / "zarr.json"
        try:
            doc = json.loads(meta_file.read_text())
            attrs = doc.get("attributes", {})
            settings = attrs[_ATTR_STORE]
            metadata = json.loads(attrs[_ATTR_META])
            if settings.get("format") != _FORMAT:
                raise KeyError("format")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise ValueError(
                f"{str(path)!r} is not a lossmap surface store (no readable "
                f"{_ATTR_STORE!r} attributes in zarr.json)"
            ) from None
        zarr = _zarr()
        from zarr.storage import LocalStore

        store = LocalStore(str(path), read_only=True)
        axes = {
            name: np.asarray(zarr.open_array(store=store, path=name, mode="r")[:])
            for name in settings["axes"]
        }
        return cls(path, axes, settings["fields"], tuple(settings["chunks"]), metadata)

    def _check_same(
        self,
        axes: dict[str, np.ndarray],
        fields: list[str],
        chunks: tuple[int, ...],
        metadata: dict[str, Any],
        signature: str,
        volatile: Iterable[str],
    ) -> None:
        diffs: list[str] = []
        if list(self.axes) != list(axes):
            diffs.append(f"axis names {list(self.axes)} vs {list(axes)}")
        else:
            for name, coords in axes.items():
                old = self.axes[name]
                if old.shape != coords.shape:
                    diffs.append(
                        f"axis {name!r} has {old.size} points vs {coords.size}"
                    )
                elif not np.array_equal(old, coords):
                    diffs.append(
                        f"axis {name!r} coordinates [{old[0]:.6g}, {old[-1]:.6g}] "
                        f"vs [{coords[0]:.6g}, {coords[-1]:.6g}]"
                    )
        if list(self.fields) != list(fields):
            diffs.append(f"fields {list(self.fields)} vs {list(fields)}")
        if tuple(self.chunks) != tuple(chunks):
            diffs.append(f"chunks {tuple(self.chunks)} vs {tuple(chunks)}")
        if settings_signature(self.metadata, volatile=volatile) != signature:
            skip = set(volatile)
            keys = sorted(
                k
                for k in set(self.metadata) | set(metadata)
                if k not in skip
                and not k.startswith("_")
                and self.metadata.get(k, _MISSING) != metadata.get(k, _MISSING)
            )
            diffs.append(f"metadata differs in {keys}")
        if diffs:
            raise ValueError(
                f"the store at {str(self.path)!r} was made with different "
                f"settings: {'; '.join(diffs)}. It was left untouched; use "
                f"another path or delete it to start again."
            )

    # ----------------------------------------------------------------- pickling
    def __reduce__(self) -> tuple[Any, ...]:
        return (GridStore.attach, (str(self.path),))

    # ------------------------------------------------------------------- access
    @property
    def shape(self) -> tuple[int, ...]:
        """Grid shape."""
        return tuple(a.size for a in self.axes.values())

    @property
    def nchunks(self) -> tuple[int, ...]:
        """Number of chunks along each axis."""
        return tuple(math.ceil(n / c) for n, c in zip(self.shape, self.chunks))

    def chunk_indices(self) -> list[tuple[int, ...]]:
        """Every chunk index, in C order."""
        return list(itertools.product(*(range(n) for n in self.nchunks)))

    def chunk_slices(self, idx: Sequence[int]) -> tuple[slice, ...]:
        """The grid slices covered by chunk ``idx`` (clipped at the edges)."""
        idx = tuple(int(i) for i in idx)
        if len(idx) != len(self.chunks) or not all(
            0 <= i < n for i, n in zip(idx, self.nchunks)
        ):
            raise IndexError(
                f"chunk index {idx} out of range for a grid of {self.nchunks} chunks"
            )
        return tuple(
            slice(i * c, min((i + 1) * c, n))
            for i, c, n in zip(idx, self.chunks, self.shape)
        )

    def _chunk_file(self, field: str, idx: tuple[int, ...]) -> Path:
        return self.path.joinpath(field, "c", *(str(i) for i in idx))

    def is_done(self, idx: Sequence[int]) -> bool:
        """Whether chunk ``idx`` of every field is on disk."""
        idx = tuple(int(i) for i in idx)
        return all(self._chunk_file(f, idx).is_file() for f in self.fields)

    def missing(self) -> list[tuple[int, ...]]:
        """Chunk indices not yet written (of any field), in C order."""
        return [idx for idx in self.chunk_indices() if not self.is_done(idx)]

    @property
    def complete(self) -> bool:
        """Whether every chunk of every field has been written."""
        return not self.missing()

    def _array(self, name: str) -> Any:
        if self._arrays is None:
            zarr = _zarr()
            from zarr.storage import LocalStore

            store = LocalStore(str(self.path))
            self._arrays = {
                f: zarr.open_array(store=store, path=f, mode="r+").with_config(
                    {"write_empty_chunks": True}
                )
                for f in self.fields
            }
        return self._arrays[name]

    def write(self, idx: Sequence[int], blocks: Mapping[str, Any]) -> None:
        """Write chunk ``idx`` of every field.

        Parameters
        ----------
        idx : tuple of int
            Chunk index.
        blocks : mapping of str to array-like
            One block per field of the store, each of the chunk's shape
            (``tuple(s.stop - s.start for s in chunk_slices(idx))``). All
            blocks are checked before anything is written.
        """
        slices = self.chunk_slices(idx)
        shape = tuple(s.stop - s.start for s in slices)
        if not isinstance(blocks, Mapping) or set(blocks) != set(self.fields):
            got = list(blocks) if isinstance(blocks, Mapping) else type(blocks)
            raise ValueError(
                f"`blocks` must hold exactly the fields {list(self.fields)}, got {got}"
            )
        arrays = {}
        for name in self.fields:
            block = np.asarray(blocks[name], dtype=np.float64)
            if block.shape != shape:
                raise ValueError(
                    f"block for field {name!r} of chunk {tuple(idx)} must have "
                    f"shape {shape}, got {block.shape}"
                )
            arrays[name] = block
        # "loss" last: a chunk counts as done only once every field is on disk
        for name in sorted(self.fields, key=lambda f: f == "loss"):
            self._array(name)[slices] = arrays[name]

    def read(self, field: str = "loss") -> np.ndarray:
        """One field as an array of the grid's shape (NaN where not written)."""
        if field not in self.fields:
            raise KeyError(f"{field!r} is not a field of this store: {self.fields}")
        return np.asarray(self._array(field)[...])

    def to_surface(self) -> Surface:
        """The stored grid as a :class:`~lossmap.Surface` (NaN where missing)."""
        return Surface(
            axes=self.axes,
            fields={f: self.read(f) for f in self.fields},
            metadata=self.metadata,
        )

    def __repr__(self) -> str:
        done = len(self.chunk_indices()) - len(self.missing())
        return (
            f"GridStore({str(self.path)!r}, shape={self.shape}, chunks={self.chunks}, "
            f"fields={list(self.fields)}, {done}/{len(self.chunk_indices())} chunks "
            f"written)"
        )


_MISSING = object()
