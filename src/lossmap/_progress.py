"""Progress of long computations: a rich bar on a terminal, plain lines in a log.

Grids (``nn.plane``, ``nn.line``), Lanczos, Hutchinson and spectral density
runs all report through :func:`progress`::

    with progress(total=441, label="nn.plane", unit="points") as advance:
        for chunk in chunks:
            ...
            advance(len(chunk))

When the stream is a terminal, a rich progress bar is drawn (when rich is
installed). Otherwise -- output sent to a file or a pipe, as in a batch job --
one plain line is written every ``every`` seconds and once at the end::

    nn.plane: 120 of 441 points (27 %), 35.2 points/s, about 9 s left

``LOSSMAP_PROGRESS=plain`` or ``=off`` overrides the choice.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

__all__ = ["PlainProgress", "progress"]

#: Seconds between two plain progress lines.
EVERY_S = 5.0


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class PlainProgress:
    """Plain progress lines: done, rate and time left, at most every ``every`` s.

    Parameters
    ----------
    total : int
        Units of work in all.
    label : str
        What is running, e.g. ``"nn.plane"``.
    unit : str
        What is counted, plural (``"points"``, ``"products"``).
    stream : file, default sys.stderr
    every : float
        Seconds between lines.
    clock : callable
        Monotonic time in seconds (tests pass a fake one).
    """

    def __init__(
        self,
        total: int,
        label: str,
        *,
        unit: str = "points",
        stream: IO[str] | None = None,
        every: float = EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = int(total)
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.every = float(every)
        self.clock = clock
        self.done = 0
        self.start = clock()
        self.last = self.start
        self.lines = 0

    def line(self, finished: bool = False) -> str:
        """The current state in words (``finished``: the work ended normally)."""
        elapsed = self.clock() - self.start
        rate = self.done / elapsed if elapsed > 0 else float("nan")
        if finished and self.done != self.total:  # stopped early (converged)
            text = f"{self.label}: done after {self.done} {self.unit}"
        else:
            pct = 100.0 * self.done / self.total if self.total else 100.0
            text = f"{self.label}: {self.done} of {self.total} {self.unit}"
            text += f" ({pct:.0f} %)"
        if self.done and elapsed > 0:
            text += f", {rate:.3g} {self.unit}/s"
            if finished:
                text += f", took {_duration(elapsed)}"
            else:
                text += f", about {_duration((self.total - self.done) / rate)} left"
        return text

    def _write(self, finished: bool = False) -> None:
        self.stream.write(self.line(finished) + "\n")
        self.stream.flush()
        self.lines += 1

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more units; write a line when ``every`` seconds have passed."""
        self.done += int(n)
        now = self.clock()
        if now - self.last >= self.every and self.done < self.total:
            self.last = now
            self._write()

    def finish(self, finished: bool = True) -> None:
        """Write the last line; ``finished=False`` after an interruption."""
        self._write(finished)


def _mode(stream: IO[str]) -> str:
    forced = os.environ.get("LOSSMAP_PROGRESS", "").strip().lower()
    if forced in ("plain", "off", "rich"):
        return forced
    isatty = getattr(stream, "isatty", None)
    return "rich" if callable(isatty) and isatty() else "plain"


@contextlib.contextmanager
def progress(
    total: int,
    label: str,
    *,
    unit: str = "points",
    enabled: bool = True,
    stream: IO[str] | None = None,
    every: float = EVERY_S,
) -> Iterator[Callable[[int], Any]]:
    """Report progress of ``total`` units of work; yields ``advance(n)``.

    A rich bar on a terminal, plain lines (see :class:`PlainProgress`)
    otherwise; nothing when ``enabled`` is False or ``total`` is 0.
    """
    stream = stream if stream is not None else sys.stderr
    mode = _mode(stream) if enabled and total > 0 else "off"
    if mode == "rich":
        try:
            from rich.console import Console
            from rich.progress import Progress
        except ImportError:  # pragma: no cover - rich is optional
            mode = "plain"
    if mode == "off":
        yield lambda n=1: None
    elif mode == "rich":
        bar = Progress(console=Console(file=stream), transient=False)
        task = bar.add_task(f"{label} ({total} {unit})", total=total)
        with bar:
            yield lambda n=1: bar.advance(task, n)
    else:
        plain = PlainProgress(total, label, unit=unit, stream=stream, every=every)
        try:
            yield plain.advance
        except BaseException:
            plain.finish(finished=False)
            raise
        plain.finish()
