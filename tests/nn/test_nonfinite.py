"""Nothing silent: non-finite inputs are refused before any work, naming the
argument; non-finite results of a run are kept, counted and reported."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from lossmap import nn as lnn  # noqa: E402
from lossmap.cli import main  # noqa: E402


def _setup(dtype=torch.float32):
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)
    ).to(dtype)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10, 4, generator=g).to(dtype)
    y = torch.randint(0, 3, (10,), generator=g)
    return net, x, y


def _with_nan(t, index=(0,), value=float("nan")):
    t = t.clone()
    t[index] = value
    return t


def _bad_direction(net, value):
    d = lnn.random_directions(net, 2, seed=1)
    tensors = dict(d[0].tensors)
    tensors["2.weight"] = _with_nan(tensors["2.weight"], (1, 2), value)
    return [lnn.Direction(tensors, dict(d[0].meta)), d[1]]


def _nan_loss(out, target):
    return F.cross_entropy(out, target) * float("nan")


# (what to change, error type, message) — each names the argument
CASES = [
    ("direction-nan", ValueError, "`directions[0]` must be finite, got 1 NaN"),
    ("direction-inf", ValueError, "`directions[0]` must be finite, got 1 NaN or inf"),
    ("center-nan", ValueError, "`center` must be finite, got 1 NaN"),
    ("center-model-inf", ValueError, "`center` must be finite"),
    (
        "inputs-nan",
        ValueError,
        "`data[0]` must be finite, got 1 NaN or infinite value(s) (first in row 3",
    ),
    ("inputs-inf", ValueError, "`data[0]` must be finite"),
    ("targets-nan", ValueError, "`data[1]` must be finite"),
    ("bn-data-nan", ValueError, "`bn_data[0]` must be finite"),
    (
        "span-1e300",
        ValueError,
        "`span` must keep the parameters finite in float32, got a grid reaching",
    ),
    ("span-1e39", ValueError, "`span` must keep the parameters finite in float32"),
    ("span-inf", ValueError, "`span` must be finite, got inf"),
    ("span-nan", ValueError, "`span` must be finite, got nan"),
    ("loss-nan", ValueError, "`loss_fn` must be finite at the centre, got nan"),
]


def _call(case, store):
    net, x, y = _setup()
    dirs = lnn.random_directions(net, 2, seed=1)
    kw = {"steps": 3, "progress": False, "store": store}
    loss_fn = F.cross_entropy
    data = (x, y)
    if case.startswith("direction"):
        dirs = _bad_direction(net, float("nan") if "nan" in case else float("inf"))
    elif case == "center-nan":
        kw["center"] = {"0.bias": _with_nan(net[0].bias.detach())}
    elif case == "center-model-inf":
        other, _, _ = _setup()
        with torch.no_grad():
            other[2].bias[0] = float("inf")
        kw["center"] = other
    elif case.startswith("inputs"):
        value = float("nan") if case.endswith("nan") else float("-inf")
        data = (_with_nan(x, (3, 1), value), y)
    elif case == "targets-nan":
        data = (x, _with_nan(torch.randn(10), (2,)))
        loss_fn = lambda out, t: (out[:, 0] - t).pow(2).mean()  # noqa: E731
    elif case == "bn-data-nan":
        kw.update(bn="recompute", bn_data=(_with_nan(x, (0, 0)), y))
    elif case.startswith("span"):
        kw["span"] = {
            "1e300": 1e300,
            "1e39": 1e39,
            "inf": float("inf"),
            "nan": float("nan"),
        }[case.split("-")[1]]
    elif case == "loss-nan":
        loss_fn = _nan_loss
    return lnn.plane(net, loss_fn, data, dirs, **kw)


@pytest.mark.parametrize(("case", "error", "message"), CASES, ids=[c[0] for c in CASES])
def test_non_finite_input_is_refused_before_any_work(tmp_path, case, error, message):
    store = tmp_path / "p.zarr"
    with pytest.raises(error, match=re.escape(message)):
        _call(case, store)
    assert not store.exists()  # nothing was created


def test_evaluate_params_names_params():
    net, x, y = _setup()
    params = {"0.bias": _with_nan(net[0].bias.detach())}
    with pytest.raises(ValueError, match=re.escape("`params` must be finite")):
        lnn.evaluate_params(net, F.cross_entropy, (x, y), params)


def test_line_with_overflowing_span_is_refused():
    net, x, y = _setup()
    d = lnn.random_directions(net, 1, seed=2)[0]
    with pytest.raises(ValueError, match=re.escape("`span` must keep")):
        lnn.line(net, F.cross_entropy, (x, y), d, span=1e300, steps=3, progress=False)


def _exp_loss(out, target):
    # overflows to inf far from the centre: a result, not a bad input
    return torch.exp(out.pow(2).mean() * 200.0)


def test_non_finite_points_of_a_run_are_kept_counted_and_reported(tmp_path, capsys):
    net, x, y = _setup(torch.float64)
    dirs = lnn.random_directions(net, 2, seed=1)
    store = tmp_path / "p.zarr"
    # _exp_loss is a function of the whole batch's mean, not a per-row mean:
    # declared as such, it is evaluated on all rows at once
    kw = {"span": 3.0, "steps": 7, "chunk": 3, "progress": False}
    kw["reduction"] = "batch"
    with pytest.warns(RuntimeWarning, match="grid points gave a non-finite loss"):
        s = lnn.plane(net, _exp_loss, (x, y), dirs, store=store, **kw)
    bad = ~np.isfinite(s.loss)
    assert 0 < bad.sum() < s.loss.size
    assert s.metadata["nonfinite_points"] == int(bad.sum())
    # the finite points equal a per-point reference
    i, j = np.argwhere(~bad)[0]
    ref = lnn.evaluate_params(
        net,
        _exp_loss,
        (x, y),
        {
            n: p.detach()
            + s.coords("alpha")[i] * dirs[0].tensors[n]
            + s.coords("beta")[j] * dirs[1].tensors[n]
            for n, p in net.named_parameters()
        },
        reduction="batch",
    )
    np.testing.assert_allclose(s.loss[i, j], ref["loss"], rtol=1e-10)
    capsys.readouterr()
    assert main(["info", str(store)]) == 0
    out = capsys.readouterr().out
    assert f"{int(bad.sum())} computed grid point(s) gave a non-finite loss" in out
    assert "not computed yet" not in out


def test_finite_run_records_zero_and_does_not_warn():
    net, x, y = _setup()
    dirs = lnn.random_directions(net, 2, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        s = lnn.plane(net, F.cross_entropy, (x, y), dirs, steps=3, progress=False)
    assert s.metadata["nonfinite_points"] == 0
