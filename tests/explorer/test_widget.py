"""The standalone lesson page: built, opened from file:// with the network
blocked, clicked, switched and replayed in chromium."""

from __future__ import annotations

import numpy as np
import pytest

from lossmap import optim, toy
from lossmap.cli import main

pytest.importorskip("plotly")


@pytest.fixture(scope="module")
def lesson(tmp_path_factory):
    out = tmp_path_factory.mktemp("widget") / "lesson.html"
    code = main(["widget", "--out", str(out), "--steps", "60", "--grid", "61"])
    assert code == 0
    return out


def test_widget_file_is_self_contained(lesson):
    text = lesson.read_text(encoding="utf-8")
    assert "<script src" not in text  # nothing to fetch
    assert "<link" not in text
    assert "Plotly.newPlot" in text
    assert main(["widget", "--out", str(lesson.with_suffix(".txt"))]) == 2
    assert main(["widget", "--out", str(lesson), "--loss", "bce"]) == 2


def test_widget_logistic_defaults_to_binary_data(tmp_path):
    """`lossmap widget --model logistic` works as typed (it used to fail:
    "`loss` must be one of [...]", the data defaulting to two-points), and a
    model meets the data the explorer pairs it with."""
    import json
    import re

    out = tmp_path / "logistic.html"
    assert (
        main(
            [
                "widget",
                "--out",
                str(out),
                "--model",
                "logistic",
                "--grid",
                "31",
                "--steps",
                "5",
            ]
        )
        == 0
    )
    text = out.read_text(encoding="utf-8")
    found = re.search(
        r'id="lesson-data" type="application/json">(.*?)</script>', text, re.S
    )
    payload = json.loads(found.group(1).replace("<\\/", "</"))
    assert payload["order"] == ["bce", "mse"]
    assert payload["views"]["bce"]["spec"]["model"] == "logistic"
    assert set(payload["views"]["bce"]["spec"]["y"]) <= {0.0, 1.0}
    from lossmap.explorer.validate import InputError
    from lossmap.explorer.widget import build_widget

    with pytest.raises(InputError, match="logistic model needs binary data"):
        build_widget(model="logistic", data="two-points", losses=["mse"])
    with pytest.raises(InputError, match="line model needs regression data"):
        build_widget(model="line", data="binary-separable", losses=["mse"])
    assert main(["widget", "--out", str(out), "--delta", "0"]) == 2


