"""The batched engine against a plain per-point reference.

The reference loads θ₀ + a·d₁ + b·d₂ into a deep copy of the model with
``load_state_dict`` and runs one forward pass over all data: what a user would
write by hand, sharing no code with the engine.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from lossmap import nn as lnn  # noqa: E402


class Skip(torch.nn.Module):
    """A first layer that is not a Linear on the raw input, plus a skip path."""

    def __init__(self):
        super().__init__()
        self.norm = torch.nn.LayerNorm(70)
        self.fc1 = torch.nn.Linear(70, 16)
        self.fc2 = torch.nn.Linear(16, 3)
        self.skip = torch.nn.Linear(70, 3)

    def forward(self, x):
        z = torch.sin(self.norm(x) * 2.0)
        return self.fc2(torch.relu(self.fc1(z))) + self.skip(x)


class Branchy(torch.nn.Module):
    """Data-dependent control flow: cannot be traced by torch.fx."""

    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(70, 16)
        self.fc2 = torch.nn.Linear(16, 3)

    def forward(self, x):
        h = self.fc1(x)
        if bool((h.abs() < 1e6).all()):  # always true, but decided on data
            h = torch.tanh(h)
        return self.fc2(h)


def mlp():
    return torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(70, 24),
        torch.nn.ReLU(),
        torch.nn.Linear(24, 24),
        torch.nn.Tanh(),
        torch.nn.Linear(24, 3),
    )


def cnn():
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 6, 3, stride=2, padding=1),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(6, 3),
    )


def _data(kind, n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (
        torch.randn(n, 3, 8, 8, generator=g)
        if kind == "cnn"
        else torch.randn(n, 70, generator=g)
    )
    y = torch.randint(0, 3, (n,), generator=g)
    return x, y


def _prepared(factory, kind):
    torch.manual_seed(0)
    net = factory()
    if kind == "cnn":  # give BatchNorm non-trivial running statistics
        net.train()
        with torch.no_grad():
            net(torch.randn(64, 3, 8, 8) * 2 + 0.5)
        net.eval()
    return net


def reference(net, d1, d2, alphas, betas, x, y, metric=None):
    """Loss at every grid point by loading the weights and a forward pass."""
    ref = copy.deepcopy(net)
    ref.eval()
    theta = {n: p.detach().clone() for n, p in net.named_parameters()}
    out = np.empty((len(alphas), len(betas)))
    for i, a in enumerate(alphas):
        for j, b in enumerate(betas):
            state = {n: theta[n] + a * d1.tensors[n] + b * d2.tensors[n] for n in theta}
            ref.load_state_dict(state, strict=False)
            with torch.no_grad():
                o = ref(x)
                out[i, j] = float(metric(o, y) if metric else F.cross_entropy(o, y))
    return out


CASES = [(mlp, "mlp"), (cnn, "cnn"), (Skip, "skip"), (Branchy, "branchy")]


# every model under every strategy, except vmap on the branchy model: vmap cannot
# evaluate data-dependent control flow (its fallback is tested separately)
ENGINE_CASES = [
    pytest.param(factory, kind, strategy, id=f"{strategy}-{kind}")
    for strategy in ("auto", "vmap", "loop")
    for factory, kind in CASES
    if not (strategy == "vmap" and kind == "branchy")
]


@pytest.mark.parametrize("rows", [1, 16, None])  # None: the engine's own tiles
@pytest.mark.parametrize(("factory", "kind", "strategy"), ENGINE_CASES)
def test_engine_matches_per_point_reference(factory, kind, strategy, rows):
    net = _prepared(factory, kind)
    x, y = _data("cnn" if kind == "cnn" else "mlp")
    d1, d2 = lnn.random_plane(net, seed=1)
    s = lnn.plane(
        net,
        F.cross_entropy,
        (x, y),
        (d1, d2),
        steps=(4, 3),
        span=0.8,
        batch_size=rows,
        strategy=strategy,
        progress=False,
    )
    ref = reference(net, d1, d2, s.coords("alpha"), s.coords("beta"), x, y)
    np.testing.assert_allclose(s.loss, ref, rtol=1e-5, atol=1e-5)


def test_auto_strategy_falls_back_when_vmap_fails():
    net = _prepared(Branchy, "branchy")
    x, y = _data("mlp")
    d1, d2 = lnn.random_plane(net, seed=1)
    s = lnn.plane(net, F.cross_entropy, (x, y), (d1, d2), steps=3, progress=False)
    assert s.metadata["engine"]["strategy"] == "loop"
    assert "vmap failed" in s.metadata["engine"]["fallback"]


def test_affine_first_layer_and_cached_prefix_are_used():
    net = _prepared(mlp, "mlp")
    x, y = _data("mlp")
    d = lnn.random_plane(net, seed=0)
    s = lnn.plane(net, F.cross_entropy, (x, y), d, steps=3, progress=False)
    assert s.metadata["engine"]["split"]["affine_layers"] == ["1"]
    # a direction that moves only the last layer: everything before it is cached
    only_last = [
        lnn.random_direction(net, seed=k, ignore=["1.*", "3.*"]) for k in (0, 1)
    ]
    s2 = lnn.plane(net, F.cross_entropy, (x, y), only_last, steps=3, progress=False)
    assert s2.metadata["engine"]["split"]["affine_layers"] == []
    ref = reference(net, *only_last, s2.coords("alpha"), s2.coords("beta"), x, y)
    np.testing.assert_allclose(s2.loss, ref, rtol=1e-5, atol=1e-6)


def test_first_layer_bias_moved_with_affine_split():
    net = _prepared(Skip, "skip")
    x, y = _data("mlp")
    d1, d2 = lnn.random_plane(net, seed=4, ignore=None, norm="layer")
    s = lnn.plane(net, F.cross_entropy, (x, y), (d1, d2), steps=3, progress=False)
    assert "skip" in s.metadata["engine"]["split"]["affine_layers"]
    ref = reference(net, d1, d2, s.coords("alpha"), s.coords("beta"), x, y)
    np.testing.assert_allclose(s.loss, ref, rtol=1e-5, atol=1e-6)


def test_float64_matches_float64_reference_tightly():
    net = _prepared(mlp, "mlp").double()
    x, y = _data("mlp")
    x = x.double()
    d1, d2 = lnn.random_plane(net, seed=1)
    s = lnn.plane(net, F.cross_entropy, (x, y), (d1, d2), steps=3, progress=False)
    ref = reference(net, d1, d2, s.coords("alpha"), s.coords("beta"), x, y)
    np.testing.assert_allclose(s.loss, ref, rtol=1e-12, atol=1e-12)
    assert s.metadata["dtype"] == "float64"


def test_dtype_float64_on_a_float32_model():
    net = _prepared(cnn, "cnn")
    x, y = _data("cnn")
    d1, d2 = lnn.random_plane(net, seed=1)
    s32 = lnn.plane(net, F.cross_entropy, (x, y), (d1, d2), steps=3, progress=False)
    s64 = lnn.plane(
        net, F.cross_entropy, (x, y), (d1, d2), steps=3, progress=False, dtype="float64"
    )
    np.testing.assert_allclose(s64.loss, s32.loss, rtol=1e-5)
    assert next(net.parameters()).dtype == torch.float32


def test_user_model_is_never_changed_even_after_an_error():
    net = _prepared(cnn, "cnn")
    net.train()
    net[1].eval()  # mixed flags must come back exactly
    before = {k: v.clone() for k, v in net.state_dict().items()}
    flags = [m.training for m in net.modules()]
    x, y = _data("cnn")
    d = lnn.random_plane(net, seed=0, ignore=None)
    for bn in ("eval", "batch", "recompute"):
        lnn.plane(net, F.cross_entropy, (x, y), d, steps=2, bn=bn, progress=False)
        lnn.line(net, F.cross_entropy, (x, y), d[0], steps=3, bn=bn, progress=False)
    calls = {"n": 0}

    def flaky(out, target):
        calls["n"] += 1
        if calls["n"] > 12:  # after the probe (at most 9 calls), mid-grid
            raise RuntimeError("boom")
        return F.cross_entropy(out, target)

    with pytest.raises(RuntimeError, match="boom"):
        lnn.plane(net, flaky, (x, y), d, steps=3, progress=False)
    after = net.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert [m.training for m in net.modules()] == flags


def test_evaluate_params_matches_loading_the_weights():
    net = _prepared(cnn, "cnn")
    x, y = _data("cnn")
    d = lnn.random_direction(net, seed=0)
    params = {n: p.detach() + 0.3 * d.tensors[n] for n, p in net.named_parameters()}
    got = lnn.evaluate_params(net, F.cross_entropy, (x, y), params, metrics="accuracy")
    ref = copy.deepcopy(net)
    ref.load_state_dict(params, strict=False)
    with torch.no_grad():
        out = ref(x)
    assert got["loss"] == pytest.approx(float(F.cross_entropy(out, y)), rel=1e-5)
    assert got["accuracy"] == pytest.approx(float((out.argmax(1) == y).float().mean()))


def test_convolutional_tiles_are_sized_by_their_largest_activation(monkeypatch):
    from lossmap.nn import engine

    net = _prepared(cnn, "cnn")
    x, y = _data("cnn", n=60)
    d1, d2 = lnn.random_plane(net, seed=3)
    # the largest activation is the first convolution's: 4·8·8 floats a row
    monkeypatch.setattr(engine, "TILE_ACTIVATION_BYTES", 4 * 8 * 8 * 4 * 11)
    auto = lnn.plane(net, F.cross_entropy, (x, y), (d1, d2), steps=3, progress=False)
    assert auto.metadata["engine"]["tile_rows"] == 11
    monkeypatch.setattr(engine, "TILE_ACTIVATION_BYTES", 1)
    tiny = lnn.plane(net, F.cross_entropy, (x, y), (d1, d2), steps=3, progress=False)
    assert tiny.metadata["engine"]["tile_rows"] == engine.MIN_TILE_ROWS
    given = lnn.plane(
        net, F.cross_entropy, (x, y), (d1, d2), steps=3, progress=False, batch_size=7
    )
    assert given.metadata["engine"]["tile_rows"] == 7
    ref = reference(net, d1, d2, auto.coords("alpha"), auto.coords("beta"), x, y)
    for s in (auto, tiny, given):
        np.testing.assert_allclose(s.loss, ref, rtol=1e-5, atol=1e-6)


class Residual(torch.nn.Module):
    """relu on a value that is used again (must not be made in-place)."""

    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(70, 16)
        self.fc2 = torch.nn.Linear(16, 16)
        self.out = torch.nn.Linear(16, 3)

    def forward(self, x):
        h = self.fc1(x)
        g = torch.relu(h) + h  # h has two users
        k = self.fc2(g)
        return self.out(torch.nn.functional.relu(k))  # k is fresh: in-place


@pytest.mark.parametrize("strategy", ["vmap", "loop"])
def test_in_place_relu_only_where_nothing_else_reads_its_input(strategy):
    from lossmap.nn import _split

    torch.manual_seed(0)
    net = Residual()
    split = _split.build_split(net, {n for n, _ in net.named_parameters()})
    inplace = [n for n in split.rest.graph.nodes if n.target is torch.relu_]
    assert [n.args[0].target for n in inplace] == ["fc2"]
    x, y = _data("mlp")
    d1, d2 = lnn.random_plane(net, seed=5)
    s = lnn.plane(
        net,
        F.cross_entropy,
        (x, y),
        (d1, d2),
        steps=4,
        progress=False,
        strategy=strategy,
        batch_size=9,
    )
    ref = reference(net, d1, d2, s.coords("alpha"), s.coords("beta"), x, y)
    np.testing.assert_allclose(s.loss, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("chunk", [1, 2, 3, (7, 1), None])
def test_grid_runs_in_full_passes_whatever_the_chunks(monkeypatch, chunk):
    """Chunks are grouped into whole engine passes (the rest of a chunk waits
    for the next one): ceil(points / points per pass) passes, every chunk
    written once, and the same numbers as any other chunking."""
    from lossmap.nn import engine

    net = _prepared(mlp, "mlp")
    x, y = _data("mlp", n=12)
    d1, d2 = lnn.random_plane(net, seed=1)
    monkeypatch.setattr(engine, "MAX_POINTS_PER_PASS", 8)
    passes = []
    batch = engine.Evaluator._batch
    monkeypatch.setattr(
        engine.Evaluator,
        "_batch",
        lambda self, c: passes.append(c.shape[0]) or batch(self, c),
    )
    kw = dict(steps=(7, 5), span=0.8, strategy="vmap", progress=False)
    s = lnn.plane(net, F.cross_entropy, (x, y), (d1, d2), chunk=chunk, **kw)
    assert passes == [8, 8, 8, 8, 3]
    assert s.metadata["engine"]["points_per_pass"] == 8
    ref = reference(net, d1, d2, s.coords("alpha"), s.coords("beta"), x, y)
    np.testing.assert_allclose(s.loss, ref, rtol=1e-5, atol=1e-5)
    monkeypatch.setattr(engine, "MAX_POINTS_PER_PASS", 35)
    passes.clear()
    whole = lnn.plane(net, F.cross_entropy, (x, y), (d1, d2), chunk=(7, 5), **kw)
    assert passes == [35]
    np.testing.assert_allclose(s.loss, whole.loss, rtol=1e-6, atol=0)


def test_full_passes_store_every_chunk_once(monkeypatch, tmp_path):
    from lossmap.io import GridStore
    from lossmap.nn import engine

    net = _prepared(mlp, "mlp")
    x, y = _data("mlp", n=12)
    d1, d2 = lnn.random_plane(net, seed=1)
    monkeypatch.setattr(engine, "MAX_POINTS_PER_PASS", 8)
    written = []
    write = GridStore.write
    monkeypatch.setattr(
        GridStore,
        "write",
        lambda self, idx, b: written.append(idx) or write(self, idx, b),
    )
    kw = dict(steps=(7, 5), span=0.8, chunk=3, strategy="vmap", progress=False)
    s = lnn.plane(net, F.cross_entropy, (x, y), (d1, d2), store=tmp_path / "s", **kw)
    assert sorted(map(tuple, written)) == [(i, j) for i in range(3) for j in range(2)]
    ref = reference(net, d1, d2, s.coords("alpha"), s.coords("beta"), x, y)
    np.testing.assert_allclose(s.loss, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])  # split / rewrite only
def test_a_graph_module_is_rewritten_on_a_copy_of_its_graph(kind):
    """A GraphModule model: the per-point rewrites (in-place relu here) go
    into a new module; the user's graph and code stay as they were, and the
    numbers match the reference."""
    gm = torch.fx.symbolic_trace(_prepared(mlp if kind == "mlp" else cnn, kind))
    code, nodes = gm.code, [(n.op, n.target) for n in gm.graph.nodes]
    x, y = _data(kind)
    d1, d2 = lnn.random_plane(gm, seed=1)
    s = lnn.plane(
        gm, F.cross_entropy, (x, y), (d1, d2), steps=3, strategy="loop", progress=False
    )
    engine = s.metadata["engine"]
    assert (engine["split"] or engine["rewritten"])["in_place_relu"] == 1
    assert gm.code == code
    assert [(n.op, n.target) for n in gm.graph.nodes] == nodes
    ref = reference(gm, d1, d2, s.coords("alpha"), s.coords("beta"), x, y)
    np.testing.assert_allclose(s.loss, ref, rtol=1e-5, atol=1e-5)


def test_vmap_with_nothing_moving_gives_the_centre_everywhere():
    """Zero directions: nothing is batched but the coefficients themselves."""
    net = _prepared(mlp, "mlp")
    x, y = _data("mlp")
    zero = lnn.Direction({n: torch.zeros_like(p) for n, p in net.named_parameters()})
    s = lnn.plane(
        net,
        F.cross_entropy,
        (x, y),
        (zero, zero),
        steps=3,
        strategy="vmap",
        progress=False,
    )
    assert "fallback" not in s.metadata["engine"]
    with torch.no_grad():
        centre = float(F.cross_entropy(net(x), y))
    np.testing.assert_allclose(s.loss, np.full((3, 3), centre), rtol=1e-6)


class InputTwice(torch.nn.Module):
    """The input feeds an affine first layer and, unchanged, a later sum."""

    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(3, 70)
        self.fc2 = torch.nn.Linear(70, 3)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x))) + x


@pytest.mark.parametrize("model", [mlp, InputTwice])
def test_a_prefix_of_inputs_only_needs_no_generated_module(model):
    """When every cached value and affine input is the model input itself,
    the prefix just repeats it (no GraphModule is built); same numbers."""
    from lossmap.nn import _split

    torch.manual_seed(0)
    net = model()
    moved = {n for n, _ in net.named_parameters()}
    split = _split.build_split(net, moved)
    first = "1" if model is mlp else "fc1"
    assert [p for p, _ in split.affine] == [first]
    if model is mlp:  # Flatten comes first: a real prefix
        assert isinstance(split.prefix, torch.fx.GraphModule)
        return
    assert isinstance(split.prefix, _split._Inputs)
    assert split.n_frontier == 1  # x, cached for the sum, and fc1's input
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 3, generator=g)
    y = torch.randn(30, 3, generator=g)
    d1, d2 = lnn.random_plane(net, seed=2)
    for strategy in ("vmap", "loop"):
        s = lnn.plane(
            net,
            F.mse_loss,
            (x, y),
            (d1, d2),
            steps=3,
            strategy=strategy,
            progress=False,
        )
        assert s.metadata["engine"]["split"]["affine_layers"] == ["fc1"]
        ref = reference(
            net, d1, d2, s.coords("alpha"), s.coords("beta"), x, y, metric=F.mse_loss
        )
        np.testing.assert_allclose(s.loss, ref, rtol=1e-5, atol=1e-6)
