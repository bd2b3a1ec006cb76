"""Browser fixtures: Debian's chromium, one live explorer server per module.

``browser_type_launch_args`` points pytest-playwright at /usr/bin/chromium
(never a downloaded browser). ``live_server`` serves the real app from
``create_app`` on 127.0.0.1 with an ephemeral port, in a thread, once per test
module; ``explorer`` opens it and waits until it is drawn and wired.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": {"width": 1500, "height": 1000}}


#: How long a browser test waits for the page (ms). Generous: the suite also
#: runs on busy 2-core machines, where a run and its animation take seconds.
BROWSER_TIMEOUT_MS = 60_000


class LiveServer:
    """The explorer served from a thread; ``url`` is its address."""

    def __init__(self, app: Any) -> None:
        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app.server, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


def serve(store_root: Path | None = None) -> Iterator[LiveServer]:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from lossmap.explorer import create_app

    live = LiveServer(create_app(store_root=store_root))
    try:
        yield live
    finally:
        live.close()


@pytest.fixture(scope="module")
def live_server() -> Iterator[LiveServer]:
    """The explorer without a store folder."""
    pytest.importorskip("dash")
    yield from serve()


# ---------------------------------------------------------------- page helpers

# plotly >= 6 ships arrays base64-encoded in `data`; `_fullData` holds decoded
# (typed) arrays, so read from there and convert to plain lists.
_READ_TRACES = """
(sel) => {
  const gd = document.querySelector(sel + ' .js-plotly-plot');
  if (!gd || !gd._fullData) return null;
  const plain = (a) => {
    if (a == null) return null;
    if (ArrayBuffer.isView(a)) return Array.from(a);
    if (Array.isArray(a)) return a.map(plain);
    return a;
  };
  return gd._fullData.map((t) => ({
    name: t.name, type: t.type, x: plain(t.x), y: plain(t.y),
    text: plain(t.text), z: t.type === 'heatmap' ? plain(t.z) : null,
  }));
}
"""

_DATA_TO_PAGE = """
([sel, a, b]) => {
  const gd = document.querySelector(sel + ' .js-plotly-plot');
  const fl = gd._fullLayout;
  const r = gd.getBoundingClientRect();
  return [r.left + fl._size.l + fl.xaxis.d2p(a), r.top + fl._size.t + fl.yaxis.d2p(b)];
}
"""


_DASH_IDLE = """
() => {
  const s = window.store && window.store.getState && window.store.getState();
  if (!s || !s.callbacks) return false;
  const c = s.callbacks;
  return ['requested', 'prioritized', 'blocked', 'executing', 'watched',
          'executed', 'stored'].every((k) => !c[k] || c[k].length === 0);
}
"""

# What a test can see of the page, cheaply: every graph's traces (name, uid,
# length, sums and ends of x/y), its title and meta stamp, and the texts that
# callbacks write. Two equal prints a moment apart: nothing is being drawn.
_FINGERPRINT = """
() => {
  const sum = (a) => {
    if (!a || a.length === undefined) return null;
    let s = 0, n = 0;
    for (let i = 0; i < a.length; i++) {
      const v = Number(a[i]);
      if (isFinite(v)) { s += v; n += 1; }
    }
    return [a.length, n, s];
  };
  const graphs = [...document.querySelectorAll('.js-plotly-plot')].map((gd) => {
    const host = gd.closest('[id]');
    const t = gd.querySelector('.gtitle');
    return [host && host.id, t && t.textContent,
            gd.layout && gd.layout.meta && gd.layout.meta.stamp,
            (gd._fullData || []).map((d) => [d.name, d.uid, d.type,
              sum(d.x), sum(d.y), d.visible])];
  });
  const text = (id) => { const e = document.getElementById(id);
                         return e ? e.innerText : null; };
  const land = document.getElementById('landscape');
  return JSON.stringify([graphs, ['readout', 'run-status', 'run-message',
    'message', 'step-label', 'critical-points', 'research-meta', 'play'].map(text),
    land && land.dataset.animated, location.href]);
}
"""


def wait_until(
    page: Any,
    probe: Any,
    describe: Any,
    timeout_ms: float = BROWSER_TIMEOUT_MS,
    every_ms: float = 100,
) -> Any:
    """Call ``probe()`` until it returns something truthy and return that;
    after ``timeout_ms`` raise an AssertionError saying ``describe()``."""
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{describe()} (waited {timeout_ms / 1000:.0f} s)")
        page.wait_for_timeout(every_ms)


def dash_idle(page: Any) -> bool:
    """No Dash callback requested, running or waiting to be applied."""
    return bool(page.evaluate(_DASH_IDLE))


def settled(
    page: Any,
    read: Any = None,
    pause_ms: float = 300,
    timeout_ms: float = BROWSER_TIMEOUT_MS,
) -> Any:
    """``read()`` once the page is quiet: no Dash callback pending at two
    reads ``pause_ms`` apart, and both reads (and the page's graphs, texts and
    address) agree. A fixed wait can end while a slow server is still applying
    the last change; this does not. Without ``read``, just waits."""

    def snap() -> Any:
        return (
            dash_idle(page),
            page.evaluate(_FINGERPRINT),
            read() if read is not None else None,
        )

    last = [snap()]

    def probe() -> Any:
        now = snap()
        before, last[0] = last[0], now
        if now[0] and before[0] and now[1:] == before[1:]:
            return [now]
        return None

    def describe() -> str:
        idle, _, value = last[0]
        return f"the page did not settle (Dash idle: {idle}; last read: {value!r})"

    return wait_until(page, probe, describe, timeout_ms, every_ms=pause_ms)[0][2]


def traces(
    page: Any,
    graph: str,
    count: int | None = None,
    where: Any = None,
    timeout_ms: float = BROWSER_TIMEOUT_MS,
) -> list[dict[str, Any]]:
    """The traces of the graph ``#graph`` (name, type, x, y, text, z), those
    for which ``where(trace)`` holds if given. With ``count``, waits (up to
    ``timeout_ms``) until exactly that many are there."""
    seen: list[Any] = [[]]

    def read() -> list[dict[str, Any]]:
        ts = page.evaluate(_READ_TRACES, f"#{graph}") or []
        seen[0] = ts
        return [t for t in ts if where is None or _holds(where, t)]

    if count is None:
        return read()
    return wait_until(
        page,
        lambda: (lambda ts: [ts] if len(ts) == count else None)(read()),
        lambda: (
            f"#{graph} has not {count} trace(s)"
            + (" matching the condition" if where is not None else "")
            + f"; traces present: {[t['name'] for t in seen[0]]}"
        ),
        timeout_ms,
    )[0]


def _holds(where: Any, t: dict[str, Any]) -> bool:
    try:
        return bool(where(t))
    except (IndexError, KeyError, TypeError, ValueError):
        return False  # a trace not (yet) shaped as the condition expects


def trace(
    page: Any,
    graph: str,
    name_start: str,
    where: Any = None,
    timeout_ms: float = BROWSER_TIMEOUT_MS,
) -> dict[str, Any]:
    """The first trace whose name starts with ``name_start`` (and for which
    ``where(trace)`` holds, if given), waiting up to ``timeout_ms`` for one."""
    seen: list[Any] = [[]]

    def probe() -> Any:
        seen[0] = page.evaluate(_READ_TRACES, f"#{graph}") or []
        for t in seen[0]:
            if str(t["name"]).startswith(name_start) and (
                where is None or _holds(where, t)
            ):
                return t
        return None

    return wait_until(
        page,
        probe,
        lambda: (
            f"no trace named {name_start!r}*"
            + (" matching the condition" if where is not None else "")
            + f" in #{graph}; traces present: {[t['name'] for t in seen[0]]}"
        ),
        timeout_ms,
    )


def click_data(page: Any, graph: str, a: float, b: float) -> None:
    """Click the plot ``#graph`` at data coordinates ``(a, b)``."""
    x, y = page.evaluate(_DATA_TO_PAGE, [f"#{graph}", a, b])
    page.mouse.click(x, y)


