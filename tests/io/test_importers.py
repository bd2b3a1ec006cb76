"""Importing surfaces written by Li et al.'s reference code (.h5) and .npz files."""

from __future__ import annotations

import numpy as np
import pytest

from lossmap import Surface, io
from lossmap.cli import main
from lossmap.io.importers import reference_layout

h5py = pytest.importorskip("h5py")


def _plane(nx: int = 7, ny: int = 5) -> Surface:
    """An asymmetric plane: every value tells where it belongs."""
    a = np.linspace(-1.0, 1.0, nx)
    b = np.linspace(-0.5, 1.5, ny)
    loss = 1.0 + np.add.outer(a**2, 3.0 * (b - 0.2) ** 2) + 0.3 * np.outer(a, b)
    acc = 1.0 / (1.0 + loss)
    return Surface(axes={"alpha": a, "beta": b}, fields={"loss": loss, "accuracy": acc})


def _write_reference(path, surface: Surface) -> None:
    """Write the file exactly as the reference code would (its evaluation order)."""
    x = surface.coords(0)
    y = surface.coords(1) if surface.ndim == 2 else None
    shape = x.shape if y is None else (len(x), len(y))
    losses, accs = -np.ones(shape), -np.ones(shape)
    if y is None:
        coords = x
    else:  # the reference's job list: meshgrid(x, y) flattened
        xm, ym = np.meshgrid(x, y)
        coords = np.c_[xm.ravel(), ym.ravel()]
    for k, c in enumerate(coords):
        if y is None:
            i = int(np.argmin(np.abs(x - c)))
            losses.ravel()[k] = surface.loss[i]
            accs.ravel()[k] = 100.0 * surface.field("accuracy")[i]
        else:
            i = int(np.argmin(np.abs(x - c[0])))
            j = int(np.argmin(np.abs(y - c[1])))
            losses.ravel()[k] = surface.loss[i, j]
            accs.ravel()[k] = 100.0 * surface.field("accuracy")[i, j]
    with h5py.File(path, "w") as f:
        f["dir_file"] = "model.t7_weights_xignore=biasbn_xnorm=filter.h5"
        f["xcoordinates"] = x
        if y is not None:
            f["ycoordinates"] = y
        f["train_loss"] = losses
        f["train_acc"] = accs
        f["test_loss"] = losses + 0.5
        f["test_acc"] = accs


@pytest.mark.parametrize("shape", [(7, 5), (6, 6), (9,)])
def test_reference_file_imports_back_equal(tmp_path, shape):
    if len(shape) == 2:
        surface = _plane(*shape)
    else:
        a = np.linspace(-0.5, 1.5, shape[0])
        surface = Surface(
            axes={"alpha": a},
            fields={"loss": 1 + (a - 0.3) ** 2, "accuracy": 0.9 - 0.1 * a**2},
        )
    _write_reference(tmp_path / "s.h5", surface)
    got = io.import_h5(tmp_path / "s.h5")
    assert got.names == surface.names
    for k in range(surface.ndim):
        np.testing.assert_array_equal(got.coords(k), surface.coords(k))
    np.testing.assert_allclose(got.loss, surface.loss, rtol=0, atol=1e-15)
    np.testing.assert_allclose(got.field("accuracy"), surface.field("accuracy"))
    np.testing.assert_allclose(got.field("test_loss"), surface.loss + 0.5)
    assert got.metadata["source"]["file"].endswith("s.h5")
    assert got.metadata["source"]["dir_file"].startswith("model.t7")


def test_reference_layout_is_the_inverse(tmp_path):
    surface = _plane(7, 5)
    _write_reference(tmp_path / "ref.h5", surface)
    mine = reference_layout(surface)
    with h5py.File(tmp_path / "ref.h5") as f:
        np.testing.assert_array_equal(mine["train_loss"], f["train_loss"][()])


def test_imported_plane_exports_the_same_vtk(tmp_path):
    surface = _plane(7, 5)
    _write_reference(tmp_path / "s.h5", surface)
    assert main(["import", str(tmp_path / "s.h5"), str(tmp_path / "s.zarr")]) == 0
    imported = io.load(tmp_path / "s.zarr")
    assert imported.field_names == ("loss", "accuracy", "test_accuracy", "test_loss")
    # losses travel bit for bit; accuracies go through percent and back
    np.testing.assert_allclose(
        imported.field("accuracy"), surface.field("accuracy"), rtol=1e-15
    )
    exact = Surface(axes=dict(surface.axes), fields={"loss": surface.loss})
    io.save(exact, tmp_path / "orig.zarr")
    assert main(["vtk", str(tmp_path / "orig.zarr"), str(tmp_path / "a.vtk")]) == 0
    only = Surface(axes=dict(imported.axes), fields={"loss": imported.loss})
    io.save(only, tmp_path / "only.zarr")
    assert main(["vtk", str(tmp_path / "only.zarr"), str(tmp_path / "b.vtk")]) == 0
    assert (tmp_path / "a.vtk").read_bytes() == (tmp_path / "b.vtk").read_bytes()


def test_points_not_computed_become_nan(tmp_path):
    surface = _plane(4, 4)
    _write_reference(tmp_path / "s.h5", surface)
    with h5py.File(tmp_path / "s.h5", "r+") as f:
        f["train_loss"][3, 1] = -1.0
        f["train_acc"][3, 1] = -1.0
    got = io.import_h5(tmp_path / "s.h5")
    # flat position 3*4+1 = 13 is the point (x[13 % 4], y[13 // 4]) = (x1, y3)
    assert np.isnan(got.loss[1, 3])
    assert np.isnan(got.field("accuracy")[1, 3])
    assert np.isfinite(got.field("test_loss")).all()
    assert got.metadata["source"]["not_computed"]["loss"] == 1


def test_npz_in_both_layouts(tmp_path):
    surface = _plane(6, 4)
    np.savez(tmp_path / "ref.npz", **reference_layout(surface))
    np.savez(
        tmp_path / "mine.npz",
        alpha=surface.coords(0),
        beta=surface.coords(1),
        loss=surface.loss,
    )
    for name in ("ref.npz", "mine.npz"):
        got = io.import_file(tmp_path / name)
        np.testing.assert_allclose(got.loss, surface.loss, atol=1e-15)
        np.testing.assert_array_equal(got.coords(1), surface.coords(1))


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"loss": np.zeros(3)}, "must hold 'alpha' and 'loss'"),
        (
            {"alpha": np.arange(3.0), "beta": np.arange(2.0), "loss": np.zeros((2, 3))},
            "array 'loss' must have the grid's shape (3, 2)",
        ),
    ],
)
def test_bad_npz_is_refused(tmp_path, arrays, message, capsys):
    np.savez(tmp_path / "bad.npz", **arrays)
    assert main(["import", str(tmp_path / "bad.npz"), str(tmp_path / "o.zarr")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o.zarr").exists()


def test_a_file_with_only_test_loss_uses_it_as_the_loss(tmp_path):
    surface = _plane(5, 5)
    ref = reference_layout(surface)
    with h5py.File(tmp_path / "t.h5", "w") as f:
        f["xcoordinates"] = ref["xcoordinates"]
        f["ycoordinates"] = ref["ycoordinates"]
        f["test_loss"] = ref["train_loss"]
    got = io.import_h5(tmp_path / "t.h5")
    np.testing.assert_array_equal(got.loss, surface.loss)
    assert got.metadata["source"]["loss_from"] == "test_loss"
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f["xcoordinates"] = ref["xcoordinates"]
    with pytest.raises(ValueError, match="must hold a loss array of shape"):
        io.import_h5(tmp_path / "empty.h5")
