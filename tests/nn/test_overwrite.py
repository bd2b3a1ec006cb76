"""``overwrite=True``: a stored computation starts again, and only a lossmap
store is ever removed (``GridStore.remove``, shared with the CLI's
``--overwrite``)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("zarr")

from lossmap import io  # noqa: E402
from lossmap import nn as lnn  # noqa: E402
from lossmap.io import GridStore  # noqa: E402


def _loss(out, y):
    return torch.nn.functional.cross_entropy(out, y)


def _problem():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    )
    g = torch.Generator().manual_seed(1)
    data = torch.randn(40, 4, generator=g), torch.randint(0, 3, (40,), generator=g)
    return net, data, lnn.random_plane(net, seed=3)


def _plane(steps=6, **kw):
    net, data, dirs = _problem()
    kw.setdefault("progress", False)
    return lnn.plane(net, _loss, data, dirs, span=0.5, steps=steps, chunk=2, **kw)


def _same(a, b):
    assert a.shape == b.shape
    for f in ("loss",):
        np.testing.assert_allclose(a.field(f), b.field(f), rtol=1e-12, atol=0)
    for name in a.names:
        np.testing.assert_array_equal(a.coords(name), b.coords(name))


def test_other_settings_are_refused_without_overwrite_and_recomputed_with_it(
    tmp_path,
):
    path = tmp_path / "p.zarr"
    _plane(steps=4, store=path)
    with pytest.raises(ValueError):
        _plane(steps=6, store=path)
    assert io.load(path).shape == (4, 4)  # the refusal left the old store alone
    stored = _plane(steps=6, store=path, overwrite=True)
    fresh = _plane(steps=6)  # in memory, no store
    _same(stored, fresh)
    _same(io.load(path), fresh)
    # and without overwrite the same call now resumes (nothing left to do)
    _same(_plane(steps=6, store=path), fresh)


def test_a_folder_that_is_not_a_lossmap_store_is_never_removed(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("precious")
    with pytest.raises(ValueError, match=r"`store`.*not one.*nothing was removed"):
        _plane(store=mine, overwrite=True)
    assert (mine / "keep.txt").read_text() == "precious"
    # a plain file, and another program's zarr group, are refused too
    afile = tmp_path / "file.zarr"
    afile.write_text("data")
    with pytest.raises(ValueError, match="`store`"):
        _plane(store=afile, overwrite=True)
    assert afile.read_text() == "data"
    other = tmp_path / "other.zarr"
    other.mkdir()
    (other / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group"}')
    with pytest.raises(ValueError, match="`store`"):
        GridStore.remove(other)
    assert (other / "zarr.json").exists()


def test_a_partial_store_is_recomputed_fully(tmp_path, monkeypatch):
    path = tmp_path / "p.zarr"
    real_write = GridStore.write
    calls = []

    def failing_write(self, idx, blocks):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(tuple(idx))
        # plant a wrong value: only a full recomputation replaces it
        blocks = {k: np.asarray(v) + 100.0 for k, v in blocks.items()}
        return real_write(self, idx, blocks)

    monkeypatch.setattr(GridStore, "write", failing_write)
    with pytest.raises(KeyboardInterrupt):
        _plane(store=path)
    monkeypatch.setattr(GridStore, "write", real_write)
    partial = GridStore.attach(path)
    assert len(partial.todo()) == 9 - 2  # 6 x 6 in 2 x 2 chunks, 2 saved

    written = []

    def counting_write(self, idx, blocks):
        written.append(tuple(idx))
        return real_write(self, idx, blocks)

    monkeypatch.setattr(GridStore, "write", counting_write)
    stored = _plane(store=path, overwrite=True)
    assert sorted(written) == sorted(GridStore.attach(path).chunk_indices())
    _same(stored, _plane())


def test_overwrite_needs_a_store_and_a_bool(tmp_path):
    with pytest.raises(ValueError, match="overwrite=True without a `store`"):
        _plane(overwrite=True)
    with pytest.raises(TypeError, match="`overwrite` must be True or False"):
        _plane(store=tmp_path / "s.zarr", overwrite="yes")
    net, data, _ = _problem()
    with pytest.raises(TypeError, match=r"unexpected keyword.*overwrite"):
        lnn.evaluate_params(net, _loss, data, overwrite=True)
    with pytest.raises(TypeError, match=r"\['overwrite'\] apply to grids only"):
        lnn.evaluate_params(net, _loss, data, options=lnn.Options(overwrite=True))


def test_remove_reports_whether_anything_was_there(tmp_path):
    path = tmp_path / "s.zarr"
    assert GridStore.remove(path) is False
    _plane(steps=3, store=path)
    assert GridStore.remove(path) is True
    assert not path.exists()


def test_random_lines_refuse_one_store_for_several_lines(tmp_path):
    net, data, _ = _problem()
    path = tmp_path / "r.zarr"
    with pytest.raises(ValueError, match="`store` holds one line, got count=2"):
        lnn.random_lines(
            net, _loss, data, count=2, seed=0, steps=4, store=path, overwrite=True
        )
    assert not path.exists()
    one = lnn.random_lines(net, _loss, data, count=1, seed=0, steps=4, store=path)
    np.testing.assert_allclose(io.load(path).loss, one.curves.loss[0], rtol=1e-12)
