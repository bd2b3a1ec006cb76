"""Defaults, statuses, registries and server safety of the Landscape tab."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from lossmap import optim, toy
from lossmap.explorer import teaching
from lossmap.explorer.validate import FunctionSettings, ProblemSettings, run_settings

pytest.importorskip("dash")


def _function(name):
    from lossmap.toy import functions

    return FunctionSettings(name, functions.get(name).region)


@pytest.mark.parametrize("name", teaching.function_names())
def test_default_start_is_away_from_every_minimum(name):
    from lossmap.toy import functions

    f = functions.get(name)
    s = _function(name)
    start = np.array(teaching.default_start(s))
    (lo0, hi0), (lo1, hi1) = f.region
    assert lo0 <= start[0] <= hi0
    assert lo1 <= start[1] <= hi1
    known = np.array([*f.minima, *getattr(f, "local_minima", [])]).reshape(-1, 2)
    if known.size:
        span = np.array([hi0 - lo0, hi1 - lo1])
        assert np.min(np.linalg.norm((known - start) / span, axis=1)) >= 0.1
    # the gradient method moves but does not blow up on the default settings
    hyper = teaching.default_hyper(s)
    for opt in ("gd", "momentum", "adam"):
        traj = optim.run(f, optim.get(opt, **hyper[opt]), start, steps=60)
        if f.minima:  # bounded below: nothing diverges early
            assert traj.status != "diverged", (name, opt)
        assert np.linalg.norm(traj.params[min(5, traj.stopped_at)] - start) > 0


def test_rosenbrock_defaults_are_the_classic_race():
    s = _function("rosenbrock")
    assert teaching.default_start(s) == (-1.2, 1.0)
    hyper = teaching.default_hyper(s)
    assert hyper["gd"]["lr"] == 1e-3
    rs = run_settings(
        ["gd", "momentum", "adam"],
        hyper,
        500,
        "constant",
        available={n: tuple(teaching.optimizer_hyper(n)) for n in hyper},
        schedules=("constant",),
    )
    runs = teaching.run_optimizers(s, rs, teaching.default_start(s))
    assert [r.status for r in runs].count("diverged") == 0


def test_status_lines_in_plain_words():
    s = ProblemSettings("line", "two-points", "mse", 1.0, 0.0, ((-2, 3), (-2.5, 2.5)))
    rs = run_settings(
        ["gd"],
        {"gd": {"lr": 0.3}},
        2000,
        "constant",
        available={"gd": ("lr",)},
        schedules=("constant",),
    )
    (run,) = teaching.run_optimizers(s, rs, (0.0, 0.0))
    (line,) = teaching.status_lines([run], teaching.best_value(s))
    assert line.startswith("gd (lr=0.3): reached the minimum (gradient below 1e-08)")
    assert f"at step {run.stopped_at}" in line
    # a saturated tanh neuron: flat from the start, not "converged at step 0"
    t = ProblemSettings("tanh", "two-points", "mse", 1.0, 0.0, ((-60, 60), (-60, 60)))
    (flat,) = teaching.run_optimizers(t, rs, (30.0, 60.0))
    assert flat.status == "converged"
    assert flat.stopped_at == 0
    (text,) = teaching.status_lines([flat], teaching.best_value(t))
    assert "stuck from the start" in text
    assert "converged" not in text
    rs_short = run_settings(
        ["gd"],
        {"gd": {"lr": 0.01}},
        5,
        "constant",
        available={"gd": ("lr",)},
        schedules=("constant",),
    )
    (slow,) = teaching.run_optimizers(s, rs_short, (-1.0, 1.5))
    (text,) = teaching.status_lines([slow], teaching.best_value(s))
    assert (
        text
        == f"gd (lr=0.01): step limit reached: loss {slow.loss[-1]:.4g} after 5 steps"
    )


def test_sgd_batch_size_is_a_control():
    s = ProblemSettings("line", "noisy-line", "mse", 1.0, 0.0, ((-2, 3), (-2.5, 2.5)))
    n = len(toy.dataset("noisy-line").x)
    rs = run_settings(
        ["sgd"],
        {"sgd": {"lr": 0.05}},
        20,
        "constant",
        available={"sgd": ("lr",)},
        schedules=("constant",),
        batch_size=2,
    )
    (run,) = teaching.run_optimizers(s, rs, (0.0, 0.0))
    land = teaching.landscape_for(s)
    ref = optim.run(land, optim.sgd(0.05), [0.0, 0.0], steps=20, seed=0, batch_size=2)
    np.testing.assert_array_equal(run.params, ref.params)
    assert n > 2


def test_problem_spec_matches_the_python_landscape():
    s = ProblemSettings(
        "logistic", "binary-overlapping", "bce", 1.0, 0.2, ((-4, 4),) * 2
    )
    spec = teaching.problem_spec(s)
    data = toy.dataset("binary-overlapping")
    np.testing.assert_array_equal(spec["x"], data.x)
    assert spec["model"] == "logistic"
    assert spec["l2"] == 0.2
    assert len(spec["colors"]) == 8


# ------------------------------------------------------------- registries
def test_a_registered_optimizer_and_loss_appear_without_explorer_edits(monkeypatch):
    from lossmap import losses
    from lossmap.explorer import layout
    from lossmap.optim import _optimizers

    def lion(lr=0.001, *, beta=0.95):
        return _optimizers.momentum(lr, beta=beta)

    monkeypatch.setitem(_optimizers._FACTORIES, "lion", lion)
    monkeypatch.setitem(_optimizers.DEFAULT_LR, "lion", 0.001)
    mse = losses.get("mse")
    import dataclasses

    cauchy = dataclasses.replace(mse, name="cauchy", label="Cauchy")
    monkeypatch.setitem(losses._REGISTRY, "cauchy", cauchy)
    assert "lion" in teaching.optimizer_names()
    assert teaching.optimizer_hyper("lion") == {"lr": 0.001, "beta": 0.95}
    assert "cauchy" in layout.loss_names("regression")
    assert layout.loss_labels()["cauchy"] == "Cauchy"
    from plotly.utils import PlotlyJSONEncoder

    from lossmap.explorer import create_app

    page = json.dumps(create_app().layout, cls=PlotlyJSONEncoder)
    assert '"name": "lion"' in page
    assert "Cauchy" in page


# ------------------------------------------------------------ server safety
@pytest.fixture(scope="module")
def client():
    from lossmap.explorer import create_app

    app = create_app()
    return app, app.server.test_client()


def test_malformed_requests_get_400_and_no_traceback(client, caplog):
    app, c = client
    caplog.set_level(logging.INFO)
    key = next(k for k in app.callback_map if k.startswith("..landscape.figure...mes"))
    short = json.dumps({"output": key, "inputs": [], "state": []})  # too few
    for body in (
        b"[1, 2, 3]",
        b"not json",
        b'{"output": "nope.figure"}',
        b"null",
        short.encode(),
    ):
        r = c.post(
            "/_dash-update-component", data=body, content_type="application/json"
        )
        assert r.status_code == 400, body
        assert b"Traceback" not in r.data
    assert "Traceback" not in caplog.text


def test_responses_are_capped(client, monkeypatch):
    from lossmap.explorer import app as app_module

    _, c = client
    monkeypatch.setattr(app_module, "MAX_RESPONSE", 1000)
    r = c.get("/")  # the page itself is larger than 1000 bytes
    assert r.status_code == 413
    assert b"refused" in r.data


def test_a_huge_string_is_neither_echoed_nor_logged(client, caplog):
    from lossmap.explorer import callbacks

    app, c = client
    huge = "x" * 1_500_000  # under the 2 MB request cap
    values = {
        i: v
        for i, v in zip(
            (i for i, _ in callbacks.SETTINGS_INPUTS),
            [
                "problem",
                "line",
                "two-points",
                huge,
                0.5,
                0,
                -2,
                3,
                -2.5,
                2.5,
                201,
                "rosenbrock",
                None,
            ],
        )
    }
    key = next(k for k in app.callback_map if k.startswith("..landscape.figure"))
    body = {
        "output": key,
        "outputs": [
            {"id": "landscape", "property": "figure"},
            {"id": "message", "property": "children"},
        ],
        "inputs": [
            *[
                {"id": i, "property": p, "value": values[i]}
                for i, p in callbacks.SETTINGS_INPUTS
            ],
            {"id": "view", "property": "value", "value": "2d"},
            {"id": "overlays", "property": "value", "value": []},
        ],
        "state": [{"id": "point", "property": "data", "value": [0, 0]}],
        "changedPropIds": ["loss.value"],
    }
    caplog.set_level(logging.DEBUG)
    r = c.post(
        "/_dash-update-component",
        data=json.dumps(body),
        content_type="application/json",
    )
    assert r.status_code == 200
    assert len(r.data) < 2000
    assert "`loss` must be one of" in r.get_json()["response"]["message"]["children"]
    assert len(caplog.text) < 10_000


# ------------------------------------------------------------- data editing
def _edited(settings, data):
    from lossmap.explorer.validate import check_points

    return ProblemSettings(
        settings.model,
        settings.preset,
        settings.loss,
        settings.delta,
        settings.l2,
        settings.region,
        settings.steps,
        check_points(data),
    )


def test_edits_change_theta_star_like_least_squares():
    s = ProblemSettings("line", "noisy-line", "mse", 1.0, 0.0, ((-2, 3), (-2.5, 2.5)))
    base = toy.dataset("noisy-line")
    out = teaching.edit_data(s, "outlier")
    assert len(out["x"]) == len(base.x) + 1
    edited = _edited(s, out)
    theta, _ = teaching.minimum_for(edited)
    x, y = np.array(out["x"]), np.array(out["y"])
    want = np.linalg.lstsq(np.column_stack([x, np.ones_like(x)]), y, rcond=None)[0]
    np.testing.assert_allclose(theta, want, atol=1e-8)
    assert edited.key() != s.key()  # runs of the old data are not shown
    # noise is seeded: the same seed, the same data
    a = teaching.edit_data(s, "noise", sd=0.3, seed=4)
    b = teaching.edit_data(s, "noise", sd=0.3, seed=4)
    assert a == b
    np.testing.assert_allclose(
        np.array(a["y"]) - base.y,
        np.random.default_rng(4).normal(0, 0.3, size=base.y.shape),
    )
    # add, then delete the nearest point: back to the data
    added = teaching.edit_data(s, "add", at=(0.25, 5.0))
    back = teaching.edit_data(_edited(s, added), "delete", at=(0.26, 4.9))
    np.testing.assert_allclose(back["x"], base.x)


def test_bad_edits_are_refused():
    from lossmap.explorer.validate import InputError, check_points

    for bad, msg in [
        ([1, 2], "must be a mapping"),
        ({"x": [1], "y": [1, 2]}, "of one length"),
        ({"x": [], "y": []}, "1 to 200 points"),
        ({"x": [1.0], "y": ["nan"]}, "must be finite"),
        ({"x": [1] * 201, "y": [0] * 201}, "1 to 200 points"),
    ]:
        with pytest.raises(InputError, match=msg):
            check_points(bad)
    s = ProblemSettings(
        "logistic", "binary-overlapping", "bce", 1.0, 0.0, ((-4, 4), (-4, 4))
    )
    with pytest.raises(InputError, match="noise is for regression"):
        teaching.edit_data(s, "noise")
    flipped = teaching.edit_data(s, "outlier")
    assert set(flipped["y"]) == {0.0, 1.0}


# ------------------------------------------------------------------ share
def test_state_links_round_trip_and_refuse_garbage():
    from lossmap.explorer.share import LESSONS, MAX_STATE, decode_state, encode_state

    state = {"model": "line", "point": [0.5, -1.25], "hyper": {"gd": {"lr": "1e-3"}}}
    link = encode_state({**state, "evil": "<script>"})
    assert decode_state(link) == state
    assert decode_state("") is None
    assert decode_state(None) is None
    for bad in ("?s=%%%", "?s=" + "A" * (MAX_STATE + 1), "?s=WzEsMl0"):  # [1,2]
        with pytest.raises(ValueError, match="the link's state"):
            decode_state(bad)
    for _label, lesson in LESSONS.values():
        assert decode_state(encode_state(lesson)) == lesson


def test_loss_per_step_axis_keeps_few_labels_over_many_decades():
    """GD on Himmelblau reaches 1e-18: the short loss-per-step axis had a
    label every two decades, ten of them crammed into ~120 px."""
    from lossmap.explorer.validate import FunctionSettings, RunSettings
    from lossmap.plot import _plotly

    s = FunctionSettings("himmelblau", ((-5.0, 5.0), (-5.0, 5.0)))
    rs = RunSettings(("gd",), {"gd": {"lr": 0.01}}, 100, "constant")
    runs = teaching.run_optimizers(s, rs, (1.0, 1.0))
    assert min(runs[0].loss) < 1e-15
    full = _plotly.loss_curves_figure(runs).layout.yaxis
    assert len(full.tickvals) > teaching.MAX_LOSS_TICKS  # the case in point
    axis = teaching.loss_view(runs).layout.yaxis
    assert 2 <= len(axis.tickvals) <= teaching.MAX_LOSS_TICKS
    labels = dict(zip(full.tickvals, full.ticktext, strict=True))
    assert all(
        labels[v] == t for v, t in zip(axis.tickvals, axis.ticktext, strict=True)
    )


def test_long_landscape_titles_are_broken_into_lines():
    """Plotly never wraps a title: Huber with L2 on edited data ran off the
    panel (on a laptop too). Lines of at most TITLE_LINE characters, the
    margin grown to hold them, the plot not overlapped."""
    s = ProblemSettings(
        "tanh",
        "sloped-line-through-origin",
        "huber",
        0.5,
        0.05,
        ((-4.0, 5.0), (-1.5, 1.5)),
        41,
        ((0.0, 0.0), (0.5, 1.3), (1.0, 0.2)),
    )
    fig = teaching.landscape_view(s, current=(0.0, 0.0))
    text = fig.layout.title.text
    lines = text.split("<br>")
    assert len(lines) == 2
    assert all(len(line) <= teaching.TITLE_LINE for line in lines)
    assert " ".join(lines) == (
        "Huber, δ = 0.5 of tanh(w·x + b) + 0.05·(w² + b²) on "
        "sloped-line-through-origin (edited)"
    )
    assert fig.layout.title.yanchor == "bottom"
    assert fig.layout.margin.t >= 26 + 20 * len(lines)
    fig3 = teaching.landscape_view(s, current=(0.0, 0.0), view="3d")
    assert fig3.layout.title.text == text
    assert fig3.layout.margin.t >= 26 + 20 * len(lines)
    # a short title stays one line, placed as before
    short = ProblemSettings("line", "two-points", "mse", 1.0, 0.0, s.region, 41)
    one = teaching.landscape_view(short, current=(0.0, 0.0)).layout.title
    assert one.text == "MSE of w·x + b on two-points"
    assert one.yanchor is None
