"""`lossmap verify`, and `info`/`show`/`vtk` on damaged, empty or NaN stores."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("zarr")

from lossmap import Surface, io
from lossmap.cli import main
from lossmap.io import GridStore

A = np.linspace(-1, 1, 6)
B = np.linspace(-1, 1, 4)


def _saved(path, loss=None):
    if loss is None:
        loss = 1 + np.add.outer(A**2, B**2)
    surface = Surface(axes={"alpha": A, "beta": B}, fields={"loss": loss})
    return io.save(surface, path, chunks=(3, 2))


def _chunk(path, idx, field="loss"):
    return path.joinpath(field, "c", *map(str, idx))


def test_verify_clean_store(tmp_path, capsys):
    path = _saved(tmp_path / "p.zarr")
    assert main(["verify", str(path)]) == 0
    assert "4 of 4 chunks written, 0 missing, 0 damaged" in capsys.readouterr().out


def test_verify_lists_every_damaged_and_misplaced_chunk(tmp_path, capsys):
    path = _saved(tmp_path / "p.zarr")
    _chunk(path, (0, 1)).write_bytes(b"garbage")
    shutil.copyfile(_chunk(path, (0, 0)), _chunk(path, (1, 1)))
    assert main(["verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert "2 damaged" in out
    assert "chunk (0, 1) of field 'loss': unreadable" in out
    assert "chunk (1, 1) of field 'loss': misplaced: it holds chunk (0, 0)" in out


def test_repair_without_a_recorded_command_says_what_is_needed(tmp_path, capsys):
    path = _saved(tmp_path / "p.zarr")
    _chunk(path, (1, 0)).write_bytes(b"")
    assert main(["verify", str(path), "--repair"]) == 1
    out = capsys.readouterr().out
    assert "removed 1 damaged chunk(s)" in out
    assert "not the model and data" in out
    assert GridStore.attach(path).missing() == [(1, 0)]
    assert GridStore.attach(path).verify() == []


@pytest.mark.parametrize("command", ["info", "show", "vtk"])
def test_damaged_store_gives_one_line_error_and_exit_2(tmp_path, capsys, command):
    path = _saved(tmp_path / "p.zarr")
    _chunk(path, (1, 1)).write_bytes(b"\x00" * 7)
    extra = {"info": [], "show": ["--out", str(tmp_path / "f.png")]}.get(
        command, [str(tmp_path / "f.vtk")]
    )
    assert main([command, str(path), *extra]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.count("\n") == 0
    assert err.startswith("error: the store")
    assert "chunk (1, 1) of field 'loss'" in err
    assert "Traceback" not in captured.err + captured.out


@pytest.mark.parametrize("command", ["info", "verify"])
def test_not_a_store_gives_one_line_error(tmp_path, capsys, command):
    (tmp_path / "x.zarr").mkdir()
    (tmp_path / "x.zarr" / "zarr.json").write_text("{broken")
    assert main([command, str(tmp_path / "x.zarr")]) == 2
    assert "is not a lossmap surface store" in capsys.readouterr().err


def test_info_on_an_empty_store(tmp_path, capsys):
    GridStore.open(
        tmp_path / "e.zarr",
        axes={"alpha": A, "beta": B},
        fields=["loss"],
        chunks=(3, 2),
        metadata={},
    )
    assert main(["info", str(tmp_path / "e.zarr")]) == 0
    assert "no point computed yet" in capsys.readouterr().out


def test_info_tells_nan_points_apart_from_points_not_computed(tmp_path, capsys):
    loss = 1 + np.add.outer(A**2, B**2)
    loss[0, 0] = np.nan
    loss[5, 3] = np.inf
    path = _saved(tmp_path / "p.zarr", loss)
    GridStore.attach(path).forget([(0, 1)])  # 6 points, as if interrupted
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "2 computed grid point(s) gave a non-finite loss" in out
    assert "6 grid point(s) not computed yet" in out
    assert "Lowest loss" in out


MODEL_FILE = """
import torch

def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    )

def batch():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 4, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
"""


def test_repair_reruns_the_recorded_command(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    import sys

    (tmp_path / "nets.py").write_text(MODEL_FILE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "nets", raising=False)
    argv = [
        "plane",
        "--model",
        "nets.py:make_model",
        "--data",
        "nets.py:batch",
        "--steps",
        "6",
        "--store",
        "a.zarr",
    ]
    assert main(argv) == 0
    before = io.load("a.zarr")
    shutil.copytree("a.zarr", "moved.zarr")  # repair works on a moved store too
    _chunk(tmp_path / "moved.zarr", (0, 0)).write_bytes(b"\x00" * 9)
    capsys.readouterr()
    assert main(["verify", "moved.zarr", "--repair"]) == 0
    out = capsys.readouterr().out
    assert "removed 1 damaged chunk(s)" in out
    assert "repaired: every chunk is written and verified." in out
    np.testing.assert_array_equal(io.load("moved.zarr").loss, before.loss)
    assert GridStore.attach(tmp_path / "a.zarr").verify() == []