def readout(page: Any) -> tuple[float, float, float]:
    """(w, b, loss) from the readout line."""
    text = page.inner_text("#readout").split("\n")[0]
    nums = re.findall(r"=\s*(-?[0-9.]+(?:e[-+]?\d+)?)", text)
    assert len(nums) == 3, text
    return float(nums[0]), float(nums[1]), float(nums[2])


def none_to_nan(values: list[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


class UI:
    """The helpers above bound to one page (fixture ``ui``)."""

    def __init__(self, page: Any) -> None:
        self.page = page

    def traces(
        self, graph: str, count: int | None = None, where: Any = None
    ) -> list[dict[str, Any]]:
        return traces(self.page, graph, count=count, where=where)

    def trace(self, graph: str, name_start: str, where: Any = None) -> dict[str, Any]:
        return trace(self.page, graph, name_start, where=where)

    def settled(self, read: Any = None, pause_ms: float = 300) -> Any:
        return settled(self.page, read, pause_ms)

    def dash_idle(self) -> bool:
        return dash_idle(self.page)

    def wait_until(self, probe: Any, describe: Any) -> Any:
        return wait_until(self.page, probe, describe)

    def click_data(self, graph: str, a: float, b: float) -> None:
        click_data(self.page, graph, a, b)

    def readout(self) -> tuple[float, float, float]:
        return readout(self.page)

    def set_number(self, id_: str, value: str) -> None:
        box = self.page.locator(f"#{id_}")
        box.fill(value)
        box.press("Enter")

    def choose_radio(self, group: str, label: str) -> None:
        self.page.locator(f"#{group} label", has_text=re.compile(f"^{label}$")).click()

    def hyper_box(self, name: str, key: str = "lr") -> Any:
        """The text box of optimizer ``name``'s setting ``key``."""
        return self.page.locator(
            f"""[id='{{"key":"{key}","name":"{name}","type":"opt-hyper"}}']"""
        )

    def choose_optimizers(self, settings: dict[str, Any]) -> None:
        """Tick exactly the optimizers in ``settings`` ({name: lr or None})
        and type each learning rate as given (a string, e.g. "1e-3")."""
        rows = self.page.locator("#opt-table .opt-row input[type=checkbox]")
        for i in range(rows.count()):
            box = rows.nth(i)
            if box.is_checked() != (box.get_attribute("value") in settings):
                box.click()
        for name, lr in settings.items():
            if lr is not None:
                field = self.hyper_box(name)
                field.fill(str(lr))
                field.press("Enter")


def open_explorer(page: Any, url: str) -> UI:
    """Load the page and wait until the landscape and the readout are drawn."""
    page.set_default_timeout(BROWSER_TIMEOUT_MS)
    page.goto(url)
    return wait_ready(page)


# What "wired" means: the page's script has put its pointer handlers on both
# graph hosts (the elements there now, see L.attach in lossmap.js) and holds
# the problem's data (the clientside callback `spec`).
_WIRING = """
() => {
  const land = document.getElementById('landscape');
  const fit = document.getElementById('fit');
  return {
    'landscape handlers (#landscape data-lossmap-attached)':
      !!(land && land.dataset.lossmapAttached),
    'fit handlers (#fit data-lossmap-attached)': !!(fit && fit.dataset.lossmapAttached),
    'lossmap.state.spec': !!(window.lossmap && window.lossmap.state.spec),
  };
}
"""


def wait_ready(page: Any) -> UI:
    """Wait until a page being loaded is drawn, wired and quiet.

    No reload: a first load that never finishes wiring is a bug a user would
    hit (clicks that do nothing), so it fails, naming what stayed unset."""
    page.wait_for_selector("#landscape .heatmaplayer image, #landscape .hm image")
    page.wait_for_function(
        "() => document.querySelector('#readout').innerText.includes('=')"
    )
    page.wait_for_function(
        "() => { const g = document.querySelector('#fit .js-plotly-plot');"
        " return g && g._fullData && g._fullData.length === 3; }"
    )
    # the page's own script is wired (pointer handlers, the problem's data)
    # and every callback of the first render has answered: a click or a drag
    # made earlier can be lost, or answered by a late first callback
    seen: list[dict[str, bool]] = [{}]

    def wired() -> bool:
        seen[0] = page.evaluate(_WIRING)
        return all(seen[0].values())

    wait_until(
        page,
        wired,
        lambda: (
            "the explorer page never finished wiring; unset: "
            + ", ".join(k for k, v in seen[0].items() if not v)
        ),
    )
    settled(page)
    return UI(page)


@pytest.fixture
def settle() -> Any:
    """:func:`settled`, for pages other than the test's ``page``."""
    return settled


@pytest.fixture
def opener() -> Any:
    """:func:`open_explorer`, for pages opened with other viewports."""
    return open_explorer


@pytest.fixture
def ready() -> Any:
    """:func:`wait_ready`, for tests that load the page themselves."""
    return wait_ready


@pytest.fixture
def explorer(page: Any, live_server: LiveServer) -> UI:
    """A fresh page on the module's explorer, fully drawn."""
    return open_explorer(page, live_server.url)


@pytest.fixture(scope="module")
def research_server(store_root: Path) -> Iterator[LiveServer]:
    """The explorer serving the module's ``store_root`` fixture."""
    pytest.importorskip("dash")
    yield from serve(store_root)


@pytest.fixture
def ui(page: Any) -> UI:
    """Helpers bound to a blank page (open any server yourself)."""
    return UI(page)
