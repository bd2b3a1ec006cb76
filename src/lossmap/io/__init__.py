"""Files: zarr v3 surface stores (resumable), VTK export.

This is the only part of lossmap that reads or writes files.

* :func:`save` / :func:`load` any :class:`~lossmap.Surface` (coordinates,
  fields, metadata), readable by ``xarray.open_zarr(path)``.
* :class:`GridStore`: the chunked store a computation writes as it goes, so an
  interrupted run resumes where it stopped. Every chunk carries a checksum and
  a digest of its position; a damaged chunk raises :class:`ChunkError`.
* :func:`to_vtk`: a legacy VTK structured grid for ParaView.

zarr is imported when a store is first opened.
"""

from __future__ import annotations

from lossmap.io.importers import import_file, import_h5, import_npz
from lossmap.io.snapshots import SnapshotStore
from lossmap.io.store import (
    VOLATILE_KEYS,
    ChunkError,
    ChunkProblem,
    GridStore,
    settings_signature,
)
from lossmap.io.vtk import to_vtk
from lossmap.io.zarr_io import load, save

__all__ = [
    "VOLATILE_KEYS",
    "ChunkError",
    "ChunkProblem",
    "GridStore",
    "SnapshotStore",
    "import_file",
    "import_h5",
    "import_npz",
    "load",
    "save",
    "settings_signature",
    "to_vtk",
]
