"""Figures for network slices: artists and their data, not pixels."""

from __future__ import annotations

import numpy as np
import pytest

from lossmap import Surface
from lossmap.plot import (
    LineDisplay,
    PlaneDisplay,
    RandomLinesDisplay,
    TrajectoryDisplay,
)
from lossmap.plot._nn import axis_label, nn_title


def _plane(kind="random"):
    a = np.linspace(-1, 1, 11)
    b = np.linspace(-0.5, 1.5, 9)
    aa, bb = np.meshgrid(a, b, indexing="ij")
    loss = 0.05 + aa**2 + 2 * (bb - 0.5) ** 2
    acc = np.clip(1 - loss / loss.max(), 0, 1)
    if kind == "pca":
        dirs = [
            {"kind": "pca", "component": 0, "explained_variance_ratio": 0.8},
            {"kind": "pca", "component": 1, "explained_variance_ratio": 0.15},
        ]
    else:
        dirs = [
            {"kind": "random", "seed": 3, "index": i, "norm": "filter"} for i in (0, 1)
        ]
    return Surface(
        axes={"alpha": a, "beta": b},
        fields={"loss": loss, "accuracy": acc},
        metadata={"model": "MLP", "directions": dirs},
    )


class _Proj:
    """Stands in for lossmap.nn.Projection (same attributes)."""

    def __init__(self, n=6):
        self.steps = np.arange(n) * 10
        t = np.linspace(1, 0, n)
        self.coords = np.stack([0.9 * t, 1.2 * t], axis=1)
        self.offset = np.hypot(*self.coords.T) + 1e-3 * (t > 0)
        self.distance = 0.1 * self.offset
        self.true_loss = 0.05 + t**2
        self.surface_loss = 0.06 + t**2
        self.relative_distance = np.where(
            self.offset > 0,
            self.distance / np.where(self.offset > 0, self.offset, 1),
            0,
        )


def test_labels_from_metadata():
    s = _plane("pca")
    assert axis_label(s, 0) == "PC1 (80.0 % of variance)"
    assert axis_label(s, 1) == "PC2 (15.0 % of variance)"
    r = _plane()
    assert axis_label(r, 0) == "alpha: random direction (filter-normalised, seed 3)"
    assert nn_title(r) == "Loss on a random plane through the weights"
    assert "PCA plane" in nn_title(s, "accuracy")
    bare = Surface(axes={"x": [0.0, 1.0]}, fields={"loss": [1.0, 2.0]})
    assert axis_label(bare, 0) == "x"


def test_plane_display_panels(pyplot):
    s = _plane()
    disp = PlaneDisplay.from_surface(s)
    assert set(disp.panels_) == {"loss", "accuracy"}
    mesh = disp.panels_["loss"].mesh_
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(9, 11), s.loss.T)
    # loss on a log scale, accuracy linear with contours at round fractions
    assert type(disp.panels_["loss"].norm_).__name__ == "LogNorm"
    assert type(disp.panels_["accuracy"].norm_).__name__ == "Normalize"
    levels = disp.panels_["accuracy"].contour_.levels
    assert np.all((levels > 0) & (levels < 1))
    assert np.allclose(levels * 10 % 1, 0) or 0.95 in levels
    np.testing.assert_allclose(disp.center_["loss"].get_offsets(), [[0.0, 0.0]])
    ax = disp.axes_[0]
    assert ax.get_xlabel().startswith("alpha: random direction")
    assert ax.get_title() == "Loss on a random plane through the weights"


def test_plane_display_into_given_axes_and_errors(pyplot):
    s = _plane()
    _fig, ax = pyplot.subplots()
    disp = PlaneDisplay(s, fields=["loss"], center=None).plot(ax)
    assert disp.axes_ == [ax]
    assert disp.center_ == {}
    with pytest.raises(ValueError, match="one axes per field"):
        PlaneDisplay(s).plot([ax])
    with pytest.raises(ValueError, match="`field` must be one of"):
        PlaneDisplay(s, fields=["acc"])
    line = Surface(axes={"alpha": [0.0, 1.0]}, fields={"loss": [1.0, 2.0]})
    with pytest.raises(ValueError, match="2-D surface"):
        PlaneDisplay(line)


def test_plane_display_draws_the_stored_training_path(pyplot):
    # `lossmap pca` stores the projected path in the metadata; `lossmap show`
    # draws a plane through PlaneDisplay, so the path must be on every panel
    coords = [[0.8, 1.2], [0.5, 0.9], [0.2, 0.6], [0.0, 0.5]]
    s = _plane("pca").with_metadata(
        trajectory={"coords": coords, "steps": [0, 1, 2, 3]}
    )
    disp = PlaneDisplay.from_surface(s)
    assert set(disp.path_) == {"loss", "accuracy"}
    for f, line in disp.path_.items():
        np.testing.assert_allclose(line.get_xydata(), coords)
        labels = disp.axes_[list(disp.fields).index(f)].get_legend_handles_labels()[1]
        assert "training path" in labels
        assert "first snapshot" in labels
    assert PlaneDisplay.from_surface(s, path=False).path_ == {}
    assert PlaneDisplay.from_surface(_plane("pca")).path_ == {}


