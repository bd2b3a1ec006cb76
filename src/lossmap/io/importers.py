"""Surfaces written by other tools: Li et al.'s reference code (``.h5``), ``.npz``.

The reference implementation of Li et al. 2018 (tomgoldstein/loss-landscape)
writes one HDF5 file per surface: ``xcoordinates`` (and ``ycoordinates`` for a
plane) and one array per quantity, ``train_loss``, ``train_acc``,
``test_loss``, ``test_acc``. Points are evaluated in the order of
``numpy.meshgrid(x, y)`` flattened, so the value at flat position ``k`` is the
one at ``(x[k % nx], y[k // nx])``; on the usual square grid that means
``loss[i, j]`` sits at ``(x_j, y_i)``. lossmap's surfaces use "ij" order
(``loss[i, j]`` at ``(alpha_i, beta_j)``), so the importer reorders
accordingly. Points not computed yet hold ``-1`` in the reference files and
become NaN. Accuracies are percentages there and fractions here.

h5py is an optional extra (``pip install 'lossmap[h5]'``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from lossmap.surface import Surface

__all__ = ["import_file", "import_h5", "import_npz", "reference_layout"]

_REF_FIELDS = {"train_loss": "loss", "train_acc": "accuracy", "train_err": "error"}


def _require_h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - depends on environment
        raise ImportError(
            "reading .h5 surfaces needs h5py: pip install 'lossmap[h5]'"
        ) from exc
    return h5py


def _field_name(key: str) -> str:
    if key in _REF_FIELDS:
        return _REF_FIELDS[key]
    return key.replace("_acc", "_accuracy") if key.endswith("_acc") else key


def _from_reference(arrays: dict[str, np.ndarray], source: str) -> Surface:
    """Build a Surface from reference-layout arrays (see the module docstring)."""
    if "xcoordinates" not in arrays:
        raise ValueError(
            f"`path` {source!r} must hold 'xcoordinates' (Li et al.'s layout), got "
            f"arrays {sorted(arrays)}"
        )
    x = np.asarray(arrays["xcoordinates"], dtype=float).ravel()
    y = arrays.get("ycoordinates")
    y = None if y is None else np.asarray(y, dtype=float).ravel()
    shape = (x.size,) if y is None else (x.size, y.size)
    fields: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        if key in ("xcoordinates", "ycoordinates"):
            continue
        arr = np.asarray(value)
        if arr.dtype.kind not in "fiu" or arr.shape != shape:
            continue
        flat = arr.astype(float).ravel()
        grid = flat if y is None else flat.reshape(y.size, x.size).T
        fields[_field_name(key)] = grid
    loss_keys = [k for k in fields if k == "loss" or k.endswith("_loss")]
    if not loss_keys:
        raise ValueError(
            f"`path` {source!r} must hold a loss array of shape {shape} "
            f"(train_loss or test_loss), got arrays {sorted(arrays)}"
        )
    meta: dict[str, Any] = {
        "kind": "import.li2018",
        "source": {"file": source, "format": "Li et al. 2018 reference code"},
    }
    if "loss" not in fields:
        fields["loss"] = fields[loss_keys[0]]
        meta["source"]["loss_from"] = loss_keys[0]
    # the reference marks points not computed yet with -1 (it treats <= 0 so)
    masks = {k: v < 0 for k, v in fields.items() if k == "loss" or k.endswith("_loss")}
    missing = {k: int(m.sum()) for k, m in masks.items()}
    for name in list(fields):
        own = "loss" if name in ("loss", "accuracy", "error") else name.split("_")[0]
        mask = masks.get("loss" if own == "loss" else f"{own}_loss")
        if mask is not None:
            fields[name] = np.where(mask, np.nan, fields[name])
    for name in list(fields):
        if name == "accuracy" or name.endswith("_accuracy"):
            fields[name] = fields[name] / 100.0
    meta["source"]["accuracy"] = "percent in the file, fraction here"
    if any(missing.values()):
        meta["source"]["not_computed"] = missing
    if "dir_file" in arrays:
        meta["source"]["dir_file"] = str(arrays["dir_file"])
    axes = {"alpha": x} if y is None else {"alpha": x, "beta": y}
    first = [f for f in ("loss", "accuracy", "error") if f in fields]
    ordered = {f: fields[f] for f in [*first, *sorted(set(fields) - set(first))]}
    return Surface(axes=axes, fields=ordered, metadata=meta)


def import_h5(path: str | os.PathLike[str]) -> Surface:
    """Read a surface file of Li et al.'s reference code.

    Parameters
    ----------
    path : path-like
        An HDF5 file with ``xcoordinates`` (shape ``(nx,)``), optionally
        ``ycoordinates`` (``(ny,)``) and arrays such as ``train_loss``,
        ``train_acc``, ``test_loss``, ``test_acc`` of shape ``(nx, ny)``
        (``(nx,)`` for a line).

    Returns
    -------
    Surface
        Axes ``alpha`` (= x) and ``beta`` (= y); fields ``loss`` and
        ``accuracy`` (from ``train_*``; accuracy as a fraction), ``test_loss``,
        ``test_accuracy``, …, of shape ``(nx, ny)`` in "ij" order; the source
        file in ``metadata["source"]``.
    """
    h5py = _require_h5py()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"`path` must be an .h5 file, got missing {str(path)!r}"
        )
    arrays: dict[str, Any] = {}
    try:
        with h5py.File(path, "r") as f:
            for key in f:
                item = f[key]
                if isinstance(item, h5py.Dataset):
                    value = item[()]
                    arrays[key] = value.decode() if isinstance(value, bytes) else value
    except OSError as exc:
        raise ValueError(
            f"`path` {path.name} is not a readable HDF5 file ({exc})"
        ) from None
    return _from_reference(arrays, str(path))


def import_npz(path: str | os.PathLike[str]) -> Surface:
    """Read a surface from an ``.npz`` of named arrays.

    Either Li et al.'s layout (``xcoordinates``, …; see :func:`import_h5`) or
    lossmap's: axes ``alpha`` (and ``beta``) and fields such as ``loss`` of
    shape ``(n_alpha, n_beta)``, ``field[i, j]`` at ``(alpha_i, beta_j)``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"`path` must be an .npz file, got missing {str(path)!r}"
        )
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    if "xcoordinates" in arrays:
        return _from_reference(arrays, str(path))
    if "alpha" not in arrays or "loss" not in arrays:
        raise ValueError(
            f"`path` {path.name} must hold 'alpha' and 'loss' (lossmap's layout) or "
            f"'xcoordinates' and 'train_loss' (Li et al.'s), got {sorted(arrays)}"
        )
    axes = {k: arrays[k] for k in ("alpha", "beta") if k in arrays}
    shape = tuple(np.asarray(a).size for a in axes.values())
    fields = {}
    for key, value in arrays.items():
        if key in axes:
            continue
        if value.shape != shape:
            raise ValueError(
                f"`path` {path.name}: array {key!r} must have the grid's shape {shape} "
                f"(alpha × beta, 'ij' order), got {value.shape}"
            )
        fields[key] = value
    meta = {"kind": "import.npz", "source": {"file": str(path), "format": "npz"}}
    return Surface(axes=axes, fields=fields, metadata=meta)


