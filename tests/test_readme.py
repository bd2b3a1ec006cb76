"""The README's tour runs as written.

Its Python blocks run in order as one script (a block may use what an
earlier one made, and says so in its first line); a block whose first line
names a file (``# nets.py``) is that file, written beside the script and, if
it has a main guard, run on its own. Then the shell blocks of "Your own
network, from the shell" run against the ``nets.py`` the tour wrote, with the
checkpoints they expect. A snippet that fails here fails for a reader.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"
FILE_BLOCK = re.compile(r"# (\w+\.py)\b")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), re.S)


def _run(args: list[str], cwd: Path, timeout: float = 600) -> None:
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    out = f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert done.returncode == 0, f"{' '.join(args)} failed in {cwd}:\n{out}"


def _python_blocks(tmp: Path) -> None:
    tour, scripts = [], []
    for block in _blocks("python"):
        named = FILE_BLOCK.match(block)
        if named is None:
            tour.append(block)
            continue
        (tmp / named.group(1)).write_text(block)
        if "__main__" in block:
            scripts.append(named.group(1))
    assert len(tour) >= 6
    assert "nets.py" in os.listdir(tmp)
    (tmp / "tour.py").write_text("\n".join(tour))
    _run([sys.executable, "tour.py"], tmp)
    for name in scripts:
        _run([sys.executable, name], tmp)


def _checkpoints(tmp: Path) -> None:
    """What the shell tour assumes the reader has: two training runs, their
    final weights (ckpt.pt, ckpt-b.pt) and checkpoints (ckpts/, ckpts-b/)."""
    sys.path.insert(0, str(tmp))
    try:
        import nets  # the README's nets.py
    finally:
        sys.path.remove(str(tmp))
        sys.modules.pop("nets", None)
    x, y = nets.test_batch()
    for seed, run in enumerate(("", "-b")):
        torch.manual_seed(seed)
        model = nets.make_model()
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        (tmp / f"ckpts{run}").mkdir()
        for step in range(61):
            if step % 30 == 0:
                torch.save(model.state_dict(), tmp / f"ckpts{run}" / f"step{step}.pt")
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        torch.save(model.state_dict(), tmp / f"ckpt{run}.pt")


def _shell_blocks(tmp: Path) -> None:
    wanted = (
        "lossmap plane --model nets.py",
        "--trace-method",
        'command = "plane"',
        "lossmap connect",
    )
    blocks = [b for b in _blocks("bash") if any(w in b for w in wanted)]
    assert len(blocks) == len(wanted)
    for block in blocks:
        _run(["bash", "-euo", "pipefail", "-c", block], tmp)
    made = ("plane.zarr", "pca.zarr", "line.zarr", "hessian.json", "report.html")
    for name in (*made, "conn/barriers.png", "map.png"):
        assert (tmp / name).exists(), name


@pytest.mark.slow
def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    _python_blocks(tmp_path)
    shell = tmp_path / "shell"  # a reader's fresh directory: no stores yet
    shell.mkdir()
    (shell / "nets.py").write_text((tmp_path / "nets.py").read_text())
    _checkpoints(shell)
    _shell_blocks(shell)
