"""Teaching overlays against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from lossmap import losses, toy
from lossmap.explorer import overlays
from lossmap.explorer.validate import FunctionSettings, ProblemSettings

pytest.importorskip("plotly")

REGION = ((-2.0, 3.0), (-2.5, 2.5))


def _line(loss="mse", delta=1.0, preset="sloped-line-through-origin"):
    return ProblemSettings("line", preset, loss, delta, 0.0, REGION)


def test_curvature_of_least_squares_is_the_closed_form():
    s = _line()
    x = toy.dataset("sloped-line-through-origin").x
    h = 2 * np.array([[np.mean(x * x), np.mean(x)], [np.mean(x), 1.0]])
    want = np.linalg.eigvalsh(h)
    curv = overlays.curvature_at(s, (0.3, -0.7))
    np.testing.assert_allclose(curv.values, want, rtol=1e-12)
    assert curv.condition == pytest.approx(want[1] / want[0], rel=1e-12)
    assert "condition number κ" in curv.sentence()
    trace = overlays.curvature_trace(s, (0.3, -0.7), curv)
    # two segments through the point, along the eigenvectors
    seg = np.array([[trace["x"][i], trace["y"][i]] for i in (0, 1, 3, 4)])
    mid = np.array([seg[:2].mean(0), seg[2:].mean(0)])
    np.testing.assert_allclose(mid, [[0.3, -0.7], [0.3, -0.7]], atol=1e-12)
    d0 = seg[1] - seg[0]
    assert abs(np.dot(d0 / np.linalg.norm(d0), curv.vectors[:, 0])) == pytest.approx(1)
    # the flat direction is drawn longer than the steep one
    assert np.linalg.norm(d0) > np.linalg.norm(seg[3] - seg[2])


def test_saddle_has_no_condition_number():
    s = FunctionSettings("saddle", ((-2, 2), (-2, 2)))
    curv = overlays.curvature_at(s, (0.0, 0.0))
    np.testing.assert_allclose(curv.values, [-2.0, 2.0])
    assert curv.condition is None
    assert "saddle" in curv.sentence()


def test_arrows_point_downhill():
    s = _line()
    tr = overlays.gradient_arrows(s)
    x = np.array([np.nan if v is None else v for v in tr["x"]]).reshape(-1, 3)
    y = np.array([np.nan if v is None else v for v in tr["y"]]).reshape(-1, 3)
    assert len(x) >= overlays.ARROWS_STEPS**2 - 2  # none where the gradient is 0
    land = toy.problem("line", "sloped-line-through-origin", "mse")
    g = land.grad(x[:, 0], y[:, 0])
    step = np.column_stack([x[:, 1] - x[:, 0], y[:, 1] - y[:, 0]])
    assert np.all(np.sum(step * g, axis=1) < 0)  # every arrow goes downhill


def test_residual_panel_marks_huber_delta_and_the_data():
    s = _line("huber", delta=0.4, preset="line-with-outliers")
    fig = overlays.residual_loss_figure(s, (0.5, 0.1))
    loss = next(t for t in fig.data if t.uid == "loss")
    np.testing.assert_allclose(
        loss.y, losses.get("huber").value(np.asarray(loss.x), 0.0, delta=0.4)
    )
    xs = sorted(sh.x0 for sh in fig.layout.shapes)
    assert xs == [-0.4, 0.4]
    dots = next(t for t in fig.data if t.uid == "residuals")
    data = toy.dataset("line-with-outliers")
    np.testing.assert_allclose(dots.x, 0.5 * data.x + 0.1 - data.y)


def test_slices_go_through_theta_star():
    s = _line()
    fig = overlays.slices_figure(s)
    land = toy.problem("line", "sloped-line-through-origin", "mse")
    m = land.minimum()
    for t in fig.data:
        i0 = int(np.argmin(np.abs(np.asarray(t.x))))
        assert t.y[i0] == pytest.approx(m.loss, abs=1e-9)
        assert min(t.y) >= m.loss - 1e-12


@pytest.mark.parametrize("delta", [0.1, 0.5, 2.0])
def test_residual_panel_keeps_its_words_inside(delta):
    """Huber's δ note stays inside the plot for any δ (anchored at +δ it ran
    off the panel's right edge), and the legends of the small panels hang
    from the panel's foot, never on the x axis's title (they did on a
    phone: at y = -0.3 of a short plot)."""
    s = _line("huber", delta=delta, preset="noisy-line")
    fig = overlays.residual_loss_figure(s, (0.5, 0.1))
    (note,) = fig.layout.annotations
    lo, hi = fig.layout.xaxis.range
    assert note.text.startswith(f"δ = {delta:g}")
    assert note.xanchor == "center"
    assert lo < note.x < hi
    assert note.yref == "paper"
    assert note.y == 1
    assert note.yanchor == "top"
    for f in (fig, overlays.slices_figure(s)):
        legend = f.layout.legend
        assert legend.yref == "container"
        assert legend.y == 0
        assert legend.yanchor == "bottom"
        assert f.layout.margin.b >= 90  # ticks, axis title and a legend row