def _line(kind="interpolation"):
    a = np.linspace(-0.25, 1.25, 31)
    loss = 2.3 / (1 + np.exp(8 * (a - 0.4))) + 0.08
    return Surface(
        axes={"alpha": a},
        fields={"loss": loss, "accuracy": 1 - loss / 2.5},
        metadata={"directions": [{"kind": kind}]},
    )


def test_line_display_twin_axes(pyplot):
    s = _line()
    disp = LineDisplay.from_surface(s)
    np.testing.assert_array_equal(disp.loss_line_.get_xdata(), s.coords("alpha"))
    np.testing.assert_array_equal(disp.loss_line_.get_ydata(), s.loss)
    np.testing.assert_array_equal(disp.metric_line_.get_ydata(), s.field("accuracy"))
    assert disp.metric_ax_ is not disp.ax_
    assert disp.metric_ax_.get_ylabel() == "accuracy"
    assert disp.metric_ax_.get_ylim() == pytest.approx((-0.02, 1.02))
    # interpolation: marks at the two models
    assert [m.get_xdata()[0] for m in disp.marks_] == [0.0, 1.0]
    assert "initial" in disp.ax_.get_xlabel()


def test_line_display_without_metric(pyplot):
    s = _line("random")
    s = Surface(axes=dict(s.axes), fields={"loss": s.loss}, metadata=s.metadata)
    disp = LineDisplay(s).plot(logy=True)
    assert disp.metric_ax_ is None
    assert disp.ax_.get_yscale() == "log"
    assert [m.get_xdata()[0] for m in disp.marks_] == [0.0]


def test_random_lines_band(pyplot, rng):
    x = np.linspace(-1, 1, 21)
    curves = (1 + rng.uniform(0.5, 2.0, size=(7, 1))) * x**2 + 0.1
    curves[2, 5] = np.nan
    disp = RandomLinesDisplay(x, curves).plot(individual=True)
    np.testing.assert_allclose(disp.median_, np.nanmedian(curves, axis=0))
    np.testing.assert_allclose(disp.median_line_.get_ydata(), disp.median_)
    assert np.all(disp.min_ <= disp.q25_)
    assert np.all(disp.q25_ <= disp.median_)
    assert np.all(disp.median_ <= disp.q75_)
    assert np.all(disp.q75_ <= disp.max_)
    assert len(disp.lines_) == 7
    # the band polygon spans the min..max range
    verts = disp.range_band_.get_paths()[0].vertices
    assert verts[:, 1].max() == pytest.approx(np.nanmax(curves))
    with pytest.raises(ValueError, match=r"must have shape \(n_lines, 21\)"):
        RandomLinesDisplay(x, curves[:, :5])


def test_random_lines_from_surface(pyplot):
    curves = np.array([[1.0, 0.5, 1.0], [2.0, 0.5, 3.0], [3.0, 0.5, 2.0]])
    s = Surface(
        axes={"line": [0.0, 1.0, 2.0], "alpha": [-1.0, 0.0, 1.0]},
        fields={"loss": curves},
        metadata={"directions": [{"kind": "random", "norm": "filter"}] * 3},
    )
    disp = RandomLinesDisplay.from_surface(s)
    np.testing.assert_allclose(disp.median_, [2.0, 0.5, 2.0])
    assert "filter-normalised" in disp.ax_.get_xlabel()


def test_trajectory_display(pyplot):
    s = _plane("pca")
    proj = _Proj()
    disp = TrajectoryDisplay.from_projection(s, proj)
    np.testing.assert_allclose(disp.path_.get_xydata(), proj.coords)
    np.testing.assert_allclose(disp.steps_.get_offsets(), proj.coords)
    np.testing.assert_allclose(disp.steps_.get_array(), proj.steps)
    np.testing.assert_allclose(disp.start_.get_offsets(), proj.coords[:1])
    np.testing.assert_allclose(disp.true_line_.get_ydata(), proj.true_loss)
    np.testing.assert_allclose(disp.surface_line_.get_ydata(), proj.surface_loss)
    rel = disp.distance_line_.get_ydata()
    np.testing.assert_allclose(rel[:-1], 10.0)  # 10 % off the plane
    assert np.isnan(rel[-1])  # the centre itself is left out
    assert disp.ax_.get_xlabel() == "PC1 (80.0 % of variance)"
    assert len(disp.axes_) == 3
    assert disp.diagnostic_axes_[0].get_yscale() == "log"


def test_trajectory_display_extends_limits_and_needs_a_plane(pyplot):
    s = _plane("pca")
    proj = _Proj()
    proj.coords = proj.coords * 3  # leaves the grid
    disp = TrajectoryDisplay(s, proj).plot()
    assert disp.ax_.get_xlim()[1] >= proj.coords[:, 0].max()
    assert disp.true_line_ is None
    proj.coords = proj.coords[:, :1]
    with pytest.raises(ValueError, match="onto a plane"):
        TrajectoryDisplay(s, proj)
