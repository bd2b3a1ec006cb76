"""Checkpoint maps: PCA against scikit-learn, t-SNE seeds, runs that meet."""

from __future__ import annotations

import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
decomposition = pytest.importorskip("sklearn.decomposition")
manifold = pytest.importorskip("sklearn.manifold")

from lossmap.nn import Recorder, Recording, embed, evaluate_params  # noqa: E402

F = torch.nn.functional


def _net(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)
    ).double()


def _data():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 5, generator=gen, dtype=torch.float64)
    return x, torch.randn(40, 2, generator=gen, dtype=torch.float64)


def _run(seed, steps=15, lr=0.2, store=None):
    net = _net(seed)
    x, y = _data()
    rec = Recorder(net, store=store)
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    for step in range(steps):
        rec(step)
        opt.zero_grad()
        F.mse_loss(net(x), y).backward()
        opt.step()
    rec.record(steps, force=True)
    return net, rec.recording()


def _matrix(*recs):
    return np.concatenate([r.snapshots.double().numpy() for r in recs])


def test_pca_coordinates_equal_scikit_learn():
    _, r0 = _run(0)
    _, r1 = _run(1)
    emb = embed([r0, r1], "pca")
    ref = decomposition.PCA(n_components=2, svd_solver="full")
    want = ref.fit_transform(_matrix(r0, r1))
    np.testing.assert_allclose(emb.coords, want, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(
        emb.meta["explained_variance_ratio"], ref.explained_variance_ratio_, rtol=1e-7
    )
    assert emb.runs == ("run 0", "run 1")
    assert emb.run.tolist() == [0] * len(r0) + [1] * len(r1)
    assert emb.step.tolist() == list(r0.steps) + list(r1.steps)
    assert emb.loss is None


def test_state_dicts_modules_and_named_runs():
    nets = [_net(s) for s in range(4)]
    as_dicts = embed([n.state_dict() for n in nets])
    as_modules = embed({"seeds": nets})
    np.testing.assert_allclose(as_dicts.coords, as_modules.coords)
    assert as_modules.runs == ("seeds",)
    want = decomposition.PCA(2, svd_solver="full").fit_transform(
        np.stack(
            [
                torch.cat([p.reshape(-1) for p in n.parameters()]).detach().numpy()
                for n in nets
            ]
        )
    )
    np.testing.assert_allclose(as_dicts.coords, want, atol=1e-9)


def test_tsne_is_scikit_learn_on_pca_reduced_vectors_and_reproducible():
    _, r0 = _run(0)
    _, r1 = _run(1)
    a = embed([r0, r1], "tsne", seed=3, perplexity=5.0, pca_components=6)
    b = embed([r0, r1], "tsne", seed=3, perplexity=5.0, pca_components=6)
    np.testing.assert_array_equal(a.coords, b.coords)
    reduced = decomposition.PCA(6, svd_solver="full").fit_transform(_matrix(r0, r1))
    want = manifold.TSNE(
        2, perplexity=5.0, init="pca", learning_rate="auto", random_state=3
    ).fit_transform(reduced)
    np.testing.assert_allclose(a.coords, want, rtol=1e-4, atol=1e-4)
    assert a.meta["perplexity"] == 5.0
    assert a.meta["seed"] == 3
    assert "neighbourhoods" in a.meta["reading"]


def _least_squares_run(start, steps=40):
    """Gradient descent on a strongly convex problem from ``start``."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(30, 4, generator=gen, dtype=torch.float64)
    y = torch.randn(30, 1, generator=gen, dtype=torch.float64)
    net = torch.nn.Linear(4, 1).double()
    with torch.no_grad():
        net.weight.copy_(torch.as_tensor(start[:4]).reshape(1, 4))
        net.bias.fill_(float(start[4]))
    rec = Recorder(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.3)
    for step in range(steps):
        rec(step)
        opt.zero_grad()
        F.mse_loss(net(x), y).backward()
        opt.step()
    return net, rec.recording(), (x, y)


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_runs_converging_to_one_function_land_together(method):
    _, ra, data = _least_squares_run([3.0, -3, 2, 1, 4])
    net, rb, _ = _least_squares_run([-4.0, 2, -3, 3, -2])
    emb = embed(
        {"a": ra, "b": rb},
        method,
        seed=0,
        perplexity=8.0,
        model=net,
        loss_fn=F.mse_loss,
        data=data,
    )
    end_a = emb.coords[emb.of_run("a")[-1]]
    end_b = emb.coords[emb.of_run("b")[-1]]
    start_a = emb.coords[emb.of_run("a")[0]]
    start_b = emb.coords[emb.of_run("b")[0]]
    assert np.linalg.norm(end_a - end_b) < 0.1 * np.linalg.norm(start_a - start_b)
    # and both ends are where the loss is lowest
    assert emb.loss[emb.of_run("a")[-1]] < 1.01 * emb.loss.min() + 1e-9


def test_loss_and_metrics_per_checkpoint(tmp_path):
    net, _rec = _run(0, steps=4, store=tmp_path / "run0")
    _run(1, steps=4, store=tmp_path / "run1")
    x, y = _data()
    metric = {"mae": lambda out, t: (out - t).abs().mean()}
    emb = embed(tmp_path, model=net, loss_fn=F.mse_loss, data=(x, y), metrics=metric)
    assert emb.runs == ("run0", "run1")
    assert len(emb) == 10
    for i in (0, 3, 7):
        k = int(emb.run[i])
        rec_k = Recording.load(tmp_path / emb.runs[k])
        j = i - int(emb.of_run(k)[0])
        ref = evaluate_params(net, F.mse_loss, (x, y), rec_k.params(j), metrics=metric)
        assert emb.loss[i] == pytest.approx(ref["loss"], rel=1e-12)
        assert emb.metrics["mae"][i] == pytest.approx(ref["mae"], rel=1e-12)
    single = embed(tmp_path / "run0")
    assert single.runs == ("run0",)


def test_batchnorm_checkpoints_are_evaluated_with_their_own_statistics(tmp_path):
    # each checkpoint's loss is that of a fresh model loaded with its state
    # dict (running statistics included), whatever form the run takes
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(5, 6),
        torch.nn.BatchNorm1d(6),
        torch.nn.Tanh(),
        torch.nn.Linear(6, 2),
    ).double()
    x, y = _data()
    rec = Recorder(net, store=tmp_path / "run")
    opt = torch.optim.SGD(net.parameters(), lr=0.3)
    states = []
    for step in range(4):
        rec.record(step, force=True)
        states.append({k: v.clone() for k, v in net.state_dict().items()})
        opt.zero_grad()
        F.mse_loss(net(3.0 * x + 1.0), y).backward()
        opt.step()
    net.eval()
    want = []
    for state in states:
        fresh = torch.nn.Sequential(
            torch.nn.Linear(5, 6),
            torch.nn.BatchNorm1d(6),
            torch.nn.Tanh(),
            torch.nn.Linear(6, 2),
        ).double()
        fresh.load_state_dict(state)
        fresh.eval()
        with torch.no_grad():
            want.append(float(F.mse_loss(fresh(x), y)))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    for run in (rec.recording(), states, Recording.load(tmp_path / "run")):
        emb = embed(run, "pca", model=net, loss_fn=F.mse_loss, data=(x, y))
        np.testing.assert_allclose(emb.loss, want, rtol=1e-10)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    assert not net.training


def test_umap_is_optional(monkeypatch):
    _, r0 = _run(0)
    monkeypatch.setitem(sys.modules, "umap", None)  # as if not installed
    with pytest.raises(ImportError, match="umap-learn"):
        embed(r0, "umap")


def test_umap_map_is_reproducible_with_its_seed():
    pytest.importorskip("umap")  # installed by the test extra
    _, r0 = _run(0)
    first, again = embed(r0, "umap", seed=3), embed(r0, "umap", seed=3)
    assert first.coords.shape == (len(r0), 2)
    assert np.isfinite(first.coords).all()
    np.testing.assert_array_equal(first.coords, again.coords)
    assert first.meta["library"].startswith("umap-learn")


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((), {"method": "mds"}, ValueError, "method"),
        ((), {"model": object()}, ValueError, "together"),
        ((), {"perplexity": 500.0, "method": "tsne"}, ValueError, "perplexity"),
    ],
)
def test_errors(args, kwargs, error, match):
    _, r0 = _run(0, steps=4)
    with pytest.raises(error, match=match):
        embed(r0, *args, **kwargs)


def test_bad_checkpoints(tmp_path):
    with pytest.raises(ValueError, match="at least 3"):
        embed([_net(0).state_dict(), _net(1).state_dict()])
    with pytest.raises(TypeError, match="checkpoints"):
        embed(42)
    with pytest.raises(ValueError, match="no snapshot store"):
        embed(tmp_path)
    small = torch.nn.Linear(5, 2).double()
    with pytest.raises(ValueError, match="other parameters"):
        embed({"a": [_net(0)] * 3, "b": [small] * 3})


def test_pca_in_column_blocks_equals_one_block(monkeypatch):
    """The Gram matrix and the signs accumulated over many column blocks."""
    # the function lossmap.nn.embed shadows its module as an attribute
    embed_module = sys.modules["lossmap.nn.embed"]
    _, r0 = _run(0)
    _, r1 = _run(1)
    whole = embed([r0, r1], "pca")
    monkeypatch.setattr(embed_module, "_BLOCK", 40)  # 1-2 columns per block
    blocked = embed([r0, r1], "pca")
    np.testing.assert_allclose(blocked.coords, whole.coords, rtol=1e-10, atol=1e-12)
