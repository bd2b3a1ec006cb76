"""Curvature on the landscape, and the user's model left untouched.

The matrix test runs every public curvature function on a model in train,
eval and mixed modes, once succeeding and once failing mid-way, and checks
``state_dict`` bits, every module's ``training`` flag, ``requires_grad`` and
``.grad`` afterwards.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lossmap.nn import hessian as legacy
from lossmap.nn.curvature import (
    EmpiricalFisherOperator,
    FisherOperator,
    GGNOperator,
    HessianOperator,
    block_curvature,
    curvature_map,
    eigenvalues,
    hessian_directions,
    hutchinson,
    hutchpp,
    lanczos_edges,
    sharpness,
    slq,
)
from lossmap.nn.directions import random_plane
from lossmap.nn.trajectory import Recording

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Dropout(0.3), nn.Linear(6, 3)
    ).double()


def data(n=30, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(n, 4, generator=g, dtype=torch.float64),
        torch.randint(0, 3, (n,), generator=g),
    )


# ------------------------------------------------------ the untouched matrix
class Boom(RuntimeError):
    pass


def failing_loss(after: int):
    """cross_entropy that raises on call number ``after`` (1-based)."""
    calls = {"n": 0}

    def loss(out, y):
        calls["n"] += 1
        if calls["n"] >= after:
            raise Boom("loss failed on purpose")
        return F.cross_entropy(out, y)

    return loss


def _op(cls):
    def run(model, loss, d, bn):
        op = cls(model, loss, d, bn=bn, batch_size=16)
        op.matvec(torch.ones(op.dim, dtype=torch.float64))

    return run


def _on_op(fn):
    def run(model, loss, d, bn):
        fn(HessianOperator(model, loss, d, bn=bn))

    return run


def _map(model, loss, d, bn):
    curvature_map(model, loss, d, random_plane(model, seed=0), steps=2, bn=bn)


def _sharp(model, loss, d, bn):
    P = sum(p.numel() for p in model.parameters())
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    rec = Recording(
        torch.stack([flat, flat + 0.01]),
        np.array([0, 1]),
        tuple(n for n, _ in model.named_parameters()),
        tuple(tuple(p.shape) for p in model.parameters()),
    )
    assert rec.size == P
    sharpness(rec, model, loss, d, lr=0.1, bn=bn)


FUNCTIONS = {
    "HessianOperator": _op(HessianOperator),
    "GGNOperator": _op(GGNOperator),
    "EmpiricalFisherOperator": _op(EmpiricalFisherOperator),
    "FisherOperator": lambda m, loss, d, bn: FisherOperator(
        m, loss, d, bn=bn, likelihood="categorical"
    ).matvec(
        torch.ones(
            sum(p.numel() for p in m.parameters() if p.requires_grad),
            dtype=torch.float64,
        )
    ),
    "eigenvalues": _on_op(lambda op: eigenvalues(op, 2)),
    "lanczos_edges": _on_op(
        lambda op: lanczos_edges(op, {"largest": 1, "smallest": 1})
    ),
    "hutchinson": _on_op(lambda op: hutchinson(op, probes=4)),
    "hutchpp": _on_op(lambda op: hutchpp(op, sketch=3, probes=4)),
    "slq": _on_op(lambda op: slq(op, iterations=5, probes=2)),
    "block_curvature": _on_op(lambda op: block_curvature(op, probes=4)),
    "top_eigenvalues": _on_op(lambda op: legacy.top_eigenvalues(op, 1)),
    "hessian_trace": _on_op(lambda op: legacy.hessian_trace(op, probes=4)),
    "spectral_density": _on_op(lambda op: legacy.spectral_density(op, iterations=5)),
    "hessian_directions": lambda m, loss, d, bn: hessian_directions(m, loss, d, bn=bn),
    "curvature_map": _map,
    "sharpness": _sharp,
}


def set_mode(model, mode):
    if mode == "train":
        model.train()
    elif mode == "eval":
        model.eval()
    else:  # mixed: a model in train with its dropout and BatchNorm in eval
        model.train()
        model[1].eval()
        model[3].eval()


def snapshot(model):
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grad": [
            None if p.grad is None else p.grad.clone() for p in model.parameters()
        ],
        "bn": (model[1].momentum, model[1].track_running_stats),
    }


def same(a, b):
    assert a["training"] == b["training"]
    assert a["requires_grad"] == b["requires_grad"]
    assert a["bn"] == b["bn"]
    for k, v in a["state"].items():  # bit for bit
        assert v.dtype == b["state"][k].dtype
        assert torch.equal(
            v.view(-1).view(torch.uint8), b["state"][k].view(-1).view(torch.uint8)
        )
    for g1, g2 in zip(a["grad"], b["grad"]):
        assert (g1 is None) == (g2 is None)
        if g1 is not None:
            assert torch.equal(g1, g2)


@pytest.mark.parametrize("outcome", ["success", "error"])
@pytest.mark.parametrize("mode", ["train", "eval", "mixed"])
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_user_model_untouched(name, mode, outcome):
    model = net()
    set_mode(model, mode)
    model[0].weight.grad = torch.full_like(model[0].weight, 0.5)
    model[4].bias.requires_grad_(False)
    before = snapshot(model)
    bn = ["eval", "batch", "recompute"][list(FUNCTIONS).index(name) % 3]
    d = data()
    if outcome == "success":
        FUNCTIONS[name](model, F.cross_entropy, d, bn)
    else:
        with pytest.raises(Exception) as info:
            FUNCTIONS[name](model, failing_loss(after=2), d, bn)
        # the loss's own error, or the operator's explanation of it
        assert isinstance(info.value, Boom) or isinstance(info.value.__cause__, Boom)
    same(before, snapshot(model))


# ---------------------------------------------------------- on the landscape
def small(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()


def test_curvature_map_centre_and_points_match_direct_computation(tmp_path):
    model, d = small(), data()
    plane = random_plane(model, seed=3)
    s = curvature_map(model, F.cross_entropy, d, plane, steps=3, span=0.5)
    assert s.shape == (3, 3)
    direct = eigenvalues(HessianOperator(model, F.cross_entropy, d), 1)
    assert s.fields["lambda_max"][1, 1] == pytest.approx(direct.values[0], rel=1e-9)
    # another point, against the dense Hessian there
    at = {
        n: p.detach() + 0.5 * plane[0].tensors[n] - 0.5 * plane[1].tensors[n]
        for n, p in model.named_parameters()
    }
    lam = np.linalg.eigvalsh(
        HessianOperator(model, F.cross_entropy, d, at=at).dense().numpy()
    )
    assert s.fields["lambda_max"][2, 0] == pytest.approx(lam[-1], rel=1e-8)
    assert s.fields["lambda_min"][2, 0] == pytest.approx(lam[0], rel=1e-7, abs=1e-10)
    assert s.fields["ratio"][2, 0] == pytest.approx(abs(lam[0] / lam[-1]), rel=1e-6)
    assert np.all(s.fields["converged"] == 1)
    # the loss field is the loss at the point
    assert s.fields["loss"][1, 1] == pytest.approx(
        float(F.cross_entropy(model(d[0]), d[1]).detach()), rel=1e-12
    )


def test_curvature_map_resumes_from_its_store(tmp_path):
    from lossmap.io.store import GridStore

    model, d = small(), data()
    plane = random_plane(model, seed=3)
    calls = {"n": 0}

    def loss(out, y):
        calls["n"] += 1
        return F.cross_entropy(out, y)

    path = tmp_path / "curv"
    full = curvature_map(model, loss, d, plane, steps=2, store=path)
    gs = GridStore.attach(path)
    assert gs.complete
    for f in gs.fields:
        gs._chunk_file(f, (1, 0)).unlink()
    calls["n"] = 0
    again = curvature_map(model, loss, d, plane, steps=2, store=path)
    assert calls["n"] > 0
    np.testing.assert_array_equal(again.fields["lambda_max"], full.fields["lambda_max"])
    calls["n"] = 0
    curvature_map(model, loss, d, plane, steps=2, store=path)
    assert calls["n"] == 0  # nothing left to compute
    # options are recorded without run-dependent parts, so a rerun reopens
    opts = {"params": lambda n, p: n.startswith("2."), "dtype": torch.float64}
    other = tmp_path / "sel"
    curvature_map(model, loss, d, plane, steps=2, store=other, **opts)
    calls["n"] = 0
    again = curvature_map(
        model,
        loss,
        d,
        plane,
        steps=2,
        store=other,
        params=lambda n, p: n.startswith("2."),
        dtype=torch.float64,
    )
    assert calls["n"] == 0
    assert again.metadata["options"]["dtype"] == "torch.float64"


def test_curvature_map_store_refuses_other_weights_data_or_directions(tmp_path):
    # the store used to record only the settings: a rerun after training on
    # (other weights), on other data or with other directions returned the old
    # map silently as the new one
    model, d = small(), data()
    plane = random_plane(model, seed=3)
    path = tmp_path / "curv"
    first = curvature_map(model, F.cross_entropy, d, plane, steps=2, store=path)
    moved = small()
    with torch.no_grad():
        moved[0].weight.add_(0.5)
    x2 = (d[0] + 1.0, d[1])
    others = [
        (moved, d, plane),
        (model, x2, plane),
        (model, d, random_plane(model, seed=4)),
    ]
    for m, dd, pl in others:
        with pytest.raises(ValueError, match="fingerprint"):
            curvature_map(m, F.cross_entropy, dd, pl, steps=2, store=path)
    # the refused store is untouched; the map on the moved model is its own
    fresh = curvature_map(moved, F.cross_entropy, d, plane, steps=2)
    assert not np.allclose(fresh.fields["lambda_max"], first.fields["lambda_max"])
    again = curvature_map(model, F.cross_entropy, d, plane, steps=2, store=path)
    np.testing.assert_array_equal(
        again.fields["lambda_max"], first.fields["lambda_max"]
    )


def test_curvature_map_reads_an_iterable_of_batches_once():
    model, (x, y) = small(), data()
    plane = random_plane(model, seed=3)
    whole = curvature_map(model, F.cross_entropy, (x, y), plane, steps=2)
    batches = ((x[i : i + 10], y[i : i + 10]) for i in range(0, 30, 10))
    got = curvature_map(model, F.cross_entropy, batches, plane, steps=2)
    np.testing.assert_allclose(
        got.fields["lambda_max"], whole.fields["lambda_max"], rtol=1e-9
    )
    np.testing.assert_allclose(got.fields["loss"], whole.fields["loss"], rtol=1e-12)
    # sharpness along a recording, likewise (it raised "`data` yielded no
    # batches" at the second snapshot)
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    rec = Recording(
        torch.stack([flat, 1.1 * flat]),
        np.array([0, 1]),
        tuple(n for n, _ in model.named_parameters()),
        tuple(tuple(p.shape) for p in model.parameters()),
    )
    batches = ((x[i : i + 10], y[i : i + 10]) for i in range(0, 30, 10))
    sh = sharpness(rec, model, F.cross_entropy, batches)
    ref = sharpness(rec, model, F.cross_entropy, (x, y))
    np.testing.assert_allclose(sh.lambda_max, ref.lambda_max, rtol=1e-9)


def test_sharpness_along_a_recording_equals_per_snapshot_computation():
    model, d = small(), data()
    names = tuple(n for n, _ in model.named_parameters())
    shapes = tuple(tuple(p.shape) for p in model.parameters())
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    g = torch.Generator().manual_seed(0)
    snaps = torch.stack(
        [
            flat + 0.3 * k * torch.randn(flat.shape, generator=g, dtype=flat.dtype)
            for k in range(3)
        ]
    )
    rec = Recording(snaps, np.array([0, 5, 10]), names, shapes)
    sh = sharpness(rec, model, F.cross_entropy, d, lr=[0.5, 0.5, 0.25])
    for i in range(3):
        at = rec.params(i)
        direct = eigenvalues(HessianOperator(model, F.cross_entropy, d, at=at), 1)
        assert sh.lambda_max[i] == pytest.approx(direct.values[0], rel=1e-9)
    np.testing.assert_allclose(sh.threshold, [4.0, 4.0, 8.0])
    assert sh.converged.all()
    surf = sh.to_surface()
    assert surf.coords("step").tolist() == [0.0, 5.0, 10.0]
    with pytest.raises(ValueError, match="`lr` must be one positive"):
        sharpness(rec, model, F.cross_entropy, d, lr=[0.1, -1.0, 0.1])


def test_sharpness_reads_the_recorded_learning_rates():
    model, d = small(), data()
    names = tuple(n for n, _ in model.named_parameters())
    shapes = tuple(tuple(p.shape) for p in model.parameters())
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    rec = Recording(flat[None].repeat(2, 1), np.array([0, 1]), names, shapes)
    object.__setattr__(rec, "lr", np.array([[0.1], [0.05]]))
    sh = sharpness(rec, model, F.cross_entropy, d)
    np.testing.assert_allclose(sh.lr, [0.1, 0.05])


def _sgd_diverges(lr: float, **settings) -> tuple[bool, object]:
    """Train w on L(w) = 3 w² (Hessian 6) with torch's SGD; record it."""
    from lossmap.nn import Recorder

    model = nn.Linear(1, 1, bias=False).double()
    with torch.no_grad():
        model.weight.fill_(1.0)
    x = torch.ones(4, 1, dtype=torch.float64)
    y = torch.zeros(4, 1, dtype=torch.float64)
    opt = torch.optim.SGD(model.parameters(), lr=lr, **settings)
    rec = Recorder(model, every=50, optimizer=opt)
    for step in range(200):
        rec(step)
        opt.zero_grad()
        (3.0 * F.mse_loss(model(x), y)).backward()
        opt.step()
    diverged = abs(model.weight.item()) > 1.0
    with torch.no_grad():
        model.weight.fill_(1.0)
    loss = lambda out, t: 3.0 * F.mse_loss(out, t)  # noqa: E731
    return diverged, sharpness(rec.recording(), model, loss, (x, y))


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"momentum": 0.9},
        {"momentum": 0.5, "dampening": 0.5},
        {"momentum": 0.9, "nesterov": True},
    ],
)
def test_sharpness_threshold_is_where_torchs_sgd_diverges(settings):
    # λ = 6: SGD diverges exactly when λ > threshold(lr); find the lr where
    # the reported threshold equals 6 and train a little below and above it
    _, sh = _sgd_diverges(0.01, **settings)
    np.testing.assert_allclose(sh.lambda_max, 6.0, rtol=1e-8)
    lr_edge = 2.0 * sh.factor / 6.0
    below, sh_below = _sgd_diverges(0.97 * lr_edge, **settings)
    above, sh_above = _sgd_diverges(1.03 * lr_edge, **settings)
    assert not below
    assert above
    assert np.all(sh_below.threshold > 6.0)
    assert np.all(sh_above.threshold < 6.0)
    assert sh_above.to_surface().metadata["threshold"] == sh.formula
    # an explicit momentum wins over the recorded one
    x, y = torch.ones(4, 1).double(), torch.zeros(4, 1).double()
    model = nn.Linear(1, 1, bias=False).double()
    rec = Recording(
        torch.ones(2, 1).double(),
        np.array([0, 1]),
        ("weight",),
        ((1, 1),),
        {"optimizer": {"name": "SGD", "momentum": 0.9}},
    )
    assert sharpness(rec, model, F.mse_loss, (x, y), lr=0.1).factor == 1.9
    plain = sharpness(rec, model, F.mse_loss, (x, y), lr=0.1, momentum=0.0)
    np.testing.assert_allclose(plain.threshold, 20.0)
    assert plain.formula == "2/η"


