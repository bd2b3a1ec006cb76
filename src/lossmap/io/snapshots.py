"""`SnapshotStore`: parameter snapshots of a training run, appended as it goes.

Layout (zarr v3, readable by ``xarray.open_zarr(path, consolidated=False)``)::

    path/zarr.json              group; attributes: parameter layout, metadata
    path/snapshots/c/i/k        row i (one snapshot), column block k
    path/steps/c/i              the training step of row i

Each append grows both arrays by one row and writes the row's chunk files; a
chunk file is written atomically, so after a crash the rows whose files are
all on disk are kept and a half-appended last row is dropped on reopening.
Only one process appends to a store.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lossmap.io._integrity import codecs
from lossmap.io._settings import as_path, require_zarr
from lossmap.surface import _jsonable

__all__ = ["SnapshotStore"]

_FORMAT = "lossmap.snapshots/1"
_ATTR = "lossmap_snapshots"
_ATTR_META = "lossmap_metadata"
_MAX_COLS = 2**24  # entries per chunk along the parameter axis
_DTYPES = ("float16", "float32", "float64")


def _zarr() -> Any:
    return require_zarr("snapshot stores")


class SnapshotStore:
    """Flat parameter vectors of shape (P,), one per recorded training step.

    Use :meth:`open` to create or continue one. Attributes ``names`` and
    ``shapes`` describe how a row splits into parameter tensors (in order).
    """

    def __init__(self, path: Path, layout: dict[str, Any], metadata: dict) -> None:
        self.path = Path(path)
        self.names: tuple[str, ...] = tuple(layout["names"])
        self.shapes: tuple[tuple[int, ...], ...] = tuple(
            tuple(s) for s in layout["shapes"]
        )
        self.size = int(layout["size"])
        self.dtype = str(layout["dtype"])
        self.metadata = metadata
        self._col_chunk = min(self.size, _MAX_COLS)
        arrays = self._open_arrays()
        self._snap, self._steps = arrays
        self._n = self._valid_rows()
        if self._n != self._snap.shape[0]:
            self._snap.resize((self._n, self.size))
            self._steps.resize((self._n,))

    # ------------------------------------------------------------ construction
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        names: Sequence[str],
        shapes: Sequence[Sequence[int]],
        dtype: str = "float32",
        metadata: Mapping[str, Any] | None = None,
    ) -> SnapshotStore:
        """Create a store at ``path``, or continue one with the same layout.

        Parameters
        ----------
        path : path-like
            Folder of the store; its parent must exist.
        names, shapes : sequences
            Parameter names and shapes, in the order of a flat row.
        dtype : {"float16", "float32", "float64"}
            Storage type of the values.
        metadata : mapping, optional
            JSON-friendly provenance, written once by the creator.

        Raises
        ------
        ValueError
            If ``path`` holds a store with another parameter layout or dtype,
            or something that is not a snapshot store (left untouched).
        """
        names = [str(n) for n in names]
        shapes_l = [[int(s) for s in shape] for shape in shapes]
        if not names or len(names) != len(shapes_l):
            raise ValueError(
                f"`names` and `shapes` must be non-empty and of equal length, got "
                f"{len(names)} and {len(shapes_l)}"
            )
        if dtype not in _DTYPES:
            raise ValueError(f"`dtype` must be one of {list(_DTYPES)}, got {dtype!r}")
        meta = _jsonable(dict(metadata or {}))
        json.dumps(meta)  # raises TypeError early for unserialisable metadata
        size = sum(math.prod(s) for s in shapes_l)
        layout = {
            "format": _FORMAT,
            "names": names,
            "shapes": shapes_l,
            "size": size,
            "dtype": dtype,
        }
        path = as_path(path)
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        if not path.exists():
            if not path.parent.is_dir():
                raise FileNotFoundError(
                    f"cannot create a store at {str(path)!r}: folder "
                    f"{str(path.parent)!r} does not exist"
                )
            cls._create(path, layout, meta)
        old_layout, old_meta = cls._read_attrs(path)
        diffs = [
            k for k in ("names", "shapes", "dtype") if old_layout.get(k) != layout[k]
        ]
        if diffs:
            raise ValueError(
                f"the snapshot store at {str(path)!r} holds another model's "
                f"parameters (different {', '.join(diffs)}); it was left "
                f"untouched, use another path"
            )
        return cls(path, old_layout, old_meta)

    @classmethod
    def attach(cls, path: str | os.PathLike[str]) -> SnapshotStore:
        """Open an existing store, reading its layout from disk."""
        path = as_path(path)
        if not path.exists():
            raise FileNotFoundError(f"no snapshot store at {str(path)!r}")
        layout, meta = cls._read_attrs(path)
        return cls(path, layout, meta)

    @staticmethod
    def _read_attrs(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            attrs = json.loads((path / "zarr.json").read_text())["attributes"]
            layout = attrs[_ATTR]
            meta = json.loads(attrs[_ATTR_META])
            if layout.get("format") != _FORMAT:
                raise KeyError("format")
        except (OSError, ValueError, KeyError, TypeError):
            raise ValueError(f"{str(path)!r} is not a lossmap snapshot store") from None
        return layout, meta

    @staticmethod
    def _create(path: Path, layout: dict[str, Any], meta: dict[str, Any]) -> None:
        zarr = _zarr()
        from zarr.storage import LocalStore

        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.creating"
        enc = {"name": "default", "separator": "/"}
        try:
            group = zarr.open_group(store=LocalStore(str(tmp)), mode="w-")
            group.create_array(
                "snapshots",
                shape=(0, layout["size"]),
                chunks=(1, min(layout["size"], _MAX_COLS)),
                dtype=layout["dtype"],
                fill_value=np.nan,
                compressors=codecs(),
                dimension_names=["snapshot", "param"],
                chunk_key_encoding=enc,
            )
            group.create_array(
                "steps",
                shape=(0,),
                chunks=(1,),
                dtype="int64",
                fill_value=-1,
                compressors=codecs(),
                dimension_names=["snapshot"],
                chunk_key_encoding=enc,
            )
            group.attrs.update({_ATTR: layout, _ATTR_META: json.dumps(meta)})
            try:
                os.rename(tmp, path)
            except OSError:
                if not (path / "zarr.json").exists():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def _open_arrays(self) -> tuple[Any, Any]:
        zarr = _zarr()
        from zarr.storage import LocalStore

        store = LocalStore(str(self.path))
        cfg = {"write_empty_chunks": True}
        snap = zarr.open_array(store=store, path="snapshots", mode="r+")
        steps = zarr.open_array(store=store, path="steps", mode="r+")
        return snap.with_config(cfg), steps.with_config(cfg)

    def _row_done(self, i: int) -> bool:
        cols = math.ceil(self.size / self._col_chunk)
        return (self.path / "steps" / "c" / str(i)).is_file() and all(
            (self.path / "snapshots" / "c" / str(i) / str(k)).is_file()
            for k in range(cols)
        )

    def _valid_rows(self) -> int:
        n = 0
        while n < self._snap.shape[0] and self._row_done(n):
            n += 1
        return n

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return self._n

    def append(self, step: int, vector: Any) -> None:
        """Add one snapshot, a flat vector of shape (P,), taken at ``step``."""
        row = np.asarray(vector)
        if row.shape != (self.size,):
            raise ValueError(
                f"`vector` must have shape ({self.size},), got {row.shape}"
            )
        i = self._n
        self._snap.resize((i + 1, self.size))
        self._steps.resize((i + 1,))
        self._snap[i] = row
        self._steps[i] = int(step)  # last: marks the row as complete
        self._n = i + 1

    def steps(self) -> np.ndarray:
        """Recorded steps, shape (n,), int64."""
        return np.asarray(self._checked(self._steps, "steps"), dtype=np.int64)

    def read(self) -> np.ndarray:
        """All snapshots, shape (n, P), in the storage dtype.

        Raises
        ------
        ValueError
            If a row fails its CRC-32C checksum (stores written since
            checksums were added) or cannot be decoded; the message names the
            store and the row.
        """
        return np.asarray(self._checked(self._snap, "snapshots"))

    def _checked(self, array: Any, name: str) -> Any:
        try:
            return array[: self._n]
        except Exception:
            for i in range(self._n):  # find the damaged row
                try:
                    array[i]
                except Exception as exc:
                    raise ValueError(
                        f"the snapshot store {str(self.path)!r} is damaged: row {i} "
                        f"of {name!r} is unreadable ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:100] if str(exc) else ''})"
                    ) from None
            raise

    def __repr__(self) -> str:
        return (
            f"SnapshotStore({str(self.path)!r}, {self._n} snapshots of "
            f"{self.size} {self.dtype} values)"
        )
