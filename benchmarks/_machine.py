"""What every benchmark records beside its figures: the machine and its load.

Absolute times differ several-fold between machines of the same size (a 2-core
AVX-512 Xeon against a 2-core AVX2 EPYC), so results are ratios against
baselines timed in the same process, interleaved round by round; each result
carries the CPU's model and vector extensions (:mod:`lossmap._cpu`), NumPy's
SIMD targets and the load average, so a figure can be read against the
machine it came from.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

from lossmap import _cpu


def threads() -> int:
    """Torch threads for the benchmarks: ``LOSSMAP_BENCH_THREADS`` or 2.

    2 is the machine size the figures are quoted for. On a machine shared with
    other work, 1 is far steadier: measured here under load 14, a W1-like
    plane took 20–25 ms per point on one thread and 175–182 ms on two (the
    threads wait for each other at every operation).
    """
    n = int(os.environ.get("LOSSMAP_BENCH_THREADS", "2"))
    return max(1, min(n, os.cpu_count() or 1))


def load() -> list[float] | None:
    """1-, 5- and 15-minute load averages (other work on the machine)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def numpy_simd() -> list[str]:
    """The SIMD targets NumPy dispatches to on this CPU."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__ as targets
        from numpy._core._multiarray_umath import __cpu_features__ as feats
    except ImportError:  # older NumPy layouts
        return []
    return [t for t in targets if feats.get(t)]


def machine() -> dict[str, Any]:
    """The CPU (model, vector extensions, native bf16), cores, load, versions."""
    info = _cpu.cpu_info()
    out: dict[str, Any] = {
        "cpu": info.summary(),
        **{f"cpu_{k}": v for k, v in info.describe().items()},
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg": load(),
    }
    try:
        import numpy

        out["numpy"] = numpy.__version__
        out["numpy_simd"] = numpy_simd()
    except ImportError:
        pass
    return out


def interleaved(
    fns: dict[str, Callable[[], Any]], rounds: int
) -> dict[str, list[float]]:
    """Run each function once per round, in turn; the seconds of every call.

    Interleaving spreads other processes' bursts over all methods alike, so
    the ratio of the best rounds is steadier than separate timing runs.
    """
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    return times


def summary(times: list[float]) -> dict[str, float]:
    return {
        "best_s": round(min(times), 5),
        "median_s": round(statistics.median(times), 5),
        "rounds": len(times),
    }


def matmul_peak(
    dtype: str = "float32", n: int = 2048, reps: int = 5, n_threads: int | None = None
) -> dict[str, Any]:
    """Measured matrix-product rate in GFLOP/s (best of ``reps``; torch)."""
    import torch

    n_threads = n_threads or threads()
    old = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        dt = getattr(torch, dtype)
        a = torch.randn(n, n).to(dt)
        b = torch.randn(n, n).to(dt)
        a @ b  # warm-up
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(old)
    flops = 2.0 * n**3
    return {
        "dtype": dtype,
        "n": n,
        "threads": n_threads,
        "gflops_best": round(flops / min(times) / 1e9, 1),
        "gflops_median": round(flops / statistics.median(times) / 1e9, 1),
        "load_avg": load(),
    }


# ------------------------------------------------------------------ memory
def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def _status_mib(key: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _peak_mib() -> float | None:
    peak = _status_mib("VmHWM")
    if peak is not None:
        return peak
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mib() -> float:
    rss = _status_mib("VmRSS")
    return float("nan") if rss is None else rss


@contextlib.contextmanager
def measure(out: dict[str, Any]) -> Iterator[None]:
    """Time a block and record the process's peak resident memory during it.

    Sets ``seconds``, ``rss_before_mib``, ``peak_rss_mib`` and
    ``peak_is_since_start`` (True where the peak could not be reset).
    """
    reset = _reset_peak()
    out["rss_before_mib"] = round(_rss_mib(), 1)
    t0 = time.perf_counter()
    yield
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mib"] = round(_peak_mib() or float("nan"), 1)
    out["peak_is_since_start"] = not reset
