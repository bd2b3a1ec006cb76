"""The research view: stores written by lossmap.nn, opened in chromium.

The module builds two real stores once (a PCA plane of a short training run
with its projected trajectory, and a random line) and serves the explorer on
their folder.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.browser

torch = pytest.importorskip("torch")
pytest.importorskip("zarr")


@pytest.fixture(scope="module")
def store_root(tmp_path_factory):
    from lossmap import io
    from lossmap import nn as lnn

    root = tmp_path_factory.mktemp("stores")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)
    )
    x = torch.randn(256, 2)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    loss_fn = torch.nn.functional.cross_entropy
    rec = lnn.Recorder(net, every=1)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    rec(0)
    for step in range(1, 31):
        opt.zero_grad()
        loss_fn(net(x), y).backward()
        opt.step()
        rec(step)
    d1, d2, _ = lnn.pca_directions(rec)
    proj = lnn.project(rec, [d1, d2])
    lo, hi = proj.coords.min(0) - 0.5, proj.coords.max(0) + 0.5
    plane = lnn.plane(
        net,
        loss_fn,
        (x, y),
        [d1, d2],
        span=[(lo[0], hi[0]), (lo[1], hi[1])],
        steps=41,
        metrics=["accuracy"],
        progress=False,
    )
    plane = plane.with_metadata(
        trajectory={"steps": proj.steps.tolist(), "coords": proj.coords.tolist()}
    )
    io.save(plane, root / "pca-plane.zarr")
    line = lnn.line(
        net,
        loss_fn,
        (x, y),
        lnn.random_direction(net, seed=1),
        span=1.0,
        steps=41,
        progress=False,
    )
    (root / "runs").mkdir()
    io.save(line, root / "runs" / "random-line.zarr")
    (root.parent / "outside.zarr").mkdir(exist_ok=True)
    return root


def _open_research(ui, url):
    page = ui.page
    page.set_default_timeout(60_000)
    page.goto(url)
    page.wait_for_selector("#landscape .js-plotly-plot")
    page.get_by_text("Saved stores").click()
    page.wait_for_function(
        "() => { const g = document.querySelector('#research-graph .js-plotly-plot');"
        " return g && g._fullData && g._fullData.length > 0; }"
    )
    # the words about the store come from another callback than the graph
    ui.settled()


def test_saved_plane_opens_with_trajectory_and_metadata(
    page, ui, research_server, store_root, artifacts
):
    from lossmap import io
    from lossmap.plot._plotly import color_scale

    _open_research(ui, research_server.url)
    stored = io.load(store_root / "pca-plane.zarr")
    heat = ui.trace("research-graph", "loss")
    np.testing.assert_allclose(
        np.array(heat["z"], dtype=float),
        color_scale(stored.loss).z(stored.loss).T,
        rtol=1e-5,
        atol=1e-5,
    )
    path = ui.trace("research-graph", "training path")
    np.testing.assert_allclose(
        np.column_stack([path["x"], path["y"]]),
        np.array(stored.metadata["trajectory"]["coords"]),
        rtol=1e-12,
    )
    about = page.inner_text("#research-meta")
    assert "A plane through parameter space: alpha (41 points" in about
    assert (
        "Direction 1: a principal direction of the training trajectory "
        "(component 1), explains"
    ) in about
    assert "BatchNorm layers used their stored running statistics" in about
    assert "Data: 256 samples, inputs of shape 2" in about
    assert "Optimize: True" not in about
    assert "projected training trajectory" in about
    page.screenshot(path=artifacts / "explorer-9-store-plane.png", full_page=True)
    # switch field: accuracy on a linear scale
    page.locator("#field label", has_text="accuracy").click()
    page.wait_for_function(
        "() => document.querySelector('#research-graph .gtitle').textContent"
        ".startsWith('accuracy')"
    )
    acc = ui.trace("research-graph", "accuracy")
    np.testing.assert_allclose(
        np.array(acc["z"], dtype=float), stored.field("accuracy").T, atol=1e-6
    )
    page.screenshot(path=artifacts / "explorer-10-store-accuracy.png", full_page=True)


def test_saved_line_opens_as_a_curve(page, ui, research_server, store_root, artifacts):
    from lossmap import io

    _open_research(ui, research_server.url)
    page.locator("#store").click()
    page.get_by_text("runs/random-line.zarr").click()
    page.wait_for_function(
        "() => document.querySelector('#research-meta').innerText"
        ".includes('A line through')"
    )
    page.wait_for_function(
        "() => document.querySelector('#research-graph .js-plotly-plot')"
        "._fullData[0].type === 'scatter'"
    )
    ui.settled()
    stored = io.load(store_root / "runs" / "random-line.zarr")
    curve = ui.traces("research-graph")[0]
    np.testing.assert_allclose(curve["y"], stored.loss, rtol=1e-12)
    about = page.inner_text("#research-meta")
    assert (
        "Direction 1: a random Gaussian direction, seed 1, draw 0, filter-normalised"
        in about
    )
    # a title, the direction in words on the axis, the trained model marked
    assert (
        page.locator("#research-graph .gtitle").text_content() == "loss along the line"
    )
    xtitle = page.locator("#research-graph .g-xtitle").text_content()
    assert xtitle.startswith("direction 1: random, seed 1")
    marks = ui.trace(
        "research-graph", "marked points", where=lambda t: t["name"] == "marked points"
    )
    assert marks["x"] == [0.0]
    # log ticks carry their values
    ticks = page.locator("#research-graph .ytick text").all_text_contents()
    assert len(ticks) == len(set(ticks)) >= 2
    # the header does not promise clicks here
    assert "click" not in page.inner_text("#header-hint")
    page.screenshot(path=artifacts / "explorer-11-store-line.png", full_page=True)


def test_store_paths_outside_the_folder_are_refused(research_server):
    import urllib.request

    def post(value):
        body = {
            "output": "..field.options...field.value...research-meta.children"
            "...research-message.children..",
            "outputs": [
                {"id": "field", "property": "options"},
                {"id": "field", "property": "value"},
                {"id": "research-meta", "property": "children"},
                {"id": "research-message", "property": "children"},
            ],
            "inputs": [{"id": "store", "property": "value", "value": value}],
            "changedPropIds": ["store.value"],
        }
        req = urllib.request.Request(
            research_server.url + "/_dash-update-component",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read())["response"]

    assert post("pca-plane.zarr")["field"]["options"] == ["loss", "accuracy"]
    for bad in ("../outside.zarr", "/etc/passwd", "runs/../../outside.zarr"):
        msg = post(bad)["research-message"]["children"]
        assert "outside the store folder; refused" in msg
    assert "does not exist" in post("nope.zarr")["research-message"]["children"]
