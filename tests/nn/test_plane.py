"""plane / line / random_lines: invariants, metadata, subsets, executors, stores."""

from __future__ import annotations

import copy
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from lossmap import nn as lnn  # noqa: E402


def _mlp(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 12), torch.nn.Tanh(), torch.nn.Linear(12, 3)
    )


def _data(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)


def _loss(net, x, y, params=None):
    ref = copy.deepcopy(net)
    if params is not None:
        ref.load_state_dict(params, strict=False)
    with torch.no_grad():
        out = ref(x)
    return float(F.cross_entropy(out, y)), float((out.argmax(1) == y).float().mean())


def test_origin_is_the_models_loss_and_metadata_is_complete():
    net = _mlp()
    x, y = _data()
    d = lnn.random_plane(net, seed=0)
    s = lnn.plane(
        net,
        F.cross_entropy,
        (x, y),
        d,
        steps=5,
        span=0.5,
        metrics="accuracy",
        progress=False,
    )
    assert s.names == ("alpha", "beta")
    assert s.field_names == ("loss", "accuracy")
    loss, acc = _loss(net, x, y)
    assert s.loss[2, 2] == pytest.approx(loss, rel=1e-6)
    assert s.field("accuracy")[2, 2] == pytest.approx(acc)
    np.testing.assert_allclose(s.coords("beta"), np.linspace(-0.5, 0.5, 5))
    m = s.metadata
    assert m["kind"] == "nn.plane"
    assert m["directions"] == [d[0].meta, d[1].meta]
    assert m["normalisation"] == ["filter", "filter"]
    assert m["span"] == [[-0.5, 0.5], [-0.5, 0.5]]
    assert m["steps"] == [5, 5]
    assert m["bn"] == "eval"
    assert m["dtype"] == "float32"
    assert m["data"]["n_samples"] == 48
    assert m["data"]["subset"] is None
    assert {"torch", "lossmap"} <= set(m["versions"])
    json.dumps(dict(m))


def test_zero_directions_give_a_flat_surface():
    net = _mlp()
    x, y = _data()
    zero = lnn.from_tensors(net, {})
    s = lnn.plane(net, F.cross_entropy, (x, y), (zero, zero), steps=4, progress=False)
    np.testing.assert_allclose(s.loss, _loss(net, x, y)[0], rtol=1e-6)


def test_axis_plane_moves_exactly_two_entries():
    net = _mlp()
    x, y = _data()
    d = lnn.axis_directions(net, "0.weight[3, 1]", "2.bias[0]")
    s = lnn.plane(
        net, F.cross_entropy, (x, y), d, steps=3, span=(-2, 1), progress=False
    )
    a, b = s.coords("alpha")[0], s.coords("beta")[2]
    params = {n: p.detach().clone() for n, p in net.named_parameters()}
    params["0.weight"][3, 1] += a
    params["2.bias"][0] += b
    assert s.loss[0, 2] == pytest.approx(_loss(net, x, y, params)[0], rel=1e-6)
    assert lnn.evaluate_params(net, F.cross_entropy, (x, y), params)["loss"] == (
        pytest.approx(s.loss[0, 2], rel=1e-6)
    )


def test_interpolation_line_runs_from_a_to_b():
    a, b = _mlp(0), _mlp(1)
    x, y = _data()
    d = lnn.interpolation(a, b)
    s = lnn.line(a, F.cross_entropy, (x, y), d, span=(0, 1), steps=6, progress=False)
    assert s.names == ("alpha",)
    assert s.loss[0] == pytest.approx(_loss(a, x, y)[0], rel=1e-6)
    assert s.loss[-1] == pytest.approx(_loss(b, x, y)[0], rel=1e-5)


def test_center_moves_the_origin():
    a, b = _mlp(0), _mlp(1)
    x, y = _data()
    d = lnn.random_direction(a, seed=0)
    s = lnn.line(a, F.cross_entropy, (x, y), d, steps=3, center=b, progress=False)
    assert s.loss[1] == pytest.approx(_loss(b, x, y)[0], rel=1e-6)


def test_dataloader_is_read_once_and_gives_the_same_surface():
    net = _mlp()
    x, y = _data()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=10
    )
    d = lnn.random_plane(net, seed=0)
    s1 = lnn.plane(net, F.cross_entropy, (x, y), d, steps=3, progress=False)
    s2 = lnn.plane(net, F.cross_entropy, loader, d, steps=3, progress=False)
    np.testing.assert_allclose(s1.loss, s2.loss, rtol=1e-6)


