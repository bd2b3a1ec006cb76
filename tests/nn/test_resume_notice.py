"""A rerun into a store says that it resumes, and warns about damaged chunks.

Before, a resumed run showed only "nn.plane: 27 of 27 points" (the points
left, as if the grid were that small), and a damaged chunk found on disk was
recomputed without a word.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("zarr")

import lossmap.nn as lnn  # noqa: E402
from lossmap.io import GridStore  # noqa: E402


def test_resume_says_what_is_saved_and_warns_of_damage(tmp_path, capsys, small_problem):
    net, data, dirs = small_problem
    loss = torch.nn.functional.cross_entropy
    path = tmp_path / "p.zarr"
    kw = dict(span=0.5, steps=9, chunk=3, metrics="accuracy")  # 9 chunks of 9
    reference = lnn.plane(net, loss, data, dirs, **kw)
    lnn.plane(net, loss, data, dirs, store=path, **kw)
    store = GridStore.attach(path)
    store.forget([(0, 0), (2, 1)])  # as if interrupted
    chunk_file = path / "loss" / "c" / "1" / "2"
    raw = bytearray(chunk_file.read_bytes())
    raw[len(raw) // 2] ^= 0x10  # one bit flipped
    chunk_file.write_bytes(bytes(raw))
    capsys.readouterr()

    with pytest.warns(RuntimeWarning, match=r"1 damaged chunk.*\(1, 2\)"):
        resumed = lnn.plane(net, loss, data, dirs, store=path, **kw)
    err = capsys.readouterr().err
    # 3 chunks of 9 points to compute, 81 - 27 = 54 points kept
    assert "resuming" in err
    assert "54 of 81 points already saved" in err
    assert "computing the other 27" in err
    for f in reference.field_names:
        np.testing.assert_array_equal(resumed.field(f), reference.field(f))

    capsys.readouterr()
    lnn.plane(net, loss, data, dirs, store=path, **kw)  # complete: nothing to do
    assert "holds all 81 points already; nothing to compute" in capsys.readouterr().err


def test_fresh_store_and_no_progress_say_nothing(tmp_path, capsys, small_problem):
    net, data, dirs = small_problem
    loss = torch.nn.functional.cross_entropy
    kw = dict(span=0.5, steps=9, chunk=3)
    lnn.plane(net, loss, data, dirs, store=tmp_path / "a.zarr", **kw)
    assert "resuming" not in capsys.readouterr().err
    GridStore.attach(tmp_path / "a.zarr").forget([(0, 0)])
    lnn.plane(net, loss, data, dirs, store=tmp_path / "a.zarr", progress=False, **kw)
    assert capsys.readouterr().err == ""
