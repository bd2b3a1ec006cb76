"""Notebook display: Surface._repr_html_ and the explorer in a cell."""

from __future__ import annotations

import re

import numpy as np
import pytest

from lossmap import Surface


def _plane() -> Surface:
    a = np.linspace(-1, 1, 9)
    b = np.linspace(0, 2, 5)
    loss = 0.1 + np.add.outer((a - 0.5) ** 2, (b - 2) ** 2)  # lowest at (0.5, 2)
    loss[0, 0] = np.nan
    return Surface(
        axes={"alpha": a, "beta": b},
        fields={"loss": loss},
        metadata={
            "model": "Net",
            "loss_fn": "cross_entropy",
            "directions": [
                {"kind": "random", "seed": 3, "index": 0},
                {"kind": "random", "seed": 3, "index": 1},
            ],
        },
    )


def test_repr_html_summarises_a_plane():
    page = _plane()._repr_html_()
    assert "a plane of 9 × 5 points" in page
    assert "0.1 at alpha = 0.5, beta = 2" in page
    assert "(1 of 45 points NaN)" in page
    assert "<td>directions</td><td>random, random</td>" in page
    assert "cross_entropy" in page
    # thumbnail: one cell per grid point, the NaN one grey, the lowest the
    # darkest (viridis' first colour) in the top row of column alpha = 0.5
    rects = re.findall(r'<rect x="([\d.]+)" y="([\d.]+)"[^>]*fill="(#\w+)"', page)
    assert len(rects) == 45
    assert rects[0][2] == "#dddddd"
    darkest = [r for r in rects if r[2] == "#440154"]
    assert len(darkest) == 1
    x, y = float(darkest[0][0]), float(darkest[0][1])
    assert x == pytest.approx(6 * 160 / 9, abs=0.01)  # alpha index 6 (0.5)
    assert y == pytest.approx(0.0)  # beta = 2, the top


def test_repr_html_of_a_line_draws_its_curve():
    a = np.linspace(0, 1, 11)
    page = Surface(axes={"alpha": a}, fields={"loss": 1 + a})._repr_html_()
    assert "a line of 11 points" in page
    assert page.count("<polyline") == 1


def test_notebook_outside_jupyter_says_what_to_do_instead():
    pytest.importorskip("dash")
    from lossmap.explorer import notebook

    with pytest.raises(RuntimeError, match="from a shell run `lossmap explore`"):
        notebook()


def test_notebook_runs_the_explorer_in_dash_jupyter_mode(monkeypatch, tmp_path):
    pytest.importorskip("dash")
    from dash._jupyter import JupyterDash

    from lossmap.explorer import notebook

    calls = {}
    monkeypatch.setattr(JupyterDash, "active", property(lambda self: True))
    monkeypatch.setattr(
        JupyterDash, "run_app", lambda self, app, **kw: calls.update(app=app, **kw)
    )
    app = notebook(tmp_path, height=600, port=8765)
    assert calls["app"] is app
    assert calls["mode"] == "inline"
    assert calls["height"] == 600
    assert (calls["host"], calls["port"]) == ("127.0.0.1", 8765)
    with pytest.raises(ValueError, match="`mode` must be one of"):
        notebook(tmp_path, mode="popup")
