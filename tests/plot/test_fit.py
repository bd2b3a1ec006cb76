"""Fit panel and landscape + fit displays: artists and their data."""

from __future__ import annotations

import numpy as np
import pytest

from lossmap import toy
from lossmap.plot import FitCurve, FitDisplay, LandscapeFitDisplay, landscape_and_fit


def _segments(disp: FitDisplay) -> list[np.ndarray]:
    return [np.asarray(s) for s in disp.residuals_.get_segments()]


@pytest.mark.parametrize(
    ("model", "data", "loss"),
    [
        ("line", "noisy-line", "mse"),
        ("tanh", "two-points", "huber"),
        ("logistic", "binary-overlapping", "bce"),
    ],
)
def test_one_residual_per_point_from_data_to_prediction(pyplot, model, data, loss):
    p = toy.problem(model, data, loss)
    w, b = 0.7, -0.3
    disp = FitDisplay.from_problem(p, w, b)
    x, y = p.data.x, p.data.y
    fx = p.predict(x, w, b)
    segs = _segments(disp)
    assert len(segs) == len(x)
    for seg, xi, yi, fi in zip(segs, x, y, fx):
        np.testing.assert_allclose(seg, [[xi, yi], [xi, fi]])
    # residual lengths are the problem's residuals
    lengths = np.array([s[1, 1] - s[0, 1] for s in segs])
    np.testing.assert_allclose(lengths, p.residuals(w, b))
    # the prediction curve is the model's prediction
    (line,) = disp.lines_.values()
    np.testing.assert_allclose(line.get_ydata(), p.predict(line.get_xdata(), w, b))
    assert line.get_xdata()[0] < x.min()
    assert line.get_xdata()[-1] > x.max()
    np.testing.assert_allclose(disp.points_.get_offsets(), np.c_[x, y])
    assert f"= {float(p.loss(w, b)):.4g}" in disp.ax_.get_title()


def test_logistic_panel_is_a_probability_axis(pyplot):
    p = toy.problem("logistic", "binary-overlapping", "bce")
    disp = FitDisplay.from_problem(p)  # at θ*
    m = p.minimum()
    (line,) = disp.lines_.values()
    ys = line.get_ydata()
    assert np.all((ys > 0) & (ys < 1))
    np.testing.assert_allclose(ys, 1 / (1 + np.exp(-(m.w * line.get_xdata() + m.b))))
    assert disp.ax_.get_ylabel() == "P(y = 1)"
    assert disp.ax_.get_ylim() == pytest.approx((-0.08, 1.08))
    assert line.get_label().startswith("θ*")


def test_several_labelled_fits_share_one_panel(pyplot):
    p = toy.problem("line", "line-with-outliers", "mse")
    fits = {"A": (0.5, 0.0), "B": (0.1, -0.2), "C": (-0.3, 0.1)}
    disp = FitDisplay.from_problem(p, fits=fits)
    assert list(disp.lines_) == ["A", "B", "C"]
    colours = {tuple(line.get_color()) for line in disp.lines_.values()}
    assert len(colours) == 3
    for label, (w, b) in fits.items():
        line = disp.lines_[label]
        np.testing.assert_allclose(line.get_ydata(), p.predict(line.get_xdata(), w, b))
    # residuals go to the first ("current") fit only
    segs = _segments(disp)
    assert len(segs) == len(p.data)
    np.testing.assert_allclose([s[1, 1] for s in segs], p.predict(p.data.x, 0.5, 0.0))
    legend = [t.get_text() for t in disp.ax_.get_legend().get_texts()]
    assert legend[0].startswith("A")
    assert "L = " in legend[0]
    # the same as a sequence of (label, w, b)
    again = FitDisplay.from_problem(p, fits=[("A", 0.5, 0.0), ("B", 0.1, -0.2)])
    assert list(again.lines_) == ["A", "B"]


def test_fits_at_the_minima_of_three_losses(pyplot):
    probs = {
        "MSE": toy.problem("line", "line-with-outliers", "mse"),
        "MAE": toy.problem("line", "line-with-outliers", "mae"),
        "Huber": toy.problem("line", "line-with-outliers", "huber", delta=0.1),
    }
    disp = FitDisplay.from_minima(probs)
    for label, p in probs.items():
        m = p.minimum()
        line = disp.lines_[label]
        np.testing.assert_allclose(
            line.get_ydata(), p.predict(line.get_xdata(), m.w, m.b)
        )
        curve = next(c for c in disp.curves if c.label == label)
        assert curve.loss == pytest.approx(m.loss)
    # robustness is visible: outliers pull the MSE slope far below the MAE one
    slopes = {c.label: c.w for c in disp.curves}
    assert slopes["MSE"] < slopes["Huber"] < slopes["MAE"] + 0.1
    assert slopes["MAE"] - slopes["MSE"] > 0.3
    assert len(_segments(disp)) == len(probs["MSE"].data)


