"""Figures between minima: data drawn, not pixels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("torch")

from lossmap import Surface
from lossmap.nn import Embedding
from lossmap.plot import (
    BarrierDisplay,
    CurvePlaneDisplay,
    EmbeddingDisplay,
)


def _embedding(loss=True, method="pca"):
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(9, 2))
    meta = {"method": method, "explained_variance_ratio": [0.6, 0.3]}
    if method == "tsne":
        meta["perplexity"] = 3.0
    return Embedding(
        coords=coords,
        run=np.array([0] * 5 + [1] * 4),
        step=np.array([0, 1, 2, 3, 4, 0, 2, 4, 6]),
        runs=("a", "b"),
        loss=np.linspace(2.0, 0.1, 9) if loss else None,
        meta=meta,
    )


def test_embedding_display_draws_runs_and_marks_ends(pyplot):
    emb = _embedding()
    disp = EmbeddingDisplay.from_embedding(emb)
    np.testing.assert_array_equal(disp.paths_["a"].get_xydata(), emb.coords[:5])
    np.testing.assert_array_equal(disp.paths_["b"].get_xydata(), emb.coords[5:])
    np.testing.assert_array_equal(disp.starts_.get_offsets(), emb.coords[[0, 5]])
    np.testing.assert_array_equal(disp.ends_.get_offsets(), emb.coords[[4, 8]])
    np.testing.assert_allclose(disp.points_.get_array(), emb.loss)
    assert "60.0 %" in disp.ax_.get_xlabel()
    assert disp.colorbar_.ax.get_ylabel() == "loss"


def test_embedding_display_without_loss_and_for_tsne(pyplot):
    disp = EmbeddingDisplay(_embedding(loss=False, method="tsne")).plot()
    np.testing.assert_allclose(disp.points_.get_array(), _embedding().step)
    assert "not metric" in disp.ax_.get_title()
    _, ax = pyplot.subplots()
    ax.set_title("mine")
    disp = EmbeddingDisplay(_embedding()).plot(ax, colorbar=False)
    assert disp.ax_.get_title() == "mine"
    assert disp.colorbar_ is None
    with pytest.raises(TypeError, match="Embedding"):
        EmbeddingDisplay(np.zeros((3, 3)))


def _path(values, height):
    t = np.linspace(0, 1, len(values))
    return Surface(
        axes={"t": t},
        fields={"loss": np.asarray(values), "accuracy": 1 - np.asarray(values) / 4},
        metadata={"barrier": {"height": height}},
    )


def test_barrier_display(pyplot):
    paths = {
        "linear": _path([0.1, 2.0, 0.2], 1.85),
        "curve": _path([0.1, 0.3, 0.2], 0.15),
    }
    disp = BarrierDisplay.from_paths(paths)
    np.testing.assert_allclose(disp.lines_["linear"].get_ydata(), [0.1, 2.0, 0.2])
    np.testing.assert_allclose(disp.peaks_["linear"].get_offsets(), [[0.5, 2.0]])
    assert "barrier 1.85" in disp.lines_["linear"].get_label()
    assert set(disp.metric_lines_) == {"linear", "curve"}
    assert disp.axes_[0].get_yscale() == "linear"
    with pytest.raises(TypeError, match="paths"):
        BarrierDisplay({})


def test_curve_plane_display(pyplot):
    a = np.linspace(-0.5, 1.5, 5)
    b = np.linspace(-0.5, 1.5, 4)
    plane = Surface(
        axes={"alpha": a, "beta": b},
        fields={"loss": 1.0 + np.add.outer(a**2, b**2)},
        metadata={"kind": "nn.plane"},
    )
    controls = [[0.0, 0.0], [0.4, 1.0], [1.0, 0.0]]
    curve = np.array([[0.0, 0.0], [0.5, 0.5], [1.0, 0.0]])
    disp = CurvePlaneDisplay(plane, curve, controls).plot()
    np.testing.assert_array_equal(disp.curve_.get_xydata(), curve)
    np.testing.assert_array_equal(disp.controls_.get_offsets(), [[0.4, 1.0]])
    np.testing.assert_array_equal(disp.line_.get_xydata(), [[0, 0], [1, 0]])
    with pytest.raises(ValueError, match="bend"):
        CurvePlaneDisplay(plane, curve, controls[::2])


def test_embedding_figure_from_object_and_dict():
    pytest.importorskip("plotly")
    from lossmap.plot import embedding_figure

    emb = dataclasses.replace(_embedding(), metrics={"accuracy": np.linspace(0, 1, 9)})
    for source in (emb, emb.to_dict()):
        fig = embedding_figure(source)
        points = fig.data[-1]
        np.testing.assert_allclose(points.x, emb.coords[:, 0])
        np.testing.assert_allclose(points.marker.color, np.log10(emb.loss))
        assert points.text[0] == "a, step 0<br>loss 2<br>accuracy 0"
    lines = [t for t in fig.data if t.mode == "lines"]
    assert [t.name for t in lines] == ["a", "b"]
    with pytest.raises(TypeError, match="Embedding"):
        embedding_figure({"coords": [[0, 0]]})
