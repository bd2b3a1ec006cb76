"""`lossmap toy` and `lossmap presets`, run in-process through lossmap.cli.main."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from lossmap import toy
from lossmap.cli import main


def _theta(out: str) -> tuple[float, float, float]:
    m = re.search(r"θ\* = \(w, b\) = \(([-\d.e+]+), ([-\d.e+]+)\)", out)
    loss = re.search(r"L\(θ\*\) = ([-\d.e+]+)", out)
    assert m, out
    assert loss, out
    return float(m.group(1)), float(m.group(2)), float(loss.group(1))


def test_toy_writes_the_figure_and_prints_the_minimum(tmp_path, capsys, pyplot):
    out = tmp_path / "landscape.png"
    argv = ["toy", "--model", "tanh", "--data", "two-points", "--loss", "huber"]
    code = main([*argv, "--out", str(out), "--steps", "41", "--dpi", "60"])
    text = capsys.readouterr().out
    assert code == 0
    assert out.is_file()
    with Image.open(out) as img:
        assert img.format == "PNG"
        assert img.width > img.height > 100  # side by side: wider than tall
    w, b, loss = _theta(text)
    m = toy.problem("tanh", "two-points", "huber").minimum()
    np.testing.assert_allclose([w, b], [m.w, m.b], rtol=1e-5)
    assert loss == pytest.approx(m.loss, abs=1e-12)
    assert f"wrote {out}" in text
    assert not pyplot.get_fignums()  # the CLI closes its figure


def test_toy_at_a_point_in_3d_with_options(tmp_path, capsys):
    out = tmp_path / "sub" / "surface.png"
    code = main(
        [
            "toy", "--model", "line", "--data", "noisy-line", "--loss", "huber",
            "--delta", "0.1", "--l2", "0.01", "--at", "0.5", "-0.2", "--3d",
            "--steps", "31", "--w-range", "-1", "2", "--b-range", "-1", "1",
            "--out", str(out), "--dpi", "50",
        ]
    )  # fmt: skip
    assert code == 0
    assert out.is_file()
    text = capsys.readouterr().out
    w, b, loss = _theta(text)
    m = toy.problem("line", "noisy-line", "huber", delta=0.1, l2=0.01).minimum()
    np.testing.assert_allclose([w, b, loss], [m.w, m.b, m.loss], rtol=1e-5)


def test_toy_at_prints_the_loss_there(tmp_path, capsys):
    out = tmp_path / "fit.svg"
    code = main(
        ["toy", "--model", "line", "--data", "two-points", "--loss", "mse",
         "--at", "1", "0", "--steps", "21", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    assert out.read_text().lstrip().startswith("<?xml")
    p = toy.problem("line", "two-points", "mse")
    captured = capsys.readouterr()
    assert f"L(1, 0) = {float(p.loss(1.0, 0.0)):.6g}" in captured.out
    assert "outside the view" not in captured.err


def test_toy_at_outside_the_view_warns(tmp_path, capsys):
    out = tmp_path / "fit.png"
    code = main(
        ["toy", "--at", "9", "9", "--steps", "21", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    assert "--at (9, 9) lies outside the view" in capsys.readouterr().err


def test_toy_without_a_minimum_still_draws(tmp_path, capsys):
    out = tmp_path / "sep.png"
    code = main(
        ["toy", "--model", "logistic", "--data", "binary-separable", "--loss", "bce",
         "--steps", "21", "--out", str(out), "--dpi", "50"]
    )  # fmt: skip
    assert code == 0
    assert out.is_file()
    text = capsys.readouterr().out
    assert "θ*: none" in text
    assert "no minimum" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "tan"], "`--model` must be one of ['line', 'tanh', 'logistic']"),
        (["--data", "nope"], "`--data` must be one of"),
        (["--loss", "hinge"], "`--loss` must be one of"),
        (["--loss", "mse", "--delta", "0.5"], "takes parameters none"),
        (["--loss", "huber", "--delta", "-1"], "`--delta` must be a finite number > 0"),
        (["--loss", "bce"], "needs probabilities"),
        (["--steps", "1"], "`--steps` must be >= 2, got 1"),
        (["--w-range", "2", "1"], "`--w-range` must satisfy lo < hi"),
        (["--l2", "-1"], "`--l2` must be >= 0.0"),
        (["--out", "x.txt"], "`--out` must end in one of"),
    ],
    ids=[
        "model",
        "data",
        "loss",
        "delta",
        "delta-value",
        "bce-on-tanh",
        "steps",
        "range",
        "l2",
        "out",
    ],
)
def test_toy_bad_input_exits_2_with_one_line(tmp_path, capsys, args, message):
    if "--out" not in args:
        args = [*args, "--out", str(tmp_path / "x.png")]
    assert main(["toy", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert err.startswith("error: ")
    assert "\n" not in err
    assert not (tmp_path / "x.png").exists()


def test_toy_usage_errors_exit_2(capsys):
    assert main(["toy", "--at", "1"]) == 2
    assert "--at" in capsys.readouterr().err


def test_presets_lists_models_presets_and_losses(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("line", "tanh", "logistic", "w·x + b", *toy.preset_names()):
        assert name in out
    for name in ("mse", "mae", "huber", "log_cosh", "bce", "delta=1.0"):
        assert name in out
    assert "long shallow valley" in out  # descriptions, not just names


def test_help_lists_the_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "toy" in out
    assert "presets" in out