def test_hessian_directions_are_eigenvectors():
    model, d = small(), data()
    H = HessianOperator(model, F.cross_entropy, d).dense()
    lam = np.linalg.eigvalsh(H.numpy())
    dirs = hessian_directions(model, F.cross_entropy, d, k=2)
    assert [dd.meta["eigenvalue"] for dd in dirs] == pytest.approx(lam[::-1][:2])
    for dd in dirs:
        v = dd.flat()
        assert torch.linalg.vector_norm(H @ v - dd.meta["eigenvalue"] * v) < 1e-7
        assert dd.norm() == pytest.approx(1.0)
        assert dd.meta["converged"]
    low = hessian_directions(model, F.cross_entropy, d, k=1, which="smallest")
    assert low[0].meta["eigenvalue"] == pytest.approx(lam[0], abs=1e-9)
    # a selection: zero outside it
    part = hessian_directions(model, F.cross_entropy, d, k=1, params=["2.weight"])
    assert part[0].moved() == ("2.weight",)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda m, d: curvature_map(m, F.cross_entropy, d, (1,), steps=2),
            ValueError,
            "`directions` must be a pair",
        ),
        (
            lambda m, d: curvature_map(
                m, F.cross_entropy, d, random_plane(m, seed=0), matrix="x"
            ),
            ValueError,
            "`matrix` must be one of",
        ),
        (
            lambda m, d: HessianOperator(
                m, F.cross_entropy, d, at={"0.weight": torch.zeros(2)}
            ),
            ValueError,
            r"`at`\['0.weight'\] must have shape \(6, 4\)",
        ),
        (
            lambda m, d: HessianOperator(
                m, F.cross_entropy, d, at={"nope": torch.zeros(2)}
            ),
            ValueError,
            "`at` names 'nope'",
        ),
        (
            lambda m, d: HessianOperator(m, F.cross_entropy, d, bn="train"),
            ValueError,
            "`bn` must be one of",
        ),
        (
            lambda m, d: HessianOperator(m, 3, d),
            TypeError,
            "`loss_fn` must be .*got 3",
        ),
        (
            lambda m, d: eigenvalues(HessianOperator(m, F.cross_entropy, d), 1, tol=0),
            ValueError,
            "`tol` must be > 0",
        ),
        (
            lambda m, d: hutchpp(HessianOperator(m, F.cross_entropy, d), sketch=999),
            ValueError,
            "`sketch` must be <= 51",
        ),
    ],
)
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call(small(), data())


