"""``python -m demo --out DIR``: run every demo section and list what it wrote.

Each section is a module of this package with ``run(out: Path) -> list[tuple[Path,
str]]`` returning the files it wrote with one line of description each.
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

SECTIONS = (
    "toy_section",
    "walk_section",
    "nn_section",
    "curvature_section",
    "minima_section",
    "research_section",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument(
        "--only", nargs="*", default=None, help="run only these sections"
    )
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    written: list[tuple[Path, str]] = []
    for name in SECTIONS:
        if args.only and name not in args.only:
            continue
        try:
            module = importlib.import_module(f"demo.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"demo.{name}":
                continue
            raise
        t0 = time.perf_counter()
        print(f"== {name} ==", flush=True)
        files = module.run(out)
        written += files
        print(
            f"   {len(files)} file(s) in {time.perf_counter() - t0:.1f} s", flush=True
        )
    print(f"\nlossmap demo: {len(written)} file(s) in {out}")
    for path, what in written:
        print(f"  {Path(path).relative_to(out)}  —  {what}")


if __name__ == "__main__":
    main()
