"""Shared helpers of the fault-injection suite (see RELIABILITY.md)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

JOB = Path(__file__).with_name("job.py")
SRC = Path(__file__).resolve().parents[2] / "src"


def start_job(store: Path, slow: float = 0.0) -> subprocess.Popen:
    """Start ``job.py`` on ``store``; returns once it printed ``ready``."""
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, str(JOB), str(store), str(slow)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        rest = proc.stdout.read()
        proc.wait()
        pytest.fail(f"the job did not start: {line}{rest}")
    return proc


def finish_job(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


@pytest.fixture
def job():
    """``job.start(store, slow)`` / ``job.finish(proc)``: the subprocess helpers."""
    return SimpleNamespace(start=start_job, finish=finish_job)


@pytest.fixture
def job_module():
    """``job.py`` imported as a module (its ``run``, settings and reference)."""
    spec = importlib.util.spec_from_file_location("lossmap_fault_job", JOB)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def record(artifacts):
    """Write a fault test's figures to test-artifacts/faults/<name>.json."""
    folder = artifacts / "faults"
    folder.mkdir(exist_ok=True)

    def write(name: str, figures: dict) -> None:
        (folder / f"{name}.json").write_text(json.dumps(figures, indent=1))

    return write
