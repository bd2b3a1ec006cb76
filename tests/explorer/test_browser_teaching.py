"""The teaching view driven in headless chromium against the real server.

One server for the module (``live_server``), a fresh page per test. Each test
saves a screenshot of the state it checked into test-artifacts/.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from lossmap import optim, toy
from lossmap.plot._plotly import color_scale

pytestmark = pytest.mark.browser

# The page opens on: line model, two-points data, MSE, grid 201 x 201 over the
# data's region, start a fifth in from the top-left.
PRESET = "two-points"
REGION = toy.dataset(PRESET).region
CELL = ((REGION[0][1] - REGION[0][0]) / 200, (REGION[1][1] - REGION[1][0]) / 200)


def _set_number(page, id_: str, value: str) -> None:
    box = page.locator(f"#{id_}")
    box.fill(value)
    box.press("Enter")


def _choose_radio(page, group: str, label: str) -> None:
    page.locator(f"#{group} label", has_text=re.compile(f"^{label}$")).click()


def hyper_box(page, name: str, key: str = "lr"):
    """The text box of optimizer ``name``'s setting ``key``."""
    return page.locator(
        f"""[id='{{"key":"{key}","name":"{name}","type":"opt-hyper"}}']"""
    )


def choose_optimizers(page, settings: dict) -> None:
    """Tick exactly the optimizers in ``settings`` ({name: lr}) and type
    each learning rate as given (a string, e.g. "1e-3")."""
    rows = page.locator("#opt-table .opt-row input[type=checkbox]")
    for i in range(rows.count()):
        box = rows.nth(i)
        if box.is_checked() != (box.get_attribute("value") in settings):
            box.click()
    for name, lr in settings.items():
        if lr is not None:
            field = hyper_box(page, name)
            field.fill(str(lr))
            field.press("Enter")


def test_page_loads_with_every_panel(explorer, artifacts):
    page = explorer.page
    ui = explorer
    heat = ui.trace("landscape", "loss")
    assert heat["type"] == "heatmap"
    z = np.array(heat["z"], dtype=float)
    assert z.shape == (201, 201)
    # the heatmap shows log10 of the exact landscape (transposed: rows are b)
    prob = toy.problem("line", PRESET, "mse")
    surf = prob.surface(REGION, steps=201)
    expect_z = color_scale(surf.loss).z(surf.loss).T
    np.testing.assert_allclose(z, expect_z, rtol=1e-5, atol=1e-5)
    star = ui.trace("landscape", "θ*")
    m = prob.minimum()
    assert star["x"][0] == pytest.approx(m.w, abs=1e-9)
    assert star["y"][0] == pytest.approx(m.b, abs=1e-9)
    labels = ui.trace("landscape", "contour labels")["text"]
    assert labels
    assert all(re.fullmatch(r"[0-9.e-]+", t) for t in labels)
    # the colour bar is labelled in real loss values, not logs
    ticks = page.locator("#landscape .cbaxis text").all_text_contents()
    assert "1" in ticks
    assert "0.1" in ticks
    w, b, loss = ui.readout()
    assert loss == pytest.approx(float(prob.loss(w, b)), rel=1e-3)
    page.screenshot(path=artifacts / "explorer-1-loaded.png", full_page=True)


def test_click_sets_point_and_fit_follows(explorer, artifacts):
    page, ui = explorer.page, explorer
    before = page.inner_text("#readout")
    target = (1.5, -0.8)
    ui.click_data("landscape", *target)
    page.wait_for_function(
        "(old) => document.querySelector('#readout').innerText !== old", arg=before
    )
    w, b, loss = ui.readout()
    assert abs(w - target[0]) <= CELL[0] + 1e-9
    assert abs(b - target[1]) <= CELL[1] + 1e-9
    prob = toy.problem("line", PRESET, "mse")
    assert loss == pytest.approx(float(prob.loss(w, b)), rel=1e-4)
    # the prediction curve is the model at the clicked (w, b)
    page.wait_for_function(
        "(wb) => { const t = document.querySelector('#fit .gtitle');"
        " return t && t.textContent.startsWith(wb); }",
        arg=f"w = {w:.3f}, b = {b:.3f}",
    )
    # the page drew the click at once; the server's fit for it follows
    ui.settled()
    curve = ui.trace("fit", "prediction")
    x = np.array(curve["x"])
    cur = ui.trace("landscape", "current")  # the exact point (the readout rounds)
    w, b = cur["x"][0], cur["y"][0]
    np.testing.assert_allclose(curve["y"], prob.predict(x, w, b), rtol=1e-9, atol=1e-12)
    # one residual line per data point, from the point to the prediction
    res = ui.trace("fit", "residuals")
    segs = np.array([v for v in res["y"]], dtype=object)
    n = len(prob.data)
    assert len(segs) == 3 * n
    pred = prob.predict(prob.data.x, w, b)
    for i in range(n):
        assert segs[3 * i] == pytest.approx(prob.data.y[i])
        assert segs[3 * i + 1] == pytest.approx(pred[i])
    # the current-point marker moved there too
    cur = ui.trace("landscape", "current", where=lambda t: abs(t["x"][0] - w) < 1e-4)
    assert (cur["x"][0], cur["y"][0]) == pytest.approx((w, b), abs=1e-4)
    page.screenshot(path=artifacts / "explorer-2-clicked.png", full_page=True)


