"""Stored chunks carry checksums: damage of any kind is named, never read as data.

Every single-bit flip of a chunk file, a truncation, garbage, an empty file,
a valid chunk copied to the wrong position or field, and a copied digest
record are each detected, on reading and by ``verify``; ``todo`` lists the
chunk again so a rerun recomputes it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("zarr")

from lossmap.io import ChunkError, GridStore, load, save

A = np.linspace(-1.0, 1.0, 6)
B = np.linspace(0.0, 2.0, 4)


def _store(path, fields=("loss", "accuracy")):
    store = GridStore.open(
        path,
        axes={"a": A, "b": B},
        fields=list(fields),
        chunks=(3, 2),
        metadata={"kind": "plane"},
    )
    aa, bb = np.meshgrid(A, B, indexing="ij")
    values = {"loss": np.exp(aa) + bb**2 / 3, "accuracy": np.sin(3 * aa * bb)}
    for idx in store.chunk_indices():
        sl = store.chunk_slices(idx)
        store.write(idx, {f: values[f][sl] for f in fields})
    return store, values


def _chunk(store, field, idx):
    return store.path.joinpath(field, "c", *map(str, idx))


def test_clean_store_verifies_and_reads_exactly(tmp_path):
    store, values = _store(tmp_path / "s.zarr")
    assert store.verify() == []
    assert store.todo() == []
    for f, v in values.items():
        np.testing.assert_array_equal(store.read(f), v)


def test_every_single_bit_flip_of_a_chunk_is_detected(tmp_path):
    store, _ = _store(tmp_path / "s.zarr", fields=("loss",))
    path = _chunk(store, "loss", (1, 0))
    clean = path.read_bytes()
    n_bits = 8 * len(clean)
    assert n_bits > 300
    undetected = []
    for bit in range(n_bits):
        damaged = bytearray(clean)
        damaged[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(damaged))
        problems = store.verify(chunks=[(1, 0)])
        if [(p.chunk, p.field) for p in problems] != [((1, 0), "loss")]:
            undetected.append(bit)
        with pytest.raises(ChunkError, match=r"chunk \(1, 0\) of field 'loss'"):
            store.read("loss")
    path.write_bytes(clean)
    assert undetected == []
    assert store.verify() == []


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda b: b[: len(b) // 2], "unreadable"),
        (lambda b: b[:-1], "unreadable"),
        (lambda b: b"", "unreadable"),
        (lambda b: os.urandom(len(b)), "unreadable"),
        (lambda b: b + b"\0", "unreadable"),
    ],
    ids=["half", "minus-one-byte", "empty", "garbage", "one-byte-more"],
)
def test_truncated_or_garbage_chunk_names_store_field_and_chunk(
    tmp_path, damage, reason
):
    store, _ = _store(tmp_path / "s.zarr")
    path = _chunk(store, "accuracy", (1, 1))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ChunkError) as info:
        store.read("accuracy")
    message = str(info.value)
    assert str(store.path) in message
    assert "chunk (1, 1) of field 'accuracy'" in message
    assert reason in message
    assert "\n" not in message
    assert [tuple(p[:2]) for p in store.verify()] == [((1, 1), "accuracy")]
    assert store.damaged() == [(1, 1)]
    assert store.todo() == [(1, 1)]
    # the other field of that chunk, and other chunks, still read
    assert not np.isnan(store.read("loss")).any()


def test_valid_chunk_copied_to_the_wrong_position_is_detected(tmp_path):
    store, _ = _store(tmp_path / "s.zarr")
    shutil.copyfile(_chunk(store, "loss", (0, 0)), _chunk(store, "loss", (1, 1)))
    with pytest.raises(ChunkError, match=r"misplaced: it holds chunk \(0, 0\)"):
        store.read("loss")
    assert store.damaged() == [(1, 1)]


def test_chunk_copied_from_another_field_is_detected(tmp_path):
    store, _ = _store(tmp_path / "s.zarr")
    shutil.copyfile(_chunk(store, "accuracy", (0, 1)), _chunk(store, "loss", (0, 1)))
    with pytest.raises(ChunkError, match="of field 'accuracy'"):
        store.read("loss")


def test_chunk_and_record_copied_together_are_detected(tmp_path):
    store, _ = _store(tmp_path / "s.zarr", fields=("loss",))
    shutil.copyfile(_chunk(store, "loss", (0, 0)), _chunk(store, "loss", (0, 1)))
    digests = store.path / "__digests__"
    shutil.copyfile(digests / "0.0", digests / "0.1")
    assert [p.chunk for p in store.verify()] == [(0, 1)]


def test_damaged_record_is_detected(tmp_path):
    store, _ = _store(tmp_path / "s.zarr")
    (store.path / "__digests__" / "1.1").write_text("{not json")
    assert store.damaged() == [(1, 1)]


def test_rewriting_a_damaged_chunk_repairs_it(tmp_path):
    store, values = _store(tmp_path / "s.zarr")
    _chunk(store, "loss", (1, 0)).write_bytes(b"junk")
    for idx in store.todo():
        sl = store.chunk_slices(idx)
        store.write(idx, {f: v[sl] for f, v in values.items()})
    assert store.verify() == []
    np.testing.assert_array_equal(store.read("loss"), values["loss"])


def test_forget_makes_chunks_missing(tmp_path):
    store, _ = _store(tmp_path / "s.zarr")
    store.forget([(0, 1)])
    assert store.missing() == [(0, 1)]
    assert np.isnan(store.read("loss")[store.chunk_slices((0, 1))]).all()


def test_chunk_without_its_record_counts_as_missing_not_damaged(tmp_path):
    store, _ = _store(tmp_path / "s.zarr")
    (store.path / "__digests__" / "0.0").unlink()  # killed before the record
    assert store.missing() == [(0, 0)]
    assert store.verify() == []


def test_load_of_damaged_store_raises_chunk_error(tmp_path):
    store, _ = _store(tmp_path / "s.zarr")
    _chunk(store, "loss", (0, 0)).write_bytes(b"\0" * 10)
    with pytest.raises(ChunkError, match=r"s\.zarr"):
        load(store.path)


def test_stores_open_in_xarray_from_consolidated_metadata(tmp_path):
    xr = pytest.importorskip("xarray")
    store, values = _store(tmp_path / "s.zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_zarr(store.path)
        np.testing.assert_array_equal(ds["loss"].values, values["loss"])
    assert sorted(ds.data_vars) == ["accuracy", "loss"]
    np.testing.assert_array_equal(ds["a"].values, A)


def test_saved_surface_verifies(tmp_path):
    store, _ = _store(tmp_path / "s.zarr")
    out = save(store.to_surface(), tmp_path / "copy.zarr", chunks=(4, 4))
    assert GridStore.attach(out).verify() == []


def test_stale_creating_folder_of_a_dead_process_is_removed(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os;print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)
    stale = tmp_path / f".s.zarr.{pid}-deadbeef.creating"
    (stale / "loss").mkdir(parents=True)
    live = tmp_path / f".s.zarr.{os.getppid()}-cafecafe.creating"
    live.mkdir()
    _store(tmp_path / "s.zarr")
    assert not stale.exists()
    assert live.exists()  # its creator may still be working


@pytest.mark.parametrize("bad", [123, None, b"p.zarr", 4.5, ""])
def test_store_path_that_is_not_a_path_names_the_argument(tmp_path, bad):
    from lossmap import Surface
    from lossmap.io import to_vtk

    s = Surface(axes={"a": A}, fields={"loss": A**2 + 1})
    calls = [
        lambda: GridStore.open(
            bad, axes={"a": A}, fields=["loss"], chunks=(2,), metadata={}
        ),
        lambda: GridStore.attach(bad),
        lambda: save(s, bad),
        lambda: load(bad),
        lambda: to_vtk(s, bad),
    ]
    for call in calls:
        with pytest.raises((TypeError, ValueError), match="`path` must"):
            call()


def test_plane_with_store_123_names_store():
    torch = pytest.importorskip("torch")
    import lossmap.nn as lnn

    net = torch.nn.Linear(2, 1)
    x, y = torch.randn(8, 2), torch.randn(8, 1)
    dirs = lnn.random_directions(net, 2, seed=0)
    with pytest.raises(TypeError, match=r"the `store` of a computation\), got int 123"):
        lnn.plane(
            net,
            torch.nn.functional.mse_loss,
            (x, y),
            dirs,
            steps=3,
            store=123,
            progress=False,
        )
