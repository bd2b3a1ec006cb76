"""Checks that a stored chunk is the one that was written, where it was written.

Two layers protect every chunk of a :class:`~lossmap.io.GridStore`:

* the codec chain ends in zarr's ``crc32c`` codec, so any reader (zarr,
  xarray) refuses a chunk file whose bytes changed: CRC-32C detects every
  single-bit error and every burst of up to 32 bits, truncations included;
* after all fields of a chunk are written, a small *record* file
  ``__digests__/<i>.<j>`` is renamed into place. It holds, per field, the
  SHA-256 of the field's name, the chunk index and the chunk's values, so a
  valid chunk file copied to another position (or another field) no longer
  matches. The record is also the chunk's commit mark: a chunk counts as done
  only when its record is on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = ["DIGESTS", "ChunkError", "ChunkProblem", "codecs", "digest"]

#: Folder (a zarr group with no arrays) holding one record per finished chunk.
DIGESTS = "__digests__"


def codecs() -> list[Any]:
    """The bytes-to-bytes codec chain: zstd, then a CRC-32C checksum."""
    from zarr.codecs import Crc32cCodec, ZstdCodec

    return [ZstdCodec(level=3), Crc32cCodec()]


class ChunkProblem(NamedTuple):
    """One damaged chunk of one field, as :meth:`GridStore.verify` reports it."""

    chunk: tuple[int, ...]
    field: str
    reason: str

    def __str__(self) -> str:
        return f"chunk {self.chunk} of field {self.field!r}: {self.reason}"


class ChunkError(ValueError):
    """A stored chunk that cannot be trusted: unreadable, altered or misplaced."""

    def __init__(self, path: Path | str, problem: ChunkProblem) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(
            f"the store {self.path!r} is damaged: {problem}. Run `lossmap verify "
            f"{self.path}` to list every damaged chunk; rerunning the computation "
            f"that made it recomputes them"
        )


def digest(field: str, idx: tuple[int, ...], block: np.ndarray) -> str:
    """SHA-256 of a field's name, a chunk index and the chunk's float64 values."""
    arr = np.ascontiguousarray(block, dtype="<f8")
    h = hashlib.sha256()
    h.update(json.dumps([field, list(idx), list(arr.shape)]).encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def record_name(idx: tuple[int, ...]) -> str:
    return ".".join(str(i) for i in idx)


def write_record(folder: Path, idx: tuple[int, ...], digests: dict[str, str]) -> None:
    """Write the record of chunk ``idx`` atomically (temporary file, rename)."""
    doc = json.dumps({"chunk": list(idx), "sha256": digests})
    final = folder / record_name(idx)
    tmp = folder / f".{record_name(idx)}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "w") as fh:
            fh.write(doc)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)  # e.g. a full disk: leave no partial file
        raise


def read_record(folder: Path, idx: tuple[int, ...]) -> dict[str, str] | None:
    """The per-field digests recorded for chunk ``idx``; None if unreadable.

    A record whose ``chunk`` is not ``idx`` (a record file copied elsewhere)
    is unreadable too.
    """
    try:
        doc = json.loads((folder / record_name(idx)).read_text())
        if doc["chunk"] != list(idx) or not isinstance(doc["sha256"], dict):
            return None
        return {str(k): str(v) for k, v in doc["sha256"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None