def test_switching_loss_changes_landscape(explorer, artifacts):
    page, ui = explorer.page, explorer
    z_mse = np.array(ui.trace("landscape", "loss")["z"], dtype=float)
    _choose_radio(page, "loss", "MAE")
    page.wait_for_function(
        "() => document.querySelector('#landscape .gtitle').textContent"
        ".startsWith('MAE')"
    )
    z_mae = np.array(ui.trace("landscape", "loss")["z"], dtype=float)
    assert z_mae.shape == z_mse.shape
    assert not np.allclose(z_mae, z_mse)
    prob = toy.problem("line", PRESET, "mae")
    surf = prob.surface(REGION, steps=201)
    np.testing.assert_allclose(
        z_mae, color_scale(surf.loss).z(surf.loss).T, rtol=1e-5, atol=1e-5
    )
    # the readout follows the new loss at the same point
    w, b, _ = ui.readout()
    page.wait_for_function(
        "(v) => document.querySelector('#readout').innerText.endsWith(v)",
        arg=f"{float(prob.loss(w, b)):.6g}",
    )
    page.screenshot(path=artifacts / "explorer-3-mae.png", full_page=True)
    # Huber's δ slider is live: a different δ gives a different landscape
    _choose_radio(page, "loss", "Huber")
    page.wait_for_function(
        "() => document.querySelector('#landscape .gtitle').textContent"
        ".startsWith('Huber, δ = 0.5')"
    )
    page.screenshot(path=artifacts / "explorer-3b-huber.png", full_page=True)


def _wait_paths(page, n: int) -> None:
    page.wait_for_function(
        "(n) => { const t = document.querySelector('#run-status');"
        " return t && t.innerText.trim().split('\\n').length === n"
        " && !t.innerText.includes('press run'); }",
        arg=n,
    )


def test_two_optimizers_draw_two_paths(explorer, artifacts):
    page, ui = explorer.page, explorer
    choose_optimizers(page, {"gd": "0.1", "adam": "0.1"})
    _set_number(page, "opt-steps", "60")
    w, b, _ = ui.readout()
    page.click("#run")
    _wait_paths(page, 2)
    prob = toy.problem("line", PRESET, "mse")
    expected = {
        name: optim.run(prob, optim.get(name, lr=0.1), [w, b], steps=60)
        for name in ("gd", "adam")
    }
    # the run animates the paths; wait for the animation to finish
    page.wait_for_function(
        "() => document.getElementById('landscape').dataset.animated === '1'"
    )
    for name, traj in expected.items():
        path = ui.trace("landscape", name)
        # the page gets 7 significant digits
        np.testing.assert_allclose(
            np.column_stack([path["x"], path["y"]]), traj.params, rtol=1e-6, atol=1e-12
        )
    status = page.inner_text("#run-status")
    assert status.count("\n") == 1
    assert "gd" in status
    assert "adam" in status
    curves = ui.traces("loss-curves", count=2, where=lambda t: t["type"] == "scatter")
    assert len(curves) == 2
    page.screenshot(path=artifacts / "explorer-4-two-paths.png", full_page=True)


def test_diverging_learning_rate_reports_divergence(explorer, artifacts):
    page, ui = explorer.page, explorer
    choose_optimizers(page, {"gd": "1"})
    w, b, _ = ui.readout()
    page.click("#run")
    _wait_paths(page, 1)
    prob = toy.problem("line", PRESET, "mse")
    traj = optim.run(prob, optim.get("gd", lr=1.0), [w, b], steps=100)
    assert traj.status == "diverged"
    assert page.inner_text("#run-status").strip() == (
        f"gd (lr=1): diverged at step {traj.stopped_at} (try a smaller learning rate)"
    )
    page.screenshot(path=artifacts / "explorer-5-diverged.png", full_page=True)