def test_subset_uses_seeded_rows_and_reports_standard_errors():
    net = _mlp()
    x, y = _data(n=80)
    d = lnn.random_direction(net, seed=0)
    s = lnn.line(
        net,
        F.cross_entropy,
        (x, y),
        d,
        steps=3,
        subset=40,
        seed=3,
        metrics=["accuracy"],
        progress=False,
    )
    assert s.field_names == ("loss", "accuracy", "loss_stderr", "accuracy_stderr")
    rows = np.random.default_rng(3).choice(80, size=40, replace=False)
    xs, ys = x[rows], y[rows]
    assert s.loss[1] == pytest.approx(_loss(net, xs, ys)[0], rel=1e-6)
    # 40 rows in 8 tiles of 5: batch-means standard error with the finite
    # population correction (1 - 40/80)
    with torch.no_grad():
        per = F.cross_entropy(net(xs), ys, reduction="none").reshape(8, 5).mean(1)
    se = float(per.std(unbiased=True)) / np.sqrt(8) * np.sqrt(0.5)
    assert s.field("loss_stderr")[1] == pytest.approx(se, rel=1e-5)
    assert s.metadata["data"]["subset"] == 40


def test_executors_give_identical_results():
    net = _mlp()
    x, y = _data()
    d = lnn.random_plane(net, seed=0)
    kw = dict(steps=(5, 4), chunk=2, metrics="accuracy", progress=False)
    s0 = lnn.plane(net, F.cross_entropy, (x, y), d, **kw)
    with ThreadPoolExecutor(2) as pool:
        s1 = lnn.plane(net, F.cross_entropy, (x, y), d, executor=pool, **kw)
    # "spawn": forking a process whose torch thread pool is running can hang
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        s2 = lnn.plane(net, F.cross_entropy, (x, y), d, executor=pool, **kw)
    for s in (s1, s2):
        np.testing.assert_array_equal(s.loss, s0.loss)
        np.testing.assert_array_equal(s.field("accuracy"), s0.field("accuracy"))


class CountingLoss:
    """Cross-entropy that counts its calls and can fail after a number of them."""

    def __init__(self, fail_after=None):
        self.calls = 0
        self.fail_after = fail_after

    def __call__(self, out, target):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("interrupted")
        return F.cross_entropy(out, target)


def test_store_resumes_only_missing_chunks_and_refuses_other_settings(tmp_path):
    pytest.importorskip("zarr")
    from lossmap.io import GridStore

    net = _mlp()
    x, y = _data()
    d = lnn.random_plane(net, seed=0)
    kw = dict(steps=6, chunk=3, strategy="loop", progress=False)
    full_loss = CountingLoss()
    full = lnn.plane(net, full_loss, (x, y), d, **kw)
    setup = full_loss.calls - 36  # the probe's calls before the 36 points
    assert 1 <= setup <= 1 + 16
    path = tmp_path / "plane.zarr"
    # probe + 2 chunks of 9 points: the third chunk fails
    failing = CountingLoss(fail_after=setup + 18 + 4)
    with pytest.raises(RuntimeError, match="interrupted"):
        lnn.plane(net, failing, (x, y), d, store=path, **kw)
    assert len(GridStore.attach(path).missing()) == 2
    resumed_loss = CountingLoss()
    s = lnn.plane(net, resumed_loss, (x, y), d, store=path, **kw)
    assert resumed_loss.calls == setup + 18
    np.testing.assert_array_equal(s.loss, full.loss)
    assert s.metadata["directions"] == full.metadata["directions"]
    with pytest.raises(ValueError):
        lnn.plane(net, CountingLoss(), (x, y), d, store=path, **{**kw, "steps": 5})
    other = lnn.random_plane(net, seed=1)
    with pytest.raises(ValueError):
        lnn.plane(net, CountingLoss(), (x, y), other, store=path, **kw)


def test_random_lines_summary_is_median_and_spread_of_the_lines():
    net = _mlp()
    x, y = _data()
    r = lnn.random_lines(
        net,
        F.cross_entropy,
        (x, y),
        count=4,
        seed=2,
        steps=5,
        metrics="accuracy",
        progress=False,
    )
    assert r.curves.shape == (4, 5)
    np.testing.assert_allclose(r.summary.loss, np.median(r.curves.loss, axis=0))
    np.testing.assert_allclose(r.summary.field("loss_max"), r.curves.loss.max(axis=0))
    assert "accuracy_q25" in r.summary.field_names
    d3 = lnn.random_directions(net, 4, seed=2)[3]
    one = lnn.line(net, F.cross_entropy, (x, y), d3, steps=5, progress=False)
    np.testing.assert_allclose(r.curves.loss[3], one.loss, rtol=1e-6)
    # every line passes through the model itself
    np.testing.assert_allclose(r.curves.loss[:, 2], _loss(net, x, y)[0], rtol=1e-6)


def test_progress_bar_runs(capsys):
    net = _mlp()
    x, y = _data()
    d = lnn.random_direction(net, seed=0)
    lnn.line(net, F.cross_entropy, (x, y), d, steps=4, progress=True)
