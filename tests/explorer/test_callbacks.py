"""The explorer's server side: teaching views and callbacks over HTTP.

The HTTP tests post to Dash's update endpoint exactly what a (possibly hostile)
page could send, and check that every bad value comes back as a message in the
page, never a traceback or a server error.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from lossmap import optim, toy
from lossmap.explorer import callbacks, teaching
from lossmap.explorer.validate import FunctionSettings, InputError, run_settings

pytest.importorskip("dash")

DEFAULTS = {
    "mode": "problem",
    "model": "line",
    "preset": "two-points",
    "loss": "mse",
    "delta": 0.5,
    "l2": 0.0,
    "range0-min": -2,
    "range0-max": 3,
    "range1-min": -2.5,
    "range1-max": 2.5,
    "grid-steps": 201,
    "function": "rosenbrock",
    "data-edit": None,
}


def _settings(**changes):
    vals = {**DEFAULTS, **changes}
    return callbacks.settings_from(*(vals[i] for i, _ in callbacks.SETTINGS_INPUTS))


# ------------------------------------------------------------ plain functions
def test_landscape_is_cached_per_settings():
    s = _settings()
    assert teaching.surface_for(s) is teaching.surface_for(_settings())
    assert teaching.surface_for(s) is not teaching.surface_for(_settings(loss="mae"))
    surf = teaching.surface_for(s)
    assert surf.shape == (201, 201)
    exact = toy.problem("line", "two-points", "mse").surface(
        ((-2, 3), (-2.5, 2.5)), steps=201
    )
    assert surf.allclose(exact)


def test_readout_and_fit_at_a_point():
    s = _settings(loss="huber", delta=0.3)
    p = toy.problem("line", "two-points", "huber", delta=0.3)
    text = teaching.readout(s, (0.5, -0.25))
    assert text == f"w = 0.5000   b = -0.2500   loss = {float(p.loss(0.5, -0.25)):.6g}"
    fig = teaching.fit_view(s, (0.5, -0.25))
    np.testing.assert_allclose(
        fig.data[1].y, p.predict(np.asarray(fig.data[1].x), 0.5, -0.25)
    )


def test_incompatible_model_and_loss_is_a_message():
    with pytest.raises(InputError, match="needs probabilities"):
        teaching.landscape_view(_settings(loss="bce"), current=(0, 0))


def test_separable_data_has_no_star_but_a_sentence():
    s = _settings(
        model="logistic",
        preset="binary-separable",
        loss="bce",
        **{"range0-min": -4, "range0-max": 12, "range1-min": -6, "range1-max": 6},
    )
    theta, note = teaching.minimum_for(s)
    assert theta is None
    assert "no minimum" in note
    fig = teaching.landscape_view(s, current=(1, 0))
    assert len(fig.data[3].x) == 0


def test_runs_match_optim_and_report_divergence():
    s = _settings()
    rs = run_settings(
        ["gd", "momentum", "sgd"],
        {"gd": {"lr": 1.0}, "momentum": {"lr": 1.0, "beta": 0.5}, "sgd": {"lr": 1}},
        40,
        "constant",
        available={
            n: tuple(teaching.optimizer_hyper(n)) for n in ("gd", "momentum", "sgd")
        },
        schedules=teaching.schedule_names(),
    )
    runs = teaching.run_optimizers(s, rs, (-1.0, 1.5))
    p = toy.problem("line", "two-points", "mse")
    gd = optim.run(p, optim.gd(1.0), [-1.0, 1.5], steps=40)
    mom = optim.run(p, optim.momentum(1.0, beta=0.5), [-1.0, 1.5], steps=40)
    np.testing.assert_array_equal(runs[0].params, gd.params)
    np.testing.assert_array_equal(runs[1].params, mom.params)
    assert runs[2].label.startswith("sgd")
    lines = teaching.status_lines(runs)
    assert gd.status == "diverged"
    assert lines[0] == (
        f"gd (lr=1): diverged at step {gd.stopped_at} (try a smaller learning rate)"
    )
    # a JSON round trip through the page keeps everything (NaN as null)
    back = teaching.runs_from_json(json.loads(json.dumps([r.to_json() for r in runs])))
    for a, b in zip(runs, back):  # 7 significant digits travel
        np.testing.assert_allclose(a.params, b.params, rtol=6e-7, atol=1e-300)
        np.testing.assert_allclose(a.loss, b.loss, rtol=6e-7)
        assert (a.status, a.stopped_at, a.label) == (b.status, b.stopped_at, b.label)
    good = [r.to_json() for r in runs]
    for bad in (
        [{"label": "x"}],
        [{**good[0], "status": "<script>"}],
        [{**good[0], "loss": good[0]["loss"][:-1]}],
        good * 3,
        "runs",
    ):
        with pytest.raises(InputError, match="malformed"):
            teaching.runs_from_json(bad)


def test_schedules_run():
    s = _settings()
    for name in teaching.schedule_names():
        rs = run_settings(
            ["adam"],
            {"adam": {"lr": 0.1}},
            20,
            name,
            available=("adam",),
            schedules=teaching.schedule_names(),
        )
        (r,) = teaching.run_optimizers(s, rs, (0.0, 0.0))
        assert r.params.shape == (21, 2)


def test_test_surface_mode():
    s = _settings(
        mode="function",
        function="himmelblau",
        **{"range0-min": -5, "range0-max": 5, "range1-min": -5, "range1-max": 5},
    )
    assert isinstance(s, FunctionSettings)
    fig = teaching.landscape_view(s, current=(0, 0))
    kinds = [t.name for t in fig.data[6:]]
    assert kinds == ["minimum (4)", "saddle (4)", "maximum (1)"]
    lines = teaching.critical_points_view(s)
    assert lines[0] == "9 in this range: 4 minima, 4 saddles, 1 maximum"
    assert teaching.readout(s, (3.0, 2.0)) == "x = 3.0000   y = 2.0000   f = 0"


# --------------------------------------------------------------- over HTTP
@pytest.fixture(scope="module")
def client():
    from lossmap.explorer import create_app

    app = create_app()
    return app, app.server.test_client()


def _post(client, output, outputs, inputs, state=(), changed=None):
    _, c = client
    body = {
        "output": output,
        "outputs": outputs,
        "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
        "state": [{"id": i, "property": p, "value": v} for i, p, v in state],
        "changedPropIds": (
            changed if changed is not None else [f"{inputs[0][0]}.{inputs[0][1]}"]
        ),
    }
    return c.post(
        "/_dash-update-component",
        data=json.dumps(body),
        content_type="application/json",
    )


def _landscape(client, **changes):
    vals = {**DEFAULTS, **changes}
    inputs = [(i, p, vals[i]) for i, p in callbacks.SETTINGS_INPUTS]
    inputs += [
        ("view", "value", changes.get("view", "2d")),
        ("overlays", "value", []),
    ]
    r = _post(
        client,
        "..landscape.figure...message.children..",
        [
            {"id": "landscape", "property": "figure"},
            {"id": "message", "property": "children"},
        ],
        inputs,
        state=[("point", "data", changes.get("point", [0.5, 0.5]))],
    )
    assert r.status_code == 200, r.data[:300]
    return r.get_json()["response"]


def test_http_landscape_good_and_bad(client):
    good = _landscape(client)
    assert good["message"]["children"] == ""
    assert good["landscape"]["figure"]["data"][0]["type"] == "heatmap"
    cases = {
        "grid-steps": (1_000_000, "`grid size` must be <= 401"),
        "model": ("__import__('os')", "`model` must be one of"),
        "preset": ("/etc/passwd", "`data` must be one of"),
        "loss": ({"evil": 1}, "`loss` must be one of"),
        "l2": ("1e999", "`L2` must be finite"),
        "range0-max": (-5, "the w range must have min < max"),
        "mode": ("shell", "`mode` must be one of"),
        "point": (["a", 1], "`point[0]` must be a number"),
        "view": ("4d", "`view` must be one of"),
    }
    for key, (value, message) in cases.items():
        resp = _landscape(client, **{key: value})
        assert message in resp["message"]["children"], key
        assert "landscape" not in resp  # the last good figure stays
        assert "Traceback" not in json.dumps(resp)
    # and the server is still fine
    assert _landscape(client, loss="mae")["message"]["children"] == ""


def _run_request(client, n, opts, hyper, steps=10):
    vals = DEFAULTS
    names = teaching.optimizer_names()
    state = [
        ("point", "data", [0.0, 0.0]),
        *[
            ({"type": "opt-on", "name": o}, "value", [o] if o in opts else [])
            for o in names
        ],
    ]
    hyper_state = [
        (
            {"type": "opt-hyper", "name": o, "key": k},
            "value",
            hyper.get(o, {}).get(k, d),
        )
        for o in names
        for k, d in teaching.optimizer_hyper(o).items()
    ]
    body_state = [
        {"id": "point", "property": "data", "value": [0.0, 0.0]},
        [{"id": i, "property": p, "value": v} for i, p, v in state[1:]],
        [{"id": i, "property": p, "value": v} for i, p, v in hyper_state],
        {"id": "opt-steps", "property": "value", "value": steps},
        {"id": "schedule", "property": "value", "value": "constant"},
        {"id": "batch-size", "property": "value", "value": ""},
        *[
            {"id": i, "property": p, "value": vals[i]}
            for i, p in callbacks.SETTINGS_INPUTS
        ],
    ]
    _, c = client
    out = [
        "runs.data@",
        "loss-curves.figure@",
        "run-status.children@",
        "run-message.children",
    ]
    app, _ = client
    key = next(k for k in app.callback_map if k.startswith("..runs.data@"))
    body = {
        "output": key,
        "outputs": [
            {"id": "runs", "property": "data@" + key.split("@")[1].split(".")[0]},
        ],
        "inputs": [{"id": "run", "property": "n_clicks", "value": n}],
        "state": body_state,
        "changedPropIds": ["run.n_clicks"],
    }
    del out
    # the outputs as Dash sends them: taken from the callback map
    body["outputs"] = [
        {"id": o.rsplit(".", 1)[0].lstrip("."), "property": o.rsplit(".", 1)[1]}
        for o in key.strip(".").split("...")
    ]
    r = c.post(
        "/_dash-update-component",
        data=json.dumps(body),
        content_type="application/json",
    )
    return r


def test_http_run_refuses_bad_values(client):
    r = _run_request(client, 1, ["gd"], {"gd": {"lr": "-1"}})
    assert r.status_code == 200, r.data[:300]
    msg = r.get_json()["response"]["run-message"]["children"]
    assert msg == "`gd learning rate` must be > 0, got -1"
    r = _run_request(client, 2, ["gd"], {}, steps=10**9)
    assert (
        "`steps` must be <= 2000" in r.get_json()["response"]["run-message"]["children"]
    )
    r = _run_request(client, 3, ["gd", "adam"], {"gd": {"lr": "1e-3"}}, steps=10)
    resp = r.get_json()["response"]
    runs = next(v for k, v in resp.items() if k == "runs")["data"]
    assert runs["key"] == ["problem", "line", "two-points", "mse", 0.5, 0.0]
    assert len(runs["runs"][0]["params"]) == 11
    assert runs["runs"][0]["label"] == "gd (lr=0.001)"


def test_http_refuses_huge_requests(client):
    _, c = client
    r = c.post(
        "/_dash-update-component",
        data=b"[" + b"1," * (5 * 1024 * 1024) + b"1]",
        content_type="application/json",
    )
    assert r.status_code == 413


def test_create_app_refuses_missing_store_root(tmp_path):
    from lossmap.explorer import create_app

    with pytest.raises(FileNotFoundError, match="does not exist"):
        create_app(store_root=tmp_path / "nope")


def test_first_defaults_call_waits_for_a_shared_link(client):
    """Opening a shared link, the first `defaults` call (made with the layout's
    values) must not answer: its `point` and `pending` could land after
    `restore` handed the link's state over and replace the link's point with a
    default (seen in the browser under load). Without a link, or with a broken
    one, it answers; and it never erases a `pending` it did not use."""
    from lossmap.explorer.share import LESSONS, encode_state

    app, _ = client
    key = next(
        k for k in app.callback_map if "range0-min.value" in k and "pending" in k
    )
    spec = app.callback_map[key]
    outputs = [
        {"id": o.split(".")[0], "property": o.split(".")[1]}
        if not o.startswith("{")
        else None
        for o in key.strip(".").split("...")
    ]
    hyper_out = [
        {"id": {"type": "opt-hyper", "name": n, "key": k}, "property": "value"}
        for n, hyper in teaching.default_hyper(_settings()).items()
        for k in hyper
    ]
    outputs = [hyper_out if o is None else o for o in outputs]
    link = "?" + encode_state(LESSONS[next(iter(LESSONS))][1]).lstrip("?")

    def first_call(search, pending=None, changed=()):
        inputs = [
            ("mode", "value", "problem"),
            ("preset", "value", "two-points"),
            ("function", "value", "rosenbrock"),
            ("pending", "data", pending),
        ]
        return _post(
            client,
            key,
            outputs,
            inputs,
            state=[("url", "search", search)],
            changed=list(changed),
        )

    assert len(spec["inputs"]) == 4
    assert first_call(link).status_code == 204  # restore answers instead
    plain = first_call("")
    assert plain.status_code == 200, plain.data[:300]
    resp = plain.get_json()["response"]
    assert resp["point"]["data"] == list(teaching.default_start(_settings()))
    assert "pending" not in resp  # nothing to use up: left as it is
    broken = first_call("?s=%%%")
    assert broken.status_code == 200
    # the hand-over itself is used up, and its point is the link's
    handed = {"mode": "problem", "preset": "two-points", "point": [0.25, -0.5]}
    used = first_call(link, pending=handed, changed=["pending.data"])
    out = used.get_json()["response"]
    assert out["point"]["data"] == [0.25, -0.5]
    assert out["pending"]["data"] is None


def test_small_graphs_have_no_zoom_bar_and_messages_reach_the_run_box():
    """On a touch screen Plotly always shows the zoom bar, over the small
    panels' titles; and the landscape's message (a refused grid range) is
    repeated in the controls' run box, a screen away from the landscape on a
    phone."""
    from dash import dcc, html

    from lossmap.explorer import create_app

    app = create_app()

    def walk(node):
        yield node
        children = getattr(node, "children", None)
        if isinstance(children, list | tuple):
            for c in children:
                yield from walk(c)
        elif children is not None and not isinstance(children, str | int | float):
            yield from walk(children)

    nodes = list(walk(app.layout))
    graphs = {n.id: n for n in nodes if isinstance(n, dcc.Graph)}
    for gid in ("landscape", "fit", "residual-loss", "slices"):
        assert graphs[gid].config.get("displayModeBar") is False, gid
    (box,) = [n for n in nodes if getattr(n, "className", None) == "run-box"]
    ids = [getattr(c, "id", None) for c in box.children]
    assert ids[:2] == ["settings-message", "run"]
    assert isinstance(box.children[0], html.Div)
    mirrors = [
        c
        for c in app.callback_map.values()
        if "settings-message.children" in str(c.get("output"))
    ]
    assert mirrors
    assert "message" in str(mirrors[0]["inputs"])
