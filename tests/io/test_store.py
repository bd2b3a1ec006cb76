"""GridStore: create, resume, refuse different settings, never half-written."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from lossmap import Surface
from lossmap.io import GridStore, settings_signature

A = np.linspace(-1.0, 1.0, 7)
B = np.linspace(0.0, 2.0, 5)
META = {"kind": "plane", "seed": 3, "span": 1.0, "versions": {"lossmap": "0.1"}}


def _open(path, **over):
    kw = {
        "axes": {"a": A, "b": B},
        "fields": ["loss", "accuracy"],
        "chunks": (3, 2),
        "metadata": META,
    }
    kw.update(over)
    return GridStore.open(path, **kw)


def _values(shape):
    aa, bb = np.meshgrid(A, B, indexing="ij")
    return {"loss": aa**2 + (bb - 1) ** 2, "accuracy": np.cos(aa) * bb}


def _fill(store, indices):
    full = _values(store.shape)
    for idx in indices:
        sl = store.chunk_slices(idx)
        store.write(idx, {k: v[sl] for k, v in full.items()})


def _tree(path):
    return sorted(
        (str(p.relative_to(path)), p.read_bytes())
        for p in path.rglob("*")
        if p.is_file()
    )


def test_chunk_grid_and_slices(tmp_path):
    store = _open(tmp_path / "s.zarr")
    assert store.shape == (7, 5)
    assert store.nchunks == (3, 3)
    assert store.chunk_slices((2, 2)) == (slice(6, 7), slice(4, 5))
    assert store.chunk_slices((0, 1)) == (slice(0, 3), slice(2, 4))
    # the slices tile the grid exactly once
    cover = np.zeros(store.shape, int)
    for idx in store.chunk_indices():
        cover[store.chunk_slices(idx)] += 1
    assert np.all(cover == 1)
    with pytest.raises(IndexError, match="out of range"):
        store.chunk_slices((3, 0))


def test_fresh_store_is_all_missing_and_nan(tmp_path):
    store = _open(tmp_path / "s.zarr")
    assert store.missing() == store.chunk_indices()
    assert not store.complete
    s = store.to_surface()
    assert np.all(np.isnan(s.loss))
    assert s.metadata["seed"] == 3


def test_write_all_chunks_gives_the_surface(tmp_path):
    store = _open(tmp_path / "s.zarr")
    _fill(store, store.chunk_indices())
    assert store.complete
    assert store.missing() == []
    s = store.to_surface()
    want = _values(store.shape)
    np.testing.assert_array_equal(s.loss, want["loss"])
    np.testing.assert_array_equal(s.field("accuracy"), want["accuracy"])
    np.testing.assert_array_equal(s.coords("a"), A)
    assert s.names == ("a", "b")
    assert dict(s.metadata) == json.loads(json.dumps(META))


def test_reopen_identical_resumes(tmp_path):
    path = tmp_path / "s.zarr"
    store = _open(path)
    first = [(0, 0), (1, 2), (2, 1)]
    _fill(store, first)
    again = _open(path, metadata={**META, "versions": {"lossmap": "9.9"}})
    assert set(again.missing()) == set(store.chunk_indices()) - set(first)
    # the creator's metadata is kept; a reopening process never rewrites it
    assert again.metadata["versions"] == {"lossmap": "0.1"}
    _fill(again, again.missing())
    assert again.complete
    np.testing.assert_array_equal(again.to_surface().loss, _values(None)["loss"])


def test_an_all_nan_chunk_still_counts_as_written(tmp_path):
    store = _open(tmp_path / "s.zarr")
    sl = store.chunk_slices((0, 0))
    shape = tuple(s.stop - s.start for s in sl)
    store.write((0, 0), {"loss": np.full(shape, np.nan), "accuracy": np.zeros(shape)})
    assert (0, 0) not in store.missing()


def test_chunk_counts_only_when_every_field_is_on_disk(tmp_path):
    store = _open(tmp_path / "s.zarr")
    _fill(store, [(1, 1)])
    (store.path / "accuracy" / "c" / "1" / "1").unlink()  # as if killed mid-chunk
    assert (1, 1) in store.missing()


@pytest.mark.parametrize(
    ("over", "message"),
    [
        (
            {"axes": {"a": A, "b": np.linspace(0.0, 3.0, 5)}},
            "axis 'b': the store spans \\[0, 2\\], this call \\[0, 3\\]",
        ),
        (
            {"axes": {"a": A, "b": np.linspace(0.0, 2.0, 6)}},
            "axis 'b': the store has 5 points, this call 6",
        ),
        ({"axes": {"x": A, "b": B}}, r"axes: the store has \['a', 'b'\], this call"),
        ({"fields": ["loss"]}, "fields"),
        ({"chunks": (2, 2)}, "chunks"),
        (
            {"metadata": {**META, "seed": 4}},
            r"metadata differs in \['seed'\] \(seed: the store has 3, this call 4\)",
        ),
        ({"chunks": (2, 2)}, r"overwrite=True \(--overwrite in the shell\)"),
    ],
)
def test_different_settings_are_refused_and_store_untouched(tmp_path, over, message):
    path = tmp_path / "s.zarr"
    _fill(_open(path), [(0, 0), (2, 2)])
    before = _tree(path)
    with pytest.raises(ValueError, match=message):
        _open(path, **over)
    assert _tree(path) == before


@pytest.mark.parametrize(
    ("over", "error", "message"),
    [
        ({"axes": {"a": A[::-1]}}, ValueError, "strictly increasing"),
        ({"axes": {"a": [0.0, np.nan]}}, ValueError, "finite"),
        ({"axes": {}}, ValueError, "1 or 2"),
        ({"axes": {"a": A, "b": B, "c": B}}, ValueError, "1 or 2"),
        ({"fields": ["accuracy"]}, ValueError, "must contain 'loss'"),
        ({"fields": "loss"}, TypeError, "list of field names"),
        ({"fields": ["loss", "loss"]}, ValueError, "distinct"),
        ({"fields": ["loss", "a"]}, ValueError, "must differ"),
        ({"fields": ["loss", "x/y"]}, ValueError, "must not contain"),
        ({"chunks": (3,)}, ValueError, "one per axis"),
        ({"chunks": (0, 2)}, ValueError, "positive integers"),
        ({"metadata": {"f": object()}}, TypeError, "JSON"),
        ({"metadata": [1]}, TypeError, "mapping"),
    ],
)
def test_bad_input_creates_nothing(tmp_path, over, error, message):
    with pytest.raises(error, match=message):
        _open(tmp_path / "s.zarr", **over)
    assert list(tmp_path.iterdir()) == []


def test_refuses_a_folder_that_is_not_a_store(tmp_path):
    path = tmp_path / "data"
    path.mkdir()
    (path / "precious.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a lossmap surface store"):
        _open(path)
    assert (path / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in path.iterdir()) == ["precious.txt"]


def test_a_refusal_names_each_nested_value_that_differs():
    from lossmap.io.store import _leaf_diffs

    old = {"directions": [{"kind": "random", "seed": 0}, {"kind": "random", "seed": 0}]}
    new = {"directions": [{"kind": "random", "seed": 0}, {"kind": "random", "seed": 3}]}
    assert _leaf_diffs("m", old, new) == [
        "m.directions[1].seed: the store has 0, this call 3"
    ]
    assert _leaf_diffs("k", [1], [1, 2]) == ["k: the store has [1], this call [1, 2]"]
    assert _leaf_diffs("fingerprint", {"data": "ab12"}, {"data": "cd34"}) == [
        "fingerprint.data: the store has 'ab12', this call 'cd34', so the data differ"
    ]


def test_refuses_a_file_naming_the_argument(tmp_path):
    path = tmp_path / "s.zarr"
    path.write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(
            ValueError, match=r"`store` must be a folder.*which is a file"
        ):
            _open(path, overwrite=overwrite)
    assert path.read_text() == "keep me"
    with pytest.raises(ValueError, match="is a file, not a lossmap surface store"):
        GridStore.attach(path)


def test_missing_parent_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _open(tmp_path / "no" / "s.zarr")


def test_volatile_keys_do_not_change_the_signature():
    base = settings_signature({"seed": 1, "versions": "a", "_t": 1})
    assert base == settings_signature({"seed": 1, "versions": "b", "_t": 2})
    assert base != settings_signature({"seed": 2, "versions": "a"})


def test_write_checks_blocks_before_writing(tmp_path):
    store = _open(tmp_path / "s.zarr")
    with pytest.raises(ValueError, match="exactly the fields"):
        store.write((0, 0), {"loss": np.zeros((3, 2))})
    with pytest.raises(ValueError, match=r"must have shape \(3, 2\)"):
        store.write((0, 0), {"loss": np.zeros((3, 2)), "accuracy": np.zeros((2, 2))})
    assert store.missing() == store.chunk_indices()


def test_pickles_as_its_path_and_other_handles_write(tmp_path):
    store = _open(tmp_path / "s.zarr")
    clone = pickle.loads(pickle.dumps(store))
    assert clone.path == store.path
    assert clone.chunks == store.chunks
    _fill(clone, [(1, 0)])
    assert (1, 0) not in store.missing()


def test_one_dimensional_store(tmp_path):
    store = GridStore.open(
        tmp_path / "line.zarr",
        axes={"alpha": np.linspace(0, 1, 11)},
        fields=["loss"],
        chunks=(4,),
        metadata={},
    )
    assert store.nchunks == (3,)
    for idx in store.missing():
        sl = store.chunk_slices(idx)
        store.write(idx, {"loss": np.arange(11.0)[sl]})
    s = store.to_surface()
    assert isinstance(s, Surface)
    assert s.ndim == 1
    np.testing.assert_array_equal(s.loss, np.arange(11.0))


WRITER = """
import sys
import numpy as np
from lossmap.io import GridStore

path, me, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
a = np.linspace(-1.0, 1.0, 7)
b = np.linspace(0.0, 2.0, 5)
store = GridStore.open(
    path, axes={"a": a, "b": b}, fields=["loss"], chunks=(2, 2),
    metadata={"kind": "race"},
)
aa, bb = np.meshgrid(a, b, indexing="ij")
full = aa * 10 + bb
for k, idx in enumerate(store.chunk_indices()):
    if k % n == me:
        store.write(idx, {"loss": full[store.chunk_slices(idx)]})
"""


def test_several_processes_create_and_write_disjoint_chunks(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "shared.zarr"
    n = 3
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(i), str(n)],
            stderr=subprocess.PIPE,
        )
        for i in range(n)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    store = GridStore.attach(path)
    assert store.complete
    aa, bb = np.meshgrid(A, B, indexing="ij")
    np.testing.assert_array_equal(store.to_surface().loss, aa * 10 + bb)
    # no temporary folders left beside the store
    assert [p.name for p in tmp_path.iterdir()] == ["shared.zarr"]
