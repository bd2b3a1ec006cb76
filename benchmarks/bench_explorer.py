"""Explorer latency in headless chromium (a benchmark, never a test assertion).

Serves the real app on 127.0.0.1 (werkzeug, threaded) and drives Debian's
chromium with playwright. Times are measured inside the page with
``performance.now()``: from the mouse-down of a click (or the click on a loss
button) to the ``plotly_afterplot`` event of the redrawn graph.

* click -> fit panel: a click at a new (w, b) on the 201 x 201 landscape until
  the fit panel shows the new prediction, drawn by the page itself from the
  data and the model's formula (``assets/lossmap.js``), to the next frame;
  and until the server's fit figure (which confirms it) is drawn;
* drag: pointer moves dispatched at 60 Hz for 1.5 s; fit updates per second;
* animation: 8 optimizers x 2,000 steps: the size of the one response that
  carries the runs, and how long the page takes to play them;
* loss change -> landscape: a click on a loss button until the new 201 x 201
  heatmap is drawn, "cold" (landscape not yet in the server's cache: computed,
  serialised, sent, drawn) and "warm" (cached).

Baselines, in this process: the same server-side work without a browser
(computing the views and serialising them to JSON), so the ratio shows what
transport and drawing add.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import numpy as np

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PRESETS = (
    "two-points",
    "noisy-line",
    "line-with-outliers",
    "sloped-line-through-origin",
)
LOSS_LABELS = {"mse": "MSE", "mae": "MAE", "huber": "Huber", "log_cosh": "log-cosh"}
TITLE_START = {"mse": "MSE", "mae": "MAE", "huber": "Huber", "log_cosh": "log-cosh"}

_INSTALL = """
() => {
  window.__lm = {t0: null, done: {}, local: []};
  document.addEventListener(
    'pointerdown', () => { window.__lm.t0 = performance.now(); }, true);
  const title = () => document.querySelector('#fit .gtitle');
  const watch = new MutationObserver(() => {
    const t0 = window.__lm.t0;
    requestAnimationFrame(() => { window.__lm.local.push(performance.now() - t0); });
  });
  watch.observe(document.querySelector('#fit'), {subtree: true, characterData: true,
                                                 childList: true});
  for (const id of ['landscape', 'fit']) {
    const gd = document.querySelector('#' + id + ' .js-plotly-plot');
    gd.on('plotly_afterplot', () => {
      const t = gd.querySelector('.gtitle');
      window.__lm.done[id] = {t: performance.now(), title: t ? t.textContent : ''};
    });
  }
}
"""


def _stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {
        "n": int(a.size),
        "median_ms": round(float(np.median(a)), 1),
        "p90_ms": round(float(np.percentile(a, 90)), 1),
        "min_ms": round(float(a.min()), 1),
    }


def _wait_title(page: Any, graph: str, start: str) -> float:
    """ms from the last mouse-down to the afterplot whose title starts so."""
    page.wait_for_function(
        "([g, s]) => { const d = window.__lm.done[g];"
        " return d && d.title.startsWith(s) && d.t > window.__lm.t0; }",
        arg=[graph, start],
        timeout=30_000,
    )
    return page.evaluate(f"window.__lm.done['{graph}'].t - window.__lm.t0")


def _click_xy(page: Any, a: float, b: float) -> tuple[float, float]:
    return page.evaluate(
        """([a, b]) => {
        const gd = document.querySelector('#landscape .js-plotly-plot');
        const fl = gd._fullLayout; const r = gd.getBoundingClientRect();
        return [r.left + fl._size.l + fl.xaxis.d2p(a),
                r.top + fl._size.t + fl.yaxis.d2p(b)]; }""",
        [a, b],
    )


_DRAG = """
() => new Promise((done) => {
  const host = document.getElementById('landscape');
  const gd = host.querySelector('.js-plotly-plot');
  const fl = gd._fullLayout, r = gd.getBoundingClientRect();
  const at = (u, v) => ({clientX: r.left + fl._size.l + u * fl._size.w,
                         clientY: r.top + fl._size.t + v * fl._size.h,
                         bubbles: true, pointerId: 1, button: 0});
  const L = window.lossmap;
  const drag = host.querySelector('.nsewdrag');
  drag.dispatchEvent(new PointerEvent('pointerdown', at(0.2, 0.2)));
  L.state.updates = 0;
  const t0 = performance.now();
  let moves = 0;
  const step = () => {
    const t = performance.now() - t0;
    if (t > 1500) {
      const updates = L.state.updates;
      host.dispatchEvent(new PointerEvent('pointerup', at(0.5, 0.5)));
      done({moves: moves, updates: updates, seconds: t / 1000,
            updates_per_s: Math.round(10 * updates / (t / 1000)) / 10});
      return;
    }
    const u = 0.2 + 0.6 * t / 1500;
    const v = 0.2 + 0.5 * Math.sin(6 * u);
    host.dispatchEvent(new PointerEvent('pointermove', at(u, v)));
    moves += 1;
    setTimeout(step, 1000 / 60);
  };
  step();
})
"""


def _animation(page: Any) -> dict[str, Any]:
    """Run 8 optimizers for 2,000 steps: response size and play time."""
    from lossmap.explorer import teaching

    sizes: list[int] = []

    def on_response(r: Any) -> None:
        body = r.request.post_data or ""
        if "_dash-update-component" in r.url and "run.n_clicks" in body:
            sizes.append(len(r.body()))

    page.on("response", on_response)
    rows = page.locator("#opt-table .opt-row input[type=checkbox]")
    for i in range(rows.count()):
        if not rows.nth(i).is_checked():
            rows.nth(i).click()
    for name in teaching.optimizer_names():
        box = page.locator(
            f"""[id='{{"key":"lr","name":"{name}","type":"opt-hyper"}}']"""
        )
        box.fill("0.001")
        box.press("Enter")
    steps = page.locator("#opt-steps")
    steps.fill("2000")
    steps.press("Enter")
    t = time.perf_counter()
    page.click("#run")
    page.wait_for_function(
        "() => document.getElementById('landscape').dataset.animated === 'playing'",
        timeout=60_000,
    )
    server_s = time.perf_counter() - t
    page.wait_for_function(
        "() => { const a = document.getElementById('landscape').dataset.animated;"
        " return a && a !== 'playing'; }",
        timeout=60_000,
    )
    ticks = page.evaluate("() => window.lossmap.state.tickMs")
    return {
        "response_bytes": max(sizes) if sizes else None,
        "click_to_first_frame_s": round(server_s, 2),
        "play_s": round(page.evaluate("() => window.lossmap.state.playMs") / 1000, 2),
        "frames": len(ticks),
        "frame_js_median_ms": round(float(np.median(ticks)), 2),
    }


def _baselines(rng: np.random.Generator) -> dict[str, Any]:
    """The server-side work alone, in this process."""
    import plotly.io as pio

    from lossmap.explorer import callbacks, teaching

    def settings(preset: str, loss: str) -> Any:
        from lossmap import toy

        (a, b), (c, d) = toy.dataset(preset).region
        return callbacks.settings_from(
            "problem", "line", preset, loss, 0.5, 0.0, a, b, c, d, 201, None
        )

    s = settings("noisy-line", "mse")
    teaching.landscape_view(s, current=(0.0, 0.0))
    click = []
    for _ in range(30):
        w, b = rng.uniform(-1.5, 2.5), rng.uniform(-1.5, 1.0)
        t = time.perf_counter()
        pio.to_json(teaching.fit_view(s, (w, b)))
        teaching.readout(s, (w, b))
        click.append(1e3 * (time.perf_counter() - t))
    cold, warm = [], []
    teaching.surface_for.cache_clear()
    teaching.minimum_for.cache_clear()
    teaching.landscape_for.cache_clear()
    for preset in PRESETS:
        for loss in LOSS_LABELS:
            st = settings(preset, loss)
            t = time.perf_counter()
            pio.to_json(teaching.landscape_view(st, current=(0.0, 0.0)))
            cold.append(1e3 * (time.perf_counter() - t))
            t = time.perf_counter()
            pio.to_json(teaching.landscape_view(st, current=(0.0, 0.0)))
            warm.append(1e3 * (time.perf_counter() - t))
    return {
        "click_fit": _stats(click),
        "landscape_cold": _stats(cold),
        "landscape_warm": _stats(warm),
    }


def run() -> dict[str, Any]:
    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    from lossmap.explorer import create_app

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    rng = np.random.default_rng(0)
    base = _baselines(rng)
    from lossmap.explorer import teaching

    for f in (teaching.surface_for, teaching.minimum_for, teaching.landscape_for):
        f.cache_clear()

    server = make_server("127.0.0.1", 0, create_app().server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    out: dict[str, Any] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            t = time.perf_counter()
            page.goto(url)
            page.wait_for_selector("#landscape .heatmaplayer image")
            page.wait_for_function(
                "() => { const g = document.querySelector('#fit .js-plotly-plot');"
                " return g && g._fullData && g._fullData.length === 3; }"
            )
            out["page_load_s"] = round(time.perf_counter() - t, 2)
            page.evaluate(_INSTALL)

            # click -> fit panel: drawn by the page, then confirmed by the server
            clicks, local = [], []
            for _ in range(30):
                w = float(rng.uniform(-1.8, 2.8))
                b = float(rng.uniform(-2.3, 2.3))
                x, y = _click_xy(page, w, b)
                page.evaluate("() => { window.__lm.local = []; }")
                page.mouse.click(x, y)
                clicks.append(_wait_title(page, "fit", "w = "))
                local.append(page.evaluate("() => window.__lm.local[0]"))
                page.wait_for_timeout(50)
            out["click_to_fit_in_page"] = _stats(local)
            out["click_to_fit_server_confirmed"] = _stats(clicks)
            out["drag"] = page.evaluate(_DRAG)
            out["animation_8x2000"] = _animation(page)

            # loss change -> redrawn landscape (cold, then warm)
            cold, warm = [], []
            for preset in PRESETS:
                page.locator("#preset").click()
                page.get_by_role("option", name=preset, exact=True).click()
                page.keyboard.press("Escape")
                page.wait_for_function(
                    "(p) => { const d = window.__lm.done['landscape'];"
                    " return d && d.title.endsWith(p); }",
                    arg=preset,
                    timeout=30_000,
                )
                page.wait_for_timeout(200)
                others = ["mae", "huber", "log_cosh"]
                for loss in [*others, "mse", *others, "mse"]:
                    timings = (
                        cold
                        if loss != "mse" and len(cold) < 3 * (PRESETS.index(preset) + 1)
                        else warm
                    )
                    page.locator(
                        "#loss label", has_text=LOSS_LABELS[loss]
                    ).first.click()
                    timings.append(_wait_title(page, "landscape", TITLE_START[loss]))
                    page.wait_for_timeout(50)
            out["loss_to_landscape_cold"] = _stats(cold)
            out["loss_to_landscape_warm"] = _stats(warm)
            browser.close()
    finally:
        server.shutdown()
        thread.join(timeout=5)

    out["in_process"] = base
    out["ratio_click_vs_in_process"] = round(
        out["click_to_fit_server_confirmed"]["median_ms"]
        / base["click_fit"]["median_ms"],
        1,
    )
    out["ratio_landscape_cold_vs_in_process"] = round(
        out["loss_to_landscape_cold"]["median_ms"]
        / base["landscape_cold"]["median_ms"],
        2,
    )
    out["goals"] = {
        "click_to_fit_in_page_median_ms": 50,
        "drag_updates_per_s": 30,
        "loss_to_landscape_ms": 500,
        "animation_payload_bytes": 1_000_000,
    }
    out["grid"] = "201x201"
    out["note"] = (
        "clicks at random (w, b) on two-points; loss switches on four regression "
        "presets; load average at start: "
        + json.dumps([round(v, 2) for v in _loadavg()])
    )
    return out


def _loadavg() -> tuple[float, ...]:
    import os

    try:
        return os.getloadavg()
    except OSError:  # pragma: no cover
        return ()


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(run(), indent=2))
