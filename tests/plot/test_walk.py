"""lossmap.plot walk figures: artists and data, not pixels."""

from __future__ import annotations

import numpy as np
import pytest

from lossmap import analysis, optim
from lossmap.toy import functions

plot = pytest.importorskip("lossmap.plot")


@pytest.fixture(scope="module")
def rosen():
    f = functions.get("rosenbrock")
    return f, f.surface(steps=61)


def test_paths_display_colours_legend_and_cut_off(pyplot, rosen):
    f, s = rosen
    runs = optim.race(
        f,
        [optim.sgd(1e-3), optim.momentum(1e-3), optim.adam(0.05), optim.gd(0.01)],
        [-1.2, 1.0],
        steps=200,
    )
    assert runs[-1].status == "diverged"
    d = plot.PathsDisplay(s, runs, minima=f.minima).plot()
    assert len(d.lines_) == 4
    colours = {
        tuple(np.round(pyplot.matplotlib.colors.to_rgba(ln.get_color()), 3))
        for ln in d.lines_
    }
    assert len(colours) == 4
    texts = [t.get_text() for t in d.legend_.get_texts()]
    assert any("diverged at step" in t for t in texts)
    assert "start" in texts
    assert "minimum" in texts
    # the diverged path is cut at the edge of the view, marked with a cross
    assert len(d.cut_) == 1
    x, y = d.lines_[-1].get_xydata().T
    (lo0, hi0), (lo1, hi1) = f.region
    assert np.all((x >= lo0 - 1e-9) & (x <= hi0 + 1e-9))
    assert np.all((y >= lo1 - 1e-9) & (y <= hi1 + 1e-9))
    # the others end with a dot at their last point
    assert len(d.ends_) == 3
    np.testing.assert_allclose(d.ends_[2].get_offsets()[0], runs[2].params[-1])
    np.testing.assert_allclose(d.start_.get_offsets()[0], [-1.2, 1.0])


def test_paths_display_multi_start(pyplot, rosen):
    f, s = rosen
    t = optim.run(f, optim.adam(0.05), [[-1.5, 2.0], [1.5, -0.5]], steps=50)
    d = plot.PathsDisplay(s, t).plot()
    assert len(d.lines_) == 2


def test_paths_title_is_the_functions_title(pyplot, rosen):
    f, s = rosen
    t = optim.run(f, optim.adam(0.05), [-1.2, 1.0], steps=20)
    d = plot.PathsDisplay(s, t).plot()
    assert d.ax_.get_title() == "Rosenbrock"  # was the registry name "rosenbrock"
    saddle = functions.get("saddle")
    d = plot.PathsDisplay(
        saddle.surface(steps=21), optim.run(saddle, "gd", [1, 0.1], steps=5)
    )
    assert d.plot().ax_.get_title() == "saddle x² − y²"


def test_loss_curves_log_scale(pyplot, rosen):
    f, _ = rosen
    runs = optim.lr_sweep(f, "gd", [-1.2, 1.0], [1e-4, 1e-3, 0.01], steps=100)
    d = plot.LossCurveDisplay(runs, reference=0.0).plot()
    assert d.ax_.get_yscale() == "log"
    assert d.ax_.get_xlabel() == "step"
    np.testing.assert_allclose(d.lines_[0].get_ydata(), runs[0].loss)
    assert len(d.cut_) == 1  # the diverged rate


def test_loss_curve_legend_hides_no_point_of_a_curve(pyplot):
    # three runs from (-1.5, 2) on Rosenbrock, one with a long schedule label:
    # the legend at the top covered the first steps, where every curve is
    # highest (L(-1.5, 2) = 2.5² + 100·0.25² = 12.5)
    f = functions.get("rosenbrock")
    sched = optim.schedule("warmup_cosine", 0.05, warmup=50, steps=2000)
    runs = [
        optim.run(f, optim.sgd(1e-3), [-1.5, 2.0], steps=2000),
        optim.run(f, optim.momentum(1e-3), [-1.5, 2.0], steps=2000),
        optim.run(f, optim.adam(0.02), [-1.5, 2.0], steps=2000, schedule=sched),
    ]
    assert runs[0].loss[0] == pytest.approx(12.5)
    for fig_kw in ({}, {"layout": "constrained"}):
        ax = None if not fig_kw else pyplot.figure(**fig_kw).add_subplot()
        d = plot.LossCurveDisplay(runs).plot(ax)
        d.figure_.canvas.draw()
        box = d.ax_.get_legend().get_window_extent()
        for line in d.lines_:
            xy = d.ax_.transData.transform(line.get_xydata())
            inside = (
                (xy[:, 0] >= box.x0)
                & (xy[:, 0] <= box.x1)
                & (xy[:, 1] >= box.y0)
                & (xy[:, 1] <= box.y1)
            )
            assert not inside.any(), line.get_label()
        np.testing.assert_allclose(d.lines_[0].get_ydata(), runs[0].loss)


