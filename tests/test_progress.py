"""Progress reports: plain lines when the output is not a terminal."""

from __future__ import annotations

import io as stdio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lossmap._progress import PlainProgress, progress

SRC = Path(__file__).resolve().parents[1] / "src"


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_plain_lines_every_few_seconds_with_rate_and_time_left():
    out, clock = stdio.StringIO(), Clock()
    p = PlainProgress(100, "nn.plane", stream=out, every=5.0, clock=clock)
    clock.t += 2.0
    p.advance(10)  # 2 s: too early for a line
    assert out.getvalue() == ""
    clock.t += 3.0
    p.advance(10)  # 5 s, 20 done: 4 points/s, 80 left -> 20 s
    assert out.getvalue() == (
        "nn.plane: 20 of 100 points (20 %), 4 points/s, about 20 s left\n"
    )
    clock.t += 1.0
    p.advance(30)  # 1 s after the last line: quiet
    assert out.getvalue().count("\n") == 1
    clock.t += 19.0
    p.advance(50)
    p.finish()
    assert out.getvalue().splitlines()[-1] == (
        "nn.plane: 100 of 100 points (100 %), 4 points/s, took 25 s"
    )


def test_early_stop_and_interruption_read_differently():
    out, clock = stdio.StringIO(), Clock()
    with progress(300, "Lanczos (at most)", unit="products", stream=out) as advance:
        clock.t += 1
        advance(40)
    assert "Lanczos (at most): done after 40 products" in out.getvalue()
    out = stdio.StringIO()

    def interrupted() -> None:
        with progress(10, "nn.plane", stream=out) as advance:
            advance(3)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert out.getvalue().startswith("nn.plane: 3 of 10 points (30 %)")
    assert "took" not in out.getvalue()


def test_off_and_empty_write_nothing(monkeypatch):
    out = stdio.StringIO()
    with progress(10, "x", enabled=False, stream=out) as advance:
        advance(10)
    with progress(0, "x", stream=out) as advance:
        advance(0)
    monkeypatch.setenv("LOSSMAP_PROGRESS", "off")
    with progress(10, "x", stream=out) as advance:
        advance(10)
    assert out.getvalue() == ""


def test_a_plane_run_into_a_log_file_reports_plain_lines(tmp_path):
    pytest.importorskip("torch")
    (tmp_path / "nets.py").write_text(
        textwrap.dedent(
            """
            import torch

            def make():
                torch.manual_seed(0)
                return torch.nn.Linear(3, 2)

            def batch():
                g = torch.Generator().manual_seed(0)
                x = torch.randn(32, 3, generator=g)
                return x, torch.randint(0, 2, (32,), generator=g)
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("LOSSMAP_PROGRESS", None)
    with open(tmp_path / "log.txt", "w") as log:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "lossmap",
                "plane",
                "--model",
                "nets.py:make",
                "--data",
                "nets.py:batch",
                "--steps",
                "6",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
            timeout=300,
        )
    text = (tmp_path / "log.txt").read_text()
    assert proc.returncode == 0, text
    assert "nn.plane: 36 of 36 points (100 %)" in text
    assert "\x1b[" not in text  # no terminal escape codes in a log
