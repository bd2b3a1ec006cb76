"""SpectrumDisplay draws the density it is given and marks the top eigenvalues."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lossmap.nn import hessian
from lossmap.plot import SpectrumDisplay

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_spectrum_display_artists(pyplot):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)
    ).double()
    data = (torch.randn(30, 2, dtype=torch.float64), torch.randint(0, 2, (30,)))
    op = hessian.HessianOperator(model, F.cross_entropy, data)
    top = hessian.top_eigenvalues(op, 2)
    trace = hessian.hessian_trace(op, probes=10)
    dens = hessian.spectral_density(op, iterations=10, probes=2)
    disp = SpectrumDisplay(dens, top=top, trace=trace).plot()
    np.testing.assert_allclose(disp.line_.get_xdata(), dens.grid)
    # the floor only lifts the tails; the peak is drawn as computed
    assert disp.line_.get_ydata().max() == dens.density.max()
    assert disp.line_.get_ydata().min() >= 1e-6 * dens.density.max()
    assert [ln.get_xdata()[0] for ln in disp.top_lines_] == list(top.values)
    assert "trace ≈" in disp.ax_.get_legend().get_texts()[0].get_text()
    assert disp.ax_.get_yscale() == "log"
    _, ax = pyplot.subplots()
    ax.set_xlabel("mine")
    assert SpectrumDisplay(dens).plot(ax=ax).ax_.get_xlabel() == "mine"


def _small():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)
    ).double()
    data = (torch.randn(30, 2, dtype=torch.float64), torch.randint(0, 2, (30,)))
    return model, data


def test_curvature_map_display_draws_the_fields(pyplot):
    from lossmap.nn.curvature import curvature_map
    from lossmap.nn.directions import random_plane
    from lossmap.plot import CurvatureMapDisplay

    model, data = _small()
    s = curvature_map(
        model, F.cross_entropy, data, random_plane(model, seed=0), steps=3
    )
    disp = CurvatureMapDisplay(s).plot()
    assert set(disp.meshes_) == {"lambda_max", "lambda_min", "ratio"}
    for field, mesh in disp.meshes_.items():
        np.testing.assert_allclose(
            np.asarray(mesh.get_array()).reshape(3, 3), s.fields[field].T
        )
    assert len(disp.axes_) == 3
    with pytest.raises(ValueError, match="must come from curvature_map"):
        CurvatureMapDisplay(_loss_only(s))


def _loss_only(s):
    from lossmap import Surface

    return Surface(
        axes={n: s.coords(n) for n in s.names}, fields={"loss": s.fields["loss"]}
    )


def test_sharpness_and_block_displays(pyplot):
    from lossmap.nn.curvature import HessianOperator, Sharpness, block_curvature
    from lossmap.plot import BlockTraceDisplay, SharpnessDisplay

    sh = Sharpness(
        np.arange(3),
        np.array([1.0, 2.0, 3.0]),
        np.ones(3),
        np.array([0.5, 0.5, 0.5]),
        np.ones(3, bool),
        10,
    )
    disp = SharpnessDisplay(
        {
            "η=0.5": sh,
            "no lr": Sharpness(
                np.arange(3), np.ones(3), np.ones(3), None, np.ones(3, bool), 5
            ),
        }
    ).plot()
    np.testing.assert_allclose(disp.lines_["η=0.5"].get_ydata(), [1, 2, 3])
    np.testing.assert_allclose(disp.thresholds_["η=0.5"].get_ydata(), [4, 4, 4])
    assert "no lr" not in disp.thresholds_
    model, data = _small()
    blocks = block_curvature(HessianOperator(model, F.cross_entropy, data))
    bd = BlockTraceDisplay(blocks).plot()
    heights = [b.get_height() for b in bd.trace_bars_]
    assert heights == [blocks[n].trace.value for n in blocks]


@pytest.mark.parametrize("sign", [-1.0, 1.0])
def test_curvature_map_lambda_min_colours_keep_their_sign(pyplot, sign):
    # λmin of one sign everywhere (negative all over a saddle region): zero
    # stays white, negative cells blue and positive cells red; the least
    # negative cell used to be drawn in the red end of RdBu_r
    from lossmap import Surface
    from lossmap.plot import CurvatureMapDisplay

    a = np.linspace(-1, 1, 3)
    lam_min = sign * np.array([[0.5, 1.0, 1.5], [2.0, 2.5, 3.0], [0.8, 1.2, 2.7]])
    s = Surface(
        axes={"alpha": a, "beta": a},
        fields={
            "loss": np.zeros((3, 3)),
            "lambda_max": np.full((3, 3), 4.0),
            "lambda_min": lam_min,
            "ratio": np.abs(lam_min) / 4.0,
        },
    )
    mesh = CurvatureMapDisplay(s).plot().meshes_["lambda_min"]
    rgba = mesh.cmap(mesh.norm(lam_min))
    red, blue = rgba[..., 0], rgba[..., 2]
    if sign < 0:
        assert np.all(blue >= red)  # every cell on the blue side
    else:
        assert np.all(red >= blue)
    # zero is the white middle of the diverging map
    white = mesh.cmap(mesh.norm(0.0))
    np.testing.assert_allclose(white[:3], pyplot.get_cmap("RdBu_r")(0.5)[:3], atol=0.02)
