"""``lossmap race`` and ``lossmap critical``, run in-process."""

from __future__ import annotations

import pytest
from PIL import Image

from lossmap.cli import main

pytest.importorskip("matplotlib")


def test_race_gif(tmp_path, capsys):
    out = tmp_path / "race.gif"
    argv = ["race", "--function", "rosenbrock", "--optimizers", "sgd,momentum,adam"]
    argv += ["--lr", "1e-3", "--steps", "500", "--out", str(out), "--frames", "8"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    for name in ("sgd (lr=0.001)", "momentum (lr=0.001)", "adam (lr=0.001)"):
        assert name in text
    with Image.open(out) as img:
        assert img.format == "GIF"
        assert img.n_frames == 8


def test_race_still_on_toy_problem(tmp_path, capsys):
    out = tmp_path / "race.png"
    argv = ["race", "--model", "line", "--data", "noisy-line", "--loss", "mse"]
    argv += ["--optimizers", "gd,adam", "--lr", "0.1", "--steps", "300"]
    argv += ["--out", str(out), "--start", "-1", "1"]
    assert main(argv) == 0
    assert out.stat().st_size > 10_000
    text = capsys.readouterr().out
    assert "gd (lr=0.1)" in text
    assert "from (-1, 1)" in text


def test_critical_himmelblau(capsys):
    assert main(["critical", "--function", "himmelblau"]) == 0
    text = capsys.readouterr().out
    assert "9 stationary point(s) found from a 24×24 grid of starts" in text
    assert ": 4 minimum, 4 saddle, 1 maximum" in text
    assert text.count("minimum (global)") == 4


def test_critical_on_a_kinked_loss_says_why_none_are_found(capsys):
    argv = ["critical", "--model", "line", "--data", "two-points", "--loss", "mae"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "0 stationary point(s)" in text
    assert "where the gradient jumps" in text


def test_critical_toy_with_convexity_and_figure(tmp_path, capsys):
    out = tmp_path / "crit.png"
    argv = ["critical", "--model", "line", "--data", "noisy-line", "--convexity"]
    assert main([*argv, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "1 minimum" in text
    assert "convexity: convex" in text
    assert out.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["race", "--function", "nope"], "`--function` must be one of"),
        (["race", "--out", "x.txt"], "`--out` must end in .gif"),
        (["race", "--optimizers", "lbfgs", "--steps", "3"], "`--optimizers` must be"),
        (["race", "--function", "booth", "--model", "line"], "not both"),
        (["critical", "--out", "x.gif"], "`--out` must end in one of"),
        (["race", "--lr", "-1", "--steps", "3"], "`--lr` must be > 0.0, got -1.0"),
    ],
)
def test_errors(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
