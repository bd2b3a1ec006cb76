"""``python -m benchmarks [NAME ...]``: run the benchmarks, save JSON results.

Each benchmark is a module ``benchmarks.bench_<name>`` with ``run() -> dict``.
Results go to ``benchmarks/results/<name>.json``; the figures quoted in
``benchmarks/README.md`` come from these files.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

from benchmarks._machine import load, machine

HERE = Path(__file__).parent


def main(argv: list[str]) -> None:
    names = argv or sorted(
        m.name[len("bench_") :]
        for m in pkgutil.iter_modules([str(HERE)])
        if m.name.startswith("bench_")
    )
    (HERE / "results").mkdir(exist_ok=True)
    for name in names:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        print(f"== {name} ==", flush=True)
        t0 = time.perf_counter()
        before = machine()
        result = module.run()
        result["_meta"] = {
            **before,
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "wall_s": round(time.perf_counter() - t0, 2),
            "load_avg_after": load(),
        }
        path = HERE / "results" / f"{name}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
