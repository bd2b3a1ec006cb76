"""The research view opens a checkpoint map (``lossmap embed``'s JSON) in
chromium: two short training runs from different seeds, embedded by PCA with
their loss, written as the command writes it, served and drawn."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.browser

torch = pytest.importorskip("torch")
pytest.importorskip("dash")


@pytest.fixture(scope="module")
def store_root(tmp_path_factory):
    from lossmap import nn as lnn

    root = tmp_path_factory.mktemp("maps")
    x = torch.randn(128, 2, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 0).long()
    loss_fn = torch.nn.functional.cross_entropy
    runs = {}
    for seed in (0, 1):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(
            torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)
        )
        rec = lnn.Recorder(net, every=1)
        opt = torch.optim.SGD(net.parameters(), lr=0.5)
        rec(0)
        for step in range(1, 11):
            opt.zero_grad()
            loss_fn(net(x), y).backward()
            opt.step()
            rec(step)
        runs[f"seed{seed}"] = rec
    emb = lnn.embed(runs, "pca", model=net, loss_fn=loss_fn, data=(x, y))
    record = {"kind": "nn.embedding", **emb.to_dict()}
    (root / "maps").mkdir()
    (root / "maps" / "two-seeds.json").write_text(json.dumps(record))
    (root / "notes.json").write_text(json.dumps({"kind": "not a map"}))
    return root


def test_checkpoint_map_opens_with_points_title_and_words(
    page, ui, research_server, store_root, artifacts
):
    record = json.loads((store_root / "maps" / "two-seeds.json").read_text())
    page.set_default_timeout(60_000)
    page.goto(research_server.url)
    page.wait_for_selector("#landscape .js-plotly-plot")
    page.get_by_text("Saved stores").click()
    page.wait_for_function(
        "() => { const g = document.querySelector('#research-graph .js-plotly-plot');"
        " return g && g._fullData && g._fullData.some(t => t.name === 'checkpoints'); }"
    )
    ui.settled()  # the words about the map come from another callback
    # only the map is listed: the other JSON is not a checkpoint map
    page.locator("#store").click()
    page.get_by_role("option").first.wait_for()
    options = page.get_by_role("option").all_text_contents()
    assert "maps/two-seeds.json" in options
    assert not any("notes" in o for o in options)
    page.keyboard.press("Escape")
    points = ui.trace("research-graph", "checkpoints")
    assert len(points["x"]) == len(record["coords"]) == 22
    np.testing.assert_allclose(
        np.column_stack([points["x"], points["y"]]), record["coords"], rtol=1e-12
    )
    # one path per run
    paths = [
        t["name"] for t in ui.traces("research-graph") if t["name"] in record["runs"]
    ]
    assert paths == ["seed0", "seed1"]
    title = page.locator("#research-graph .gtitle").text_content()
    assert title == "PCA of 22 checkpoints"
    about = page.inner_text("#research-meta")
    assert "A map of 22 checkpoints from 2 run(s) (seed0, seed1)" in about
    assert "points are coloured by it" in about
    assert page.inner_text("#research-message") == ""
    page.screenshot(path=artifacts / "explorer-12-checkpoint-map.png", full_page=True)
