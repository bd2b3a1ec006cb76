"""Snapshot stores carry CRC-32C checksums: a damaged row is named, not read."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("zarr")

from lossmap.io import SnapshotStore


def test_damaged_snapshot_row_is_named(tmp_path):
    store = SnapshotStore.open(
        tmp_path / "s.zarr", names=["w"], shapes=[(5,)], dtype="float64"
    )
    rows = np.arange(15.0).reshape(3, 5)
    for i, r in enumerate(rows):
        store.append(10 * i, r)
    np.testing.assert_array_equal(store.read(), rows)
    chunk = tmp_path / "s.zarr" / "snapshots" / "c" / "1" / "0"
    data = bytearray(chunk.read_bytes())
    data[3] ^= 0x04
    chunk.write_bytes(bytes(data))
    again = SnapshotStore.attach(tmp_path / "s.zarr")
    with pytest.raises(ValueError, match=r"s\.zarr' is damaged: row 1 of 'snapshots'"):
        again.read()
    np.testing.assert_array_equal(again.steps(), [0, 10, 20])