def test_bad_values_show_a_message_and_server_keeps_serving(explorer, artifacts):
    page, ui = explorer.page, explorer
    _set_number(page, "grid-steps", "100000")
    msg = page.locator("#message")
    msg.wait_for(state="visible")
    page.wait_for_function(
        "() => document.querySelector('#message').innerText.includes('grid size')"
    )
    assert "must be <= 401" in msg.inner_text()
    page.screenshot(path=artifacts / "explorer-6-bad-grid.png", full_page=True)
    # the server still answers: a good value brings the landscape back
    _set_number(page, "grid-steps", "101")
    page.wait_for_function("() => document.querySelector('#message').innerText === ''")
    ui.settled()  # the good grid's landscape is drawn
    choose_optimizers(page, {"gd": "-3"})
    page.click("#run")
    page.wait_for_function(
        "() => document.querySelector('#run-message').innerText.length > 0"
    )
    assert page.inner_text("#run-message") == "`gd learning rate` must be > 0, got -3"
    assert "Traceback" not in page.content()
    page.screenshot(path=artifacts / "explorer-6-bad-lr.png", full_page=True)
    z = ui.trace("landscape", "loss")["z"]
    assert len(z) == 101


def test_3d_view_and_logistic_model(explorer, artifacts):
    page, ui = explorer.page, explorer
    _choose_radio(page, "model", "logistic")
    page.wait_for_function(
        "() => document.querySelector('#landscape .gtitle').textContent"
        ".startsWith('binary cross-entropy')"
    )
    # the fit panel follows from another callback than the landscape's title
    fit = ui.trace("fit", "data", where=lambda t: set(t["y"]) == {0.0, 1.0})
    assert set(fit["y"]) == {0.0, 1.0}
    page.screenshot(path=artifacts / "explorer-7-logistic.png", full_page=True)
    _choose_radio(page, "view", "3-D log")
    page.wait_for_function(
        "() => { const g = document.querySelector('#landscape .js-plotly-plot');"
        " return g && g._fullData && g._fullData[0].type === 'surface'; }"
    )
    # the 3-D view keeps the markers: θ*, start and current point
    names = ui.settled(lambda: [t["name"] for t in ui.traces("landscape")])
    assert names[1:4] == ["θ* (minimum)", "start θ₀", "current point"]
    page.screenshot(path=artifacts / "explorer-8-3d.png", full_page=True)


def test_test_surface_mode_marks_critical_points(explorer, artifacts):
    from lossmap.analysis import critical_points
    from lossmap.toy import functions

    page, ui = explorer.page, explorer
    _choose_radio(page, "mode", "test surface")
    page.locator("#function").click()
    page.get_by_role("option", name="himmelblau", exact=True).click()
    page.keyboard.press("Escape")
    page.wait_for_function(
        "() => document.querySelector('#landscape .gtitle').textContent"
        " === 'Himmelblau'"
    )
    # the list of critical points and the panels come from other callbacks
    ui.settled()
    f = functions.get("himmelblau")
    expected = critical_points(f, f.region)
    mins = ui.trace("landscape", "minimum")
    assert mins["name"] == "minimum (4)"
    found = np.column_stack([mins["x"], mins["y"]])
    for cp in (c for c in expected if c.kind == "minimum"):
        assert np.min(np.linalg.norm(found - cp.theta, axis=1)) < 1e-9
    assert ui.trace("landscape", "saddle")["name"] == "saddle (4)"
    assert ui.trace("landscape", "maximum")["name"] == "maximum (1)"
    listing = page.inner_text("#critical-points")
    assert listing.startswith("9 in this range: 4 minima, 4 saddles, 1 maximum")
    assert not page.locator("#fit-panel").is_visible()
    # a click reads the surface's value; a run starts from there
    ui.click_data("landscape", 0.5, -0.5)
    page.wait_for_function(
        "() => document.querySelector('#readout').innerText.startsWith('x = 0.5')"
    )
    x, y, value = ui.readout()
    assert value == pytest.approx(float(f.loss(x, y)), rel=1e-3)
    cur = ui.trace("landscape", "current")  # the exact point (the readout rounds)
    x, y = cur["x"][0], cur["y"][0]
    choose_optimizers(page, {"adam": "0.1"})
    page.click("#run")
    _wait_paths(page, 1)
    page.wait_for_function(
        "() => document.getElementById('landscape').dataset.animated === '1'"
    )
    traj = optim.run(f, optim.adam(0.1), [x, y], steps=100)
    path = ui.trace("landscape", "adam")
    np.testing.assert_allclose(
        np.column_stack([path["x"], path["y"]]), traj.params, rtol=1e-6, atol=1e-12
    )
    page.screenshot(path=artifacts / "explorer-12-test-surface.png", full_page=True)
