"""A point the user chose is not undone by a figure that comes later.

Changing a setting (here the grid) sends the landscape callback, which reads
the current point when it is sent; a click made before its answer comes
moves the point at once in the page. The late answer must not put the
marker (or the Hessian segments drawn through the point) back at the old
point, leaving the readout, the fit panel and the marker disagreeing. The
tests force that ordering by holding the landscape's answer (and, in one
case, the fit panel's answer for the old point) until the click has been
answered; in 2-D and in 3-D. And after a run, a figure redrawn for a click
(the Hessian segments) must not send the point back to the path's end.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from lossmap import toy

pytestmark = pytest.mark.browser

pytest.importorskip("dash")

UPDATE = re.compile(r".*/_dash-update-component(\?.*)?$")
#: the output of the landscape callback (figure + message)
LANDSCAPE = "..landscape.figure...message.children.."
TARGET = (1.5, -0.8)

# Dash's own record: every callback answered except at most ``n`` (the held
# ones, which Dash lists as `watched`: sent, no answer yet; Dash may drop a
# held request that a newer one of the same callback supersedes) and the
# page's hook on the landscape figure (output `landscape.id`), which waits
# for the held one
_ONLY_HELD_PENDING = """
(n) => {
  const c = window.store.getState().callbacks;
  const busy = ['prioritized', 'blocked', 'executing', 'executed', 'stored']
    .some((k) => c[k] && c[k].length);
  const waiting = (c.requested || [])
    .every((r) => r.callback.output === 'landscape.id');
  return !busy && waiting && (c.watched || []).length <= n;
}
"""

# What the page shows of the current point: the landscape's grid size, its
# marker, the middle of the Hessian segments (None when not drawn) and the
# fit panel's title (None in 3-D: the fit panel is drawn either way)
_PAGE_POINT = """
() => {
  const gd = document.querySelector('#landscape .js-plotly-plot');
  const data = gd._fullData || [];
  const cur = data.find((t) => t.uid === 'current');
  const eigen = data.find((t) => t.uid === 'eigen');
  const title = document.querySelector('#fit .gtitle');
  return {
    grid: data[0] ? data[0].x.length : null,
    marker: cur ? [cur.x[0], cur.y[0]] : null,
    eigen: eigen && eigen.x.length ? [(eigen.x[0] + eigen.x[1]) / 2,
                                      (eigen.y[0] + eigen.y[1]) / 2] : null,
    title: title && title.textContent,
    readout: document.querySelector('#readout').innerText,
  };
}
"""


def _agree(page, ui, grid, eigen=False):
    """Wait until the landscape of ``grid`` steps is drawn and its marker,
    the readout, the fit panel's title (and the Hessian segments) show one
    point; return what the page shows then, once it is quiet."""
    last = [None]

    def read():
        got = page.evaluate(_PAGE_POINT)
        got["point"] = ui.readout()[:2]
        return got

    def agreed():
        got = last[0] = read()
        w, b = got["marker"]
        return (
            got["grid"] == grid
            and got["point"] == pytest.approx((w, b), abs=1e-4)
            and got["title"].startswith(f"w = {w:.3f}, b = {b:.3f}")
            and (not eigen or got["eigen"] == pytest.approx([w, b], abs=1e-9))
        )

    ui.wait_until(agreed, lambda: f"the page shows more than one point: {last[0]}")
    got = ui.settled(read)
    assert agreed(), f"they agreed, then not: {last[0]}"
    return got


# Every callback Dash has in each phase, by output: said when a wait fails
_CALLBACK_STATE = """
() => {
  const c = window.store.getState().callbacks;
  const out = {};
  for (const k of ['requested', 'prioritized', 'blocked', 'executing',
                   'watched', 'executed', 'stored']) {
    out[k] = (c[k] || []).map((r) => r.callback.output);
  }
  return out;
}
"""


# What lies under the target and what the page holds as the point
_AT_TARGET = """
([a, b]) => {
  const gd = document.querySelector('#landscape .js-plotly-plot');
  const fl = gd._fullLayout;
  const r = gd.getBoundingClientRect();
  const x = r.left + fl._size.l + fl.xaxis.d2p(a);
  const y = r.top + fl._size.t + fl.yaxis.d2p(b);
  const e = document.elementFromPoint(x, y);
  const cls = e && (e.className.baseVal !== undefined ? e.className.baseVal
                                                       : e.className);
  const loading = Array.from(document.querySelectorAll('[data-dash-is-loading]'))
    .map((n) => n.id || n.className);
  return {at: [x, y], element: e && (e.tagName + '.' + cls),
          point: window.lossmap && window.lossmap.state.point,
          attached: document.getElementById('landscape').dataset.lossmapAttached,
          loading: loading};
}
"""


def _only_held_pending(page, ui, held):
    """Wait until the held requests are all that Dash still waits for."""
    ui.wait_until(
        lambda: page.evaluate(_ONLY_HELD_PENDING, len(held)),
        lambda: f"held {len(held)}; Dash's callbacks: {page.evaluate(_CALLBACK_STATE)}",
    )


def _hold(page, wanted):
    """Hold the answers of callbacks whose request ``wanted(body)`` picks."""
    held = []

    def handle(route):
        body = json.loads(route.request.post_data or "{}")
        if wanted(body):
            held.append(route)
        else:
            route.continue_()

    page.route(UPDATE, handle)
    return held


def _point_request(body):
    return body.get("output", "").startswith("..fit.figure...readout.children")


@pytest.mark.parametrize("overlay", ["none", "curvature"])
@pytest.mark.parametrize("late_fit", [False, True], ids=["fit-answered", "fit-late"])
def test_a_click_during_a_recompute_wins(explorer, artifacts, overlay, late_fit):
    page, ui = explorer.page, explorer
    if overlay == "curvature":
        _ticked_curvature(page, ui)
    w0, b0, _ = ui.readout()
    assert (w0, b0) != pytest.approx(TARGET, abs=0.1)
    seen = {"landscape": 0, "point": 0}

    def wanted(body):
        # the landscape's answer, and the first fit answer (for the old point)
        # only the first of each: a later request carries the new point
        if body.get("output") == LANDSCAPE and seen["landscape"] == 0:
            seen["landscape"] += 1
            return True
        if late_fit and _point_request(body) and seen["point"] == 0:
            seen["point"] += 1
            return True
        return False

    held = _hold(page, wanted)
    ui.set_number("grid-steps", "151")
    n_held = 2 if late_fit else 1
    ui.wait_until(lambda: len(held) == n_held, lambda: f"held {len(held)} requests")
    _only_held_pending(page, ui, held)

    if late_fit:
        # the recompute's spinner is over the landscape (shown after 250 ms):
        # the click must go through it
        page.wait_for_selector(".loading-landscape .dash-spinner")
    ui.click_data("landscape", *TARGET)
    # the page moves the point at once (to within a pixel of the target)
    ui.wait_until(
        lambda: ui.readout()[:2] == pytest.approx(TARGET, abs=0.02),
        lambda: (
            f"the click did not move the point: {ui.readout()}; "
            f"{page.evaluate(_AT_TARGET, list(TARGET))}"
        ),
    )
    # the click's own answers are in (or, with late_fit, the click's fit
    # request was sent): only the held ones are outstanding
    _only_held_pending(page, ui, held)
    for route in held:
        route.continue_()
    page.unroute(UPDATE)

    got = _agree(page, ui, 151, eigen=overlay == "curvature")
    page.screenshot(
        path=artifacts / f"explorer-race-{overlay}-{late_fit}.png", full_page=True
    )
    # the point the user chose
    assert got["point"] == pytest.approx(TARGET, abs=0.02)


def _ticked_curvature(page, ui):
    page.locator("#overlays label", has_text="curvature at the point").click()
    ui.trace("landscape", "Hessian", where=lambda t: len(t["x"]) == 6)
    ui.settled()


def test_a_click_after_a_run_stays_when_the_figure_is_redrawn(explorer, artifacts):
    # with the Hessian segments shown, every click brings a new figure (a
    # patch): the paths are put back on it, but the point stays the click's
    # (it used to go back to the end of the first path, the fit with it)
    page, ui = explorer.page, explorer
    _ticked_curvature(page, ui)
    ui.choose_optimizers({"gd": "0.1"})
    ui.set_number("opt-steps", "60")
    page.click("#run")
    page.wait_for_function(
        "() => document.getElementById('landscape').dataset.animated === '1'"
    )
    ui.settled()
    ui.click_data("landscape", *TARGET)
    got = _agree(page, ui, 201, eigen=True)
    page.screenshot(path=artifacts / "explorer-race-after-run.png", full_page=True)
    assert got["point"] == pytest.approx(TARGET, abs=0.02)
    assert len(ui.trace("landscape", "gd")["x"]) == 61  # the path, whole


def test_a_click_on_the_3d_surface_during_a_recompute_wins(explorer, artifacts):
    page, ui = explorer.page, explorer
    ui.choose_radio("view", "3-D log")
    ui.trace("landscape", "loss", where=lambda t: t["type"] == "surface")
    ui.settled()
    w0, b0, _ = ui.readout()
    held = _hold(page, lambda body: body.get("output") == LANDSCAPE and not held)
    ui.set_number("grid-steps", "151")
    ui.wait_until(lambda: len(held) == 1, lambda: f"held {len(held)} requests")
    _only_held_pending(page, ui, held)
    # plotly's 3-D scene sends a click from a frame drawn while the button
    # is down (over the surface): press, wait for the point to move, release
    box = page.locator("#landscape .js-plotly-plot").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.55)
    page.mouse.down()
    page.wait_for_function(
        "(old) => !document.querySelector('#readout').innerText.startsWith(old)",
        arg=f"w = {w0:.4f}   b = {b0:.4f}",
    )
    page.mouse.up()
    _only_held_pending(page, ui, held)
    held[0].continue_()
    page.unroute(UPDATE)

    got = _agree(page, ui, 151)
    page.screenshot(path=artifacts / "explorer-race-3d.png", full_page=True)
    assert got["point"] != pytest.approx((w0, b0), abs=1e-3)
    # on the surface: the height of the log-scale view at the point
    z = page.evaluate(
        "() => { const gd = document.querySelector('#landscape .js-plotly-plot');"
        " return gd._fullData.find((t) => t.uid === 'current').z[0]; }"
    )
    loss = float(toy.problem("line", "two-points", "mse").loss(*got["marker"]))
    assert z == pytest.approx(np.log10(loss), abs=0.02)
