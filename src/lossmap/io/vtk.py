"""Export a surface as a legacy VTK structured grid (ParaView, VisIt read it).

The file is the "legacy" VTK format, version 3.0, binary: an ASCII header
line by line, then big-endian float64 arrays. Points are
``(a, b, height)`` with the first axis varying fastest, as VTK expects for a
``STRUCTURED_GRID`` of ``DIMENSIONS n_a n_b 1``; every field of the surface
follows as ``POINT_DATA`` scalars. Format reference: "VTK File Formats",
VTK User's Guide (Kitware), section "Simple Legacy Formats".
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from lossmap._validation import check_choice
from lossmap.io._settings import as_path
from lossmap.surface import Surface

__all__ = ["to_vtk"]


def _vtk_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "field"


def to_vtk(
    surface: Surface,
    path: str | os.PathLike[str],
    *,
    height: str = "log10",
    field: str = "loss",
) -> Path:
    """Write ``surface`` as a binary legacy ``.vtk`` STRUCTURED_GRID file.

    Parameters
    ----------
    surface : Surface
        A 2-D surface of shape (n_a, n_b), or a 1-D one (written with b = 0).
    path : path-like
        Output file, conventionally ending in ``.vtk``.
    height : {"log10", "linear", "flat"}, default "log10"
        Third point coordinate: ``log10(field)``, the field itself, or 0.
    field : str, default "loss"
        Field used for the height.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        If ``height="log10"`` and the field has a value <= 0.
    """
    path = as_path(path)
    if not isinstance(surface, Surface):
        raise TypeError(f"`surface` must be a Surface, got {type(surface).__name__}")
    check_choice("height", height, ("log10", "linear", "flat"))
    values = surface.field(field)
    if height == "log10":
        if np.any(values[np.isfinite(values)] <= 0):
            raise ValueError(
                f"`height='log10'` needs a positive {field!r} field, got a minimum "
                f"of {np.nanmin(values):.4g}; use height='linear'"
            )
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.log10(values)
    elif height == "linear":
        z = values
    else:
        z = np.zeros(surface.shape)
    a = surface.coords(0)
    b = surface.coords(1) if surface.ndim == 2 else np.zeros(1)
    aa, bb = np.meshgrid(a, b, indexing="ij")
    z = z.reshape(aa.shape)
    # VTK wants the first index fastest: Fortran order of "ij" arrays
    points = np.stack([aa.ravel(order="F"), bb.ravel(order="F"), z.ravel(order="F")])
    n = aa.size
    title = f"lossmap surface: {', '.join(surface.names)}; height={height}({field})"
    with open(path, "wb") as fh:
        header = (
            "# vtk DataFile Version 3.0\n"
            f"{title[:255]}\n"
            "BINARY\n"
            "DATASET STRUCTURED_GRID\n"
            f"DIMENSIONS {a.size} {b.size} 1\n"
            f"POINTS {n} double\n"
        )
        fh.write(header.encode("ascii", "replace"))
        fh.write(points.T.astype(">f8").tobytes())
        fh.write(f"\nPOINT_DATA {n}\n".encode())
        for name, arr in surface.fields.items():
            fh.write(
                f"SCALARS {_vtk_name(name)} double 1\nLOOKUP_TABLE default\n".encode()
            )
            fh.write(
                np.asarray(arr)
                .reshape(aa.shape)
                .ravel(order="F")
                .astype(">f8")
                .tobytes()
            )
            fh.write(b"\n")
    return path
