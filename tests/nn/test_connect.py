"""Linear paths and barriers, trained curves between minima, their stores."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lossmap import Surface  # noqa: E402
from lossmap import nn as lnn  # noqa: E402
from lossmap.nn import (  # noqa: E402
    Curve,
    align,
    barrier,
    curve_path,
    evaluate_params,
    linear_path,
    plane,
    train_curve,
)

F = torch.nn.functional


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def digits():
    sk = pytest.importorskip("sklearn.datasets")
    x, y = sk.load_digits(return_X_y=True)
    x, y = x[:600] / 16.0, y[:600]
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


def _train_mlp(data, seed, hidden=16, steps=150):
    x, y = data
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10)
    )
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    return net


@pytest.fixture(scope="module")
def minima(digits):
    """Two digits MLPs trained from different seeds (full batch, Adam)."""
    return _train_mlp(digits, 0), _train_mlp(digits, 1)


# ------------------------------------------------------------------ barrier
def test_barrier_of_a_known_path():
    t = np.linspace(0, 1, 5)
    s = Surface(axes={"t": t}, fields={"loss": np.array([1.0, 2.0, 4.0, 3.0, 3.0])})
    b = barrier(s)
    assert b["height"] == pytest.approx(4.0 - 2.0)  # max above the ends' mean
    assert b["chord"] == pytest.approx(4.0 - 2.0)  # the chord is 2 at t=0.5
    assert b["t"] == 0.5
    assert b["start"] == 1.0
    assert b["end"] == 3.0
    monotone = Surface(axes={"t": t}, fields={"loss": 1.0 + 2.0 * t})
    assert barrier(monotone)["chord"] == pytest.approx(0.0, abs=1e-15)
    assert barrier(monotone)["height"] == pytest.approx(1.0)
    with pytest.raises(TypeError, match="1-D Surface"):
        barrier(np.zeros(3))


def test_convex_problem_has_zero_barrier():
    """Least squares with more weights than samples: a flat valley of minima."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 12, generator=gen, dtype=torch.float64)
    y = torch.randn(5, 1, generator=gen, dtype=torch.float64)
    w0 = torch.linalg.lstsq(x, y).solution  # one exact solution
    null = torch.linalg.svd(x).Vh[-1].reshape(-1, 1)  # x @ null = 0
    nets = []
    for w in (w0, w0 + 3.0 * null):
        net = torch.nn.Linear(12, 1, bias=False).double()
        with torch.no_grad():
            net.weight.copy_(w.T)
        nets.append(net)
    path = linear_path(*nets, F.mse_loss, (x, y), steps=11)
    assert path.names == ("t",)
    assert np.max(path.loss) < 1e-20
    assert abs(path.metadata["barrier"]["height"]) < 1e-20
    # any two points of a convex loss: the loss stays under the chord
    far = torch.nn.Linear(12, 1, bias=False).double()
    path = linear_path(nets[0], far, F.mse_loss, (x, y), steps=11)
    assert path.metadata["barrier"]["chord"] < 1e-12
    assert path.metadata["barrier"]["height"] > 0  # the ends differ: not a minimum


def test_two_copies_of_one_model_have_zero_barrier(minima, digits):
    a = minima[0]
    path = linear_path(a, copy.deepcopy(a), F.cross_entropy, digits, steps=7)
    assert path.metadata["barrier"]["height"] == pytest.approx(0.0, abs=1e-7)
    assert np.ptp(path.loss) < 1e-7


def test_permuted_copy_has_a_barrier_that_alignment_removes(minima, digits):
    a = minima[0]
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(3))
    b = copy.deepcopy(a)
    with torch.no_grad():
        b[0].weight.copy_(a[0].weight[perm])
        b[0].bias.copy_(a[0].bias[perm])
        b[2].weight.copy_(a[2].weight[:, perm])
    x, _y = digits
    assert torch.allclose(a(x), b(x), atol=1e-5)  # the same function
    before = linear_path(a, b, F.cross_entropy, digits, steps=9, metrics="accuracy")
    assert before.metadata["barrier"]["height"] > 0.05
    aligned = align(a, b)
    assert torch.allclose(aligned.model(x), b(x), atol=1e-5)
    after = linear_path(a, aligned, F.cross_entropy, digits, steps=9)
    assert abs(after.metadata["barrier"]["height"]) < 1e-6
    assert before.metadata["error_barrier"]["height"] >= 0


