"""Landscape heatmap, 3-D surface and slice displays: artists and their data."""

from __future__ import annotations

import numpy as np
import pytest

from lossmap import Surface, toy
from lossmap.plot import LandscapeDisplay, SliceDisplay, Surface3DDisplay
from lossmap.plot._style import log_limits, log_ticks, nice_levels


def _bowl(offset: float = 1.0, steps: int = 21) -> Surface:
    """loss = offset + (w - 0.5)² + (b + 0.25)²; θ* = (0.5, -0.25) is a grid point."""
    w = np.linspace(-2.0, 3.0, steps)
    b = np.linspace(-2.25, 1.75, steps - 4)
    loss = offset + np.add.outer((w - 0.5) ** 2, (b + 0.25) ** 2)
    return Surface(axes={"w": w, "b": b}, fields={"loss": loss, "twice": 2 * loss})


# ------------------------------------------------------------------ heatmap
def test_star_sits_at_the_minimum(pyplot):
    p = toy.problem("line", "two-points", "mse")
    disp = LandscapeDisplay.from_problem(p, steps=41, start=(-1.0, 2.0))
    m = p.minimum()
    # line through (-1, -0.4) and (2, 0.6): slope 1/3, intercept -1/15
    np.testing.assert_allclose([m.w, m.b], [1 / 3, -1 / 15], atol=1e-9)
    np.testing.assert_allclose(disp.minimum_.get_offsets(), [[m.w, m.b]])
    np.testing.assert_allclose(disp.start_.get_offsets(), [[-1.0, 2.0]])
    assert disp.minimum_.get_label() == "θ* (minimum)"
    assert disp.minimum_.get_facecolor()[0][:3] == pytest.approx((1.0, 0.0, 0.0))
    legend = [t.get_text() for t in disp.ax_.get_legend().get_texts()]
    assert legend == ["θ* (minimum)", "θ₀ (start)"]
    assert disp.ax_.get_xlabel() == "w"
    assert disp.ax_.get_ylabel() == "b"
    assert disp.figure_ is disp.ax_.figure


def test_log_norm_brackets_positive_data(pyplot):
    p = toy.problem("line", "noisy-line", "mse")
    disp = LandscapeDisplay.from_problem(p, steps=31)
    from matplotlib.colors import LogNorm

    loss = p.surface(steps=31).loss
    assert loss.min() > 0
    assert isinstance(disp.norm_, LogNorm)
    assert disp.mesh_.norm is disp.norm_
    assert disp.norm_.vmin <= loss.min()
    assert disp.norm_.vmax >= loss.max()
    # the heatmap shows the loss itself: C[j, i] = loss[i, j]
    np.testing.assert_allclose(disp.mesh_.get_array().reshape(31, 31), loss.T)
    assert "log" in disp.colorbar_.ax.get_ylabel()


def test_zero_minimum_is_floored_at_a_fraction_of_the_range(pyplot):
    bowl = _bowl(offset=0.0)
    loss = np.array(bowl.loss)
    loss[0, 0] = 1e-12  # a tiny positive value next to the exact zero at θ*
    s = bowl.with_fields(loss=loss)
    disp = LandscapeDisplay(s).plot(log_floor=1e-3)
    span = s.loss.max() - s.loss.min()
    assert disp.norm_.vmin == pytest.approx(1e-3 * span)
    assert disp.norm_.vmax == pytest.approx(s.loss.max())
    shown = np.asarray(disp.mesh_.get_array())
    assert shown.min() == pytest.approx(disp.norm_.vmin)  # clipped, not masked


def test_negative_values_get_a_symmetric_log_scale(pyplot):
    from matplotlib.colors import SymLogNorm

    w = np.linspace(-1, 1, 11)
    saddle = Surface(
        axes={"x": w, "y": w}, fields={"loss": np.subtract.outer(w**2, w**2)}
    )
    disp = LandscapeDisplay(saddle).plot()
    assert isinstance(disp.norm_, SymLogNorm)
    assert disp.norm_.vmin == pytest.approx(-1.0)
    assert disp.norm_.vmax == pytest.approx(1.0)


