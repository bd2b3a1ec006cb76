"""`lossmap report` and `show --out x.html`: one self-contained page.

The browser test opens the page from file:// in Debian's headless chromium
with every network request blocked, counts the drawn figures, reads their
axis titles and saves a screenshot to test-artifacts/.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from lossmap import Surface, io
from lossmap.cli import main

pytest.importorskip("plotly")


@pytest.fixture
def results(tmp_path):
    a = np.linspace(-1.0, 2.0, 13)
    b = np.linspace(-1.0, 1.0, 9)
    loss = 0.2 + np.add.outer((a - 0.5) ** 2, 2 * b**2)
    steps = [0, 10, 20, 30]
    coords = [[1.8, 0.7], [1.1, 0.4], [0.6, 0.1], [0.5, 0.0]]
    plane = Surface(
        axes={"alpha": a, "beta": b},
        fields={"loss": loss, "accuracy": 1 / (1 + loss)},
        metadata={
            "kind": "nn.plane",
            "directions": [
                {"kind": "pca", "component": 0, "explained_variance_ratio": 0.9},
                {"kind": "pca", "component": 1, "explained_variance_ratio": 0.05},
            ],
            "trajectory": {
                "coords": coords,
                "steps": steps,
                "relative_distance": [0.1, 0.05, 0.02, 0.0],
                "true_loss": [1.6, 0.6, 0.25, 0.2],
            },
            "_command": ["lossmap", "pca", "--store", "pca.zarr"],
        },
    )
    x = np.linspace(-0.5, 1.5, 21)
    line = Surface(
        axes={"alpha": x},
        fields={"loss": 1 + (x - 1) ** 2, "loss_stderr": np.full(21, 0.05)},
        metadata={"kind": "nn.line"},
    )
    io.save(plane, tmp_path / "pca.zarr")
    io.save(line, tmp_path / "line.zarr")
    hess = {
        "kind": "nn.hessian",
        "dim": 40,
        "params": ["w", "b"],
        "eigenvalues": [3.0, 1.5],
        "residuals": [1e-9, 1e-9],
        "trace": {"value": 7.5, "stderr": 0.4, "probes": 20},
        "density": {
            "grid": np.linspace(-1, 4, 64).tolist(),
            "density": np.exp(-(np.linspace(-1, 4, 64) ** 2)).tolist(),
            "sigma": 0.05,
        },
    }
    (tmp_path / "h.json").write_text(json.dumps(hess))
    return tmp_path


def test_report_page_holds_every_figure_and_no_remote_reference(results, capsys):
    out = results / "report.html"
    names = ["pca.zarr", "line.zarr", "h.json"]
    argv = ["report", *(str(results / n) for n in names), "--out", str(out)]
    assert main(argv) == 0
    page = out.read_text()
    # plane: loss + accuracy heatmaps, a 3-D loss, the faithfulness panels;
    # line: one curve (the stderr field is its spread); Hessian: the spectrum
    assert int(re.search(r"lossmapFigures = (\d+)", page)[1]) == 6
    assert "2 standard errors" in page
    assert "Recompute with: <code>lossmap pca --store pca.zarr</code>" in page
    assert "Top eigenvalues: 3, 1.5." in page
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=", page)
    assert "wrote" in capsys.readouterr().out


def test_surface_loss_on_the_path_is_read_off_the_plane(results):
    from lossmap.plot._report import _values_at

    s = io.load(results / "pca.zarr")
    pts = np.array([[0.5, 0.0], [1.0, 0.25], [5.0, 0.0]])
    got = _values_at(s, "loss", pts)
    assert got[0] == pytest.approx(0.2)
    # bilinear between grid nodes of a quadratic: close to the true value
    assert got[1] == pytest.approx(0.2 + 0.25 + 2 * 0.0625, abs=0.02)
    assert np.isnan(got[2])  # outside the grid


def test_network_heatmaps_mark_the_centre_and_name_the_directions(results):
    from lossmap.plot._report import figures_for

    s = io.load(results / "pca.zarr")
    heatmaps = [fig for fig, _ in figures_for(s)][:2]  # loss, accuracy
    for fig in heatmaps:
        centre = [t for t in fig.data if t.name == "θ (centre)"]
        assert len(centre) == 1
        assert list(centre[0].x) == [0.0]
        assert list(centre[0].y) == [0.0]
        assert fig.layout.xaxis.title.text.startswith("direction 1: PC1")
        assert fig.layout.yaxis.title.text.startswith("direction 2: PC2")
    # a surface that is no network plane has no centre to mark (the marker
    # trace is there, empty, as every landscape figure has it)
    toy = Surface(
        axes={"w": np.linspace(-1, 1, 5), "b": np.linspace(-1, 1, 5)},
        fields={"loss": np.ones((5, 5))},
    )
    fig = figures_for(toy)[0][0]
    (current,) = [t for t in fig.data if t.uid == "current"]
    assert len(current.x) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["show", "{d}/line.zarr", "--3d", "--out", "{d}/x.png"],
            "`--3d` needs a plane",
        ),
        (
            ["show", "{d}/line.zarr", "--3d", "--out", "{d}/x.html"],
            "`--3d` needs a plane",
        ),
        (
            ["report", "{d}/line.zarr", "--out", "{d}/x.png"],
            "`--out` must end in .html",
        ),
        (["report", "{d}/nope.zarr"], "`STORE` must be a surface store or a Hessian"),
    ],
)
def test_report_and_show_errors(results, argv, message, capsys):
    argv = [a.format(d=results) for a in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_show_3d_draws_the_field_asked_for(results, capsys):
    out = results / "acc.html"
    argv = ["show", str(results / "pca.zarr"), "--3d", "--field", "accuracy"]
    assert main([*argv, "--out", str(out)]) == 0
    page = out.read_text()
    assert int(re.search(r"lossmapFigures = (\d+)", page)[1]) == 1
    assert "accuracy as a surface" in page
    assert "loss as a surface" not in page


@pytest.mark.browser
def test_report_renders_offline_in_chromium(results, artifacts, browser):
    out = results / "report.html"
    names = ["pca.zarr", "line.zarr", "h.json"]
    assert main(["report", *(str(results / n) for n in names), "--out", str(out)]) == 0
    blocked: list[str] = []
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:

        def route(r):
            if r.request.url.startswith("file://"):
                r.continue_()
            else:
                blocked.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else 0)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(out.resolve().as_uri())
        page.wait_for_function(
            "document.querySelectorAll('.js-plotly-plot .main-svg').length > 0 && "
            "document.querySelectorAll('.js-plotly-plot').length === "
            "window.lossmapFigures",
            timeout=60_000,
        )
        page.wait_for_timeout(1500)  # WebGL (3-D) finishes after the SVG layers
        n_plots = page.eval_on_selector_all(".js-plotly-plot", "els => els.length")
        heatmaps = page.eval_on_selector_all(".hm image", "els => els.length")
        titles = page.eval_on_selector_all(
            ".g-xtitle, .g-ytitle", "els => els.map(e => e.textContent)"
        )
        scene_titles = page.evaluate(
            "Array.from(document.querySelectorAll('.js-plotly-plot'))"
            ".filter(gd => gd._fullLayout.scene)"
            ".map(gd => gd._fullLayout.scene.zaxis.title.text)"
        )
        page.screenshot(path=str(artifacts / "report.png"), full_page=True)
    finally:
        context.close()
    assert n_plots == 6
    assert heatmaps == 2  # the loss and accuracy heatmaps are drawn
    # the heatmaps' axes are named by their directions; the line's by its axis
    for title in (
        "direction 1: PC1",
        "direction 2: PC2",
        "alpha",
        "training step",
        "relative distance",
        "eigenvalue",
    ):
        assert title in titles
    assert [t.split(" (")[0] for t in scene_titles] == ["loss"]
    assert errors == []
    assert blocked == []


def test_report_shows_a_checkpoint_map(results, capsys):
    record = {
        "kind": "nn.embedding",
        "coords": [[0.0, 0.0], [1.0, 0.5], [2.0, 0.2], [0.5, -1.0]],
        "run": [0, 0, 1, 1],
        "step": [0, 10, 0, 10],
        "runs": ["a", "b"],
        "loss": [1.0, 0.5, 0.9, 0.4],
        "metrics": {},
        "meta": {"method": "pca", "explained_variance_ratio": [0.8, 0.15]},
    }
    (results / "map.json").write_text(json.dumps(record))
    out = results / "r.html"
    assert main(["report", str(results / "map.json"), "--out", str(out)]) == 0
    page = out.read_text()
    assert int(re.search(r"lossmapFigures = (\d+)", page)[1]) == 1
    assert "A map of 4 checkpoints from 2 run(s) (a, b) by pca." in page
    (results / "other.json").write_text(json.dumps({"kind": "nn.other"}))
    assert main(["report", str(results / "other.json"), "--out", str(out)]) == 2
    assert "without kind nn.hessian or nn.embedding" in capsys.readouterr().err
