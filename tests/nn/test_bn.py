"""BatchNorm modes against a hand computation."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from lossmap import nn as lnn  # noqa: E402

EPS = 1e-5


def _setup():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1)
    ).double()
    with torch.no_grad():
        net[1].running_mean.copy_(torch.tensor([0.3, -0.2, 0.1, 0.5]))
        net[1].running_var.copy_(torch.tensor([1.5, 0.7, 2.0, 0.9]))
        net[1].weight.copy_(torch.tensor([1.2, 0.8, -0.5, 1.1]))
        net[1].bias.copy_(torch.tensor([0.1, -0.3, 0.2, 0.0]))
    net.eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(20, 3, generator=g, dtype=torch.float64) * 2 + 1
    y = torch.randn(20, 1, generator=g, dtype=torch.float64)
    d = lnn.random_direction(net, seed=3, ignore=None, norm=None)
    return net, x, y, d


def _hand(net, d, alpha, x, y, mode, tiles=1):
    p = {n: q.detach() + alpha * d.tensors[n] for n, q in net.named_parameters()}
    h = x @ p["0.weight"].T + p["0.bias"]
    if mode == "eval":
        mean, var = net[1].running_mean, net[1].running_var
    elif mode == "batch":
        mean, var = h.mean(0), h.var(0, unbiased=False)
    else:  # recompute: average over tiles of tile mean and unbiased variance
        parts = h.chunk(tiles)
        mean = sum(t.mean(0) for t in parts) / tiles
        var = sum(t.var(0, unbiased=True) for t in parts) / tiles
    z = (h - mean) / torch.sqrt(var + EPS) * p["1.weight"] + p["1.bias"]
    out = z @ p["2.weight"].T + p["2.bias"]
    return float(F.mse_loss(out, y))


@pytest.mark.parametrize(
    ("mode", "batch_size", "tiles"),
    [("eval", 7, 1), ("batch", None, 1), ("recompute", None, 1), ("recompute", 10, 2)],
)
def test_bn_modes_match_hand_computation(mode, batch_size, tiles):
    net, x, y, d = _setup()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    s = lnn.line(
        net,
        F.mse_loss,
        (x, y),
        d,
        span=0.5,
        steps=3,
        bn=mode,
        batch_size=batch_size,
        progress=False,
    )
    for a, value in zip(s.coords("alpha"), s.loss):
        assert value == pytest.approx(_hand(net, d, a, x, y, mode, tiles), rel=1e-10)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert s.metadata["bn"] == mode


def test_eval_mode_at_origin_is_the_models_own_loss():
    net, x, y, d = _setup()
    s = lnn.line(net, F.mse_loss, (x, y), d, steps=3, progress=False)
    with torch.no_grad():
        assert s.loss[1] == pytest.approx(float(F.mse_loss(net(x), y)), rel=1e-12)


def test_recompute_with_separate_bn_data():
    net, x, y, d = _setup()
    running = net[1].running_var.clone()
    g = torch.Generator().manual_seed(7)
    xb = torch.randn(12, 3, generator=g, dtype=torch.float64)
    s = lnn.line(
        net,
        F.mse_loss,
        (x, y),
        d,
        steps=2,
        span=0.2,
        bn="recompute",
        bn_data=(xb, torch.zeros(12)),
        progress=False,
    )
    a = s.coords("alpha")[0]
    p = {n: q.detach() + a * d.tensors[n] for n, q in net.named_parameters()}
    hb = xb @ p["0.weight"].T + p["0.bias"]
    h = x @ p["0.weight"].T + p["0.bias"]
    z = (h - hb.mean(0)) / torch.sqrt(hb.var(0) + EPS) * p["1.weight"] + p["1.bias"]
    ref = F.mse_loss(z @ p["2.weight"].T + p["2.bias"], y)
    assert s.loss[0] == pytest.approx(float(ref), rel=1e-10)
    assert torch.equal(net[1].running_var, running)


def test_batch_mode_tiles_are_the_documented_batches_whatever_the_engine_prefers():
    # a CNN whose activations would make the engine choose small image tiles
    # (4 MiB: 32 images here): under bn="batch" a tile is the batch whose
    # statistics normalise it, so it must be the documented default (128
    # images), never the engine's (or the precision's) choice
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1),
        torch.nn.BatchNorm2d(32),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(32, 5),
    ).double()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(300, 3, 32, 32, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (300,), generator=g)
    d = lnn.random_direction(net, seed=1)

    def run(batch_size):
        return lnn.line(
            net,
            F.cross_entropy,
            (x, y),
            d,
            span=0.5,
            steps=3,
            bn="batch",
            batch_size=batch_size,
            progress=False,
        )

    auto = run(None)
    # by hand: train-mode BatchNorm over each 128-image batch
    for a, value in zip(auto.coords("alpha"), auto.loss):
        model = copy.deepcopy(net)
        with torch.no_grad():
            for n, q in model.named_parameters():
                q.add_(a * d.tensors[n])
        model.train()
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.track_running_stats = False
                m.running_mean = m.running_var = None
        with torch.no_grad():
            total = sum(
                float(F.cross_entropy(model(xt), yt, reduction="sum"))
                for xt, yt in zip(x.split(128), y.split(128))
            )
        assert value == pytest.approx(total / len(x), rel=1e-10)
    assert run(128).loss == pytest.approx(auto.loss, rel=1e-12)