def test_symmetric_log_colour_bar_has_plain_ticks_over_the_whole_range(pyplot):
    # the saddle x² − y² on [-2, 2]²: values from -4 to 4. matplotlib's
    # locator put ticks at ±10ⁿ only (none beyond ±1, labelled as powers of
    # ten) with 0 wedged between ±0.01, and the label said "log scale"
    from lossmap.toy import functions

    f = functions.get("saddle")
    s = f.surface(steps=41)
    x, y = np.meshgrid(s.coords("x"), s.coords("y"), indexing="ij")
    np.testing.assert_allclose(s.loss, x**2 - y**2)
    disp = LandscapeDisplay(s).plot()
    ticks = np.asarray(disp.colorbar_.get_ticks())
    np.testing.assert_allclose(ticks, -ticks[::-1])  # symmetric about 0
    assert 0.0 in ticks
    assert ticks.max() >= 0.5 * s.loss.max()
    assert np.all(np.abs(ticks[ticks != 0]) >= 2 * disp.norm_.linthresh)
    disp.figure_.canvas.draw()
    labels = [t.get_text() for t in disp.colorbar_.ax.get_yticklabels()]
    assert labels == [f"{v:.3g}" for v in ticks]
    assert "$" not in "".join(labels)
    assert disp.colorbar_.ax.get_ylabel() == "loss (symmetric log scale)"


def test_requested_contour_levels_are_drawn_and_labelled(pyplot):
    levels = [0.1, 0.3, 0.7, 1.5]
    p = toy.problem("line", "two-points", "huber")
    disp = LandscapeDisplay.from_problem(p, steps=61, levels=levels)
    np.testing.assert_allclose(disp.contour_.levels, levels)
    texts = {t.get_text() for t in disp.contour_labels_}
    assert texts == {"0.1", "0.3", "0.7", "1.5"}


def test_automatic_levels_are_round_and_roughly_log_spaced(pyplot):
    p = toy.problem("line", "noisy-line", "mse")
    disp = LandscapeDisplay.from_problem(p, steps=41)
    lv = np.asarray(disp.contour_.levels)
    loss = p.surface(steps=41).loss
    assert 3 <= lv.size <= 8
    assert np.all(np.diff(lv) > 0)
    assert lv[0] > loss.min()
    assert lv[-1] < loss.max()
    ratios = lv[1:] / lv[:-1]
    assert np.all(ratios <= 3.0 + 1e-9)
    assert np.all(ratios >= 1.3)
    # round numbers: mantissa from a 1-1.5-2-3-5-7 set
    mant = lv / 10.0 ** np.floor(np.log10(lv))
    assert np.all(np.isclose(mant[:, None], [1, 1.5, 2, 3, 5, 7]).any(axis=1))
    assert len(disp.contour_labels_) >= lv.size


def test_piecewise_linear_contours_are_all_drawn(pyplot):
    # MAE of a line through two points: L = (|-w + b + 0.4| + |2w + b - 0.6|) / 2.
    # On the default grid its values fall on a lattice, so every round level is
    # hit exactly at many grid points along its contour; those levels were
    # taken for plateaus and dropped (only 0.3 of 7 levels was drawn).
    p = toy.problem("line", "two-points", "mae")
    disp = LandscapeDisplay.from_problem(p)
    w, b = np.meshgrid(*(p.surface().coords(n) for n in "wb"), indexing="ij")
    ref = (np.abs(-w + b + 0.4) + np.abs(2 * w + b - 0.6)) / 2
    np.testing.assert_allclose(disp.contour_.levels, [0.3, 0.5, 0.7, 1, 1.5, 2, 3])
    assert np.all(
        (disp.contour_.levels > ref.min()) & (disp.contour_.levels < ref.max())
    )
    for level, path in zip(disp.contour_.levels, disp.contour_.get_paths()):
        vw, vb = path.vertices.T
        assert vw.size > 10, level
        value = (np.abs(-vw + vb + 0.4) + np.abs(2 * vw + vb - 0.6)) / 2
        np.testing.assert_allclose(value, level, atol=1e-9)


def test_plateau_levels_are_skipped_but_crossed_lines_kept(pyplot):
    # tanh(w·x + b) at x = 1, 2 against y = 0.5, 0.5: where both points
    # saturate at +1 the MAE is 0.5 over a whole region (a plateau, drawn as
    # dots); the value 1.0 is taken only along a narrow wedge that the surface
    # crosses, a real contour.
    p = toy.problem("tanh", ([1.0, 2.0], [0.5, 0.5]), "mae")
    s = p.surface(w=(-10, 10), b=(-10, 10))
    w, b = np.meshgrid(s.coords("w"), s.coords("b"), indexing="ij")
    ref = (np.abs(np.tanh(w + b) - 0.5) + np.abs(np.tanh(2 * w + b) - 0.5)) / 2
    assert np.mean(np.abs(ref - 0.5) < 1e-9) > 0.1  # the plateau
    disp = LandscapeDisplay(s).plot()
    levels = list(np.round(disp.contour_.levels, 12))
    assert 0.5 not in levels
    assert 1.0 in levels


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (np.geomspace(0.006, 8.0, 50), [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5]),
        (np.linspace(5.0, 6.0, 50), [5.2, 5.4, 5.6, 5.8]),
    ],
    ids=["three-decades", "narrow-linear"],
)
def test_nice_levels(values, expected):
    got = nice_levels(values, max_levels=9)
    np.testing.assert_allclose(got, expected)


