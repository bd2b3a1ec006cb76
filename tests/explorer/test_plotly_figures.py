"""Plotly figure builders: data in the traces, not pixels."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from lossmap import Surface, optim, toy
from lossmap.analysis import critical_points
from lossmap.plot import _plotly as P
from lossmap.toy import functions

pytest.importorskip("plotly")


@pytest.fixture(scope="module")
def line_problem():
    return toy.problem("line", "noisy-line", "mse")


@pytest.fixture(scope="module")
def line_surface(line_problem):
    return line_problem.surface(steps=121)


def test_color_scale_log_labels_real_values(line_surface):
    loss = line_surface.loss
    cs = P.color_scale(loss)
    assert cs.log
    np.testing.assert_allclose(cs.z(loss), np.log10(loss))
    # ticks are placed at log10(v) and labelled v
    for t, text in zip(cs.tickvals, cs.ticktext):
        assert 10**t == pytest.approx(float(text), rel=1e-9)
    assert len(cs.tickvals) >= 4
    assert cs.zmin <= min(cs.tickvals)
    assert max(cs.tickvals) <= cs.zmax
    assert np.all((cs.levels > cs.zmin) & (cs.levels < cs.zmax))
    assert 3 <= len(cs.levels) <= 8


def test_one_colour_policy_for_matplotlib_and_plotly(line_surface):
    from lossmap.plot import _style

    loss = line_surface.loss
    cs = P.color_scale(loss)
    lo, hi = _style.log_limits(loss)
    assert cs.floor == lo
    assert 10**cs.zmax == pytest.approx(hi)
    np.testing.assert_allclose(10**cs.levels, _style.nice_levels(loss, vmin=lo))


def test_color_scale_zero_and_negative_values():
    # an exact fit has loss 0: clipped to a floor, never log10(0) = -inf
    z = P.color_scale(np.array([0.0, 1e-3, 10.0])).z(np.array([0.0, 1e-3, 10.0]))
    assert np.all(np.isfinite(z))
    saddle = np.array([[-1.0, 0.0], [0.5, 2.0]])
    cs = P.color_scale(saddle)
    assert not cs.log
    np.testing.assert_array_equal(cs.z(saddle), saddle)
    with pytest.raises(ValueError, match="no finite values"):
        P.color_scale(np.full(3, np.nan))


def test_landscape_figure_traces_and_contours(line_problem, line_surface):
    m = line_problem.minimum()
    fig = P.landscape_figure(
        line_surface, minimum=m.theta, start=(-1.0, 1.0), current=(2.0, 0.5)
    )
    names = [t.name for t in fig.data]
    assert [fig.data[i].type for i in P.TRACE_INDEX.values()] == [
        "heatmap",
        *["scatter"] * 5,
    ]
    heat = fig.data[P.TRACE_INDEX["field"]]
    # rows of z are the second axis (b), columns the first (w)
    np.testing.assert_allclose(
        heat.z, np.log10(line_surface.loss).T.astype(np.float32), rtol=1e-6
    )
    assert heat.colorbar.ticktext[0] == P._fmt(10 ** heat.colorbar.tickvals[0])
    star = fig.data[P.TRACE_INDEX["minimum"]]
    assert (star.x[0], star.y[0]) == (m.w, m.b)
    assert star.marker.color == "#e0201b"
    assert star.marker.symbol == "star"
    cur = fig.data[P.TRACE_INDEX["current"]]
    assert (cur.x[0], cur.y[0]) == (2.0, 0.5)
    assert fig.data[P.TRACE_INDEX["start"]].x == (-1.0,)
    assert names[P.TRACE_INDEX["minimum"]].startswith("θ*")
    # every contour vertex lies on its level set of the exact landscape
    lines = fig.data[P.TRACE_INDEX["contours"]]
    x = np.array([np.nan if v is None else v for v in lines.x], dtype=float)
    y = np.array([np.nan if v is None else v for v in lines.y], dtype=float)
    ok = np.isfinite(x)
    assert ok.sum() > 100
    vals = np.log10(line_problem.loss(x[ok], y[ok]))
    levels = P.color_scale(line_surface.loss).levels
    nearest = np.min(np.abs(vals[:, None] - levels[None, :]), axis=1)
    assert nearest.max() < 0.02  # within 5 % of the level value (linear interpolation)
    # labels are real loss values of those levels
    labels = fig.data[P.TRACE_INDEX["contour_labels"]]
    assert len(labels.text) >= 3
    level_texts = {P._fmt(10**lv) for lv in levels}
    assert set(labels.text) <= level_texts
    for lx, ly, text in zip(labels.x, labels.y, labels.text):
        assert float(line_problem.loss(lx, ly)) == pytest.approx(float(text), rel=0.03)


def test_paths_have_uids_and_no_frames(line_problem, line_surface):
    start = np.array([-1.5, 1.0])
    runs = [
        optim.run(line_problem, optim.gd(0.3), start, steps=30),
        optim.run(line_problem, optim.adam(0.1), start, steps=50),
    ]
    bad = SimpleNamespace(
        params=np.array([[0.0, 0.0], [1.0, 1.0], [np.inf, 2.0], [3.0, 3.0]]),
        label="",
    )
    fig = P.landscape_figure(line_surface, paths=[*runs, bad])
    paths = fig.data[len(P.TRACE_INDEX) :]
    assert [p.name for p in paths] == ["gd (lr=0.3)", "adam (lr=0.1)", "run 3"]
    np.testing.assert_array_equal(
        np.column_stack([paths[0].x, paths[0].y]), runs[0].params
    )
    assert len(paths[2].x) == 2  # stops before the first non-finite row
    assert paths[0].line.color != paths[1].line.color
    # no animation frames: the page animates the paths itself
    assert not fig.frames
    assert [t.uid for t in fig.data[:6]] == list(P.UIDS)
    assert [p.uid for p in paths] == ["path-0", "path-1", "path-2"]
    assert fig.layout.meta["log"] is True


def _lum(hex_color):
    rgb = [int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a, b):
    hi, lo = sorted([_lum(a), _lum(b)], reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_eight_path_colours_are_distinct_and_visible():
    colours = P.PATH_COLORS
    assert len(set(colours)) == 8
    for c in colours:
        # visible on the white loss panel and on both ends of Viridis
        assert _contrast(c, "#ffffff") >= 3.0, c
        assert _contrast(c, "#440154") >= 2.4, c
        assert _contrast(c, "#fde725") >= 2.4, c
    rgb = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in colours])
    d = np.sqrt(((rgb[:, None] - rgb[None]) ** 2).sum(-1))
    assert d[np.triu_indices(8, 1)].min() > 50


def test_critical_points_by_kind():
    f = functions.get("himmelblau")
    surf = f.surface(steps=81)
    cps = critical_points(f, f.region)
    fig = P.landscape_figure(surf, critical_points=cps)
    kinds = {t.name: t for t in fig.data[len(P.TRACE_INDEX) :]}
    assert set(kinds) == {"minimum (4)", "saddle (4)", "maximum (1)"}
    assert kinds["minimum (4)"].marker.symbol == "star"
    mins = np.column_stack([kinds["minimum (4)"].x, kinds["minimum (4)"].y])
    for m in f.minima:
        assert np.min(np.linalg.norm(mins - np.asarray(m), axis=1)) < 1e-6


def test_fit_figure(line_problem):
    w, b = 0.8, -0.1
    fig = P.fit_figure(line_problem, w, b)
    res, curve, data = fig.data
    assert (res.name, curve.name, data.name) == ("residuals", "prediction", "data")
    np.testing.assert_allclose(curve.y, line_problem.predict(np.asarray(curve.x), w, b))
    np.testing.assert_array_equal(data.x, line_problem.data.x)
    n = len(line_problem.data)
    assert len(res.x) == 3 * n
    assert res.x[2::3] == (None,) * n
    np.testing.assert_allclose(res.y[0::3], line_problem.data.y)
    np.testing.assert_allclose(
        res.y[1::3], line_problem.predict(line_problem.data.x, w, b)
    )
    np.testing.assert_allclose(
        np.array(res.y[1::3]) - np.array(res.y[0::3]), line_problem.residuals(w, b)
    )
    assert f"loss = {float(line_problem.loss(w, b)):.4g}" in fig.layout.title.text


def test_fit_figure_logistic():
    p = toy.problem("logistic", "binary-overlapping", "bce")
    fig = P.fit_figure(p, 2.0, 0.5)
    curve = fig.data[1]
    assert np.all((np.array(curve.y) > 0) & (np.array(curve.y) < 1))
    np.testing.assert_allclose(
        curve.y, 1 / (1 + np.exp(-(2.0 * np.array(curve.x) + 0.5)))
    )


def test_loss_curves(line_problem):
    ok = optim.run(line_problem, optim.gd(0.1), [0.0, 0.0], steps=20)
    boom = optim.run(line_problem, optim.gd(5.0), [2.0, 2.0], steps=50)
    assert boom.status == "diverged"
    fig = P.loss_curves_figure([ok, boom])
    assert fig.layout.yaxis.type == "log"
    np.testing.assert_allclose(fig.data[0].y, ok.loss)
    assert np.all(np.isfinite(fig.data[1].y))
    empty = P.loss_curves_figure([])
    assert empty.layout.annotations[0].text == "no runs yet"


def test_surface3d_markers_sit_on_the_surface(line_problem, line_surface):
    m = line_problem.minimum()
    run = optim.run(line_problem, optim.gd(0.2), [-1.0, 1.0], steps=10)
    fig = P.surface3d_figure(
        line_surface,
        minimum=m.theta,
        current=(1.0, 0.0),
        paths=[run],
        values_at=line_problem.loss_at,
    )
    assert fig.data[0].type == "surface"
    cs = P.color_scale(line_surface.loss)
    cur = next(t for t in fig.data if t.name == "current point")
    assert cur.z[0] == pytest.approx(float(cs.z(line_problem.loss(1.0, 0.0))))
    path = fig.data[-1]
    np.testing.assert_allclose(path.z, cs.z(run.loss))
    # hover shows the real loss, not its log
    np.testing.assert_allclose(path.customdata, run.loss, rtol=1e-12)
    np.testing.assert_allclose(fig.data[0].customdata, line_surface.loss.T, rtol=1e-6)
    assert "customdata" in fig.data[0].hovertemplate


def test_surface3d_paths_are_cut_at_the_grid_and_height_can_be_linear(
    line_problem, line_surface
):
    a0 = line_surface.coords(0)
    lo0, hi0 = float(a0[0]), float(a0[-1])
    away = SimpleNamespace(
        params=np.array([[0.0, 0.0], [0.5 * hi0, 0.0], [10 * hi0, 0.0], [1e6, 0.0]]),
        label="away",
    )
    fig = P.surface3d_figure(line_surface, paths=[away], log=False)
    path = fig.data[-1]
    assert len(path.x) == 3
    assert path.x[-1] == pytest.approx(hi0)
    assert fig.layout.scene.xaxis.range == (lo0, hi0)
    # linear height: z is the loss itself
    np.testing.assert_allclose(fig.data[0].z, line_surface.loss.T.astype(np.float32))
    assert fig.layout.meta["log"] is False


def test_curve_figure():
    a = np.linspace(-1, 1, 11)
    s = Surface(axes={"alpha": a}, fields={"loss": 1 + a**2})
    fig = P.curve_figure(s)
    np.testing.assert_allclose(fig.data[0].y, 1 + a**2)
    assert fig.layout.yaxis.type == "log"
    with pytest.raises(ValueError, match="1-D"):
        P.curve_figure(toy.problem("line", "two-points").surface(steps=5))
    with pytest.raises(ValueError, match="2-D"):
        P.landscape_figure(s)
