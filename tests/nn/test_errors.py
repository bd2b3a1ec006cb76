"""Bad input is refused with a clear message before any work starts."""

from __future__ import annotations

import re

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from lossmap import nn as lnn  # noqa: E402


def _setup():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)
    )
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(10, 4, generator=g), torch.randint(0, 3, (10,), generator=g)
    return net, x, y


def _wrong_shape(net):
    return lnn.Direction({"0.weight": torch.zeros(4, 6)}, {"kind": "user"})


def _not_scalar(out, target):
    return F.cross_entropy(out, target, reduction="none").reshape(2, -1).mean(0)


def _sum_as_mean(out, target):
    return F.cross_entropy(out, target, reduction="sum")


def _column(out, target):
    return out[:, :1]


CASES = [
    ({"steps": 1}, ValueError, "`steps` must be >= 2, got 1"),
    ({"steps": 20_000}, ValueError, "`steps` must be <= 10001, got 20000"),
    ({"steps": 2.5}, TypeError, "`steps` must be an integer, got 2.5"),
    ({"steps": (5, 1)}, ValueError, "`steps[1]` must be >= 2, got 1"),
    ({"span": 0}, ValueError, "`span` must be > 0.0, got 0.0"),
    ({"span": -1.0}, ValueError, "`span` must be > 0.0, got -1.0"),
    ({"span": (1, 0)}, ValueError, "`span` must satisfy lo < hi, got (1.0, 0.0)"),
    ({"span": float("nan")}, ValueError, "`span` must be finite, got nan"),
    ({"span": "wide"}, TypeError, "`span` must be a positive number or a pair"),
    ({"bn": "train"}, ValueError, "`bn` must be one of ['eval', 'batch', 'recompute']"),
    ({"strategy": "gpu"}, ValueError, "`strategy` must be one of"),
    ({"metrics": ["f1"]}, ValueError, "`metrics` must name known metrics"),
    ({"metrics": 3}, TypeError, "`metrics` must be None, a name"),
    ({"subset": 1}, ValueError, "`subset` must be >= 2, got 1"),
    ({"subset": 11}, ValueError, "`subset` must be <= 10, got 11"),
    ({"dtype": torch.int32}, ValueError, "`dtype` must be a floating torch dtype"),
    ({"dtype": "float17"}, ValueError, "`dtype` must be a floating torch dtype"),
    ({"chunk": (2,)}, ValueError, "`chunk` must be an int or 2 ints"),
    ({"chunk": 0}, ValueError, "`chunk[0]` must be >= 1, got 0"),
    ({"batch_size": 0}, ValueError, "`batch_size` must be >= 1, got 0"),
    ({"bn_data": "x"}, ValueError, "`bn_data` is used only with bn='recompute'"),
    (
        {"loss_fn": _not_scalar},
        ValueError,
        "`loss_fn` returned a tensor of shape (5,) on a tile of 10 rows; return a "
        "scalar, per-row values of shape (10, ...) or a (sum, count) pair",
    ),
    (
        {"loss_fn": "mse"},
        TypeError,
        "`loss_fn` must be a callable loss_fn(output, targets)",
    ),
    (
        {"loss_fn": 3},
        TypeError,
        "`loss_fn` must be a callable loss_fn(output, targets)",
    ),
    (
        {"loss_fn": F.mse_loss},
        ValueError,
        "`loss_fn` failed on model outputs of shape (10, 3) and targets of shape "
        "(10,): RuntimeError",
    ),
    (
        {"loss_fn": _sum_as_mean},
        ValueError,
        "'loss' depends on how the data is tiled",
    ),
    (
        {"loss_fn": {"a": F.cross_entropy, "b": _sum_as_mean}},
        ValueError,
        "'b' depends on how the data is tiled",
    ),
    ({"loss_fn": {}}, ValueError, "`loss_fn` as a mapping of named terms must not"),
    (
        {"loss_fn": {"loss": F.cross_entropy, "b": F.cross_entropy}},
        ValueError,
        "a loss term cannot be called 'loss'",
    ),
    ({"weights": {"c": 1.0}}, ValueError, "`weights` must name loss terms ['loss']"),
    ({"reduction": "max"}, ValueError, "`reduction` must be one of ['mean', 'sum',"),
    ({"call": "star"}, ValueError, "`call` must be one of ['auto', 'kwargs'"),
    ({"call": "kwargs"}, ValueError, "`call` 'kwargs' needs model inputs that are a"),
    (
        {"targets": "labels", "data": "mapping", "call": lambda m, b: m(b["x"])},
        ValueError,
        "`targets` 'labels' is not in the batch; the batch is {'x': 'float32[n, 4]'",
    ),
    ({"optimize": "no"}, TypeError, "`optimize` must be True or False, got 'no'"),
    ({"colour": "red"}, TypeError, "plane() got unexpected keyword argument(s)"),
    ({"options": {"bn": "eval"}}, TypeError, "`options` must be a lossmap.nn.Options"),
    (
        {"loss_fn": "output.loss"},
        ValueError,
        "`loss_fn` 'output.loss': the model output (Tensor) has no .loss",
    ),
    (
        {"metrics": {"bad": _not_scalar}},
        ValueError,
        "`metrics['bad']` returned a tensor of shape (5,)",
    ),
    (
        {"metrics": "accuracy", "logits": "scores"},
        ValueError,
        "`logits` 'scores': the model output (Tensor) has no attribute",
    ),
    (
        {"loss_fn": lambda o, t: F.mse_loss(o, t.float()), "data": "column"},
        ValueError,
        "model outputs of shape (10, 1) and targets of shape (10,) broadcast to "
        "(10, 10)",
    ),
    (
        {"data": "x_wrong"},
        ValueError,
        "`data` does not fit the model: calling it (call='auto') on "
        "[float32[10, 5], int64[10]] failed with RuntimeError",
    ),
    (
        {"data": "n_mismatch"},
        ValueError,
        "`data` tensors must share their leading (row) dimension, which is tiled "
        "for all of them together; got shapes [(10, 4), (9,)]",
    ),
    (
        {"data": [1, 2, 3]},
        TypeError,
        "`data` as an iterable must yield batches (a tensor, an (inputs, targets) pair",
    ),
    (
        {"data": 5},
        TypeError,
        "`data` must be a tensor, an (inputs, targets) pair, a tuple or list of "
        "tensors, a mapping of names to tensors",
    ),
    (
        {"data": ({"x": "text"}, "y")},
        TypeError,
        "`data[0]['x']` is a str; a batch must be",
    ),
    (
        {"reduction": "sum", "subset": 5, "loss_fn": _sum_as_mean},
        ValueError,
        "`subset` estimates a mean from a sample; a loss with reduction='sum'",
    ),
    ({"directions": "one"}, ValueError, "`directions` must be a pair of 2 Directions"),
    (
        {"directions": "wrong_shape"},
        ValueError,
        "`directions[0]`['0.weight'] must have shape (6, 4), got (4, 6)",
    ),
    (
        {"directions": "unknown"},
        ValueError,
        "`directions[1]` names 'fc.weight', which is not a parameter",
    ),
    (
        {"directions": "tensors"},
        TypeError,
        "`directions[0]` must be a lossmap.nn.Direction",
    ),
    (
        {"center": {"0.bias": torch.zeros(5)}},
        ValueError,
        "`center`['0.bias'] must have shape (6,), got (5,)",
    ),
    ({"model": "net"}, TypeError, "`model` must be a torch.nn.Module"),
]