def import_file(path: str | os.PathLike[str]) -> Surface:
    """:func:`import_h5` or :func:`import_npz`, by the file's suffix."""
    suffix = Path(path).suffix.lower()
    if suffix in (".h5", ".hdf5"):
        return import_h5(path)
    if suffix == ".npz":
        return import_npz(path)
    raise ValueError(f"`path` must end in .h5, .hdf5 or .npz, got {Path(path).name!r}")


def reference_layout(surface: Surface) -> dict[str, np.ndarray]:
    """A surface as the reference code would store it (the inverse of the import).

    Returns ``xcoordinates`` (``ycoordinates``), ``train_loss`` and, when
    present, ``train_acc`` in percent, each flattened in ``meshgrid(x, y)``
    order and shaped ``(nx, ny)`` as the reference allocates it.
    """
    out: dict[str, np.ndarray] = {"xcoordinates": surface.coords(0)}
    if surface.ndim == 2:
        out["ycoordinates"] = surface.coords(1)
    pairs = [("loss", "train_loss", 1.0), ("accuracy", "train_acc", 100.0)]
    for name, key, scale in pairs:
        if name in surface.field_names:
            values = surface.field(name) * scale
            if surface.ndim == 2:
                values = values.T.ravel().reshape(surface.shape)
            out[key] = values
    return out
