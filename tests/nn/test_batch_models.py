"""Real research models through the batch contract, exact at every tile size.

Every value is compared with an independent full-batch reference computed
here with ``torch.func.functional_call`` on all the data at once.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
transformers = pytest.importorskip("transformers")

from torch.func import functional_call  # noqa: E402

from lossmap import nn as lnn  # noqa: E402

TILES = [1, 7, 64, None]  # None: the default, all 12 rows in one tile


def _padded_tokens(n=12, length=8, vocab=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (n, length), generator=g)
    lens = torch.randint(3, length + 1, (n,), generator=g)
    mask = (torch.arange(length)[None] < lens[:, None]).long()
    return ids * mask, mask


def _bert():
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        num_labels=3,
    )
    model = transformers.BertForSequenceClassification(cfg).eval()
    ids, mask = _padded_tokens()
    labels = torch.randint(0, 3, (12,), generator=torch.Generator().manual_seed(1))
    return model, {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _gpt2():
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=50, n_embd=16, n_layer=2, n_head=2, n_positions=32
    )
    model = transformers.GPT2LMHeadModel(cfg).eval()
    ids, mask = _padded_tokens(seed=2)
    labels = ids.masked_fill(mask == 0, -100)
    return model, {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _reference_plane(model, read, surface, d1, d2):
    """Per-point reference: load θ₀ + a·d₁ + b·d₂, run all data at once."""
    center = {n: p.detach() for n, p in model.named_parameters()}
    out = np.empty(surface.shape)
    with torch.no_grad():
        for i, a in enumerate(surface.coords("alpha")):
            for j, b in enumerate(surface.coords("beta")):
                params = {
                    n: c + float(a) * d1.tensors[n] + float(b) * d2.tensors[n]
                    for n, c in center.items()
                }
                out[i, j] = float(read(params))
    return out


@pytest.mark.parametrize("batch_size", TILES)
def test_hf_classifier_centre_equals_its_own_loss(batch_size):
    model, batch = _bert()
    with torch.no_grad():
        ref = model(**batch)
    acc = float((ref.logits.argmax(-1) == batch["labels"]).float().mean())
    got = lnn.evaluate_params(
        model, lnn.OUTPUT_LOSS, batch, batch_size=batch_size, metrics="accuracy"
    )
    assert got["loss"] == pytest.approx(float(ref.loss), rel=1e-5)
    assert got["accuracy"] == pytest.approx(acc)


@pytest.mark.parametrize(
    ("batch_size", "engine"),
    [(b, {}) for b in TILES]
    + [(7, {"strategy": "loop"}), (7, {"strategy": "vmap"}), (7, {"optimize": False})],
)
def test_hf_classifier_plane_equals_per_point_reference(batch_size, engine):
    model, batch = _bert()
    d1, d2 = lnn.random_plane(model, seed=0)
    s = lnn.plane(
        model,
        "output.loss",
        batch,
        (d1, d2),
        steps=3,
        span=0.5,
        batch_size=batch_size,
        progress=False,
        **engine,
    )

    def read(params):
        return functional_call(model, params, (), batch).loss

    np.testing.assert_allclose(
        s.loss, _reference_plane(model, read, s, d1, d2), rtol=2e-5
    )
    with torch.no_grad():
        assert s.loss[1, 1] == pytest.approx(float(model(**batch).loss), rel=1e-5)
    assert s.metadata["data"]["kind"] == "mapping"
    if engine.get("optimize") is False:
        assert s.metadata["engine"]["strategy"] == "loop"
        assert s.metadata["engine"]["split"] is None


def test_custom_loss_on_output_and_batch():
    model, batch = _bert()

    def smoothed(output, b):  # loss_fn(output, batch): reads labels itself
        return F.cross_entropy(output.logits, b["labels"], label_smoothing=0.1)

    with torch.no_grad():
        ref = smoothed(model(**batch), batch)
    for bs in TILES:
        got = lnn.evaluate_params(model, smoothed, batch, batch_size=bs)
        assert got["loss"] == pytest.approx(float(ref), rel=1e-5)


def test_causal_lm_token_loss_is_exact_and_output_loss_is_refused():
    model, batch = _gpt2()
    with torch.no_grad():
        ref = float(model(**batch).loss)  # mean over the non-padding tokens
    loss = lnn.token_cross_entropy(shift=True)
    for bs in TILES:
        got = lnn.evaluate_params(model, loss, batch, batch_size=bs)
        assert got["loss"] == pytest.approx(ref, rel=1e-5)
    # HuggingFace's own loss is a token mean per call: tiling would change it
    with pytest.raises(ValueError, match="depends on how the data is tiled"):
        lnn.evaluate_params(model, "output.loss", batch, batch_size=5)
    # ... unless the whole data is one tile
    whole = lnn.evaluate_params(model, "output.loss", batch, reduction="batch")
    assert whole["loss"] == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("batch_size", [1, 5, None])
def test_causal_lm_plane_with_masked_tokens(batch_size):
    model, batch = _gpt2()
    d1, d2 = lnn.random_plane(model, seed=3)
    s = lnn.plane(
        model,
        lnn.token_cross_entropy(shift=True),
        batch,
        (d1, d2),
        steps=3,
        span=0.3,
        batch_size=batch_size,
        metrics="accuracy",
        progress=False,
    )

    def read(params):
        return functional_call(model, params, (), batch).loss

    np.testing.assert_allclose(
        s.loss, _reference_plane(model, read, s, d1, d2), rtol=2e-5
    )


def test_lora_plane_moves_only_the_adapter():
    peft = pytest.importorskip("peft")
    model, batch = _bert()
    cfg = peft.LoraConfig(r=2, lora_alpha=4, target_modules=["query", "value"])
    torch.manual_seed(0)  # the adapters' initial values come from the global RNG
    lora = peft.get_peft_model(model, cfg).eval()
    for n, p in lora.named_parameters():  # adapters start at B = 0: move them
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.1)
    d1, d2 = lnn.random_plane(lora, seed=0)
    s = lnn.plane(
        lora,
        "output.loss",
        batch,
        (d1, d2),
        steps=3,
        span=0.5,
        batch_size=7,
        params="*lora_*",
        progress=False,
    )
    names = set(s.metadata["params"]["names"])
    assert names
    assert all("lora_" in n for n in names)
    # the plane's directions: zero outside the adapters
    restricted = [
        lnn.Direction(
            {
                n: (t if n in names else torch.zeros_like(t))
                for n, t in d.tensors.items()
            }
        )
        for d in (d1, d2)
    ]
    recorded = s.metadata["directions"][0]["params"]["names"]
    assert set(recorded) == names

    def read(params):
        return functional_call(lora, params, (), batch).loss

    ref = _reference_plane(lora, read, s, *restricted)
    np.testing.assert_allclose(s.loss, ref, rtol=2e-5)
    assert np.ptp(s.loss) > 1e-6  # the adapters do move the loss (float32: ~1e-7)


# ------------------------------------------------- physics-informed MLP
class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Linear(1, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)
        )

    def forward(self, x):
        return self.body(x)


def _pinn_data():
    g = torch.Generator().manual_seed(0)
    x_data = torch.rand(7, 1, generator=g) * 3
    x_col = torch.linspace(0, 3, 23).reshape(-1, 1)
    x = torch.cat([x_data, x_col])
    u = torch.cat([torch.sin(x_data), torch.zeros(23, 1)])
    is_data = torch.cat(
        [torch.ones(7, dtype=torch.bool), torch.zeros(23, dtype=torch.bool)]
    )
    perm = torch.randperm(30, generator=g)  # data and collocation rows mixed
    return {"x": x[perm], "u": u[perm], "is_data": is_data[perm]}


def _data_term(out, b):
    return lnn.sum_count((out - b["u"]).squeeze(-1) ** 2, b["is_data"])


def _residual_term(out, b):
    (du,) = torch.autograd.grad(out.sum(), b["x"], create_graph=True)
    r = (du - torch.cos(b["x"])).squeeze(-1)
    return lnn.sum_count(r**2, ~b["is_data"])


def _pinn_reference(model, params, data):
    x = data["x"].clone().requires_grad_(True)
    out = functional_call(model, params, (x,))
    (du,) = torch.autograd.grad(out.sum(), x)
    keep = data["is_data"]
    data_mse = float(((out - data["u"])[keep] ** 2).mean().detach())
    res = float(((du - torch.cos(x))[~keep] ** 2).mean().detach())
    return data_mse, res


@pytest.mark.parametrize("batch_size", [1, 7, 20, 64])
def test_pinn_terms_with_autograd_are_exact_at_every_tile_size(batch_size):
    torch.manual_seed(0)
    model = _Net()
    data = _pinn_data()
    d1, d2 = lnn.random_plane(model, seed=1)
    s = lnn.plane(
        model,
        {"data": _data_term, "residual": _residual_term},
        data,
        (d1, d2),
        weights={"residual": 0.1},
        call=lambda m, b: m(b["x"].requires_grad_(True)),
        steps=3,
        span=0.5,
        batch_size=batch_size,
        progress=False,
    )
    assert s.field_names[:3] == ("loss", "data", "residual")
    assert s.metadata["engine"]["needs_grad"] is True
    center = {n: p.detach() for n, p in model.named_parameters()}
    for i, a in enumerate(s.coords("alpha")):
        for j, b in enumerate(s.coords("beta")):
            params = {
                n: c + float(a) * d1.tensors[n] + float(b) * d2.tensors[n]
                for n, c in center.items()
            }
            dm, res = _pinn_reference(model, params, data)
            assert s.field("data")[i, j] == pytest.approx(dm, rel=1e-5)
            assert s.field("residual")[i, j] == pytest.approx(res, rel=1e-5)
            assert s.loss[i, j] == pytest.approx(dm + 0.1 * res, rel=1e-5)


class _ResidualNet(_Net):
    """Autograd inside forward: returns u and du/dx."""

    def forward(self, x):
        x = x.requires_grad_(True)
        u = self.body(x)
        (du,) = torch.autograd.grad(u.sum(), x, create_graph=True)
        return torch.cat([u, du], dim=-1)


def test_autograd_inside_forward_works_in_every_entry_point():
    torch.manual_seed(0)
    model = _ResidualNet()
    x = torch.linspace(0, 3, 17).reshape(-1, 1)
    target = torch.cat([torch.sin(x), torch.cos(x)], dim=-1)
    ref = float(F.mse_loss(model(x.clone()), target))
    for bs in (1, 5, None):
        got = lnn.evaluate_params(model, F.mse_loss, (x, target), batch_size=bs)
        assert got["loss"] == pytest.approx(ref, rel=1e-5)
    d = lnn.random_direction(model, seed=0)
    line = lnn.line(model, F.mse_loss, (x, target), d, steps=3, progress=False)
    assert line.loss[1] == pytest.approx(ref, rel=1e-5)
    assert np.isfinite(line.loss).all()


@pytest.mark.parametrize(
    ("batch_size", "strategy"),
    [(1, "auto"), (7, "auto"), (64, "auto"), (7, "vmap"), (7, "loop")],
)
def test_sum_reduction_is_the_total_at_every_tile_size(batch_size, strategy):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)
    )
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 3, generator=g), torch.randn(40, 1, generator=g)

    def sse(out, t):
        return F.mse_loss(out, t, reduction="sum")

    d1, d2 = lnn.random_plane(model, seed=0)
    s = lnn.plane(
        model,
        sse,
        (x, y),
        (d1, d2),
        reduction="sum",
        steps=3,
        batch_size=batch_size,
        strategy=strategy,
        progress=False,
    )

    def read(params):
        return sse(functional_call(model, params, (x,)), y)

    np.testing.assert_allclose(
        s.loss, _reference_plane(model, read, s, d1, d2), rtol=1e-5
    )


def test_a_shuffled_loader_of_mappings_gives_the_values_of_the_whole_batch():
    model, batch = _bert()
    rows = [{k: v[i] for k, v in batch.items()} for i in range(12)]
    loader = torch.utils.data.DataLoader(rows, batch_size=5, shuffle=True)
    d1, d2 = lnn.random_plane(model, seed=0)
    kw = {"steps": 2, "span": 0.5, "batch_size": 4, "progress": False}
    whole = lnn.plane(model, "output.loss", batch, (d1, d2), **kw)
    read = lnn.plane(model, "output.loss", loader, (d1, d2), **kw)
    np.testing.assert_allclose(read.loss, whole.loss, rtol=1e-5)
    assert read.metadata["fingerprint"]["data"] == whole.metadata["fingerprint"]["data"]


def test_options_object_equals_keywords_and_keywords_win():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(3, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)
    )
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 3, generator=g), torch.randint(0, 3, (30,), generator=g)
    d = lnn.random_plane(net, seed=0)
    opts = lnn.Options(metrics="accuracy", batch_size=7, progress=False)
    a = lnn.plane(net, F.cross_entropy, (x, y), d, steps=3, options=opts)
    b = lnn.plane(
        net,
        F.cross_entropy,
        (x, y),
        d,
        steps=3,
        metrics="accuracy",
        batch_size=7,
        progress=False,
    )
    np.testing.assert_array_equal(a.loss, b.loss)
    assert a.field_names == b.field_names == ("loss", "accuracy")
    c = lnn.plane(net, F.cross_entropy, (x, y), d, steps=3, options=opts, metrics=None)
    assert c.field_names == ("loss",)
    with pytest.raises(
        TypeError, match=r"unexpected keyword argument\(s\) \['store'\]"
    ):
        lnn.evaluate_params(net, F.cross_entropy, (x, y), store="s.zarr")
    grid = lnn.Options(store="s.zarr")
    with pytest.raises(TypeError, match=r"options \['store'\] apply to grids only"):
        lnn.evaluate_params(net, F.cross_entropy, (x, y), options=grid)
    with pytest.raises(TypeError, match="takes the point as `params`"):
        lnn.evaluate_params(net, F.cross_entropy, (x, y), center=net)
