"""Parameter selections and trajectories: every refusal, with its message."""

from __future__ import annotations

import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lossmap import nn as lnn  # noqa: E402
from lossmap.nn.trajectory import Recording  # noqa: E402


def _world():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2)
    ).double()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(12, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(12, 2, generator=gen, dtype=torch.float64)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    rec = lnn.Recorder(net, optimizer=opt)
    for step in range(6):
        net.train()
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        opt.step()
        rec(step)
    net.eval()
    r = rec.recording()
    d1, d2, _ = lnn.pca_directions(r)
    loss = torch.nn.functional.mse_loss
    s = lnn.plane(net, loss, (x, y), (d1, d2), span="auto", steps=3, progress=False)
    return {"net": net, "x": x, "y": y, "r": r, "d": (d1, d2), "s": s, "loss": loss}


@pytest.fixture(scope="module")
def world():
    return _world()


def _bare(w):
    r = w["r"]
    return Recording(r.snapshots, r.steps, r.names, r.shapes)


def _project(w, **kw):
    args = {"model": w["net"], "loss_fn": w["loss"], "data": (w["x"], w["y"])}
    return lnn.project(kw.pop("rec", w["r"]), w["d"], **{**args, **kw})


CASES = [
    (
        lambda w: lnn.select(w["net"], 3.5),
        TypeError,
        "`params` must be None (all parameters), a parameter or module name",
    ),
    (
        lambda w: lnn.select(w["net"], "9.*"),
        ValueError,
        "`params` entry '9.*' matches no parameter of the model",
    ),
    (
        lambda w: lnn.select(w["net"], torch.nn.Linear(1, 1)),
        ValueError,
        "`params` holds a Linear module that is not a submodule of the model",
    ),
    (
        lambda w: lnn.select(w["net"], lambda n, t: 1),
        TypeError,
        "`params` callable <lambda> must return True or False, got int",
    ),
    (
        lambda w: lnn.random_plane(w["net"], seed=0, params="1.*"),
        ValueError,
        "`params` and `ignore` together leave no parameter to move",
    ),
    (
        lambda w: lnn.axis_directions(w["net"], "0.weight[0, 0]", params="2"),
        ValueError,
        "parameter entry '0.weight[0, 0]' lies outside `params`",
    ),
    (
        lambda w: lnn.pca_directions(w["r"], params=w["net"][0]),
        TypeError,
        "`params` holds a module (Linear), which can be resolved only against "
        "the model",
    ),
    (
        lambda w: lnn.plane(
            w["net"],
            w["loss"],
            (w["x"], w["y"]),
            lnn.random_plane(w["net"], seed=0),
            span="auto",
            progress=False,
        ),
        ValueError,
        "`span`='auto' needs PCA directions",
    ),
    (
        lambda w: lnn.project(w["r"], w["d"], surface=w["s"], center="mean"),
        ValueError,
        "`surface` was computed around another centre than `center`='mean'",
    ),
    (
        lambda w: lnn.project(
            w["r"], lnn.random_plane(w["net"], seed=1, ignore=None), surface=w["s"]
        ),
        ValueError,
        "`surface` was computed along other directions than `directions`",
    ),
    (
        lambda w: _project(w, rec=_bare(w), bn="own"),
        ValueError,
        "`bn`='own' needs recorded buffers",
    ),
    (
        lambda w: _project(w, bn="running"),
        ValueError,
        "`bn` must be one of ['own', 'eval', 'batch', 'recompute'] or None, "
        "got 'running'",
    ),
    (
        lambda w: _project(w, evaluate_kwargs={"bn": "eval"}),
        ValueError,
        "give the BatchNorm mode as project(bn=...), not in `evaluate_kwargs`",
    ),
    (
        lambda w: lnn.Recorder(w["net"], optimizer=object()),
        TypeError,
        "`optimizer` must be a torch.optim.Optimizer (with param_groups), got object",
    ),
    (
        lambda w: lnn.Recorder(w["net"], buffers="yes"),
        TypeError,
        "`buffers` must be True or False, got 'yes'",
    ),
    (
        lambda w: lnn.path_span([[np.nan, 0.0]]),
        ValueError,
        "`coords` must be a finite (n, k) array of projected coordinates",
    ),
    (
        lambda w: Recording(
            w["r"].snapshots, w["r"].steps, w["r"].names, w["r"].shapes, lr=np.ones(3)
        ),
        ValueError,
        "`lr` must have shape (6, n_groups), got (3,)",
    ),
]


@pytest.mark.parametrize(("call", "error", "message"), CASES)
def test_refusals_name_the_argument(world, call, error, message):
    with pytest.raises(error, match=re.escape(message)):
        call(world)