def test_negative_losses_are_not_clamped_on_a_log_scale(pyplot):
    # the six-hump camel's minimum is -1.0316; on the default log scale its
    # curves were clamped to 1e-16 where they crossed 0 and seemed to plunge
    import warnings

    f = functions.get("six-hump-camel")
    runs = [
        optim.run(f, optim.adam(0.02), [0.5, -0.3], steps=300),
        optim.run(f, optim.gd(0.01), [0.5, -0.3], steps=300),
    ]
    assert runs[1].final_loss == pytest.approx(f.min_value, abs=1e-9)
    with pytest.warns(UserWarning, match=r"goes down to -1\.03.*Pass reference="):
        d = plot.LossCurveDisplay(runs).plot()
    assert d.ax_.get_yscale() == "linear"
    assert d.ax_.get_ylabel() == "loss"
    np.testing.assert_array_equal(d.lines_[1].get_ydata(), runs[1].loss)
    lo, hi = d.ax_.get_ylim()
    assert lo < f.min_value < runs[0].loss[0] < hi
    # the gap to the known minimum is what a log scale can show
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = plot.LossCurveDisplay(runs, reference=f.min_value).plot()
    assert d.ax_.get_yscale() == "log"


def test_lr_sweep_panel(pyplot, rosen):
    f, s = rosen
    runs = optim.lr_sweep(f, "gd", [-1.2, 1.0], [1e-4, 1e-3, 0.01], steps=100)
    d = plot.LRSweepDisplay(s, runs).plot()
    assert d.rates() == [1e-4, 1e-3, 0.01]
    assert len(d.figure_.axes) == 2
    labels = [t.get_text() for t in d.paths_.legend_.get_texts()]
    assert "lr = 0.01: diverged at step" in " ".join(labels)


def test_basin_display(pyplot):
    f = functions.get("himmelblau")
    b = analysis.basins(f, optim.gd(0.01), steps=300, grid=15)
    d = plot.BasinDisplay(b, surface=f.surface(steps=31)).plot()
    np.testing.assert_array_equal(d.mesh_.get_array().reshape(15, 15), b.labels.T)
    texts = [t.get_text() for t in d.legend_.get_texts()]
    assert sum("minimum" in t for t in texts) == 4
    # the legend sits right of the axes; a saved figure must hold all of it
    # (it was cut off at the figure's right edge)
    d.figure_.canvas.draw()
    legend = d.legend_.get_window_extent()
    fig = d.figure_.bbox
    assert legend.x0 >= fig.x0
    assert legend.x1 <= fig.x1
    assert legend.y0 >= fig.y0
    assert legend.y1 <= fig.y1


def test_critical_points_display(pyplot):
    f = functions.get("himmelblau")
    pts = analysis.critical_points(f)
    d = plot.CriticalPointsDisplay(f.surface(steps=41), pts).plot()
    assert set(d.markers_) == {"global minimum", "saddle", "maximum"}
    assert len(d.markers_["saddle"].get_offsets()) == 4
    assert len(d.markers_["global minimum"].get_offsets()) == 4


def test_race_gif_keeps_every_optimizer_colour_in_every_frame(pyplot, rosen, tmp_path):
    # a GIF has 256 colours; with a palette per frame the heatmap took them,
    # sgd's red and adam's magenta vanished (adam came out grey, then the
    # same colour as sgd), so the legend could not tell the paths apart
    from matplotlib.colors import to_rgb
    from PIL import Image

    f, s = rosen
    runs = optim.race(
        f,
        [optim.sgd(1e-3), optim.momentum(1e-3), optim.adam(1e-3)],
        [-1.2, 1.0],
        steps=200,
    )
    path = plot.RaceAnimation(s, runs, frames=4).save(tmp_path / "race.gif", dpi=100)
    colours = {
        name: 255 * np.array(to_rgb(plot.optimizer_color(name)))
        for name in ("sgd", "momentum", "adam")
    }
    with Image.open(path) as img:
        assert img.n_frames == 4
        for k in range(img.n_frames):
            img.seek(k)
            rgb = np.asarray(img.convert("RGB"), dtype=np.float64)
            for name, colour in colours.items():
                # legend entry (and path): the colour within rounding of the
                # lines' 0.95 alpha; the old GIFs had no pixel within 20
                near = np.linalg.norm(rgb - colour, axis=-1) < 20
                assert near.sum() >= 15, (k, name)


def test_race_animation_gif(pyplot, rosen, tmp_path, artifacts):
    from PIL import Image

    f, s = rosen
    runs = optim.race(
        f, [optim.momentum(1e-3), optim.adam(0.05)], [-1.2, 1.0], steps=60
    )
    anim = plot.RaceAnimation(s, runs, frames=6)
    path = anim.save(tmp_path / "race.gif", fps=5, dpi=40)
    with Image.open(path) as img:
        assert img.n_frames == 6
        img.seek(5)
        img.convert("RGB").save(artifacts / "walk_race_last_frame.png")
    assert list(anim.frame_steps()) == [0, 12, 24, 36, 48, 60]
    with pytest.raises(ValueError, match=r"must end in \.gif"):
        anim.save(tmp_path / "race.mp4")
