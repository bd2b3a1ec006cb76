"""Recorder, PCA directions and projections onto a plane."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lossmap import Surface  # noqa: E402
from lossmap.io.snapshots import SnapshotStore  # noqa: E402
from lossmap.nn.directions import Direction  # noqa: E402
from lossmap.nn.projection import project, surface_at  # noqa: E402
from lossmap.nn.trajectory import Recorder, Recording, pca_directions  # noqa: E402


def _net(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2)
    ).to(dtype)


def _train(net, rec, steps=12, lr=0.1):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(32, 4, generator=gen, dtype=torch.float64)
    y = torch.randn(32, 2, generator=gen, dtype=torch.float64)
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    for step in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        opt.step()
        rec(step)


def _planar_recording(rng, n=9, seed=0):
    """Snapshots c + a_i u + b_i w exactly in a plane, c the last one."""
    net = _net(seed)
    names = tuple(n_ for n_, _ in net.named_parameters())
    shapes = tuple(tuple(p.shape) for _, p in net.named_parameters())
    size = sum(p.numel() for p in net.parameters())
    c = torch.from_numpy(rng.normal(size=size))
    u = torch.from_numpy(rng.normal(size=size))
    w = torch.from_numpy(rng.normal(size=size)) + 0.5 * u  # not orthogonal
    a = torch.from_numpy(rng.normal(size=n))
    b = torch.from_numpy(rng.normal(size=n))
    a[-1] = b[-1] = 0.0
    snaps = c + a[:, None] * u + b[:, None] * w
    return Recording(snaps, np.arange(n) * 10, names, shapes), (c, u, w, a, b)


# ------------------------------------------------------------------ Recorder
def test_recorder_every_and_values():
    net = _net()
    rec = Recorder(net, every=3)
    seen = []
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(8, 4, generator=gen, dtype=torch.float64)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for step in range(10):
        opt.zero_grad()
        net(x).pow(2).mean().backward()
        opt.step()
        if rec(step):
            seen.append(torch.cat([p.detach().reshape(-1) for p in net.parameters()]))
    r = rec.recording()
    assert r.steps.tolist() == [0, 3, 6, 9]
    assert r.snapshots.shape == (4, 23)
    torch.testing.assert_close(r.snapshots, torch.stack(seen), rtol=0, atol=0)
    assert r.names == ("0.weight", "0.bias", "2.weight", "2.bias")
    torch.testing.assert_close(r.params(-1)["2.weight"], net[2].weight.detach())


def test_recorder_leaves_the_model_alone():
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rec = Recorder(net)
    rec(0)
    rec.record(5, force=True)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])
    # snapshots are copies: changing the model later does not change them
    with torch.no_grad():
        net[0].weight.add_(1.0)
    torch.testing.assert_close(
        rec.recording().params(0)["0.weight"], before["0.weight"]
    )


def test_recorder_steps_and_force():
    rec = Recorder(_net(), every=5)
    assert rec() is True  # call count 0
    assert rec() is False  # call count 1
    assert rec.record(7) is False
    assert rec.record(7, force=True) is True
    assert rec.record(7, force=True) is False  # the same step twice is ignored
    with pytest.raises(ValueError, match="`step` must increase, got 5 after 7"):
        rec.record(5)
    assert rec.recording().steps.tolist() == [0, 7]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"every": 0}, ValueError, "`every` must be >= 1"),
        ({"every": 1.5}, TypeError, "`every` must be an integer"),
        ({"dtype": torch.int32}, ValueError, "`dtype` must be"),
    ],
)
def test_recorder_bad_input(kwargs, error, message):
    with pytest.raises(error, match=message):
        Recorder(_net(), **kwargs)


def test_recorder_needs_a_module_and_a_snapshot():
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        Recorder({"w": torch.zeros(2)})
    with pytest.raises(ValueError, match="no snapshot recorded yet"):
        Recorder(_net()).recording()


def test_recorder_to_store_equals_memory_and_continues(tmp_path):
    path = tmp_path / "traj.zarr"
    first = _net()
    mem = Recorder(first, every=2)
    _train(first, mem)
    net = _net()
    disk = Recorder(net, every=2, store=path, dtype=torch.float32)
    _train(net, disk)
    a, b = mem.recording(), disk.recording()
    assert b.snapshots.dtype == torch.float32
    np.testing.assert_array_equal(a.steps, b.steps)
    torch.testing.assert_close(b.snapshots, a.snapshots.float(), rtol=0, atol=0)
    # continuing the same store appends after the last step
    again = Recorder(net, store=path, dtype=torch.float32)
    assert len(again) == len(b)
    with pytest.raises(ValueError, match="must increase"):
        again.record(0, force=True)
    again.record(100)
    assert Recording.load(path).steps.tolist()[-2:] == [10, 100]
    # another model is refused
    with pytest.raises(ValueError, match="another model's parameters"):
        Recorder(torch.nn.Linear(2, 2), store=path)


def test_snapshot_store_drops_a_half_written_row(tmp_path):
    store = SnapshotStore.open(tmp_path / "s.zarr", names=["w"], shapes=[[3]])
    store.append(0, np.array([1.0, 2.0, 3.0]))
    store.append(4, np.array([4.0, 5.0, 6.0]))
    (tmp_path / "s.zarr" / "steps" / "c" / "1").unlink()  # killed mid-append
    again = SnapshotStore.attach(tmp_path / "s.zarr")
    assert len(again) == 1
    np.testing.assert_array_equal(again.read(), [[1.0, 2.0, 3.0]])
    again.append(5, np.array([0.0, 0.0, 1.0]))
    assert again.steps().tolist() == [0, 5]


# ----------------------------------------------------------------------- PCA
def test_pca_of_planar_trajectory_reproduces_it(rng):
    rec, (c, u, w, _, _) = _planar_recording(rng)
    d1, d2, ratio = pca_directions(rec, center="last")  # the SVD about the end
    assert isinstance(d1, Direction)
    assert d1.meta["kind"] == "pca"
    assert d1.meta["center"] == "last"
    # unit, orthogonal
    assert d1.norm() == pytest.approx(1.0, abs=1e-12)
    assert d2.norm() == pytest.approx(1.0, abs=1e-12)
    assert d1.dot(d2) == pytest.approx(0.0, abs=1e-12)
    # the plane holds all of the trajectory
    assert ratio.sum() == pytest.approx(1.0, abs=1e-12)
    proj = project(rec, (d1, d2))
    scale = float(np.max(proj.offset))
    assert np.max(proj.distance) < 1e-9 * scale
    # and the coordinates rebuild every snapshot exactly
    basis = torch.stack([d1.flat(), d2.flat()])
    rebuilt = c + torch.tensor(proj.coords) @ basis
    torch.testing.assert_close(rebuilt, rec.snapshots, rtol=0, atol=1e-9 * scale)
    # the centre projects to the origin
    np.testing.assert_allclose(proj.coords[-1], [0.0, 0.0], atol=1e-12)
    assert proj.distance[-1] == 0.0
    # the directions span the plane of u and w
    q, _ = torch.linalg.qr(torch.stack([u, w]).T)
    assert torch.linalg.matrix_norm(basis.T - q @ (q.T @ basis.T)) < 1e-9


def test_pca_matches_numpy_svd_on_a_real_trajectory():
    net = _net()
    rec = Recorder(net)
    rec(0)
    _train(net, rec, steps=15, lr=0.3)
    r = rec.recording()
    d1, d2, ratio = pca_directions(r, center="last")
    x = r.snapshots.numpy() - r.snapshots.numpy()[-1]
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    np.testing.assert_allclose(ratio, s[:2] ** 2 / np.sum(s**2), rtol=1e-9)
    assert 0 < ratio.sum() <= 1.0
    assert ratio[0] >= ratio[1]
    for d, v in zip((d1, d2), vt[:2]):
        got = d.flat().numpy()
        np.testing.assert_allclose(abs(got @ v), 1.0, atol=1e-9)  # same up to sign
    assert d1.meta["explained_variance_ratio"] == pytest.approx(ratio[0])
    # a real path does not lie in a plane: some snapshots are off it
    assert np.max(project(r, (d1, d2)).distance) > 0


@pytest.mark.parametrize("center", ["first", "mean", 3, -2])
def test_pca_other_centres(rng, center):
    rec, _ = _planar_recording(rng)
    d1, d2, ratio = pca_directions(rec, center=center)
    x = rec.snapshots.numpy()
    ref = {"first": x[0], "mean": x.mean(0)}.get(center)
    ref = x[center] if ref is None else ref
    s = np.linalg.svd(x - ref, compute_uv=False)
    np.testing.assert_allclose(ratio, s[:2] ** 2 / np.sum(s**2), rtol=1e-9)
    proj = project(rec, (d1, d2))  # centre taken from the directions' meta
    assert np.max(proj.distance) < 1e-9 * np.max(proj.offset)
    if center != "mean":
        np.testing.assert_allclose(proj.coords[center if center != "first" else 0], 0.0)


def test_pca_signs_are_deterministic(rng):
    rec, _ = _planar_recording(rng)
    first = pca_directions(rec)
    flipped = Recording(rec.snapshots.clone(), rec.steps, rec.names, rec.shapes)
    second = pca_directions(flipped)
    for a, b in zip(first[:2], second[:2]):
        torch.testing.assert_close(a.flat(), b.flat())


def test_pca_errors(rng):
    rec, _ = _planar_recording(rng, n=3)
    one = Recording(rec.snapshots[:1], rec.steps[:1], rec.names, rec.shapes)
    with pytest.raises(ValueError, match="at least 2 snapshots"):
        pca_directions(one)
    line = rec.snapshots[-1] + torch.arange(3.0, dtype=torch.float64)[:, None] * (
        rec.snapshots[0] - rec.snapshots[-1]
    )
    with pytest.raises(ValueError, match="fewer than two dimensions"):
        pca_directions(Recording(line, rec.steps, rec.names, rec.shapes))
    with pytest.raises(ValueError, match="`center` must be 'last'"):
        pca_directions(rec, center="middle")
    with pytest.raises(ValueError, match=r"`center` index must be in \[-3, 3\)"):
        pca_directions(rec, center=3)
    with pytest.raises(TypeError, match="Recording or a Recorder"):
        pca_directions(rec.snapshots)


# ---------------------------------------------------------------- projection
def test_project_onto_random_plane_least_squares(rng):
    rec, _ = _planar_recording(rng)
    net = _net()
    mk = lambda v: Direction(rec.split(torch.from_numpy(v)), {"kind": "user"})  # noqa: E731
    d1, d2 = mk(rng.normal(size=rec.size)), mk(rng.normal(size=rec.size))
    proj = project(rec, (d1, d2), center=0)
    # reference: numpy least squares
    dm = np.stack([d1.flat().numpy(), d2.flat().numpy()], axis=1)
    x = (rec.snapshots - rec.snapshots[0]).numpy()
    coef, *_ = np.linalg.lstsq(dm, x.T, rcond=None)
    np.testing.assert_allclose(proj.coords, coef.T, atol=1e-10)
    np.testing.assert_allclose(
        proj.distance, np.linalg.norm(x - coef.T @ dm.T, axis=1), atol=1e-10
    )
    np.testing.assert_allclose(proj.offset, np.linalg.norm(x, axis=1))
    assert proj.true_loss is None
    assert proj.axes == ("alpha", "beta")
    # a module as the centre gives the same as its parameters
    p2 = project(rec, (d1, d2), center=net)
    c = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    p3 = project(rec, (d1, d2), center=c)
    np.testing.assert_allclose(p2.coords, p3.coords)


def test_project_on_a_line(rng):
    rec, _ = _planar_recording(rng)
    d = Direction(rec.split(rec.snapshots[0] - rec.snapshots[-1]), {"kind": "interp"})
    proj = project(rec, d)
    assert proj.coords.shape == (len(rec), 1)
    assert proj.coords[0, 0] == pytest.approx(1.0)
    assert proj.distance[0] == pytest.approx(0.0, abs=1e-9)


def test_project_with_surface_interpolates(rng):
    rec, _ = _planar_recording(rng)
    d1, d2, _ = pca_directions(rec)
    proj0 = project(rec, (d1, d2))
    lo, hi = proj0.coords.min(0) - 0.1, proj0.coords.max(0) + 0.1
    a, b = np.linspace(lo[0], hi[0], 7), np.linspace(lo[1], hi[1], 9)
    aa, bb = np.meshgrid(a, b, indexing="ij")
    s = Surface(axes={"x": a, "y": b}, fields={"loss": 1 + 2 * aa - bb + 3 * aa * bb})
    proj = project(rec, (d1, d2), surface=s)
    ca, cb = proj.coords.T
    # bilinear interpolation is exact on a bilinear function
    np.testing.assert_allclose(proj.surface_loss, 1 + 2 * ca - cb + 3 * ca * cb)
    assert proj.axes == ("x", "y")
    assert proj.loss_gap is None


def test_project_errors(rng):
    rec, _ = _planar_recording(rng)
    d1, d2, _ = pca_directions(rec)
    zero = Direction(rec.split(torch.zeros(rec.size, dtype=torch.float64)))
    with pytest.raises(ValueError, match="zero or parallel"):
        project(rec, (d1, zero))
    with pytest.raises(ValueError, match="one Direction or a pair"):
        project(rec, (d1, d2, d1))
    other = Direction({"w": torch.zeros(3)})
    with pytest.raises(ValueError, match=r"`directions\[1\]` must cover"):
        project(rec, (d1, other))
    s1 = Surface(axes={"t": [0.0, 1.0]}, fields={"loss": [1.0, 2.0]})
    with pytest.raises(ValueError, match="must have 2 axis"):
        project(rec, (d1, d2), surface=s1)
    with pytest.raises(ValueError, match="together"):
        project(rec, (d1, d2), model=_net())


def test_surface_at_edges_and_nan():
    a, b = np.array([0.0, 1.0, 3.0]), np.array([-1.0, 1.0])
    loss = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, np.nan]])
    s = Surface(axes={"a": a, "b": b}, fields={"loss": loss})
    got = surface_at(s, [[0.0, -1.0], [3.0, -1.0], [0.5, -1.0], [0.5, 0.0], [4.0, 0.0]])
    np.testing.assert_allclose(got[:4], [1.0, 5.0, 2.0, 2.5])
    assert np.isnan(got[4])  # outside
    assert np.isnan(surface_at(s, [2.0, 0.0]))  # a NaN corner is used
    assert surface_at(s, [2.0, -1.0]) == pytest.approx(4.0)  # NaN corner weight 0
    line = Surface(axes={"t": [0.0, 2.0]}, fields={"loss": [1.0, 3.0]})
    assert surface_at(line, [0.5]) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="must have 2 column"):
        surface_at(s, [[0.0]])


def test_project_true_loss_and_surface_agree_at_the_centre():
    import lossmap.nn as lnn

    net = _net()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(32, 4, generator=gen, dtype=torch.float64)
    y = torch.randn(32, 2, generator=gen, dtype=torch.float64)
    rec = Recorder(net)
    rec(0)
    _train(net, rec, steps=8, lr=0.3)
    r = rec.recording()
    loss_fn = torch.nn.functional.mse_loss
    d1, d2, _ = pca_directions(r)
    # the PCA is mean-centred, the plane is around the final weights: a span
    # symmetric about them (the centre a grid point) covering the path
    about_last = project(r, (d1, d2), center="last").coords
    span = float(np.abs(about_last).max()) * 1.1
    s = lnn.plane(net, loss_fn, (x, y), (d1, d2), span=span, steps=5, progress=False)
    proj = project(r, (d1, d2), surface=s, model=net, loss_fn=loss_fn, data=(x, y))
    # true loss: a plain forward pass with each snapshot's parameters
    for i in range(len(r)):
        out = torch.func.functional_call(net, r.params(i), (x,))
        assert proj.true_loss[i] == pytest.approx(float(loss_fn(out, y)), rel=1e-9)
    # at the centre (the final weights) the surface is exact: a grid point
    assert proj.surface_loss[-1] == pytest.approx(proj.true_loss[-1], rel=1e-9)
    assert proj.loss_gap[-1] == pytest.approx(0.0, abs=1e-9)
    assert np.all(np.isfinite(proj.surface_loss))  # the grid covers the path
