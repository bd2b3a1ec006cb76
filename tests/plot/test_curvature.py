"""SpectrumDisplay draws the density it is given and marks the top eigenvalues."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from lossmap.nn import hessian
from lossmap.plot import SpectrumDisplay


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
