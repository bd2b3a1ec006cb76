"""save/load round trips and xarray compatibility."""

from __future__ import annotations

import numpy as np
import pytest

from lossmap import Surface
from lossmap.io import GridStore, load, save


@pytest.fixture
def plane():
    a = np.linspace(-1, 1, 9)
    b = np.linspace(-2, 2, 6)
    aa, bb = np.meshgrid(a, b, indexing="ij")
    loss = 1 + aa**2 + 0.5 * bb**2
    loss[3, 2] = np.nan  # diverged point must survive the round trip
    return Surface(
        axes={"alpha": a, "beta": b},
        fields={"loss": loss, "accuracy": 1 / (1 + loss)},
        metadata={
            "directions": {"kind": "random", "seed": 7, "norm": "filter"},
            "steps": [9, 6],
            "span": 1.0,
            "note": "ünïcode",
        },
    )


def test_round_trip_2d(tmp_path, plane):
    path = save(plane, tmp_path / "p.zarr")
    back = load(path)
    assert back.names == plane.names
    assert back.field_names == plane.field_names
    for name in plane.field_names:
        np.testing.assert_array_equal(back.field(name), plane.field(name))
    for (_, x), (_, y) in zip(back.axes, plane.axes):
        np.testing.assert_array_equal(x, y)
    assert dict(back.metadata) == dict(plane.metadata)


def test_round_trip_1d_small_chunks(tmp_path):
    a = np.linspace(0, 1, 13)
    s = Surface(axes={"t": a}, fields={"loss": np.exp(a)}, metadata={"k": [1, 2]})
    back = load(save(s, tmp_path / "l.zarr", chunks=(5,)))
    np.testing.assert_array_equal(back.loss, s.loss)
    assert back.metadata["k"] == [1, 2]


def test_xarray_opens_with_coordinates(tmp_path, plane):
    xr = pytest.importorskip("xarray")
    ds = xr.open_zarr(save(plane, tmp_path / "p.zarr"), consolidated=False)
    assert set(ds.coords) == {"alpha", "beta"}
    assert ds["loss"].dims == ("alpha", "beta")
    np.testing.assert_array_equal(ds["alpha"].values, plane.coords("alpha"))
    np.testing.assert_array_equal(ds["loss"].values, plane.loss)
    # label-based selection works as with any xarray dataset
    val = float(ds["accuracy"].sel(alpha=0.0, beta=plane.coords("beta")[1]))
    assert val == plane.field("accuracy")[4, 1]
    assert "lossmap_metadata" in ds.attrs


def test_save_refuses_existing_unless_overwrite(tmp_path, plane):
    path = save(plane, tmp_path / "p.zarr")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save(plane, path)
    other = plane.with_fields(loss=plane.loss * 2)
    save(other, path, overwrite=True)
    np.testing.assert_array_equal(load(path).loss, plane.loss * 2)
    assert [p.name for p in tmp_path.iterdir()] == ["p.zarr"]


def test_overwrite_never_replaces_something_else(tmp_path, plane):
    path = tmp_path / "mine"
    path.mkdir()
    (path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="not a lossmap surface store"):
        save(plane, path, overwrite=True)
    assert (path / "notes.txt").exists()


def test_save_bad_input_leaves_nothing(tmp_path, plane):
    with pytest.raises(TypeError, match="`surface` must be a Surface"):
        save({"loss": 1}, tmp_path / "x.zarr")
    with pytest.raises(ValueError, match="positive integers"):
        save(plane, tmp_path / "x.zarr", chunks=(0, 1))
    assert list(tmp_path.iterdir()) == []


def test_load_incomplete_store(tmp_path, plane):
    store = GridStore.open(
        tmp_path / "g.zarr",
        axes=dict(plane.axes),
        fields=["loss"],
        chunks=(3, 6),
        metadata={},
    )
    store.write((0, 0), {"loss": plane.loss[:3]})
    with pytest.raises(ValueError, match="2 of 3 chunks are missing"):
        load(store.path)
    part = load(store.path, allow_incomplete=True)
    np.testing.assert_array_equal(part.loss[:3], plane.loss[:3])
    assert np.all(np.isnan(part.loss[3:]))


def test_load_nothing_there(tmp_path):
    with pytest.raises(FileNotFoundError, match="no store"):
        load(tmp_path / "nope.zarr")