@pytest.mark.browser
def test_widget_works_offline_from_file(page, lesson, artifacts):
    requests = []

    def block(route):
        requests.append(route.request.url)
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            route.abort()

    page.route("**/*", block)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(lesson.as_uri())
    page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=30_000)
    assert all(u.startswith("file://") for u in requests), requests
    # a click on the landscape moves the fit curve to the model's prediction
    xy = page.evaluate(
        "() => { const gd = document.getElementById('landscape');"
        " const fl = gd._fullLayout; const r = gd.getBoundingClientRect();"
        " return [r.left + fl._size.l + fl.xaxis.d2p(1.2),"
        " r.top + fl._size.t + fl.yaxis.d2p(-0.7)]; }"
    )
    page.mouse.click(*xy)
    page.wait_for_function(
        "() => Math.abs(window.widget.point[0] - 1.2) < 0.2"
        " && Math.abs(window.widget.point[1] + 0.7) < 0.2"
    )
    w, b = page.evaluate("() => window.widget.point")
    curve = page.evaluate(
        "() => { const gd = document.getElementById('fit');"
        " const t = gd._fullData.find((t) => t.uid === 'prediction');"
        " return [Array.from(t.x), Array.from(t.y)]; }"
    )
    prob = toy.problem("line", "two-points", "mse")
    np.testing.assert_allclose(
        curve[1], prob.predict(np.asarray(curve[0]), w, b), rtol=1e-12
    )
    readout = page.inner_text("#readout")
    assert f"{float(prob.loss(w, b)):.4g}" in readout.replace("e-0", "e-")
    # switch to MAE: the heatmap is MAE's
    page.get_by_role("button", name="MAE").click()
    page.wait_for_function(
        "() => document.querySelector('#landscape .gtitle').textContent"
        ".startsWith('MAE')"
    )
    # replay: the paths grow to the optimizers' full runs; a second click
    # restarts the animation (two chains of ticks ran, the first to end
    # stopping the other)
    page.evaluate(
        "() => { const b = document.getElementById('replay'); b.click(); b.click(); }"
    )
    page.wait_for_function(
        "() => document.getElementById('landscape').dataset.replay === 'done'",
        timeout=30_000,
    )
    frames = page.evaluate(
        "() => { const r = window.widget.loss; return Math.min(50, Math.max("
        "...JSON.parse(document.getElementById('lesson-data').textContent)"
        ".views[r].runs.map((x) => x.params.length))); }"
    )
    assert page.evaluate("() => window.widget.ticks") == frames
    gd_path = page.evaluate(
        "() => { const gd = document.getElementById('landscape');"
        " const t = gd._fullData.find((t) => t.uid === 'path-0');"
        " return [Array.from(t.x), Array.from(t.y)]; }"
    )
    mae = toy.problem("line", "two-points", "mae")
    start = page.evaluate(
        "() => { const gd = document.getElementById('landscape');"
        " const t = gd._fullData.find((t) => t.uid === 'start');"
        " return [t.x[0], t.y[0]]; }"
    )
    ref = optim.run(mae, optim.gd(0.1), start, steps=60)
    n = len(gd_path[0])
    np.testing.assert_allclose(
        np.column_stack(gd_path), ref.params[:n], rtol=1e-6, atol=1e-12
    )
    page.screenshot(path=artifacts / "widget-offline.png", full_page=True)
    assert not errors, errors


@pytest.mark.browser
def test_widget_click_is_the_pointer_and_no_bar_covers_titles(
    browser, lesson, artifacts
):
    """A click a few pixels from θ* sets (w, b) under the pointer: Plotly's
    clicked point snapped onto θ* (or a heatmap cell's centre, or a path
    vertex). On a touch screen no zoom bar covers the titles (the fit's title
    holds w, b and the loss)."""
    page = browser.new_page(
        viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True
    )
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(lesson.as_uri())
    page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=30_000)
    assert page.locator(".modebar").count() == 0
    theta = toy.problem("line", "two-points", "mse").minimum().theta
    # 9 px right of θ* and 7 px above it: within Plotly's hover distance
    target = page.evaluate(
        "([a, b]) => { const gd = document.getElementById('landscape');"
        " const fl = gd._fullLayout; const r = gd.getBoundingClientRect();"
        " const px = fl.xaxis.d2p(a) + 9, py = fl.yaxis.d2p(b) - 7;"
        " return [r.left + fl._size.l + px, r.top + fl._size.t + py,"
        " fl.xaxis.p2d(px), fl.yaxis.p2d(py)]; }",
        [float(theta[0]), float(theta[1])],
    )
    page.touchscreen.tap(target[0], target[1])
    page.wait_for_function(
        "([w, b]) => Math.abs(window.widget.point[0] - w) < 0.05"
        " && Math.abs(window.widget.point[1] - b) < 0.05",
        arg=target[2:],
    )
    w, b = page.evaluate("() => window.widget.point")
    assert abs(w - theta[0]) > 0.05  # not snapped onto θ*
    prob = toy.problem("line", "two-points", "mse")
    title = page.evaluate("() => document.querySelector('#fit .gtitle').textContent")
    want = f"loss = {float(prob.loss(w, b)):.4g}"
    assert title.replace("e-0", "e-").endswith(want.replace("e-0", "e-")), title
    page.screenshot(path=artifacts / "widget-phone-tap.png", full_page=True)
    assert not errors, errors
    page.close()