def test_path_values_match_a_per_point_reference(minima, digits):
    a, b = minima
    path = linear_path(a, b, F.cross_entropy, digits, steps=5, metrics="accuracy")
    for t, loss, acc in zip(path.coords("t"), path.loss, path.field("accuracy")):
        params = {
            n: (1 - t) * pa.detach() + t * pb.detach()
            for (n, pa), pb in zip(a.named_parameters(), b.parameters())
        }
        x, y = digits
        out = torch.func.functional_call(a, params, (x,))
        assert loss == pytest.approx(float(F.cross_entropy(out, y)), rel=1e-5)
        assert acc == pytest.approx(float((out.argmax(1) == y).float().mean()))


# ------------------------------------------------------------------- curves
def test_curve_weights_and_points():
    a = {"w": torch.zeros(3)}
    m1, m2 = {"w": torch.ones(3)}, {"w": 2 * torch.ones(3)}
    b = {"w": torch.full((3,), 6.0)}
    bez = Curve("bezier", (a, m1, b))
    assert np.allclose(
        bez.weights([0, 0.5, 1]), [[1, 0, 0], [0.25, 0.5, 0.25], [0, 0, 1]]
    )
    assert torch.allclose(bez.params(0.5)["w"], torch.full((3,), 0.5 + 1.5))
    chain = Curve("polychain", (a, m1, m2, b))
    assert torch.allclose(chain.params(1 / 3)["w"], m1["w"])
    assert torch.allclose(chain.params(0.5)["w"], torch.full((3,), 1.5))
    w = chain.weights(np.linspace(0, 1, 13))
    assert np.allclose(w.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="`t`"):
        bez.params(1.5)


def test_trained_bezier_curve_avoids_the_linear_barrier(minima, digits, tmp_path):
    a, b = minima
    state_a = copy.deepcopy(a.state_dict())
    linear = linear_path(a, b, F.cross_entropy, digits, steps=11)
    curve = train_curve(
        a, b, F.cross_entropy, digits, epochs=30, batch_size=100, lr=0.05, seed=0
    )
    along = curve_path(
        curve,
        a,
        F.cross_entropy,
        digits,
        steps=11,
        metrics="accuracy",
        store=tmp_path / "along.zarr",
    )
    assert np.max(along.loss) < np.max(linear.loss)
    assert along.metadata["barrier"]["height"] < linear.metadata["barrier"]["height"]
    # the ends are the two models
    assert along.loss[0] == pytest.approx(linear.loss[0], rel=1e-5)
    assert along.loss[-1] == pytest.approx(linear.loss[-1], rel=1e-5)
    for n, t in a.state_dict().items():
        assert torch.equal(t, state_a[n])  # the user's model is untouched
    # the stored path reopens with the same values
    again = curve_path(
        curve,
        a,
        F.cross_entropy,
        digits,
        steps=11,
        metrics="accuracy",
        store=tmp_path / "along.zarr",
    )
    assert np.array_equal(again.loss, along.loss)


