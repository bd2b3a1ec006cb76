"""A plane computed into a store survives ``kill -9`` and resumes exactly.

A subprocess computes a plane into a zarr store, slowed down so that it is
killed (SIGKILL, no chance to clean up) part-way. Running the same call again
computes only the missing chunks, and the surface equals an uninterrupted run.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("zarr")

from lossmap.io import GridStore  # noqa: E402

JOB = textwrap.dedent(
    """
    import os
    import sys
    import time

    import torch

    import lossmap.nn as lnn

    from lossmap.io import GridStore

    SLOW = float(os.environ.get("LOSSMAP_TEST_SLOW", "0"))
    if SLOW:
        # slow every chunk write, however the engine batches its forward passes
        _write = GridStore.write

        def _slow_write(self, *args, **kwargs):
            time.sleep(SLOW)
            return _write(self, *args, **kwargs)

        GridStore.write = _slow_write


    def loss_fn(outputs, targets):
        return torch.nn.functional.cross_entropy(outputs, targets)


    def problem():
        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Linear(6, 12), torch.nn.Tanh(), torch.nn.Linear(12, 3)
        )
        gen = torch.Generator().manual_seed(1)
        x = torch.randn(80, 6, generator=gen)
        y = torch.randint(0, 3, (80,), generator=gen)
        return net, (x, y), lnn.random_plane(net, seed=2)


    def run(store, **over):
        net, data, dirs = problem()
        kw = dict(span=1.0, steps=12, chunk=3, metrics="accuracy", progress=False)
        kw.update(over)
        return lnn.plane(net, loss_fn, data, dirs, store=store, **kw)


    if __name__ == "__main__":
        run(sys.argv[1])
    """
)

SHAPE_CHUNKS = 16  # 12 x 12 grid in 3 x 3 chunks


def _load_job(path):
    spec = importlib.util.spec_from_file_location("lossmap_resume_job", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _done(path):
    if not (path / "zarr.json").exists():
        return 0
    try:
        return SHAPE_CHUNKS - len(GridStore.attach(path).missing())
    except (ValueError, OSError):  # caught between creation steps
        return 0


@pytest.mark.slow
def test_kill_9_then_resume_computes_only_missing_chunks(tmp_path, monkeypatch):
    job_file = tmp_path / "job.py"
    job_file.write_text(JOB)
    store = tmp_path / "plane.zarr"
    env = {**os.environ, "LOSSMAP_TEST_SLOW": "0.4", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(job_file), str(store)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while _done(store) < 3:
            if proc.poll() is not None:
                out = proc.stdout.read().decode()
                pytest.fail(f"the job ended before it was killed:\n{out}")
            if time.monotonic() > deadline:
                pytest.fail("the job wrote no chunks within 120 s")
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    before = GridStore.attach(store)
    missing = before.missing()
    assert 0 < len(missing) < SHAPE_CHUNKS, "killed too late or too early"
    missing_points = sum(
        int(np.prod([s.stop - s.start for s in before.chunk_slices(i)]))
        for i in missing
    )
    partial = before.to_surface()

    # count what the resumed run computes and writes
    from lossmap.nn import engine

    evaluated: list[int] = []
    written: list[tuple[int, ...]] = []
    real_evaluate = engine.Evaluator.evaluate
    real_write = GridStore.write

    def counting_evaluate(self, coeffs, *args, **kwargs):
        evaluated.append(len(np.asarray(coeffs).reshape(-1, self.m)))
        return real_evaluate(self, coeffs, *args, **kwargs)

    def counting_write(self, idx, blocks):
        written.append(tuple(idx))
        return real_write(self, idx, blocks)

    monkeypatch.setattr(engine.Evaluator, "evaluate", counting_evaluate)
    monkeypatch.setattr(GridStore, "write", counting_write)

    job = _load_job(job_file)
    resumed = job.run(store)
    assert sorted(written) == sorted(missing)
    assert sum(evaluated) == missing_points
    assert GridStore.attach(store).complete

    # chunks finished before the kill were kept as they were
    done = ~np.isnan(partial.loss)
    assert done.any()
    np.testing.assert_array_equal(resumed.loss[done], partial.loss[done])

    # identical to an uninterrupted run
    monkeypatch.undo()
    fresh = job.run(tmp_path / "fresh.zarr")
    for f in ("loss", "accuracy"):
        np.testing.assert_array_equal(resumed.field(f), fresh.field(f))
    np.testing.assert_array_equal(resumed.coords("beta"), fresh.coords("beta"))

    # the same store with other settings is refused and left as it is
    files = sorted(p.name for p in store.rglob("*"))
    with pytest.raises(ValueError, match="different settings"):
        job.run(store, span=0.5)
    assert sorted(p.name for p in store.rglob("*")) == files
