"""`GridStore`: a resumable, chunked zarr v3 store for a surface being computed.

A store holds one 1-D coordinate array per axis and one array per field on the
grid, all float64 with NaN as the fill value. The grid is cut into chunks; a
computation writes each chunk of every field whole, as soon as it is ready.
zarr's local store writes each chunk to a temporary file and renames it; once
every field of a chunk is on disk, a record with the chunk's digests is renamed
into place, and only then does the chunk count as done, even if the process is
killed with ``kill -9`` a moment later. Every chunk file ends in a CRC-32C
checksum and every record holds SHA-256 digests of the chunk's values and
position (:mod:`lossmap.io._integrity`), so a damaged, truncated or misplaced
chunk is never read as data: reading it raises :class:`ChunkError` naming the
store, the field and the chunk. Reopening the store with the same settings and
computing the :meth:`GridStore.todo` chunks (missing or damaged) therefore
resumes an interrupted computation and repairs a damaged store, and several
processes may write disjoint chunks at once.

Layout (``xarray.open_zarr(path)`` reads it from the consolidated metadata,
with the axes as coordinates)::

    path/zarr.json          group; attributes hold the metadata and settings,
                            plus the consolidated metadata of every array
    path/<axis>/...         coordinates, dimension_names=[axis]
    path/<field>/c/i/j      one file per finished chunk of each field
    path/__digests__/i.j    one record per finished chunk (all fields)

The store is created in a temporary sibling folder and renamed into place once
complete, so a half-created store is never visible; only the creator writes
the group attributes (zarr rewrites, not merges, them). Temporary folders left
by a creator that was killed are removed by the next :meth:`GridStore.open`.
"""

from __future__ import annotations

import glob
import itertools
import json
import math
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lossmap.io._integrity import (
    DIGESTS,
    ChunkError,
    ChunkProblem,
    codecs,
    digest,
    read_record,
    record_name,
    write_record,
)
from lossmap.io._settings import (
    VOLATILE_KEYS,
    _validate,
    as_path,
    require_zarr,
    settings_signature,
)
from lossmap.surface import Surface

__all__ = [
    "VOLATILE_KEYS",
    "ChunkError",
    "ChunkProblem",
    "GridStore",
    "require_zarr",
    "settings_signature",
]

_zarr = require_zarr