def test_curve_plane_contains_the_curve(minima, digits):
    a, b = minima
    curve = train_curve(a, b, F.cross_entropy, digits, epochs=2, batch_size=200)
    d1, d2 = curve.plane(a)
    controls = np.asarray(d1.meta["controls"])
    assert np.allclose(controls[0], [0, 0])
    assert np.allclose(controls[-1], [1, 0], atol=1e-6)
    assert controls[1][1] == pytest.approx(1.0, abs=1e-6)
    ts = np.array([0.2, 0.5, 0.9])
    coords = curve.plane_coords((d1, d2), ts)
    for t, (c1, c2) in zip(ts, coords):
        want = curve.params(float(t))
        for n, p in a.named_parameters():
            got = (
                p.detach().double()
                + c1 * d1.tensors[n].double()
                + c2 * d2.tensors[n].double()
            )
            assert torch.allclose(got, want[n].double(), atol=1e-5)
    # the engine's plane at a control point equals the per-point loss there
    s = plane(
        a,
        F.cross_entropy,
        digits,
        (d1, d2),
        span=[(0, 1), (0, 1)],
        steps=2,
        progress=False,
    )
    ref = evaluate_params(a, F.cross_entropy, digits, curve.points[-1])
    assert s.loss[1, 0] == pytest.approx(ref["loss"], rel=1e-4)
    with pytest.raises(ValueError, match="curve's start"):
        curve.plane(b)


def test_training_resumes_where_it_stopped(minima, digits, tmp_path):
    a, b = minima
    kw = dict(kind="polychain", bends=2, batch_size=150, lr=0.05, seed=4)
    whole = train_curve(a, b, F.cross_entropy, digits, epochs=4, **kw)
    store = tmp_path / "curve"
    train_curve(a, b, F.cross_entropy, digits, epochs=2, store=store, **kw)
    resumed = train_curve(a, b, F.cross_entropy, digits, epochs=4, store=store, **kw)
    for p, q in zip(whole.points, resumed.points):
        for n in p:
            torch.testing.assert_close(p[n], q[n], rtol=1e-6, atol=1e-7)
    assert resumed.meta["train_loss"] == pytest.approx(
        whole.meta["train_loss"], rel=1e-6
    )
    loaded = Curve.load(store)
    assert loaded.kind == "polychain"
    assert loaded.bends == 2
    assert loaded.meta["epochs_done"] == 4
    for p, q in zip(loaded.points, resumed.points):
        for n in p:
            torch.testing.assert_close(p[n], q[n])
    # the loss along the curve, stored once, reopens from the loaded curve
    along = curve_path(resumed, a, F.cross_entropy, digits, steps=5,
                       store=store / "along.zarr")  # fmt: skip
    again = curve_path(loaded, a, F.cross_entropy, digits, steps=5,
                       store=store / "along.zarr")  # fmt: skip
    np.testing.assert_array_equal(again.loss, along.loss)
    with pytest.raises(ValueError, match="other settings"):
        train_curve(
            a, b, F.cross_entropy, digits, epochs=5, store=store, **{**kw, "lr": 0.1}
        )


def test_batchnorm_models(digits):
    x, y = digits
    torch.manual_seed(0)

    def net():
        return torch.nn.Sequential(
            torch.nn.Linear(64, 12),
            torch.nn.BatchNorm1d(12),
            torch.nn.ReLU(),
            torch.nn.Linear(12, 10),
        )

    a, b = net(), net()
    for m in (a, b):  # running statistics from the data, as after training
        m.train()
        with torch.no_grad():
            m[1].momentum = None
            m(x)
        m.eval()
    state = copy.deepcopy(b.state_dict())
    path = linear_path(a, b, F.cross_entropy, (x, y), steps=3)
    assert path.metadata["bn"] == "recompute"
    # at the ends, re-estimated statistics are the ones the models hold
    ref = evaluate_params(b, F.cross_entropy, (x, y))
    assert path.loss[-1] == pytest.approx(ref["loss"], rel=1e-4)
    # with bn="eval" the whole line uses A's running statistics: at B the loss
    # is not B's own (the false barrier the default avoids)
    stale = linear_path(a, b, F.cross_entropy, (x, y), steps=3, bn="eval")
    assert stale.metadata["bn"] == "eval"
    assert abs(stale.loss[-1] - ref["loss"]) > 1e-3 * ref["loss"]
    curve = train_curve(a, b, F.cross_entropy, (x, y), epochs=1, batch_size=200)
    along = curve_path(curve, a, F.cross_entropy, (x, y), steps=3)
    assert along.metadata["bn"] == "recompute"
    assert along.loss[-1] == pytest.approx(ref["loss"], rel=1e-4)
    middle = evaluate_params(
        a, F.cross_entropy, (x, y), curve.params(0.5), bn="recompute"
    )
    assert along.loss[1] == pytest.approx(middle["loss"], rel=1e-4)
    for n, t in b.state_dict().items():
        assert torch.equal(t, state[n])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"kind": "spline"}, ValueError, "kind"),
        ({"bends": 0}, ValueError, "bends"),
        ({"lr": 0.0}, ValueError, "lr"),
        ({"epochs": -1}, ValueError, "epochs"),
    ],
)
def test_train_curve_errors(minima, digits, kwargs, error, match):
    a, b = minima
    with pytest.raises(error, match=match):
        train_curve(a, b, F.cross_entropy, digits, **kwargs)


