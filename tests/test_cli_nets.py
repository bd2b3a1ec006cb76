"""`lossmap info`, `show` and `vtk` on saved surfaces."""

from __future__ import annotations

import numpy as np
import pytest

from lossmap import Surface, io
from lossmap.cli import main


@pytest.fixture
def stores(tmp_path):
    a = np.linspace(-1, 1, 9)
    b = np.linspace(-1, 1, 7)
    loss = 1 + np.add.outer(a**2, 2 * b**2)
    plane = Surface(
        axes={"alpha": a, "beta": b},
        fields={"loss": loss, "accuracy": 1 / loss},
        metadata={"bn": "eval", "span": 1.0},
    )
    line = Surface(
        axes={"alpha": a}, fields={"loss": 1 + a**2, "accuracy": 1 - a**2 / 2}
    )
    io.save(plane, tmp_path / "plane.zarr")
    io.save(line, tmp_path / "line.zarr")
    return tmp_path


def test_info_describes_the_store(stores, capsys):
    assert main(["info", str(stores / "plane.zarr")]) == 0
    out = capsys.readouterr().out
    assert "A plane through parameter space" in out
    assert "Lowest loss 1 at alpha = 0, beta = 0" in out
    assert "Fields: loss, accuracy." in out


@pytest.mark.parametrize(
    ("store", "extra"),
    [
        ("plane.zarr", []),
        ("plane.zarr", ["--field", "accuracy"]),
        ("plane.zarr", ["--3d"]),
        ("line.zarr", []),
        ("line.zarr", ["--field", "loss"]),
    ],
)
def test_show_writes_an_image(stores, store, extra, capsys):
    out = stores / "fig.png"
    assert main(["show", str(stores / store), "--out", str(out), *extra]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().out


def test_vtk_export(stores):
    out = stores / "plane.vtk"
    assert main(["vtk", str(stores / "plane.zarr"), str(out)]) == 0
    assert out.read_bytes().startswith(b"# vtk DataFile Version")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["info", "nope.zarr"], "`STORE` must be a saved surface, got missing"),
        (
            ["show", "{d}/plane.zarr", "--out", "{d}/x.txt"],
            "`--out` must end in one of",
        ),
        (
            ["show", "{d}/plane.zarr", "--out", "{d}/x.png", "--field", "zz"],
            "'zz' is not a field",
        ),
        (["vtk", "{d}/plane.zarr", "{d}/x.txt"], "`OUT` must end in .vtk"),
    ],
)
def test_errors_are_one_clear_line(stores, argv, message, capsys):
    argv = [a.format(d=stores) for a in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
