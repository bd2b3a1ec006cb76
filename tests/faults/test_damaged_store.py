"""Corrupted, truncated, emptied and misplaced chunks of a real plane's store:
each is named on loading, listed by ``lossmap verify``, and recomputed by a
rerun of the same call, after which the store equals the undamaged one."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("zarr")

from lossmap.cli import main
from lossmap.io import ChunkError, GridStore, load


def _file(store, field, idx):
    return store.joinpath(field, "c", *map(str, idx))


DAMAGE = {
    "bit-flip": lambda b: bytes([b[0] ^ 0x10]) + b[1:],
    "corrupt": lambda b: b[:8] + bytes(255 - c for c in b[8:16]) + b[16:],
    "truncate": lambda b: b[: len(b) // 3],
    "empty": lambda b: b"",
}


@pytest.mark.slow
def test_damaged_chunks_are_named_listed_and_recomputed(
    tmp_path, capsys, record, job_module
):
    job = job_module
    clean = job.run(tmp_path / "clean.zarr")
    store = tmp_path / "p.zarr"
    shutil.copytree(tmp_path / "clean.zarr", store)
    targets = {
        ("loss", (0, 0)): "bit-flip",
        ("accuracy", (1, 3)): "corrupt",
        ("loss", (6, 6)): "truncate",
        ("accuracy", (2, 5)): "empty",
    }
    for (field, idx), kind in targets.items():
        f = _file(store, field, idx)
        f.write_bytes(DAMAGE[kind](f.read_bytes()))
    # a valid chunk copied over another position
    shutil.copyfile(_file(store, "loss", (3, 3)), _file(store, "loss", (4, 2)))
    damaged = sorted({idx for _, idx in targets} | {(4, 2)})

    with pytest.raises(ChunkError, match=r"chunk \(0, 0\) of field 'loss'"):
        load(store)
    assert main(["verify", str(store)]) == 1
    out = capsys.readouterr().out
    assert "5 damaged" in out
    assert "misplaced: it holds chunk (3, 3) of field 'loss'" in out
    assert GridStore.attach(store).damaged() == damaged

    assert main(["info", str(store)]) == 2
    assert capsys.readouterr().err.startswith("error: the store")

    # rerunning the same call recomputes exactly the damaged chunks
    from lossmap.io import store as store_module

    written = []
    real_write = store_module.GridStore.write

    def counting(self, idx, blocks):
        written.append(tuple(idx))
        return real_write(self, idx, blocks)

    store_module.GridStore.write = counting
    try:
        repaired = job.run(store)
    finally:
        store_module.GridStore.write = real_write
    assert sorted(written) == damaged
    for f in ("loss", "accuracy"):
        np.testing.assert_array_equal(repaired.field(f), clean.field(f))
    assert GridStore.attach(store).verify() == []
    assert main(["verify", str(store)]) == 0
    record(
        "damaged_store",
        {
            "faults": len(targets) + 1,
            "kinds": [*targets.values(), "misplaced"],
            "detected": len(damaged),
            "recomputed_chunks": len(written),
            "points_lost": 0,
            "bit_identical": True,
        },
    )


@pytest.mark.slow
def test_every_single_bit_flip_of_a_real_chunk_is_detected(
    tmp_path, record, job_module
):
    job = job_module
    job.run(tmp_path / "p.zarr")
    gs = GridStore.attach(tmp_path / "p.zarr")
    totals = {}
    for field in ("loss", "accuracy"):
        path = _file(gs.path, field, (2, 3))
        clean = path.read_bytes()
        missed = 0
        for bit in range(8 * len(clean)):
            flipped = bytearray(clean)
            flipped[bit // 8] ^= 1 << (bit % 8)
            path.write_bytes(bytes(flipped))
            found = [(p.chunk, p.field) for p in gs.verify(chunks=[(2, 3)])]
            if found != [((2, 3), field)]:
                missed += 1
        path.write_bytes(clean)
        totals[field] = {"bits": 8 * len(clean), "undetected": missed}
    assert all(t["undetected"] == 0 for t in totals.values())
    assert gs.verify() == []
    record("bit_flips", totals)