def test_mismatched_models_are_refused(minima, digits):
    other = torch.nn.Sequential(torch.nn.Linear(64, 10))
    with pytest.raises(ValueError, match="same parameters"):
        linear_path(minima[0], other, F.cross_entropy, digits)
    with pytest.raises(TypeError, match="model_b"):
        train_curve(minima[0], "b", F.cross_entropy, digits)
    with pytest.raises(ValueError, match="bn"):
        linear_path(minima[0], minima[1], F.cross_entropy, digits, bn="fresh")


def test_curve_training_takes_any_batch_form(minima, digits):
    """A mapping batch with a custom call trains the same curve as the pair."""
    a, b = minima
    x, y = digits
    kw = dict(epochs=2, batch_size=128, seed=2)
    pair = train_curve(a, b, F.cross_entropy, (x, y), **kw)
    mapping = train_curve(
        a,
        b,
        lambda out, batch: F.cross_entropy(out, batch["label"]),
        {"image": x, "label": y},
        call=lambda model, batch: model(batch["image"]),
        **kw,
    )
    assert mapping.meta["train_loss"] == pytest.approx(pair.meta["train_loss"])
    for n, t in pair.points[1].items():
        torch.testing.assert_close(mapping.points[1][n], t)


def test_bn_auto_defers_to_an_options_object(digits):
    x, y = digits
    torch.manual_seed(0)
    a = torch.nn.Sequential(
        torch.nn.Linear(64, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 10)
    ).eval()
    b = copy.deepcopy(a)
    opts = lnn.Options(bn="batch")
    assert linear_path(a, b, F.cross_entropy, (x, y), steps=2).metadata["bn"] == (
        "recompute"
    )
    path = linear_path(a, b, F.cross_entropy, (x, y), steps=2, options=opts)
    assert path.metadata["bn"] == "batch"
    path = linear_path(a, b, F.cross_entropy, (x, y), steps=2, bn="eval", options=opts)
    assert path.metadata["bn"] == "eval"  # an explicit bn wins


@pytest.mark.parametrize(
    ("kind", "bends"), [("bezier", 1), ("bezier", 2), ("polychain", 2)]
)
def test_curve_path_equals_the_per_point_reference(minima, digits, kind, bends):
    """The engine evaluates the curve in its control points' span; each point
    must equal a plain forward pass at curve.params(t)."""
    a, b = minima
    curve = train_curve(
        a, b, F.cross_entropy, digits, kind=kind, bends=bends, epochs=1,
        batch_size=200,
    )  # fmt: skip
    along = curve_path(curve, a, F.cross_entropy, digits, steps=7, metrics="accuracy")
    for t, loss, acc in zip(along.coords("t"), along.loss, along.field("accuracy")):
        ref = evaluate_params(
            a, F.cross_entropy, digits, curve.params(float(t)), metrics="accuracy"
        )
        assert loss == pytest.approx(ref["loss"], rel=1e-5)
        assert acc == pytest.approx(ref["accuracy"], abs=1e-12)