def test_sharpness_gives_no_sgd_threshold_for_an_adaptive_optimizer(pyplot):
    # a Recorder(optimizer=Adam) recording used to get the SGD threshold 2/η
    # against the raw Hessian (for Adam the edge of stability bounds the
    # preconditioned Hessian), drawn as a line in SharpnessDisplay
    from lossmap.nn.trajectory import Recorder
    from lossmap.plot import SharpnessDisplay

    model, (x, y) = small(), data()
    runs = {}
    for opt in (
        torch.optim.Adam(model.parameters(), lr=0.01),
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.5),
    ):
        rec = Recorder(model, every=1, optimizer=opt)
        for step in range(2):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            rec(step)
        runs[type(opt).__name__] = rec.recording()
    with pytest.warns(UserWarning, match="Adam, not SGD"):
        adam = sharpness(runs["Adam"], model, F.cross_entropy, (x, y))
    assert adam.adaptive == "Adam"
    assert adam.threshold is None
    np.testing.assert_allclose(adam.lr, [0.01, 0.01])
    assert "threshold" not in adam.to_surface().fields
    # the exact λmax is still given
    direct = eigenvalues(
        HessianOperator(model, F.cross_entropy, (x, y), at=runs["Adam"].params(1)), 1
    )
    assert adam.lambda_max[1] == pytest.approx(direct.values[0], rel=1e-8)
    # the SGD settings given explicitly draw the SGD threshold anyway
    forced = sharpness(runs["Adam"], model, F.cross_entropy, (x, y), momentum=0.0)
    np.testing.assert_allclose(forced.threshold, [200.0, 200.0])
    sgd = sharpness(runs["SGD"], model, F.cross_entropy, (x, y))
    assert sgd.adaptive is None
    np.testing.assert_allclose(sgd.threshold, [30.0, 30.0])  # 2(1+β)/η
    disp = SharpnessDisplay({"adam": adam, "sgd": sgd}).plot()
    assert set(disp.thresholds_) == {"sgd"}
    assert "2(1+β)/η" in disp.ax_.get_title()
    only = SharpnessDisplay({"adam": adam}).plot()
    assert only.thresholds_ == {}
    assert "η" not in only.ax_.get_title()