def test_fit_without_residuals_and_in_user_axes(pyplot):
    p = toy.problem("tanh", "noisy-line", "mse")
    fig, ax = pyplot.subplots()
    ax.set_ylabel("target")
    disp = FitDisplay.from_problem(p, 1.0, 0.0, residuals=False, ax=ax)
    assert disp.residuals_ is None
    assert disp.ax_ is ax
    assert disp.figure_ is fig
    assert ax.get_ylabel() == "target"
    assert ax.get_xlabel() == "x"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"w": np.inf, "b": 0.0}, ValueError, r"`\(w, b\)\[0\]` must be finite"),
        ({"w": 1.0, "b": float("nan")}, ValueError, "must be finite"),
        ({"w": 1.0, "fits": {"a": (1, 2)}}, TypeError, "either `w` and `b` or `fits`"),
        ({"fits": {}}, ValueError, "at least one"),
        ({"fits": {"a": (1.0,)}}, TypeError, "pair of coordinates"),
        ({"w": 1.0, "b": 0.0, "n_curve": 1}, ValueError, "`n_curve` must be >= 2"),
    ],
    ids=["inf-w", "nan-b", "both", "empty-fits", "bad-fit", "n_curve"],
)
def test_fit_bad_inputs(pyplot, kwargs, error, match):
    p = toy.problem("line", "two-points", "mse")
    w = kwargs.pop("w", None)
    b = kwargs.pop("b", None)
    with pytest.raises(error, match=match):
        FitDisplay.from_problem(p, w, b, **kwargs)


def test_fit_display_checks_its_data():
    curve = FitCurve("a", 1.0, 0.0, np.zeros(3))
    with pytest.raises(ValueError, match="same length"):
        FitDisplay(x=[1, 2], y=[1], curve_x=[0, 1, 2], curves=[curve])
    with pytest.raises(ValueError, match="must have shape"):
        FitDisplay(x=[1], y=[1], curve_x=[0, 1], curves=[curve])
    with pytest.raises(ValueError, match="one value per data point"):
        FitDisplay(x=[1], y=[1], curve_x=[0, 1, 2], curves=[curve], fitted=[1, 2])
    with pytest.raises(ValueError, match="share the model and data"):
        FitDisplay.from_minima(
            {
                "a": toy.problem("line", "two-points", "mse"),
                "b": toy.problem("line", "noisy-line", "mse"),
            }
        )


# ------------------------------------------------------- landscape + fit
def test_landscape_and_fit_side_by_side(pyplot):
    p = toy.problem("tanh", "two-points", "huber")
    w, b = 0.5, -0.5
    disp = landscape_and_fit(p, w, b, steps=41, start=(-1.0, 1.0))
    assert isinstance(disp, LandscapeFitDisplay)
    ax_l, ax_f = disp.axes_
    assert ax_l.figure is ax_f.figure is disp.figure_
    lands, fit = disp.landscape_, disp.fit_
    np.testing.assert_allclose(lands.current_.get_offsets(), [[w, b]])
    m = p.minimum()
    np.testing.assert_allclose(lands.minimum_.get_offsets(), [[m.w, m.b]])
    np.testing.assert_allclose(lands.start_.get_offsets(), [[-1.0, 1.0]])
    assert len(fit.residuals_.get_segments()) == len(p.data)
    (line,) = fit.lines_.values()
    np.testing.assert_allclose(line.get_ydata(), p.predict(line.get_xdata(), w, b))
    title = disp.suptitle_.get_text()
    assert "w = 0.5" in title
    assert "b = -0.5" in title
    assert f"{float(p.loss(w, b)):.4g}" in title
    assert "Huber" in title
    assert lands.mesh_ in ax_l.collections


def test_landscape_and_fit_defaults_to_the_minimum(pyplot):
    p = toy.problem("line", "noisy-line", "mse")
    disp = LandscapeFitDisplay.from_problem(p, steps=31, levels=[0.05, 0.2, 1.0])
    m = p.minimum()
    np.testing.assert_allclose(disp.landscape_.current_.get_offsets(), [[m.w, m.b]])
    np.testing.assert_allclose(disp.landscape_.contour_.levels, [0.05, 0.2, 1.0])
    assert disp.loss == pytest.approx(m.loss)


def test_landscape_and_fit_without_a_minimum(pyplot):
    p = toy.problem("logistic", "binary-separable", "bce")
    with pytest.raises(ValueError, match="has no minimum; give `w` and `b`"):
        landscape_and_fit(p, steps=21)
    disp = landscape_and_fit(p, 4.0, 0.0, steps=21)
    assert disp.landscape_.minimum_ is None
    assert "no finite minimum" in disp.axes_[0].get_title()


def test_landscape_and_fit_into_user_axes(pyplot):
    p = toy.problem("line", "two-points", "mse")
    fig, axes = pyplot.subplots(1, 2)
    disp = landscape_and_fit(p, 0.0, 0.0, steps=21, axes=axes)
    assert disp.figure_ is fig
    assert tuple(disp.axes_) == tuple(axes)
    with pytest.raises(TypeError, match="pair of Axes"):
        landscape_and_fit(p, 0.0, 0.0, steps=21, axes=axes[0])
