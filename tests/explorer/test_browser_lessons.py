"""What a teacher and a learner do in the page, in headless chromium.

Each test guards a defect seen before (numbers off an input's step refused,
the heatmap vanishing while paths animate, a white path, a phone layout of
26-px panels, a fit axis that rescales at every click…) or a feature (instant
fit in the browser, drag, play/pause and the step slider). Screenshots go to
test-artifacts/; figures measured on the way (payload, play time, update
rates) to test-artifacts/explorer-measures.json, never asserted as times.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from lossmap import optim, toy
from lossmap.explorer import teaching
from lossmap.explorer.validate import FunctionSettings, ProblemSettings

pytestmark = pytest.mark.browser


def _measure(artifacts, **values):
    path = artifacts / "explorer-measures.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    old.update(values)
    path.write_text(json.dumps(old, indent=1))


def _wait_status(page, n):
    page.wait_for_function(
        "(n) => { const t = document.querySelector('#run-status');"
        " return t && !t.innerText.includes('press run')"
        " && t.innerText.trim().split('\\n').length === n; }",
        arg=n,
    )


def _wait_played(page):
    page.wait_for_function(
        "() => { const a = document.getElementById('landscape').dataset.animated;"
        " return a && a !== 'playing'; }"
    )


def _choose_surface(explorer, page, name):
    explorer.choose_radio("mode", "test surface")
    page.locator("#function").click()
    page.get_by_role("option", name=name, exact=True).click()
    page.keyboard.press("Escape")


def test_typed_1e_3_runs_the_rosenbrock_race(explorer, artifacts):
    page, ui = explorer.page, explorer
    _choose_surface(explorer, page, "rosenbrock")
    page.wait_for_function(
        "() => document.querySelector('#landscape .gtitle').textContent"
        " === 'Rosenbrock'"
    )
    # the surface's own defaults: the classic start and a rate that does not diverge
    page.wait_for_function(
        "() => document.querySelector('#readout').innerText.startsWith('x = -1.2000')"
    )
    assert explorer.hyper_box("gd").input_value() == "0.001"
    explorer.choose_optimizers({"gd": "1e-3", "momentum": "0.001"})
    beta = explorer.hyper_box("momentum", "beta")
    beta.fill("0.99")  # off any step
    beta.press("Enter")
    explorer.set_number("opt-steps", "400")
    # every settings change answered: a late 'clear runs' would wipe the run
    explorer.settled()
    page.click("#run")
    _wait_status(page, 2)
    status = page.inner_text("#run-status")
    assert "diverged" not in status
    assert "got nothing" not in page.inner_text("#run-message")
    _wait_played(page)
    f = teaching.landscape_for(FunctionSettings("rosenbrock", ((-2, 2), (-1, 3))))
    ref = optim.run(f, optim.gd(1e-3), [-1.2, 1.0], steps=400)
    path = ui.trace("landscape", "gd")
    np.testing.assert_allclose(
        np.column_stack([path["x"], path["y"]]), ref.params, rtol=1e-6, atol=1e-12
    )
    mom = optim.run(f, optim.momentum(1e-3, beta=0.99), [-1.2, 1.0], steps=400)
    path = ui.trace("landscape", "momentum")
    np.testing.assert_allclose(
        np.column_stack([path["x"], path["y"]]), mom.params, rtol=1e-6, atol=1e-12
    )
    page.screenshot(path=artifacts / "lesson-1-rosenbrock-race.png", full_page=True)


_HEATMAP_STATE = """
() => {
  const gd = document.querySelector('#landscape .js-plotly-plot');
  const img = gd.querySelector('.heatmaplayer image');
  const contour = gd._fullData.findIndex((t) => t.uid === 'contours');
  const g = [...gd.querySelectorAll('.scatterlayer .trace')].find(
    (e) => e.__data__ && e.__data__[0].trace.uid === 'contours');
  const d = g && g.querySelector('path.js-line');
  return {image: !!img && img.getAttribute('href').length > 1000,
          visible: !!img && getComputedStyle(img).display !== 'none',
          contours: contour >= 0 && !!d && d.getAttribute('d').length > 100,
          state: document.getElementById('landscape').dataset.animated};
}
"""


def test_eight_long_runs_animate_over_a_heatmap_that_stays(explorer, artifacts):
    page = explorer.page
    sizes = []
    page.on(
        "response",
        lambda r: (
            sizes.append(len(r.body()))
            if "_dash-update-component" in r.url
            and r.request.post_data
            and "run.n_clicks" in r.request.post_data
            else None
        ),
    )
    explorer.choose_optimizers(dict.fromkeys(teaching.optimizer_names()))
    explorer.set_number("opt-steps", "2000")
    for o in teaching.optimizer_names():  # small rates: all 2,000 steps run
        box = explorer.hyper_box(o)
        box.fill("0.001")
        box.press("Enter")
    explorer.settled()
    page.click("#run")
    # loading feedback: the button is disabled and says so while running
    page.wait_for_function("() => document.querySelector('#run').disabled")
    assert "running" in page.inner_text("#run")
    page.wait_for_function(
        "() => document.getElementById('landscape').dataset.animated === 'playing'"
    )
    t0 = time.perf_counter()
    seen = []
    while True:
        st = page.evaluate(_HEATMAP_STATE)
        if st["state"] != "playing":
            break
        seen.append(st)
        page.wait_for_timeout(150)  # deliberate: moments of the animation
    played = time.perf_counter() - t0
    assert len(seen) >= 3  # several moments of the animation were looked at
    for st in seen:
        assert st["image"]
        assert st["visible"]
        assert st["contours"]
    page.wait_for_function("() => !document.querySelector('#run').disabled")
    assert not page.locator("#run").is_disabled()
    # one response carries the runs; frames carry nothing (the page slices)
    assert sizes
    assert max(sizes) < 1_000_000
    paths = explorer.traces(
        "landscape",
        count=8,
        where=lambda t: str(t["name"]).startswith(tuple(teaching.optimizer_names())),
    )
    assert len(paths) == 8
    assert max(len(p["x"]) for p in paths) == 2001
    colours = page.evaluate(
        "() => document.querySelector('#loss-curves .js-plotly-plot')._fullData"
        ".map((t) => t.line.color)"
    )
    assert len(set(colours)) == 8
    assert "#ffffff" not in colours
    in_page = page.evaluate("() => window.lossmap.state.playMs")
    _measure(
        artifacts,
        run_response_bytes=max(sizes),
        play_seconds_8x2000_seen_by_test=round(played, 2),
        play_seconds_8x2000_in_page=round(in_page / 1000, 2),
    )
    page.screenshot(path=artifacts / "lesson-2-eight-runs.png", full_page=True)


def test_phone_layout_stacks_full_width_without_console_errors(
    browser, live_server, opener, artifacts
):
    page = browser.new_page(viewport={"width": 390, "height": 844}, has_touch=True)
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    opener(page, live_server.url).settled()
    for sel in ("#controls", "#landscape-panel", "#fit-panel", "#loss-curves"):
        box = page.locator(sel).bounding_box()
        assert box["width"] >= 0.9 * 390 - 1, (sel, box)
    land = page.locator("#landscape .js-plotly-plot").bounding_box()
    assert land["height"] >= 300
    page.screenshot(path=artifacts / "layout-phone-390x844.png", full_page=False)
    page.screenshot(path=artifacts / "layout-phone-390x844-full.png", full_page=True)
    assert not errors, errors
    page.close()


def test_laptop_layout_shows_landscape_fit_and_run_without_scrolling(
    browser, live_server, opener, artifacts
):
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    opener(page, live_server.url).settled()
    for sel in ("#landscape .js-plotly-plot", "#fit .js-plotly-plot", "#run"):
        box = page.locator(sel).bounding_box()
        assert box["y"] >= 0, sel
        assert box["y"] + box["height"] <= 720 + 1, (sel, box)
    area = page.evaluate(
        "() => { const s = document.querySelector('#landscape .js-plotly-plot')"
        "._fullLayout._size; return [s.w, s.h]; }"
    )
    assert min(area) >= 250  # the landscape is not squeezed
    page.screenshot(path=artifacts / "layout-laptop-1280x720.png")
    assert not errors, errors
    page.close()


_DATA_TO_PAGE = """
([a, b]) => {
  const gd = document.querySelector('#landscape .js-plotly-plot');
  const fl = gd._fullLayout;
  const r = gd.getBoundingClientRect();
  return [r.left + fl._size.l + fl.xaxis.d2p(a), r.top + fl._size.t + fl.yaxis.d2p(b)];
}
"""


def test_fit_axis_is_fixed_and_drag_moves_the_fit_instantly(explorer, artifacts):
    page, ui = explorer.page, explorer
    yrange = page.evaluate(
        "() => document.querySelector('#fit .js-plotly-plot')._fullLayout.yaxis.range"
    )
    prob = toy.problem("line", "two-points", "mse")
    before = page.inner_text("#readout")
    ui.click_data("landscape", 2.5, 2.0)
    page.wait_for_function(
        "(o) => document.querySelector('#readout').innerText !== o", arg=before
    )
    # the server's fit for the click has been drawn (the page's own came first)
    after = explorer.settled(
        lambda: page.evaluate(
            "() => document.querySelector('#fit .js-plotly-plot')"
            "._fullLayout.yaxis.range"
        )
    )
    assert after == pytest.approx(yrange)
    # drag from one point to another: the fit follows every step, in the page
    a = page.evaluate(_DATA_TO_PAGE, [-1.0, -1.0])
    b = page.evaluate(_DATA_TO_PAGE, [1.5, 0.5])
    page.evaluate("() => { window.lossmap.state.updates = 0; }")
    fit_w = "() => document.querySelector('#fit .js-plotly-plot').dataset.w"
    page.mouse.move(*a)
    page.mouse.down()
    ws = []
    for k in range(1, 11):
        shown = page.evaluate(fit_w)
        page.mouse.move(a[0] + (b[0] - a[0]) * k / 10, a[1] + (b[1] - a[1]) * k / 10)
        # the page draws a move at its next frame: wait for that frame (a
        # fixed 40 ms is not a frame on a busy machine), then read the fit
        page.wait_for_function(
            f"(old) => ({fit_w})() !== old", arg=shown, polling="raf"
        )
        ws.append(float(page.evaluate(fit_w)))
    page.mouse.up()
    assert len(set(ws)) >= 8  # the fit moved with the pointer
    assert page.evaluate("() => window.lossmap.state.updates") >= 8
    # the browser's readout and curve, then the server's, agree with Python
    page.wait_for_function(
        "() => { const t = document.querySelector('#fit .gtitle');"
        " return t && t.textContent.startsWith('w = 1.5'); }"
    )
    w, bb, loss = ui.settled(ui.readout)
    assert w == pytest.approx(1.5, abs=0.03)
    assert bb == pytest.approx(0.5, abs=0.03)
    assert loss == pytest.approx(float(prob.loss(w, bb)), rel=2e-3)
    page.screenshot(path=artifacts / "lesson-3-dragged.png", full_page=True)


@pytest.mark.parametrize(
    ("model", "preset", "loss"),
    [
        ("line", "line-with-outliers", "mse"),
        ("line", "line-with-outliers", "mae"),
        ("line", "line-with-outliers", "huber"),
        ("tanh", "noisy-line", "log_cosh"),
        ("logistic", "binary-overlapping", "bce"),
        ("logistic", "binary-overlapping", "mse"),
    ],
)
def test_the_pages_formulas_match_python(explorer, model, preset, loss):
    page = explorer.page
    s = ProblemSettings(model, preset, loss, 0.7, 0.05, ((-3, 3), (-3, 3)))
    spec = teaching.problem_spec(s)
    land = teaching.landscape_for(s)
    pts = [(-2.5, 1.0), (0.3, -0.2), (2.0, 2.9), (40.0, -30.0)]
    got = page.evaluate(
        "([spec, pts]) => pts.map((p) => window.lossmap.loss(spec, p[0], p[1]))",
        [spec, pts],
    )
    want = [float(land.loss(w, b)) for w, b in pts]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    pred = page.evaluate(
        "([m, xs]) => xs.map((x) => window.lossmap.predict(m, x, 0.8, -0.3))",
        [model, spec["x"]],
    )
    np.testing.assert_allclose(
        pred, land.predict(np.asarray(spec["x"]), 0.8, -0.3), rtol=1e-12
    )


def test_play_pause_and_step_slider_move_point_and_fit(explorer, artifacts):
    page, ui = explorer.page, explorer
    explorer.choose_optimizers({"gd": "0.05", "adam": None})
    explorer.set_number("opt-steps", "80")
    w0, b0, _ = ui.readout()
    page.click("#run")
    _wait_status(page, 2)
    _wait_played(page)
    ref = optim.run(
        toy.problem("line", "two-points", "mse"), optim.gd(0.05), [w0, b0], steps=80
    )
    # scrub with the keyboard: Home, then 10 steps right
    thumb = page.locator("#step [role=slider]")
    thumb.focus()
    thumb.press("Home")
    for _ in range(10):
        thumb.press("ArrowRight")
    page.wait_for_function(
        "() => document.querySelector('#step-label').innerText.startsWith('step 10 ')"
    )
    # the step's point confirmed by the server (200 ms later) and drawn
    ui.settled()
    cur = ui.trace("landscape", "current")
    path = ui.trace("landscape", "gd")
    assert len(path["x"]) == 11
    fit_w = float(
        page.evaluate("() => document.querySelector('#fit .js-plotly-plot').dataset.w")
    )
    assert fit_w == pytest.approx(ref.params[10, 0], rel=1e-6)
    assert cur["x"][0] == pytest.approx(ref.params[10, 0], rel=1e-6)
    # play again from there, pause half way. Deliberately about time: the
    # pause must land while the animation (~2 s) plays. On a busy machine it
    # may end first, and the second click then starts a new play: that try
    # says nothing about pausing, so pause that play (three tries at most).
    playing = "() => window.lossmap.state.playing"
    page.click("#play")
    page.wait_for_function(playing)
    for attempt in range(3):
        token = page.evaluate("() => window.lossmap.state.playToken")
        page.click("#play")
        # the click's callback has run (it is a Dash clientside callback)
        ui.wait_until(ui.dash_idle, lambda: "the play callback did not run")
        replayed = page.evaluate("() => window.lossmap.state.playToken") != token
        if not replayed or attempt == 2:
            break
    label = page.inner_text("#step-label")
    assert "pause" not in page.inner_text("#play")
    page.screenshot(path=artifacts / "lesson-4-scrubbed.png", full_page=True)
    assert label.startswith("step ")


def test_overlays_explain_the_long_valley(explorer, artifacts):
    from lossmap.explorer import overlays

    page, ui = explorer.page, explorer
    page.locator("#preset").click()
    page.get_by_role("option", name="sloped-line-through-origin", exact=True).click()
    page.keyboard.press("Escape")
    page.wait_for_function(
        "() => document.querySelector('#landscape .gtitle').textContent"
        ".endsWith('sloped-line-through-origin')"
    )
    for label in ("downhill arrows", "curvature at the point", "slices through θ*"):
        page.locator("#overlays label", has_text=label).click()
    page.wait_for_function(
        "() => document.querySelector('#readout').innerText.includes('κ')"
    )
    # the readout (one callback) can be there before the landscape (another)
    arrows = ui.trace("landscape", "downhill")
    assert len(arrows["x"]) >= 3 * 160
    # every overlay's landscape answered before the click (a late one would
    # be drawn for the point it was asked at)
    ui.settled()
    ui.click_data("landscape", 1.0, 1.0)
    page.wait_for_function(
        "() => { const t = document.querySelector('#fit .gtitle');"
        " return t && t.textContent.startsWith('w = 1.0'); }"
    )
    page.wait_for_function(
        "() => document.querySelector('#readout').innerText.includes('κ')"
    )
    # the server's answer for the click: readout and the landscape's patch
    text = ui.settled(lambda: page.inner_text("#readout"))
    w, b, _ = ui.readout()
    s = ProblemSettings(
        "line", "sloped-line-through-origin", "mse", 0.5, 0.0, ((-1, 3), (-2, 2))
    )
    curv = overlays.curvature_at(s, (w, b))
    assert f"κ = {curv.condition:.3g}" in text
    eigen = ui.trace("landscape", "Hessian")
    mid = (eigen["x"][0] + eigen["x"][1]) / 2, (eigen["y"][0] + eigen["y"][1]) / 2
    assert mid == pytest.approx((w, b), abs=1e-3)
    assert page.locator("#slices-panel").is_visible()
    assert len(ui.traces("slices", count=2)) == 2
    dots = ui.trace("residual-loss", "the data's residuals")
    assert len(dots["x"]) == len(toy.dataset("sloped-line-through-origin").x)
    page.screenshot(path=artifacts / "lesson-5-overlays.png", full_page=True)


def test_editing_the_data_moves_theta_star(explorer, artifacts):
    page, ui = explorer.page, explorer
    star0 = ui.trace("landscape", "θ*")
    page.click("#add-outlier")
    page.wait_for_function(
        "() => document.querySelector('#landscape .gtitle').textContent"
        ".includes('(edited)')"
    )
    # the landscape (θ*) and the fit panel (its data) come from two callbacks
    ui.settled()
    star1 = ui.trace("landscape", "θ*")
    assert (star1["x"][0], star1["y"][0]) != (star0["x"][0], star0["y"][0])
    data = ui.trace("fit", "data")
    x, y = np.array(data["x"]), np.array(data["y"])
    assert len(x) == 3
    want = np.linalg.lstsq(np.column_stack([x, np.ones_like(x)]), y, rcond=None)[0]
    assert (star1["x"][0], star1["y"][0]) == pytest.approx(tuple(want), abs=1e-6)
    # a click on the fit panel adds a point there
    xy = page.evaluate(
        "() => { const gd = document.querySelector('#fit .js-plotly-plot');"
        " const fl = gd._fullLayout; const r = gd.getBoundingClientRect();"
        " return [r.left + fl._size.l + fl.xaxis.d2p(0.5),"
        " r.top + fl._size.t + fl.yaxis.d2p(0.0)]; }"
    )
    page.mouse.click(*xy)
    page.wait_for_function(
        "() => { const g = document.querySelector('#fit .js-plotly-plot');"
        " const d = g._fullData.find((t) => t.uid === 'data');"
        " return d && d.x.length === 4; }"
    )
    data = ui.trace("fit", "data")
    assert data["x"][-1] == pytest.approx(0.5, abs=0.05)
    assert data["y"][-1] == pytest.approx(0.0, abs=0.05)
    page.screenshot(path=artifacts / "lesson-6-edited-data.png", full_page=True)
    page.click("#reset-data")
    page.wait_for_function(
        "() => !document.querySelector('#landscape .gtitle').textContent"
        ".includes('(edited)')"
    )


def _controls(page):
    return page.evaluate(
        """() => {
      const v = (s) => { const e = document.querySelector(s); return e && e.value; };
      const checked = (g) => [...document.querySelectorAll('#' + g + ' input')]
        .filter((i) => i.checked).map((i) => i.value);
      const opts = [...document.querySelectorAll('#opt-table input[type=checkbox]')]
        .filter((i) => i.checked).map((i) => i.value);
      return {model: checked('model'), loss: checked('loss'), view: checked('view'),
              overlays: checked('overlays'), r0: v('#range0-min'), r1: v('#range1-max'),
              steps: v('#opt-steps'), opts: opts,
              lr: v('[id=\\'{"key":"lr","name":"gd","type":"opt-hyper"}\\']'),
              title: document.querySelector('#landscape .gtitle').textContent,
              readout: document.querySelector('#readout').innerText.split('\\n')[0]};
    }"""
    )


def test_the_url_holds_the_whole_state(
    explorer, browser, live_server, artifacts, settle
):
    page, ui = explorer.page, explorer
    page.locator("#preset").click()
    page.get_by_role("option", name="noisy-line", exact=True).click()
    page.keyboard.press("Escape")
    ui.choose_radio("loss", "MAE")
    page.wait_for_function(
        "() => document.querySelector('#landscape .gtitle').textContent"
        ".startsWith('MAE') && document.querySelector('#landscape .gtitle')"
        ".textContent.endsWith('noisy-line')"
    )
    ui.set_number("range0-min", "-1.5")
    ui.choose_optimizers({"gd": "1e-3", "adam": "0.02"})
    ui.set_number("opt-steps", "150")
    page.locator("#overlays label", has_text="downhill arrows").click()
    ui.settled()  # the landscape with its arrows is drawn: click on that one
    ui.click_data("landscape", 0.8, 0.4)
    # the click's readout and address, not a moment before
    before = explorer.settled(lambda: _controls(page))
    url = page.url
    assert "?s=" in url
    other = browser.new_page(viewport={"width": 1500, "height": 1000})
    other.set_default_timeout(60_000)
    other.goto(url)
    other.wait_for_function(
        "(t) => { const g = document.querySelector('#landscape .gtitle');"
        " return g && g.textContent === t; }",
        arg=before["title"],
    )
    other.wait_for_function(
        "(r) => document.querySelector('#readout').innerText.split('\\n')[0] === r",
        arg=before["readout"],
    )
    after = settle(other, lambda: _controls(other))
    assert after == before
    other.screenshot(path=artifacts / "lesson-7-restored-from-link.png")
    # the copy-link button copies this very address
    other.click("#copy-link")
    settle(other)  # the copy's callback has run
    other.close()


def test_lesson_presets_set_up_the_three_tasks(explorer, artifacts):
    page = explorer.page
    page.locator("#lesson").click()
    page.get_by_text("3 · the long valley").click()
    page.wait_for_function(
        "() => document.querySelector('#landscape .gtitle').textContent"
        ".endsWith('sloped-line-through-origin')"
    )
    page.wait_for_function(
        "() => document.querySelector('#readout').innerText.includes('κ')"
    )
    state = explorer.settled(lambda: _controls(page))
    assert state["overlays"] == ["arrows", "curvature"]
    assert state["opts"] == ["gd", "momentum"]
    assert state["steps"] == "200"
    page.screenshot(path=artifacts / "lesson-8-valley-preset.png")


def test_hover_option_moves_the_point(explorer):
    page, ui = explorer.page, explorer
    page.locator("#overlays label", has_text="hover moves").click()
    ui.settled()  # the landscape redrawn for the new overlays: hover over that
    a = page.evaluate(_DATA_TO_PAGE, [0.5, 0.5])
    page.mouse.move(*a)
    page.mouse.move(a[0] + 5, a[1] + 5)
    page.wait_for_function(
        "() => { const t = document.querySelector('#fit .gtitle');"
        " return t && t.textContent.startsWith('w = 0.5'); }"
    )
    w, b, loss = ui.settled(ui.readout)  # the page's, then the server's
    assert w == pytest.approx(0.5, abs=0.1)
    prob = toy.problem("line", "two-points", "mse")
    assert loss == pytest.approx(float(prob.loss(w, b)), rel=2e-3)


def test_3d_paths_sit_on_the_surface_and_stay_in_the_grid(explorer, artifacts):
    page, ui = explorer.page, explorer
    ui.choose_optimizers({"gd": "0.1", "adam": None})
    page.click("#run")
    _wait_status(page, 2)
    _wait_played(page)
    ui.choose_radio("view", "3-D linear")
    page.wait_for_function(
        "() => { const g = document.querySelector('#landscape .js-plotly-plot');"
        " return g && g._fullData[0].type === 'surface'"
        " && g._fullData.some((t) => t.uid === 'path-0' && t.x.length > 1); }"
    )
    gd = ui.settled(
        lambda: page.evaluate(
            "() => { const g = document.querySelector('#landscape .js-plotly-plot');"
            " const t = g._fullData.find((t) => t.uid === 'path-0');"
            " return {x: Array.from(t.x), y: Array.from(t.y), z: Array.from(t.z),"
            " range: g._fullLayout.scene.xaxis.range}; }"
        )
    )
    prob = toy.problem("line", "two-points", "mse")
    # linear height: z is the loss itself, at the path's points
    np.testing.assert_allclose(
        gd["z"], prob.loss(np.array(gd["x"]), np.array(gd["y"])), rtol=1e-5, atol=1e-9
    )
    assert min(gd["x"]) >= gd["range"][0]
    assert max(gd["x"]) <= gd["range"][1]
    page.screenshot(path=artifacts / "lesson-9-3d-linear.png")


def test_dragging_a_data_point_moves_it(explorer, artifacts):
    page, ui = explorer.page, explorer
    data = ui.trace("fit", "data")
    x0, y0 = data["x"][1], data["y"][1]  # two-points: (2, 0.6)
    to_page = (
        "([a, b]) => { const gd = document.querySelector('#fit .js-plotly-plot');"
        " const fl = gd._fullLayout; const r = gd.getBoundingClientRect();"
        " return [r.left + fl._size.l + fl.xaxis.d2p(a),"
        " r.top + fl._size.t + fl.yaxis.d2p(b)]; }"
    )
    edited = (
        "() => document.querySelector('#landscape .gtitle').textContent"
        ".includes('(edited)')"
    )
    # the page's handlers are wired (``explorer`` waits for that): one drag
    a = page.evaluate(to_page, [x0, y0])
    b = page.evaluate(to_page, [1.5, -0.2])
    page.mouse.move(*a)
    page.mouse.down()
    for k in range(1, 6):
        page.mouse.move(a[0] + (b[0] - a[0]) * k / 5, a[1] + (b[1] - a[1]) * k / 5)
    page.mouse.up()
    page.wait_for_function(edited)
    # the landscape (its title, θ*) and the fit panel come from two callbacks
    ui.settled()
    data = ui.trace("fit", "data")
    assert len(data["x"]) == 2
    assert data["x"][1] == pytest.approx(1.5, abs=0.05)
    assert data["y"][1] == pytest.approx(-0.2, abs=0.05)
    star = ui.trace("landscape", "θ*")
    # two points: the line through both
    w = (data["y"][1] - data["y"][0]) / (data["x"][1] - data["x"][0])
    assert star["x"][0] == pytest.approx(w, abs=1e-6)
    page.screenshot(path=artifacts / "lesson-10-dragged-point.png", full_page=True)


def test_runs_follow_a_data_edit(explorer):
    page, ui = explorer.page, explorer
    ui.choose_optimizers({"gd": "0.1"})
    ui.set_number("opt-steps", "40")
    page.click("#run")
    _wait_status(page, 1)
    _wait_played(page)
    start = ui.trace("landscape", "start")
    page.click("#add-outlier")
    page.wait_for_function(
        "() => document.querySelector('#landscape .gtitle').textContent"
        ".includes('(edited)')"
    )
    _wait_status(page, 1)  # the same run again, not "press run"
    page.wait_for_function(
        "() => { const a = document.getElementById('landscape').dataset.animated;"
        " return a && a !== 'playing' && Number(a) > 1000; }"
    )
    # the fit panel (the edited data) comes from another callback than the runs
    ui.settled()
    data = ui.trace("fit", "data")
    prob = toy.problem("line", (np.array(data["x"]), np.array(data["y"])), "mse")
    path = ui.trace("landscape", "gd")
    ref = optim.run(prob, optim.gd(0.1), [start["x"][0], start["y"][0]], steps=40)
    np.testing.assert_allclose(
        np.column_stack([path["x"], path["y"]]), ref.params, rtol=1e-6, atol=1e-12
    )
