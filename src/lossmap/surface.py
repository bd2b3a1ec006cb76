"""`Surface`: a loss landscape sampled on a grid, with its provenance.

A Surface is immutable. It holds

* named **axes**, each a 1-D array of coordinates (one axis for a line, two for
  a plane);
* one or more **fields** sampled on the grid, ``loss`` always, plus e.g.
  ``accuracy``, ``loss_stderr`` or one field per loss term. A field has shape
  ``tuple(len(axis) for axis in axes)``: ``field[i, j]`` is the value at
  ``(axes[0][i], axes[1][j])`` ("ij" indexing);
* **metadata**: a JSON-friendly mapping recording how the surface was made, so
  it can be recomputed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

__all__ = ["Point", "Surface"]


class Point(NamedTuple):
    """A grid point of a surface: its coordinates by axis name and its value."""

    coords: dict[str, float]
    value: float
    index: tuple[int, ...]


def _frozen(arr: Any, name: str, kind: str = "field") -> np.ndarray:
    """``arr`` as a read-only float64 copy, or an error naming ``kind`` ``name``."""
    bad = isinstance(arr, str | bytes) or (
        isinstance(arr, np.ndarray) and arr.dtype.kind not in "biuf"
    )
    try:
        if bad:
            raise TypeError(f"{type(arr).__name__} values are not numbers")
        out = np.array(arr, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        got = type(arr).__name__
        if isinstance(arr, np.ndarray):
            got = f"an array of dtype {arr.dtype}"
        raise TypeError(
            f"{kind} {name!r} must be an array of real numbers, got {got} "
            f"({str(exc).splitlines()[0][:80]})"
        ) from None
    out.flags.writeable = False
    return out


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays and tuples inside metadata to plain Python."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(frozen=True, eq=False, init=False)
class Surface:
    """A loss landscape on a 1-D or 2-D grid.

    Parameters
    ----------
    axes : mapping of str to array-like of shape (n_k,)
        Axis names in order, each with strictly increasing coordinates.
    fields : mapping of str to array-like of shape (n_0[, n_1])
        Sampled values; must contain ``"loss"``.
    metadata : mapping, optional
        How the surface was made (JSON-friendly values).

    Examples
    --------
    >>> import numpy as np
    >>> from lossmap import Surface
    >>> w = np.linspace(-1, 1, 3); b = np.linspace(0, 2, 5)
    >>> s = Surface(axes={"w": w, "b": b},
    ...             fields={"loss": np.add.outer(w**2, (b - 1) ** 2)})
    >>> s.argmin().coords
    {'w': 0.0, 'b': 1.0}
    """

    axes: tuple[tuple[str, np.ndarray], ...]
    fields: Mapping[str, np.ndarray]
    metadata: Mapping[str, Any]

    def __init__(
        self,
        *,
        axes: Mapping[str, Any],
        fields: Mapping[str, Any],
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(axes, Mapping) or not 1 <= len(axes) <= 2:
            raise ValueError(
                f"`axes` must be a mapping of 1 or 2 named coordinate arrays, "
                f"got {type(axes).__name__} of length "
                f"{len(axes) if hasattr(axes, '__len__') else '?'}"
            )
        ax: list[tuple[str, np.ndarray]] = []
        for name, values in axes.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"axis names must be non-empty strings, got {name!r}")
            arr = _frozen(values, name, "axis")
            if arr.ndim != 1 or arr.size < 1:
                raise ValueError(
                    f"axis {name!r} must be a non-empty 1-D array, "
                    f"got shape {arr.shape}"
                )
            if not np.all(np.isfinite(arr)):
                raise ValueError(
                    f"axis {name!r} must be finite, got "
                    f"{int((~np.isfinite(arr)).sum())} NaN or infinite coordinate(s)"
                )
            if arr.size > 1 and not np.all(np.diff(arr) > 0):
                raise ValueError(f"axis {name!r} must be strictly increasing")
            ax.append((name, arr))
        if len({n for n, _ in ax}) != len(ax):
            raise ValueError(f"axis names must be distinct, got {[n for n, _ in ax]}")
        shape = tuple(a.size for _, a in ax)
        if not isinstance(fields, Mapping) or "loss" not in fields:
            raise ValueError(
                f"`fields` must be a mapping containing 'loss', got "
                f"{list(fields) if isinstance(fields, Mapping) else type(fields)}"
            )
        fl: dict[str, np.ndarray] = {}
        for name, values in fields.items():
            arr = _frozen(values, name)
            if arr.shape != shape:
                raise ValueError(
                    f"field {name!r} must have shape {shape} (one value per grid "
                    f"point), got {arr.shape}"
                )
            fl[name] = arr
        object.__setattr__(self, "axes", tuple(ax))
        object.__setattr__(self, "fields", MappingProxyType(fl))
        meta = _jsonable(dict(metadata or {}))
        object.__setattr__(self, "metadata", MappingProxyType(meta))

    # ------------------------------------------------------------------ access
    @property
    def names(self) -> tuple[str, ...]:
        """Axis names, in order."""
        return tuple(n for n, _ in self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        """Grid shape, ``(n_0,)`` or ``(n_0, n_1)``."""
        return tuple(a.size for _, a in self.axes)

    @property
    def ndim(self) -> int:
        """Number of axes (1 or 2)."""
        return len(self.axes)

    @property
    def loss(self) -> np.ndarray:
        """The ``loss`` field, shape :attr:`shape`."""
        return self.fields["loss"]

    @property
    def field_names(self) -> tuple[str, ...]:
        """Names of all fields."""
        return tuple(self.fields)

    def coords(self, name: str | int) -> np.ndarray:
        """Coordinates of one axis, by name or position."""
        if isinstance(name, int):
            return self.axes[name][1]
        for n, arr in self.axes:
            if n == name:
                return arr
        raise KeyError(
            f"{name!r} is not an axis of this surface; axes are {self.names}"
        )

    def field(self, name: str) -> np.ndarray:
        """One field by name, shape :attr:`shape`."""
        try:
            return self.fields[name]
        except KeyError:
            raise KeyError(
                f"{name!r} is not a field of this surface; fields are "
                f"{self.field_names}"
            ) from None

    def argmin(self, field: str = "loss") -> Point:
        """The grid point with the smallest finite value of ``field``."""
        return self._extreme(field, np.nanargmin)

    def argmax(self, field: str = "loss") -> Point:
        """The grid point with the largest finite value of ``field``."""
        return self._extreme(field, np.nanargmax)

    def _extreme(self, field: str, fn: Any) -> Point:
        values = np.where(np.isfinite(self.field(field)), self.field(field), np.nan)
        if np.all(np.isnan(values)):
            raise ValueError(f"field {field!r} has no finite value")
        idx = np.unravel_index(int(fn(values)), self.shape)
        coords = {n: float(a[i]) for (n, a), i in zip(self.axes, idx)}
        return Point(coords, float(values[idx]), tuple(int(i) for i in idx))

    def index_of(self, name: str, value: float) -> int:
        """Index of the grid coordinate of axis ``name`` nearest to ``value``."""
        return int(np.argmin(np.abs(self.coords(name) - float(value))))

    def slice(self, name: str, value: float) -> Surface:
        """The 1-D surface along the other axis at the grid line nearest ``value``.

        Only for 2-D surfaces; the fixed coordinate is kept in the metadata as
        ``sliced_at``.
        """
        if self.ndim != 2:
            raise ValueError(
                f"slice needs a 2-D surface, this one has {self.ndim} axis"
            )
        pos = self.names.index(name) if name in self.names else None
        if pos is None:
            raise KeyError(
                f"{name!r} is not an axis of this surface; axes are {self.names}"
            )
        i = self.index_of(name, value)
        other = self.axes[1 - pos]
        fields = {k: (v[i, :] if pos == 0 else v[:, i]) for k, v in self.fields.items()}
        meta = dict(self.metadata)
        meta["sliced_at"] = {name: float(self.coords(name)[i])}
        return Surface(axes={other[0]: other[1]}, fields=fields, metadata=meta)

    def with_fields(self, **fields: Any) -> Surface:
        """A copy with fields added or replaced."""
        return Surface(
            axes=dict(self.axes),
            fields={**self.fields, **fields},
            metadata=self.metadata,
        )

    def with_metadata(self, **metadata: Any) -> Surface:
        """A copy with metadata entries added or replaced."""
        return Surface(
            axes=dict(self.axes),
            fields=self.fields,
            metadata={**self.metadata, **metadata},
        )

    def mesh(self) -> tuple[np.ndarray, ...]:
        """Coordinate arrays of shape :attr:`shape` ("ij" indexing)."""
        return tuple(np.meshgrid(*(a for _, a in self.axes), indexing="ij"))

    def to_xarray(self) -> Any:
        """An ``xarray.Dataset``: one variable per field, metadata as attrs."""
        from lossmap._optional import require

        xr = require("xarray", extra="io", what="Surface.to_xarray")
        data_vars = {k: (self.names, np.asarray(v)) for k, v in self.fields.items()}
        coords = {n: np.asarray(a) for n, a in self.axes}
        attrs = {"lossmap_metadata": json.dumps(dict(self.metadata))}
        return xr.Dataset(data_vars, coords=coords, attrs=attrs)

    def allclose(
        self, other: Surface, *, rtol: float = 1e-7, atol: float = 0.0
    ) -> bool:
        """Whether ``other`` has the same axes and fields (to tolerance)."""
        if self.names != other.names or self.field_names != other.field_names:
            return False
        if self.shape != other.shape:
            return False
        same_axes = all(
            np.allclose(a, b, rtol=rtol, atol=atol)
            for (_, a), (_, b) in zip(self.axes, other.axes)
        )
        return same_axes and all(
            np.allclose(
                self.fields[k], other.fields[k], rtol=rtol, atol=atol, equal_nan=True
            )
            for k in self.fields
        )

    def _repr_html_(self) -> str:
        """A compact summary with a thumbnail, for Jupyter (see ``lossmap._repr``)."""
        from lossmap._repr import surface_html

        return surface_html(self)

    def __repr__(self) -> str:
        axes = ", ".join(
            f"{n}: {a.size} in [{a[0]:.4g}, {a[-1]:.4g}]" for n, a in self.axes
        )
        return f"Surface({axes}; fields={list(self.fields)})"