@pytest.mark.filterwarnings("ignore:Using a target size")
@pytest.mark.parametrize(
    ("kwargs", "error", "message"), CASES, ids=[str(c[0])[:40] for c in CASES]
)
def test_plane_errors(kwargs, error, message, tmp_path):
    net, x, y = _setup()
    d = lnn.random_plane(net, seed=0)
    args = {"model": net, "loss_fn": F.cross_entropy, "data": (x, y), "directions": d}
    kwargs = dict(kwargs)
    for key in ("model", "loss_fn"):
        if key in kwargs:
            args[key] = kwargs.pop(key)
    data = kwargs.pop("data", None)
    if data == "x_wrong":
        args["data"] = (torch.randn(10, 5), y)
    elif data == "n_mismatch":
        args["data"] = (x, y[:9])
    elif data == "mapping":
        args["data"] = {"x": x, "y": y}
    elif data == "column":
        args["model"] = torch.nn.Linear(4, 1)
        args["directions"] = lnn.random_plane(args["model"], seed=0)
    elif data is not None:
        args["data"] = data
    dirs = kwargs.pop("directions", None)
    if dirs == "one":
        args["directions"] = (d[0],)
    elif dirs == "wrong_shape":
        args["directions"] = (_wrong_shape(net), d[1])
    elif dirs == "unknown":
        args["directions"] = (d[0], lnn.Direction({"fc.weight": torch.zeros(1)}))
    elif dirs == "tensors":
        args["directions"] = (d[0].tensors, d[1].tensors)
    calls = {"n": 0}
    loss_fn = args["loss_fn"]
    if callable(loss_fn):

        def counted(out, target):
            calls["n"] += 1
            return loss_fn(out, target)

        counted.__name__ = getattr(loss_fn, "__name__", "loss")
        args["loss_fn"] = counted
    store = tmp_path / "s.zarr"
    with pytest.raises(error, match=re.escape(message)):
        lnn.plane(**args, **kwargs, store=store, progress=False)
    # at most the probe: the first 10 rows as one tile, then in tiles of 2
    assert calls["n"] <= 1 + 5
    assert not store.exists()  # no half-written store


def test_line_errors():
    net, x, y = _setup()
    d = lnn.random_direction(net, seed=0)
    with pytest.raises(
        ValueError, match=re.escape("`directions` must be one Direction")
    ):
        lnn.line(net, F.cross_entropy, (x, y), [d, d], progress=False)
    with pytest.raises(ValueError, match=re.escape("`steps` must be >= 2, got 0")):
        lnn.line(net, F.cross_entropy, (x, y), d, steps=0, progress=False)


def test_evaluate_params_errors():
    net, x, y = _setup()
    with pytest.raises(
        ValueError, match=re.escape("`params`['0.weight'] must have shape")
    ):
        lnn.evaluate_params(net, F.cross_entropy, (x, y), {"0.weight": torch.zeros(3)})
