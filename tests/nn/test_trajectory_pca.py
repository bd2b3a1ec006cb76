"""Trajectories as in Li et al.'s reference: mean-centred PCA (scikit-learn),
spans that cover the path, surfaces read only at their own coordinates, and
BatchNorm snapshots evaluated with their own buffers."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
decomposition = pytest.importorskip("sklearn.decomposition")

from lossmap import nn as lnn  # noqa: E402
from lossmap.nn.trajectory import Recorder, Recording, path_span  # noqa: E402


def _data(n=48, seed=1, d=4):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    return x, y


def _mlp(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)
    ).double()


def _trained(net, steps=30, lr=0.2, **rec_kwargs):
    x, y = _data()
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.5)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    rec = Recorder(net, every=2, optimizer=opt, **rec_kwargs)
    for step in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        opt.step()
        sched.step()
        rec(step)
    rec.record(steps, force=True)
    return rec


def _sklearn_pca(rows):
    return decomposition.PCA(n_components=2, svd_solver="full").fit(rows)


# ----------------------------------------------------------------------- PCA
def test_default_pca_equals_scikit_learn_and_li_et_al_reference():
    rec = _trained(_mlp()).recording()
    d1, d2, ratio = lnn.pca_directions(rec)
    x = rec.snapshots.numpy()
    ref = _sklearn_pca(x)
    # Li et al.'s code fits PCA to the differences from the final weights
    li = _sklearn_pca(x - x[-1])
    for k, d in enumerate((d1, d2)):
        got = d.flat().numpy()
        for comp in (ref.components_[k], li.components_[k]):
            cos = abs(got @ comp) / (np.linalg.norm(got) * np.linalg.norm(comp))
            assert cos >= 1 - 1e-9
    np.testing.assert_allclose(ratio, ref.explained_variance_ratio_, rtol=1e-9)
    assert d1.meta["center"] == "mean"
    # coordinates about the mean equal scikit-learn's transform (up to sign)
    proj = lnn.project(rec, (d1, d2), center="mean")
    want = ref.transform(x)
    signs = np.sign(np.sum(proj.coords * want, axis=0))
    np.testing.assert_allclose(proj.coords, want * signs, atol=1e-9)
    # the old behaviour, by name: the uncentred SVD about the final weights
    o1, _, _ = lnn.pca_directions(rec, center="last")
    _, _, vt = np.linalg.svd(x - x[-1], full_matrices=False)
    assert abs(o1.flat().numpy() @ vt[0]) == pytest.approx(1.0, abs=1e-9)
    assert abs(o1.flat().numpy() @ d1.flat().numpy()) < 1 - 1e-6  # they differ


def test_pca_restricted_to_parameters_equals_pca_of_those_columns():
    net = _mlp()
    rec = _trained(net)
    d1, d2, ratio = lnn.pca_directions(rec, params=net[2])  # a Recorder: modules ok
    r = rec.recording()
    cols = np.concatenate(
        [
            np.full(int(np.prod(s)), n.startswith("2."))
            for n, s in zip(r.names, r.shapes)
        ]
    )
    ref = _sklearn_pca(r.snapshots.numpy()[:, cols])
    for k, d in enumerate((d1, d2)):
        got = d.flat().numpy()
        assert np.count_nonzero(got[~cols]) == 0  # exactly zero elsewhere
        assert abs(got[cols] @ ref.components_[k]) >= 1 - 1e-9
    np.testing.assert_allclose(ratio, ref.explained_variance_ratio_, rtol=1e-9)
    assert d1.meta["params"]["names"] == ["2.weight", "2.bias"]
    # a Recording does not know the model: names and patterns work, modules not
    e1, _, _ = lnn.pca_directions(r, params="2.*")
    torch.testing.assert_close(e1.flat(), d1.flat())
    with pytest.raises(TypeError, match="resolve it first"):
        lnn.pca_directions(r, params=net[2])


# ---------------------------------------------------------------- spans
def test_span_auto_covers_the_path_wherever_the_plane_is_centred():
    net = _mlp()
    rec = _trained(net)
    r = rec.recording()
    d1, d2, _ = lnn.pca_directions(r)
    x, y = _data()
    loss = torch.nn.functional.mse_loss
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no snapshot off the grid: no warning
        s = lnn.plane(net, loss, (x, y), (d1, d2), span="auto", steps=5, progress=False)
        proj = lnn.project(r, (d1, d2), surface=s)
    assert proj.meta["center"] == "last"  # the plane is around the final weights
    assert not proj.outside.any()
    assert np.all(np.isfinite(proj.surface_loss))
    # the span is the helper's on the projected coordinates
    want = path_span(proj.coords)
    got = s.metadata["span"]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
    # a plane around the first snapshot covers the path too
    first = r.center("first")
    s0 = lnn.plane(
        net, loss, (x, y), (d1, d2), span="auto", steps=3, center=first, progress=False
    )
    p0 = lnn.project(r, (d1, d2), surface=s0)
    assert p0.meta["center"] == "first"
    assert not p0.outside.any()
    np.testing.assert_allclose(p0.coords[0], 0.0, atol=1e-9)
    # a line along one PCA direction: span="auto" too
    ln = lnn.line(net, loss, (x, y), d1, span="auto", steps=3, progress=False)
    np.testing.assert_allclose(ln.metadata["span"][0], want[0], rtol=1e-6)


def test_a_given_span_that_cuts_the_path_is_reported():
    net = _mlp()
    r = _trained(net).recording()
    d1, d2, _ = lnn.pca_directions(r)
    x, y = _data()
    half = 0.3 * float(np.max(np.abs(lnn.project(r, (d1, d2)).coords)))
    with pytest.warns(UserWarning, match="beyond the given `span`"):
        s = lnn.plane(
            net,
            torch.nn.functional.mse_loss,
            (x, y),
            (d1, d2),
            span=half,
            steps=3,
            progress=False,
        )
    with pytest.warns(UserWarning, match=r"\d+ of 16 snapshots lie outside"):
        proj = lnn.project(r, (d1, d2), surface=s)
    assert proj.meta["outside"] == int(proj.outside.sum()) > 0
    assert np.all(np.isnan(proj.surface_loss[proj.outside]))
    assert np.all(np.isfinite(proj.surface_loss[~proj.outside]))


def test_span_auto_needs_pca_directions_and_path_span_checks():
    net = _mlp()
    x, y = _data()
    d1, d2 = lnn.random_plane(net, seed=0)
    with pytest.raises(ValueError, match="`span`='auto' needs PCA directions"):
        lnn.plane(net, torch.nn.functional.mse_loss, (x, y), (d1, d2), span="auto")
    assert path_span([[1.0], [3.0]], margin=0.0) == [(0.0, 3.0)]
    assert path_span([[0.0, 0.0]]) == [(-0.1, 0.1), (-0.1, 0.1)]
    with pytest.raises(ValueError, match="finite"):
        path_span([[np.nan, 1.0]])
    with pytest.raises(ValueError, match="margin"):
        path_span([[1.0, 1.0]], margin=-1)


# ------------------------------------------------------- own surface only
def test_project_refuses_a_surface_that_is_not_its_own():
    net = _mlp()
    r = _trained(net).recording()
    d1, d2, _ = lnn.pca_directions(r)
    x, y = _data()

    def plane(**kw):
        loss = torch.nn.functional.mse_loss
        return lnn.plane(
            net, loss, (x, y), (d1, d2), span="auto", steps=3, progress=False, **kw
        )

    s = plane()
    # the surface is around the final weights, not the mean
    with pytest.raises(ValueError, match="around another centre than `center`='mean'"):
        lnn.project(r, (d1, d2), surface=s, center="mean")
    # other directions
    e1, e2 = lnn.random_plane(net, seed=0)
    with pytest.raises(ValueError, match="computed along other directions"):
        lnn.project(r, (e1, e2), surface=s)
    # a centre that is no snapshot, nor the mean, nor the model
    away = {n: p.detach() + 1.0 for n, p in net.named_parameters()}
    with pytest.raises(ValueError, match="none of the recorded snapshots"):
        lnn.project(r, (d1, d2), surface=plane(center=away))
    # a plane around the mean is found by its fingerprint
    p3 = lnn.project(r, (d1, d2), surface=plane(center=r.center("mean")))
    assert p3.meta["center"] == "mean"
    assert not p3.outside.any()


# -------------------------------------------------------------- BatchNorm
def _bn_net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 8),
        torch.nn.BatchNorm1d(8),
        torch.nn.ReLU(),
        torch.nn.Linear(8, 2),
    ).double()


def _reference_loss(net, params, buffers, x, y):
    """A copy with the snapshot loaded through load_state_dict; plain forward."""
    ref = copy.deepcopy(net)
    state = {**params, **buffers}
    ref.load_state_dict(state, strict=True)
    ref.eval()
    with torch.no_grad():
        return float(torch.nn.functional.mse_loss(ref(x), y))


def test_project_evaluates_each_batchnorm_snapshot_with_its_own_buffers():
    net = _bn_net()
    x, y = _data(n=64)
    x = 3.0 * x + 2.0  # far from BatchNorm's initial statistics
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    rec = Recorder(net, every=3, optimizer=opt)
    for step in range(24):
        net.train()
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x[step % 4 :: 4]), y[step % 4 :: 4]).backward()
        opt.step()
        rec(step)
    net.eval()
    r = rec.recording()
    assert set(r.buffers) == {
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
    }
    assert r.buffers["1.num_batches_tracked"].dtype == torch.long
    assert r.buffers["1.running_mean"].shape == (len(r), 8)
    np.testing.assert_allclose(r.lr[:, 0], 0.05)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    d1, d2, _ = lnn.pca_directions(r)
    loss = torch.nn.functional.mse_loss
    proj = lnn.project(r, (d1, d2), model=net, loss_fn=loss, data=(x, y))
    assert proj.meta["bn"] == "own"
    want = [
        _reference_loss(net, r.params(i), r.buffers_at(i), x, y) for i in range(len(r))
    ]
    np.testing.assert_allclose(proj.true_loss, want, rtol=1e-10)
    alone, _ = lnn.evaluate_snapshots(r, net, loss, (x, y))  # the same, without a plane
    np.testing.assert_array_equal(alone, proj.true_loss)
    for k, v in net.state_dict().items():  # the user's model is untouched
        assert torch.equal(v, before[k])
    # the final statistics for every snapshot give another (wrong) curve
    final = lnn.project(r, (d1, d2), model=net, loss_fn=loss, data=(x, y), bn="eval")
    assert np.max(np.abs(final.true_loss - want)) > 1e-3
    # re-estimated statistics: the loss of a recomputed-BN copy
    rc = lnn.project(r, (d1, d2), model=net, loss_fn=loss, data=(x, y), bn="recompute")
    assert rc.meta["bn"] == "recompute"
    assert np.all(np.isfinite(rc.true_loss))
    # a recording without buffers: a warning says the statistics are the model's
    bare = Recording(r.snapshots, r.steps, r.names, r.shapes)
    with pytest.warns(UserWarning, match="no buffers"):
        lnn.project(bare, (d1, d2), model=net, loss_fn=loss, data=(x, y))
    with pytest.raises(ValueError, match="`bn`='own' needs recorded buffers"):
        lnn.project(bare, (d1, d2), model=net, loss_fn=loss, data=(x, y), bn="own")
    with pytest.raises(ValueError, match=r"project\(bn=\.\.\.\)"):
        lnn.project(
            r,
            (d1, d2),
            model=net,
            loss_fn=loss,
            data=(x, y),
            evaluate_kwargs={"bn": "eval"},
        )


# -------------------------------------------------------- learning rates
def test_recorder_keeps_learning_rates_and_buffers_in_memory_and_store(tmp_path):
    net = _bn_net()
    x, y = _data(n=16)
    opt = torch.optim.SGD(
        [
            {"params": net[0].parameters(), "lr": 0.1},
            {"params": list(net[1].parameters()) + list(net[3].parameters())},
        ],
        lr=0.01,
    )
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    mem = Recorder(net, optimizer=opt)
    disk = Recorder(net, optimizer=opt, store=tmp_path / "run.zarr")
    for step in range(4):
        net.train()
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        opt.step()
        sched.step()
        mem(step)
        disk(step)
    want = np.array([[0.1, 0.01]]) * 0.5 ** np.arange(1, 5)[:, None]
    a, b = mem.recording(), Recording.load(tmp_path / "run.zarr")
    for r in (a, b):
        np.testing.assert_allclose(r.lr, want, rtol=1e-12)
        assert set(r.buffers) == set(a.buffers)
        for n, t in a.buffers.items():
            assert r.buffers[n].dtype == t.dtype
            torch.testing.assert_close(r.buffers[n], t, rtol=0, atol=0)
    # without an optimizer or buffers nothing extra is kept
    plain = Recorder(net, buffers=False)
    plain(0)
    assert plain.recording().lr is None
    assert plain.recording().buffers is None
    with pytest.raises(TypeError, match=r"`optimizer` must be a torch\.optim"):
        Recorder(net, optimizer="sgd")


def test_store_state_survives_an_interrupted_append(tmp_path):
    net = _bn_net()
    x, y = _data(n=16)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    path = tmp_path / "run.zarr"
    rec = Recorder(net, optimizer=opt, store=path)

    def step(k):
        net.train()
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        opt.step()
        rec(k)

    step(0)
    step(1)
    # killed between the state row and the snapshot row of step 2
    rec._state.append(2, np.zeros(rec._state.size))
    rec = Recorder(net, optimizer=opt, store=path)
    assert len(rec) == 2
    step(2)
    r = Recording.load(path)
    assert r.steps.tolist() == [0, 1, 2]
    want = dict(net.named_buffers())["1.running_mean"]
    torch.testing.assert_close(r.buffers["1.running_mean"][-1], want, rtol=0, atol=0)
    np.testing.assert_allclose(r.lr[:, 0], 0.1)


def test_span_auto_refuses_pca_directions_changed_afterwards():
    net = _mlp()
    r = _trained(net).recording()
    d1, d2, _ = lnn.pca_directions(r)
    x, y = _data()
    # restricted after the PCA: the recorded path range no longer applies
    cut = lnn.from_tensors(net, d1.tensors, meta=d1.meta, params="2.*")
    with pytest.raises(ValueError, match=r"as lossmap\.nn\.pca_directions made them"):
        lnn.plane(
            net,
            torch.nn.functional.mse_loss,
            (x, y),
            (cut, d2),
            span="auto",
            progress=False,
        )
