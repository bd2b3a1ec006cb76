"""A teacher's walk through the explorer on a laptop and a phone, in
headless chromium: what they saw that was wrong, each now checked.

- the start marker θ₀ stayed at the default start while the runs started
  from the clicked point;
- on a phone a refused value (a grid range with min > max) showed its
  message under the landscape, a screen above the box being typed in, and
  the "sticky" run button never stuck (Dash's tab container clips);
- the header's styles reached into the lesson menu: the chosen lesson was
  pale grey on white, and on a phone the menu's arrow fell below its text;
  "copy link" was a 15-px icon whose words did nothing, and the data
  buttons 20 px tall;
- on a phone the small panels' zoom bar covered their titles and the
  residual panel's legend sat on its axis title.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


def _phone(browser):
    page = browser.new_page(viewport=PHONE, has_touch=True, is_mobile=True)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page, errors


def _overlap(a, b):
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def _in_view(box, height):
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height + 1


def test_start_marker_is_where_the_runs_started(explorer, page, artifacts):
    explorer.click_data("landscape", 1.3, -0.7)
    w, b, _ = explorer.settled(explorer.readout)
    explorer.choose_optimizers({"gd": "0.5", "adam": "0.02"})
    page.click("#run")
    path = explorer.trace("landscape", "gd (lr=0.5)")
    start = explorer.trace(
        "landscape",
        "start",
        where=lambda t: abs(t["x"][0] - path["x"][0]) < 1e-6,
    )
    assert start["x"][0] == pytest.approx(w, abs=1e-4)
    assert start["y"][0] == pytest.approx(b, abs=1e-4)
    # a new figure from the server (an overlay ticked) keeps it there
    page.locator("#overlays label", has_text="downhill arrows").click()
    explorer.trace("landscape", "downhill", where=lambda t: len(t["x"]) > 0)
    explorer.settled()
    again = explorer.trace("landscape", "start")
    assert again["x"][0] == pytest.approx(path["x"][0], abs=1e-6)
    assert again["y"][0] == pytest.approx(path["y"][0], abs=1e-6)
    page.screenshot(path=artifacts / "teacher-start-marker.png")


def test_phone_refused_value_is_told_by_the_run_button(
    browser, live_server, opener, artifacts
):
    page, errors = _phone(browser)
    ui = opener(page, live_server.url)
    box = page.locator("#range0-min")
    box.scroll_into_view_if_needed()
    box.fill("5")
    box.press("Enter")
    page.wait_for_function(
        "() => document.getElementById('settings-message').innerText"
        ".includes('min < max')"
    )
    ui.settled()
    # the message and the run button are on screen, next to the box typed in
    for sel in ("#settings-message", "#run", "#range0-min"):
        got = page.locator(sel).bounding_box()
        assert _in_view(got, PHONE["height"]), (sel, got)
    # the sticky box is drawn over the controls scrolled beneath it
    run = page.locator("#run").bounding_box()
    on_top = page.evaluate(
        "([x, y]) => !!document.elementFromPoint(x, y).closest('.run-box')",
        [run["x"] + 5, run["y"] + 3],
    )
    assert on_top
    page.screenshot(path=artifacts / "teacher-phone-refused-range.png")
    box.fill("-2")
    box.press("Enter")
    page.wait_for_function(
        "() => getComputedStyle(document.getElementById('settings-message'))"
        ".display === 'none'"
    )
    assert page.inner_text("#message") == ""
    assert not errors, errors
    page.close()


def test_phone_header_and_small_panels_read_clearly(
    browser, live_server, opener, artifacts
):
    page, errors = _phone(browser)
    opener(page, live_server.url).settled()
    # fingers: every button and number box of the controls >= 32 px tall
    # ("add an outlier", "reset data" and "add" were 20 px, the boxes 24)
    heights = page.evaluate(
        "() => [...document.querySelectorAll("
        "'#controls button, #controls input[type=text], #play')]"
        ".map((e) => [e.id || e.innerText, e.getBoundingClientRect().height])"
    )
    small = [(k, h) for k, h in heights if 0 < h < 32]  # 0: hidden
    assert not small, small
    # the lesson menu: its words and its arrow on one row
    words = page.locator("#lesson .dash-dropdown-value").bounding_box()
    arrow = page.locator("#lesson .dash-dropdown-trigger-icon").bounding_box()
    assert (
        abs((words["y"] + words["height"] / 2) - (arrow["y"] + arrow["height"] / 2)) < 6
    ), (words, arrow)
    assert arrow["x"] > words["x"] + words["width"] - 1
    # the landscape with three runs (a legend row each): the legend clears
    # the w axis's title, and the heatmap keeps most of the height
    page.locator("#run").click()
    page.wait_for_function(
        "() => { const a = document.getElementById('landscape').dataset.animated;"
        " return a && a !== 'playing'; }"
    )
    land = page.locator("#landscape")
    title = land.locator(".g-xtitle").bounding_box()
    legend = land.locator(".legend").bounding_box()
    assert not _overlap(title, legend), (title, legend)
    plot_h = page.evaluate(
        "() => document.querySelector('#landscape .js-plotly-plot')._fullLayout._size.h"
    )
    assert plot_h >= 250
    # the residual panel: no zoom bar over the title, the legend off the
    # axis title
    panel = page.locator("#residual-loss")
    panel.scroll_into_view_if_needed()
    assert panel.locator(".modebar").count() == 0
    title = panel.locator(".g-xtitle").bounding_box()
    legend = panel.locator(".legend").bounding_box()
    assert not _overlap(title, legend), (title, legend)
    page.screenshot(path=artifacts / "teacher-phone-panels.png", full_page=True)
    assert not errors, errors
    page.close()


def test_lesson_menu_and_copy_link_on_a_laptop(browser, live_server, opener, artifacts):
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    ui = opener(page, live_server.url)
    page.locator("#lesson").click()
    page.get_by_role("option", name="2 · MSE → MAE → Huber with an outlier").click()
    ui.settled()
    value = page.locator("#lesson .dash-dropdown-value")
    colour = value.evaluate("(e) => getComputedStyle(e).color")
    # dark words on the white menu (the header's pale grey reached in)
    r, g, b = (int(v) for v in colour[colour.index("(") + 1 : -1].split(",")[:3])
    assert max(r, g, b) < 120, colour
    # "copy link": the whole box, words included, is the button
    box = page.locator(".copy-box").bounding_box()
    assert box["height"] >= 32
    words = page.evaluate(
        "() => { const b = document.querySelector('.copy-box').getBoundingClientRect();"
        " const e = document.elementFromPoint(b.right - 12, b.top + b.height / 2);"
        " return !!e.closest('#copy-link'); }"
    )
    assert words
    page.screenshot(path=artifacts / "teacher-laptop-header.png")
    page.close()


def test_phone_help_marks_open_on_a_tap(browser, live_server, opener, artifacts):
    """The "?" help lived in `title` only, which a touch screen never shows."""
    page, errors = _phone(browser)
    opener(page, live_server.url).settled()
    mark = page.locator("h3", has_text="Loss").locator(".help")
    mark.scroll_into_view_if_needed()
    box = mark.bounding_box()
    assert box["height"] >= 22
    mark.tap()
    pop = page.locator("#help-pop")
    pop.wait_for(state="visible")
    assert "Huber" in pop.inner_text()
    got = pop.bounding_box()
    assert got["x"] >= 0
    assert got["x"] + got["width"] <= PHONE["width"]
    page.screenshot(path=artifacts / "teacher-phone-help.png")
    page.locator("#readout").tap()  # anywhere else closes it
    pop.wait_for(state="detached")
    assert not errors, errors
    page.close()


def test_a_long_title_stays_on_the_panel_above_the_plot(
    browser, live_server, opener, artifacts
):
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    explorer = opener(page, live_server.url)
    explorer.choose_radio("model", "tanh neuron")
    explorer.settled()
    page.locator("#preset").click()
    page.get_by_role("option", name="sloped-line-through-origin").click()
    explorer.settled()
    explorer.choose_radio("loss", "Huber")
    explorer.set_number("l2", "0.05")
    page.click("#add-outlier")
    page.wait_for_function(
        "() => document.querySelector('#landscape .gtitle').textContent"
        ".endsWith('(edited)')"
    )
    explorer.settled()
    got = page.evaluate(
        "() => { const gd = document.querySelector('#landscape .js-plotly-plot');"
        " const t = gd.querySelector('.gtitle').getBoundingClientRect();"
        " const g = gd.getBoundingClientRect();"
        " const plot = gd.querySelector('.nsewdrag').getBoundingClientRect();"
        " return {title: [t.left, t.right, t.top, t.bottom],"
        " graph: [g.left, g.right, g.top], plot_top: plot.top}; }"
    )
    left, right, top, bottom = got["title"]
    assert got["graph"][0] <= left
    assert right <= got["graph"][1]
    assert top >= got["graph"][2]
    assert bottom <= got["plot_top"] + 1
    page.screenshot(path=artifacts / "teacher-long-title.png")
    page.close()


def test_a_refused_run_setting_message_goes_once_the_box_is_edited(explorer, page):
    """The refusal stayed, naming a value the box no longer held."""
    explorer.set_number("opt-steps", "abc")
    page.click("#run")
    page.wait_for_function(
        "() => document.getElementById('run-message').innerText"
        ".includes('`steps` must be a number')"
    )
    explorer.set_number("opt-steps", "50")
    page.wait_for_function(
        "() => document.getElementById('run-message').innerText === ''"
    )
    field = explorer.hyper_box("gd")
    field.fill("-1")
    field.press("Enter")
    page.click("#run")
    page.wait_for_function(
        "() => document.getElementById('run-message').innerText"
        ".includes('gd learning rate')"
    )
    field.fill("0.1")
    field.press("Enter")
    page.wait_for_function(
        "() => document.getElementById('run-message').innerText === ''"
    )
    page.click("#run")  # and a good press runs
    page.wait_for_function(
        "() => !document.getElementById('run-status').innerText.includes('press run')"
    )
    assert explorer.settled(lambda: page.inner_text("#run-message")) == ""