_FORMAT = "lossmap.gridstore/2"
#: Stores written before chunks carried checksums: readable, not resumable.
_UNCHECKED_FORMATS = ("lossmap.gridstore/1",)
#: A temporary ``.creating`` folder whose creator is gone, or older than this,
#: is removed by the next :meth:`GridStore.open` of the same path.
_STALE_AFTER_S = 3600.0
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
        checked: bool = True,
    ) -> None:
        self.path = Path(path)
        self.axes = axes
        self.fields = tuple(fields)
        self.chunks = tuple(chunks)
        self.metadata = metadata
        self.checked = checked
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
        overwrite: bool = False,
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
        overwrite : bool, default False
            Start again: an existing lossmap store at ``path`` is removed
            first (see :meth:`remove`; anything else there is refused).

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
        if not isinstance(overwrite, bool):
            raise TypeError(f"`overwrite` must be True or False, got {overwrite!r}")
        ax, fl, ch, meta = _validate(axes, fields, chunks, metadata)
        path = as_path(path)
        if path.exists() and not path.is_dir():
            raise ValueError(
                f"`store` must be a folder (a lossmap store, or a path where one is "
                f"created), got {str(path)!r}, which is a file; it was left untouched"
            )
        if overwrite:
            cls.remove(path)
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
        _remove_stale(path)
        if not path.exists():
            if not path.parent.is_dir():
                raise FileNotFoundError(
                    f"cannot create a store at {str(path)!r}: folder "
                    f"{str(path.parent)!r} does not exist"
                )
            cls._create(path, ax, fl, ch, meta, settings)
        existing = cls.attach(path)
        if not existing.checked:
            raise ValueError(
                f"the store at {str(path)!r} was written by an older lossmap whose "
                f"chunks carry no checksums: it can be read (lossmap.io.load) but "
                f"not resumed. Use another path or delete it to start again."
            )
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

        tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp = path.parent / f".{path.name}.{tag}.creating"
        try:
            group = zarr.open_group(store=LocalStore(str(tmp)), mode="w-")
            for name, coords in axes.items():
                arr = group.create_array(
                    name,
                    shape=coords.shape,
                    chunks=coords.shape,
                    dtype="float64",
                    fill_value=np.nan,
                    compressors=codecs(),
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
                    compressors=codecs(),
                    dimension_names=list(axes),
                    chunk_key_encoding={"name": "default", "separator": "/"},
                )
            group.attrs.update(
                {
                    _ATTR_META: json.dumps(metadata, allow_nan=True),
                    _ATTR_STORE: settings,
                }
            )
            group.create_group(DIGESTS, attributes={"lossmap": "chunk digests"})
            with warnings.catch_warnings():
                # zarr warns that consolidated metadata is not in the v3 spec
                # yet; xarray reads it without a warning, which is the point
                warnings.simplefilter("ignore", UserWarning)
                zarr.consolidate_metadata(LocalStore(str(tmp)))
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
    def remove(cls, path: str | os.PathLike[str], *, name: str = "store") -> bool:
        """Delete the lossmap store at ``path``, and nothing else, ever.

        This is how ``overwrite=True`` (and the CLI's ``--overwrite``) starts
        a store again. A damaged store still counts as a store (its
        ``zarr.json`` names it one); an empty folder is removed too.

        Parameters
        ----------
        path : path-like
            Folder of the store.
        name : str
            The argument named in the error message.

        Returns
        -------
        bool
            Whether something was removed (``False``: nothing was there).

        Raises
        ------
        ValueError
            If ``path`` holds something that is not a lossmap store; it is
            left untouched.
        """
        path = as_path(path, name)
        if not path.exists() and not path.is_symlink():
            return False
        if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
            path.rmdir()
            return True
        try:
            if path.is_symlink():
                raise ValueError("a symbolic link")
            cls.attach(path)
        except ChunkError:
            pass  # a lossmap store with a damaged axis: still ours to replace
        except (ValueError, FileNotFoundError) as exc:
            raise ValueError(
                f"`{name}` must be a lossmap store to be overwritten, got "
                f"{str(path)!r}, which is not one ({exc}); nothing was removed"
            ) from None
        shutil.rmtree(path)
        return True

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
        path = as_path(path)
        if not path.exists():
            raise FileNotFoundError(f"no store at {str(path)!r}")
        if not path.is_dir():
            raise ValueError(
                f"{str(path)!r} is a file, not a lossmap surface store (a store is "
                f"a folder)"
            )
        meta_file = path / "zarr.json"
        try:
            doc = json.loads(meta_file.read_text())
            attrs = doc.get("attributes", {})
            settings = attrs[_ATTR_STORE]
            metadata = json.loads(attrs[_ATTR_META])
            if settings.get("format") not in (_FORMAT, *_UNCHECKED_FORMATS):
                raise KeyError("format")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise ValueError(
                f"{str(path)!r} is not a lossmap surface store (no readable "
                f"{_ATTR_STORE!r} attributes in zarr.json)"
            ) from None
        zarr = _zarr()
        from zarr.storage import LocalStore

        store = LocalStore(str(path), read_only=True)
        axes = {}
        for name in settings["axes"]:
            try:
                axes[name] = np.asarray(
                    zarr.open_array(store=store, path=name, mode="r")[:]
                )
            except Exception as exc:
                raise ChunkError(
                    path,
                    ChunkProblem((0,), name, f"axis unreadable ({_short(exc)})"),
                ) from None
        return cls(
            path,
            axes,
            settings["fields"],
            tuple(settings["chunks"]),
            metadata,
            checked=settings["format"] == _FORMAT,
        )

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
            diffs.append(
                f"axes: the store has {list(self.axes)}, this call {list(axes)}"
            )
        else:
            for name, coords in axes.items():
                old = self.axes[name]
                if old.shape != coords.shape:
                    diffs.append(
                        f"axis {name!r}: the store has {old.size} points, this "
                        f"call {coords.size}"
                    )
                elif not np.array_equal(old, coords):
                    diffs.append(
                        f"axis {name!r}: the store spans [{old[0]:.6g}, "
                        f"{old[-1]:.6g}], this call [{coords[0]:.6g}, "
                        f"{coords[-1]:.6g}]"
                    )
        if list(self.fields) != list(fields):
            diffs.append(
                f"fields: the store has {list(self.fields)}, this call {list(fields)}"
            )
        if tuple(self.chunks) != tuple(chunks):
            diffs.append(
                f"chunks: the store has {tuple(self.chunks)}, this call {tuple(chunks)}"
            )
        if settings_signature(self.metadata, volatile=volatile) != signature:
            skip = set(volatile)
            keys = sorted(
                k
                for k in set(self.metadata) | set(metadata)
                if k not in skip
                and not k.startswith("_")
                and self.metadata.get(k, _MISSING) != metadata.get(k, _MISSING)
            )
            # what the user set first (the kind of grid, seeds, spans...),
            # then what follows from it (norms, fingerprints, chunk sizes)
            derived = ("chunks", "direction_norms", "fingerprint", "steps", "span")
            keys = sorted(keys, key=lambda k: (k != "kind", k in derived, k))
            leaves: list[str] = []
            for k in keys:
                leaves.extend(
                    _leaf_diffs(
                        k, self.metadata.get(k, _MISSING), metadata.get(k, _MISSING)
                    )
                )
            shown = "; ".join(leaves[:4])
            if len(leaves) > 4:
                shown += f"; and {len(leaves) - 4} more"
            diffs.append(f"metadata differs in {keys} ({shown})")
        if diffs:
            raise ValueError(
                f"the store at {str(self.path)!r} was made with different "
                f"settings: {'; '.join(diffs)}. It was left untouched; use "
                f"another path, or overwrite=True (--overwrite in the shell) to "
                f"start it again."
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

    def _record_file(self, idx: tuple[int, ...]) -> Path:
        return self.path / DIGESTS / record_name(idx)

    def is_done(self, idx: Sequence[int]) -> bool:
        """Whether chunk ``idx`` was written whole (its record is on disk).

        Cheap: nothing is read. :meth:`verify` checks the contents.
        """
        idx = tuple(int(i) for i in idx)
        if self.checked and not self._record_file(idx).is_file():
            return False
        return all(self._chunk_file(f, idx).is_file() for f in self.fields)

    def missing(self) -> list[tuple[int, ...]]:
        """Chunk indices not yet written (of any field), in C order."""
        return [idx for idx in self.chunk_indices() if not self.is_done(idx)]

    def verify(
        self, chunks: Iterable[Sequence[int]] | None = None
    ) -> list[ChunkProblem]:
        """Read every written chunk and check it; the problems found, in C order.

        ``chunks`` limits the check to those chunk indices.

        A chunk is damaged when its file fails its CRC-32C checksum or cannot
        be decoded (bit flips, truncation, garbage), when its record is
        missing a field or unreadable, or when its values are not the ones
        recorded for this position and field (a valid chunk copied to the
        wrong place, or rewritten by something else). Chunks not yet written
        are not problems (see :meth:`missing`).

        Raises
        ------
        ValueError
            For a store written without checksums (an older lossmap).
        """
        if not self.checked:
            raise ValueError(
                f"the store at {str(self.path)!r} was written by an older lossmap "
                f"whose chunks carry no checksums; it cannot be verified"
            )
        problems = []
        records = self._records()
        wanted = self.chunk_indices()
        if chunks is not None:
            wanted = sorted({tuple(int(i) for i in c) for c in chunks})
        for idx in wanted:
            self.chunk_slices(idx)  # checks the index
            if not self.is_done(idx):
                continue
            for field in self.fields:
                try:
                    self._checked_block(field, idx, records)
                except ChunkError as exc:
                    problems.append(exc.problem)
        return problems

    def damaged(self) -> list[tuple[int, ...]]:
        """Chunk indices written but failing :meth:`verify`, in C order."""
        return sorted({p.chunk for p in self.verify()})

    def todo(self) -> list[tuple[int, ...]]:
        """Chunks a computation must (re)compute: missing or damaged, in C order."""
        return self.plan()[0]

    def plan(self) -> tuple[list[tuple[int, ...]], list[ChunkProblem]]:
        """:meth:`todo` and the :meth:`verify` problems behind it, from one
        check pass (a resuming run reports the damage it recomputes)."""
        problems = self.verify()
        todo = sorted(set(self.missing()) | {p.chunk for p in problems})
        return todo, problems

    def forget(self, chunks: Iterable[Sequence[int]]) -> None:
        """Delete chunks (record first, then each field's file): now missing."""
        for idx in chunks:
            idx = tuple(int(i) for i in idx)
            self.chunk_slices(idx)  # checks the index
            self._record_file(idx).unlink(missing_ok=True)
            for f in self.fields:
                self._chunk_file(f, idx).unlink(missing_ok=True)

    def _records(self) -> dict[tuple[int, ...], dict[str, str] | None]:
        folder = self.path / DIGESTS
        return {
            idx: read_record(folder, idx)
            for idx in self.chunk_indices()
            if self._record_file(idx).is_file()
        }

    def _checked_block(
        self,
        field: str,
        idx: tuple[int, ...],
        records: dict[tuple[int, ...], dict[str, str] | None],
    ) -> np.ndarray:
        """Chunk ``idx`` of ``field``, read and checked; raises :class:`ChunkError`."""

        def fail(reason: str) -> ChunkError:
            return ChunkError(self.path, ChunkProblem(idx, field, reason))

        slices = self.chunk_slices(idx)
        if not self._chunk_file(field, idx).is_file():
            raise fail("its file is missing although the chunk was recorded as done")
        try:
            block = np.asarray(self._array(field)[slices])
        except Exception as exc:
            raise fail(f"unreadable ({_short(exc)})") from None
        if not self.checked:
            return block
        record = records.get(idx)
        if record is None or field not in record:
            raise fail("its digest record is missing or unreadable")
        if digest(field, idx, block) != record[field]:
            origin = next(
                (
                    (f, other)
                    for other, rec in records.items()
                    if rec is not None
                    for f in self.fields
                    if (f, other) != (field, idx)
                    and rec.get(f) == digest(f, other, block)
                ),
                None,
            )
            if origin is not None:
                raise fail(
                    f"misplaced: it holds chunk {origin[1]} of field {origin[0]!r}"
                )
            raise fail("its values differ from the ones recorded when it was written")
        return block

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
        idx = tuple(int(i) for i in idx)
        # the record last: a chunk counts as done only once every field is on
        # disk; a chunk being rewritten (repaired) stops counting first
        self._record_file(idx).unlink(missing_ok=True)
        for name in sorted(self.fields, key=lambda f: f == "loss"):
            self._array(name)[slices] = arrays[name]
        if self.checked:
            digests = {f: digest(f, idx, a) for f, a in arrays.items()}
            write_record(self.path / DIGESTS, idx, digests)

    def read(self, field: str = "loss") -> np.ndarray:
        """One field as an array of the grid's shape (NaN where not written).

        Every written chunk is checked as it is read.

        Raises
        ------
        ChunkError
            If a chunk is damaged or misplaced (the message names the store,
            the field and the chunk).
        """
        if field not in self.fields:
            raise KeyError(f"{field!r} is not a field of this store: {self.fields}")
        out = np.full(self.shape, np.nan)
        records = self._records() if self.checked else {}
        for idx in self.chunk_indices():
            if self.is_done(idx):
                out[self.chunk_slices(idx)] = self._checked_block(field, idx, records)
        return out

    def to_surface(self) -> Surface:
        """The stored grid as a :class:`~lossmap.Surface` (NaN where missing)."""
        return Surface(
            axes=self.axes,
            fields={f: self.read(f) for f in self.fields},
            metadata=self.metadata,
        )

    def point_counts(self, loss: np.ndarray | None = None) -> dict[str, int]:
        """How many grid points are computed, and how many of those are not finite.

        Parameters
        ----------
        loss : ndarray, optional
            The ``loss`` field as :meth:`read` returns it (read if not given).

        Returns
        -------
        dict
            ``points`` (grid points), ``not_computed`` (points of missing
            chunks) and ``nonfinite`` (computed points whose loss is NaN or
            infinite: a result, kept as NaN, not a gap).
        """
        done = np.zeros(self.shape, dtype=bool)
        for idx in self.chunk_indices():
            if self.is_done(idx):
                done[self.chunk_slices(idx)] = True
        values = self.read("loss") if loss is None else np.asarray(loss)
        return {
            "points": int(done.size),
            "not_computed": int((~done).sum()),
            "nonfinite": int((done & ~np.isfinite(values)).sum()),
        }

    def __repr__(self) -> str:
        done = len(self.chunk_indices()) - len(self.missing())
        return (
            f"GridStore({str(self.path)!r}, shape={self.shape}, chunks={self.chunks}, "
            f"fields={list(self.fields)}, {done}/{len(self.chunk_indices())} chunks "
            f"written)"
        )


_MISSING = object()


def _short_value(value: Any) -> str:
    if value is _MISSING:
        return "nothing"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _leaf_diffs(path: str, old: Any, new: Any) -> list[str]:
    """Where two metadata values differ: ``path: the store has X, this call Y``."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in list(old) + [k for k in new if k not in old]:
            a, b = old.get(k, _MISSING), new.get(k, _MISSING)
            if a != b:
                out.extend(_leaf_diffs(f"{path}.{k}", a, b))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new)):
            if a != b:
                out.extend(_leaf_diffs(f"{path}[{i}]", a, b))
        return out
    text = f"{path}: the store has {_short_value(old)}, this call {_short_value(new)}"
    what = _FINGERPRINTED.get(path.split("[")[0])
    return [f"{text}, so the {what} differ" if what else text]


#: What each content fingerprint stands for, in a refusal's words.
_FINGERPRINTED = {
    "fingerprint.center": "weights at the centre",
    "fingerprint.data": "data",
    "fingerprint.directions": "directions",
}


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:120]}" if text else type(exc).__name__


def _remove_stale(path: Path) -> None:
    """Remove temporary ``.creating`` folders for ``path`` whose creator is gone.

    The folder name carries the creator's process id; a folder is stale when
    that process no longer exists on this machine, or when it is older than
    an hour (a creator on another machine sharing the folder).
    """
    if not path.parent.is_dir():
        return
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.creating"):
        pid_text = tmp.name[len(path.name) + 2 :].split("-", 1)[0]
        try:
            age = time.time() - tmp.stat().st_mtime
        except OSError:
            continue
        if _pid_gone(pid_text) or age > _STALE_AFTER_S:
            shutil.rmtree(tmp, ignore_errors=True)


def _pid_gone(text: str) -> bool:
    if not text.isdigit():
        return False
    pid = int(text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False
