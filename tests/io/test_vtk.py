"""The legacy VTK writer, checked by parsing the file back."""

from __future__ import annotations

import numpy as np
import pytest

from lossmap import Surface
from lossmap.io import to_vtk


def _parse(path):
    """A minimal reader for the files to_vtk writes."""
    raw = path.read_bytes()
    pos = 0

    def line():
        nonlocal pos
        end = raw.index(b"\n", pos)
        text = raw[pos:end].decode()
        pos = end + 1
        return text

    def floats(n):
        nonlocal pos
        arr = np.frombuffer(raw, dtype=">f8", count=n, offset=pos)
        pos += 8 * n
        return arr

    head = [line() for _ in range(5)]
    dims = tuple(int(x) for x in head[4].split()[1:])
    kind, n, dtype = line().split()
    assert (kind, dtype) == ("POINTS", "double")
    points = floats(3 * int(n)).reshape(-1, 3)
    assert line() == ""
    assert line() == f"POINT_DATA {n}"
    data = {}
    while pos < len(raw):
        _, name, dt, ncomp = line().split()
        assert (dt, ncomp) == ("double", "1")
        assert line() == "LOOKUP_TABLE default"
        data[name] = floats(int(n))
        assert line() == ""
    return head, dims, points, data


def test_structured_grid_points_and_data(tmp_path):
    a = np.linspace(-1, 1, 4)
    b = np.linspace(0, 3, 3)
    aa, bb = np.meshgrid(a, b, indexing="ij")
    loss = np.exp(aa + bb)
    s = Surface(axes={"a": a, "b": b}, fields={"loss": loss, "test acc": aa * bb})
    head, dims, points, data = _parse(to_vtk(s, tmp_path / "s.vtk"))
    assert head[0] == "# vtk DataFile Version 3.0"
    assert head[2:4] == ["BINARY", "DATASET STRUCTURED_GRID"]
    assert dims == (4, 3, 1)
    # first axis varies fastest; height is log10(loss) = (a + b) / ln 10
    np.testing.assert_allclose(points[:4, 0], a)
    np.testing.assert_allclose(points[:4, 1], b[0])
    np.testing.assert_allclose(points[4:8, 1], b[1])
    np.testing.assert_allclose(points[:, 2], (points[:, 0] + points[:, 1]) / np.log(10))
    assert list(data) == ["loss", "test_acc"]
    np.testing.assert_allclose(data["loss"], np.exp(points[:, 0] + points[:, 1]))
    np.testing.assert_allclose(data["test_acc"], points[:, 0] * points[:, 1])


def test_linear_height_and_one_dimensional(tmp_path):
    a = np.linspace(0, 1, 5)
    s = Surface(axes={"t": a}, fields={"loss": a - 0.5})
    with pytest.raises(ValueError, match="height='linear'"):
        to_vtk(s, tmp_path / "l.vtk")
    _, dims, points, data = _parse(to_vtk(s, tmp_path / "l.vtk", height="linear"))
    assert dims == (5, 1, 1)
    np.testing.assert_allclose(points[:, 2], a - 0.5)
    np.testing.assert_allclose(points[:, 1], 0.0)
    np.testing.assert_allclose(data["loss"], a - 0.5)


def test_bad_height(tmp_path):
    s = Surface(axes={"t": [0.0, 1.0]}, fields={"loss": [1.0, 2.0]})
    with pytest.raises(ValueError, match="`height` must be one of"):
        to_vtk(s, tmp_path / "x.vtk", height="log")