def test_round_thousands_are_written_out():
    # Rosenbrock's colour bar read "1", "10", "100", "1e+03"
    from lossmap.plot._style import format_level

    assert [format_level(v) for v in (0.001, 1.5, 200, 1000, 3000, 20000)] == [
        "0.001",
        "1.5",
        "200",
        "1000",
        "3000",
        "20000",
    ]
    assert format_level(1e5) == "1e+05"
    assert format_level(1234.5) == "1.23e+03"  # not a round level: 3 digits
    assert format_level(-2000) == "-2000"


def test_rosenbrock_colour_bar_reads_plain_numbers(pyplot):
    from lossmap.toy import functions

    f = functions.get("rosenbrock")
    disp = LandscapeDisplay(f.surface(steps=61)).plot()
    disp.figure_.canvas.draw()
    labels = [t.get_text() for t in disp.colorbar_.ax.get_yticklabels()]
    assert "1000" in labels
    assert not any("e+" in t for t in labels)


def test_log_limits_and_ticks():
    lo, hi = log_limits(np.array([0.0, 1e-30, 0.5, 2.0]), floor=1e-3)
    assert (lo, hi) == (pytest.approx(2e-3), 2.0)
    assert log_limits(np.array([0.2, 5.0]))[0] == 0.2
    ticks = log_ticks(1e-4, 1.0)
    np.testing.assert_allclose(ticks, [1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    assert log_ticks(0.4, 3.5).size >= 3


def test_plots_into_user_axes_and_keeps_user_labels(pyplot):
    fig, ax = pyplot.subplots()
    ax.set_xlabel("slope")
    ax.set_title("mine")
    disp = LandscapeDisplay.from_surface(_bowl(), minimum=(0.5, -0.25), ax=ax)
    assert disp.ax_ is ax
    assert disp.figure_ is fig
    assert disp.mesh_ in ax.collections
    assert ax.get_xlabel() == "slope"
    assert ax.get_title() == "mine"
    assert ax.get_ylabel() == "b"
    # explicit labels win over both
    disp.plot(ax, xlabel="w!", title="t")
    assert ax.get_xlabel() == "w!"
    assert ax.get_title() == "t"


def test_other_field_and_no_contours(pyplot):
    s = _bowl()
    disp = LandscapeDisplay(s, field="twice").plot(contours=False, colorbar=False)
    assert disp.contour_ is None
    assert disp.colorbar_ is None
    np.testing.assert_allclose(
        disp.mesh_.get_array().reshape(s.shape[::-1]), 2 * s.loss.T
    )


def test_problem_without_minimum_draws_no_star(pyplot):
    p = toy.problem("logistic", "binary-separable", "bce")
    disp = LandscapeDisplay.from_problem(p, steps=31)
    assert disp.minimum_ is None
    assert "no finite minimum" in disp.ax_.get_title()


def test_title_comes_from_the_metadata(pyplot):
    p = toy.problem("tanh", "two-points", "huber", delta=0.5, l2=0.01)
    disp = LandscapeDisplay(p.surface(steps=11)).plot(contours=False)
    assert (
        disp.ax_.get_title() == "tanh(w·x + b) · Huber (δ=0.5) · two-points · l2=0.01"
    )


def test_weighted_sum_title_names_the_weights_on_two_lines(pyplot):
    from lossmap.toy import terms

    pinn = terms.physics_informed(weights={"boundary": 10.0})
    disp = LandscapeDisplay(pinn.surface(steps=11)).plot(contours=False)
    assert disp.ax_.get_title() == (
        "u' + 1u = 0, u(0) = 1; u = b·e^(w·x)\n1·data + 1·residual + 10·boundary"
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"surface": _bowl().slice("b", 0.0)}, ValueError, "needs a 2-D surface"),
        (
            {"surface": _bowl(), "field": "accuracy"},
            ValueError,
            "`field` must be one of",
        ),
        ({"surface": _bowl(), "minimum": (np.nan, 0.0)}, ValueError, "must be finite"),
        ({"surface": _bowl(), "start": (1.0,)}, TypeError, "pair of coordinates"),
        ({"surface": np.zeros((3, 3))}, TypeError, "lossmap.Surface"),
    ],
    ids=["1-d", "unknown-field", "nan-minimum", "bad-start", "not-a-surface"],
)
def test_landscape_bad_inputs(kwargs, error, match):
    surface = kwargs.pop("surface")
    with pytest.raises(error, match=match):
        LandscapeDisplay(surface, **kwargs)


