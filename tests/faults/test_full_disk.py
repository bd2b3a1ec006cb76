"""A full disk mid-run: the call fails with the system's "no space" error, the
store stays consistent (every chunk on disk verifies; the rest count as
missing), and once space is freed a rerun finishes it bit-identically.

Needs root to mount a small tmpfs; skipped otherwise, with the reason."""

from __future__ import annotations

import errno
import os
import subprocess

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("zarr")

from lossmap.io import GridStore


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.slow
def test_full_disk_leaves_a_consistent_store_that_resumes(
    tmp_path, small_disk, record, job_module
):
    job = job_module
    clean = job.run(tmp_path / "clean.zarr")
    store = small_disk / "p.zarr"
    with pytest.raises(OSError) as info:
        job.run(store)
    assert info.value.errno == errno.ENOSPC
    gs = GridStore.attach(store)
    done = len(gs.chunk_indices()) - len(gs.missing())
    assert 0 < done < len(gs.chunk_indices())
    assert gs.verify() == []  # what is on disk is whole
    partial = gs.to_surface()
    kept = ~np.isnan(partial.loss)
    np.testing.assert_array_equal(partial.loss[kept], clean.loss[kept])

    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    resumed = job.run(store)
    for f in ("loss", "accuracy"):
        np.testing.assert_array_equal(resumed.field(f), clean.field(f))
    assert GridStore.attach(store).verify() == []
    record(
        "full_disk",
        {
            "faults": 1,
            "chunks_on_disk_when_full": done,
            "chunks": len(gs.chunk_indices()),
            "torn_chunks": 0,
            "points_lost": 0,
            "bit_identical": True,
        },
    )
