"""Settings of a surface store: what must match for a store to be reopened.

Shared by :mod:`lossmap.io.store` and :mod:`lossmap.io.snapshots`: the zarr
import with its install hint, the settings signature (a hash of the metadata
without volatile keys), and the checks run before anything is created.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lossmap._optional import require
from lossmap.surface import _jsonable

__all__ = ["VOLATILE_KEYS", "as_path", "require_zarr", "settings_signature"]

#: Metadata keys that do not change what is computed (timings, versions, hosts)
#: and are left out of the settings signature. Keys starting with ``_`` are
#: left out too.
VOLATILE_KEYS = frozenset(
    {"versions", "created", "elapsed_s", "host", "timing", "progress", "device"}
)


def require_zarr(what: str = "surface stores") -> Any:
    """Import zarr, or explain how to install it."""
    return require("zarr", extra="io", what=what)


def as_path(value: Any, name: str = "path") -> Path:
    """``value`` as a :class:`~pathlib.Path`, or an error naming the argument."""
    if isinstance(value, str | os.PathLike) and not isinstance(value, bytes):
        path = Path(value)
        if str(path) in ("", "."):
            raise ValueError(f"`{name}` must name a store, got {value!r}")
        return path
    raise TypeError(
        f"`{name}` must be a path (str or os.PathLike; the `store` of a "
        f"computation), got {type(value).__name__} {value!r:.60}"
    )


def settings_signature(
    metadata: Mapping[str, Any], *, volatile: Iterable[str] = VOLATILE_KEYS
) -> str:
    """A SHA-256 hex digest of the metadata that defines the computation.

    Keys in ``volatile`` and keys starting with ``_`` are ignored, so e.g. a
    different timestamp or library version does not make a store "different".
    """
    skip = set(volatile)
    kept = {
        k: v
        for k, v in _jsonable(dict(metadata)).items()
        if k not in skip and not k.startswith("_")
    }
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _check_name(kind: str, name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"{kind} names must be non-empty strings, got {name!r}")
    if "/" in name or name.startswith("__") or name in (".", ".."):
        raise ValueError(
            f"{kind} name {name!r} cannot be stored: it must not contain '/' "
            f"nor start with '__'"
        )
    return name


def _validate(
    axes: Any, fields: Any, chunks: Any, metadata: Any
) -> tuple[dict[str, np.ndarray], list[str], tuple[int, ...], dict[str, Any]]:
    """Check every argument of :meth:`GridStore.open`; nothing is created here."""
    if not isinstance(axes, Mapping) or not 1 <= len(axes) <= 2:
        raise ValueError(
            f"`axes` must be a mapping of 1 or 2 named coordinate arrays, got "
            f"{type(axes).__name__}"
            + (f" of length {len(axes)}" if isinstance(axes, Mapping) else "")
        )
    ax: dict[str, np.ndarray] = {}
    for name, values in axes.items():
        _check_name("axis", name)
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"axis {name!r} must be an array of numbers, got "
                f"{type(values).__name__}"
            ) from None
        if arr.ndim != 1 or arr.size < 1:
            raise ValueError(
                f"axis {name!r} must be a non-empty 1-D array, got shape {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"axis {name!r} must be finite")
        if arr.size > 1 and not np.all(np.diff(arr) > 0):
            raise ValueError(f"axis {name!r} must be strictly increasing")
        ax[name] = arr
    if isinstance(fields, str) or not isinstance(fields, Sequence | set | frozenset):
        raise TypeError(f"`fields` must be a list of field names, got {fields!r}")
    fl = [_check_name("field", f) for f in fields]
    if "loss" not in fl:
        raise ValueError(f"`fields` must contain 'loss', got {fl}")
    if len(set(fl)) != len(fl):
        raise ValueError(f"`fields` must be distinct, got {fl}")
    clash = set(fl) & set(ax)
    if clash:
        raise ValueError(f"field and axis names must differ, both use {sorted(clash)}")
    try:
        ch = tuple(chunks)
    except TypeError:
        raise TypeError(
            f"`chunks` must be a tuple of {len(ax)} positive integers, got {chunks!r}"
        ) from None
    if len(ch) != len(ax) or not all(
        isinstance(c, int | np.integer) and not isinstance(c, bool) and c >= 1
        for c in ch
    ):
        raise ValueError(
            f"`chunks` must be a tuple of {len(ax)} positive integers (one per "
            f"axis), got {chunks!r}"
        )
    ch = tuple(min(int(c), a.size) for c, a in zip(ch, ax.values()))
    if not isinstance(metadata, Mapping):
        raise TypeError(f"`metadata` must be a mapping, got {type(metadata).__name__}")
    meta = _jsonable(dict(metadata))
    try:
        json.dumps(meta, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"`metadata` must be JSON-serialisable: {exc}") from None
    return ax, fl, ch, meta