@pytest.mark.parametrize(
    ("plot_kw", "match"),
    [
        ({"levels": [0.5, 0.2]}, "increasing"),
        ({"levels": [[0.1]]}, "1-D list"),
        ({"norm": "sqrt"}, "`norm` must be one of"),
        ({"log_floor": 2.0}, "`log_floor` must be <= 1"),
    ],
)
def test_landscape_bad_plot_options(pyplot, plot_kw, match):
    with pytest.raises(ValueError, match=match):
        LandscapeDisplay(_bowl()).plot(**plot_kw)


# ------------------------------------------------------------------ 3-D view
def test_surface3d_heights_are_log10_loss(pyplot):
    s = _bowl(offset=0.5)
    disp = Surface3DDisplay.from_surface(s, minimum=(0.5, -0.25), start=(2.0, 1.0))
    assert disp.zscale_ == "log10"
    np.testing.assert_allclose(disp.z_, np.log10(s.loss))
    assert disp.ax_.name == "3d"
    assert "log₁₀" in disp.ax_.get_zlabel()
    # markers sit on the surface: θ* is a grid point, so z = log10(0.5)
    x, y, z = disp.minimum_._offsets3d
    np.testing.assert_allclose([x[0], y[0], z[0]], [0.5, -0.25, np.log10(0.5)])
    _xs, _ys, zs = disp.start_._offsets3d
    expected = np.log10(0.5 + 1.5**2 + 1.25**2)  # bilinear on a smooth bowl
    assert zs[0] == pytest.approx(expected, abs=0.02)


def test_surface3d_linear_and_problem(pyplot):
    p = toy.problem("tanh", "noisy-line", "mse")
    disp = Surface3DDisplay.from_problem(p, steps=25, zscale="linear")
    np.testing.assert_allclose(disp.z_, p.surface(steps=25).loss)
    assert disp.ax_.get_zlabel() == "loss"
    m = p.minimum()
    x, y, _ = disp.minimum_._offsets3d
    np.testing.assert_allclose([x[0], y[0]], [m.w, m.b])


def test_surface3d_bad_inputs(pyplot):
    w = np.linspace(-1, 1, 5)
    saddle = Surface(axes={"x": w, "y": w}, fields={"loss": np.subtract.outer(w, w)})
    with pytest.raises(ValueError, match="non-negative"):
        Surface3DDisplay(saddle).plot(zscale="log10")
    assert Surface3DDisplay(saddle).plot().zscale_ == "linear"
    _, ax = pyplot.subplots()
    with pytest.raises(ValueError, match="3-D axes"):
        Surface3DDisplay(_bowl()).plot(ax)
    with pytest.raises(ValueError, match="needs a 2-D surface"):
        Surface3DDisplay(_bowl().slice("w", 0.0))


# -------------------------------------------------------------------- slices
def test_slice_of_a_2d_surface(pyplot):
    s = _bowl()
    disp = SliceDisplay.from_surface(s, axis="b", value=-0.25, fields=["loss", "twice"])
    ref = s.slice("b", -0.25)
    np.testing.assert_allclose(disp.lines_["loss"].get_xdata(), s.coords("w"))
    np.testing.assert_allclose(disp.lines_["loss"].get_ydata(), ref.loss)
    np.testing.assert_allclose(disp.lines_["twice"].get_ydata(), 2 * ref.loss)
    assert disp.ax_.get_xlabel() == "w"
    assert [t.get_text() for t in disp.ax_.get_legend().get_texts()] == [
        "loss",
        "twice",
    ]


def test_slices_overlay_with_labels_and_log_y(pyplot):
    s = _bowl()
    _, ax = pyplot.subplots()
    a = SliceDisplay(s.slice("b", 0.0), label="b = 0").plot(ax, logy=True)
    SliceDisplay(s.slice("b", 1.0), label="b = 1").plot(ax)
    assert ax.get_yscale() == "log"
    assert [line.get_label() for line in ax.get_lines()] == ["b = 0", "b = 1"]
    assert a.ax_ is ax


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: SliceDisplay(_bowl()), "needs a 1-D surface"),
        (lambda: SliceDisplay(_bowl().slice("b", 0.0), fields=["acc"]), "`field`"),
        (lambda: SliceDisplay(_bowl().slice("b", 0.0), fields=[]), "at least one"),
        (lambda: SliceDisplay.from_surface(_bowl()), "needs `axis` and `value`"),
        (lambda: SliceDisplay.from_surface(_bowl(), axis="q", value=0.0), "`axis`"),
    ],
    ids=["2-d", "unknown-field", "no-fields", "no-axis", "bad-axis"],
)
def test_slice_bad_inputs(pyplot, call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_lossmap_import_does_not_pull_matplotlib():
    import subprocess
    import sys

    code = (
        "import sys, lossmap, lossmap.plot; "
        "lossmap.plot.__all__; "
        "print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
