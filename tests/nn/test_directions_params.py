"""Every direction kind restricted to a parameter selection (``params=``)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lossmap import nn as lnn  # noqa: E402


def _net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(3, 6),
        torch.nn.Tanh(),
        torch.nn.Linear(6, 5),
        torch.nn.Tanh(),
        torch.nn.Linear(5, 2),
    )


def _outside_is_zero(d, keep):
    for name, t in d.tensors.items():
        if name not in keep:
            assert torch.count_nonzero(t) == 0, name


@pytest.mark.parametrize("norm", ["filter", "layer", None])
def test_random_restricted_equals_the_unrestricted_draw_on_the_selection(norm):
    net = _net()
    full = lnn.random_direction(net, seed=4, norm=norm, ignore=None)
    part = lnn.random_direction(net, seed=4, norm=norm, ignore=None, params="2")
    keep = {"2.weight", "2.bias"}
    assert set(part.moved()) == keep
    _outside_is_zero(part, keep)
    for name in keep:  # per-filter and per-tensor scales do not see the rest
        torch.testing.assert_close(part.tensors[name], full.tensors[name])
    assert part.meta["params"]["names"] == ["2.weight", "2.bias"]
    assert part.meta["params"]["description"] == (
        "parameters of '2' (2 tensors, 35 values)"
    )
    json.dumps(part.meta)  # stays JSON-friendly
    assert "params" not in full.meta  # default metadata unchanged


def test_random_model_norm_scales_to_the_selected_weights():
    net = _net()
    d = lnn.random_direction(net, seed=2, norm="model", params=net[4])
    assert set(d.moved()) == {"4.weight"}  # ignore="biasbn" still drops 4.bias
    torch.testing.assert_close(
        d.tensors["4.weight"].norm(), net[4].weight.detach().norm()
    )


def test_random_plane_and_ignore_conflict():
    net = _net()
    d1, d2 = lnn.random_plane(net, seed=0, params="*.weight", orthogonalize=True)
    for d in (d1, d2):
        _outside_is_zero(d, {"0.weight", "2.weight", "4.weight"})
    assert abs(d1.dot(d2)) < 1e-6 * d1.norm() * d2.norm()
    with pytest.raises(ValueError, match="leave no parameter to move"):
        lnn.random_direction(net, seed=0, params="*.bias")
    assert set(lnn.random_direction(net, seed=0, params="*.bias", ignore=None).moved())
    with pytest.raises(ValueError, match=r"`params` entry 'fc9' matches no"):
        lnn.random_plane(net, seed=0, params="fc9")


def test_interpolation_and_plane_through_restricted():
    a, b, c = _net(0), _net(1), _net(2)
    d = lnn.interpolation(a, b, params=a[0])
    _outside_is_zero(d, {"0.weight", "0.bias"})
    torch.testing.assert_close(d.tensors["0.weight"], b[0].weight - a[0].weight)
    assert d.meta["params"]["spec"] == {"module": "0", "type": "Linear"}
    u, w = lnn.plane_through(a, b, c, params=["0.*", "4.weight"])
    keep = {"0.weight", "0.bias", "4.weight"}
    _outside_is_zero(u, keep)
    _outside_is_zero(w, keep)
    assert abs(u.dot(w)) < 1e-5 * u.norm() * w.norm()
    # the reference: the same construction on the selected entries only
    sel = lambda m: torch.cat(  # noqa: E731
        [dict(m.named_parameters())[n].detach().reshape(-1) for n in sorted(keep)]
    )
    uu = sel(b) - sel(a)
    vv = sel(c) - sel(a)
    t = float(vv @ uu / (uu @ uu))
    assert u.meta["points"]["c"][0] == pytest.approx(t, rel=1e-5)
    same = copy.deepcopy(a)
    with torch.no_grad():
        same[2].weight.add_(1.0)  # differs from a only outside the selection
    with pytest.raises(ValueError, match="identical parameters in the selected"):
        lnn.plane_through(a, same, c, params="0")


def test_axis_and_from_tensors_restricted():
    net = _net()
    (d,) = lnn.axis_directions(net, "2.weight[1, 3]", params="2")
    assert d.meta["params"]["n_tensors"] == 2
    with pytest.raises(ValueError, match=r"'0\.weight\[0, 0\]' lies outside `params`"):
        lnn.axis_directions(net, "0.weight[0, 0]", params="2")
    grads = {n: torch.ones_like(p) for n, p in net.named_parameters()}
    g = lnn.from_tensors(net, grads, params=lambda n, t: n.startswith("4."))
    assert set(g.moved()) == {"4.weight", "4.bias"}
    _outside_is_zero(g, {"4.weight", "4.bias"})
    assert g.meta["params"]["spec"] == {"callable": "<lambda>"}


# ------------------------------------------------------------- LoRA (peft)
def _lora_model():
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=16,
    )
    base = transformers.LlamaForCausalLM(cfg)  # random weights, no download
    config = peft.LoraConfig(
        r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    return peft.get_peft_model(base, config)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # transformers internals
def test_lora_plane_moves_the_adapters_only_and_matches_a_per_point_reference():
    model = _lora_model()
    names = [n for n, _ in model.named_parameters()]
    lora = {n for n in names if "lora_" in n}
    assert len(lora) == 8
    assert len(names) > len(lora)
    d1, d2 = lnn.random_plane(model, seed=0, params="*lora_*")
    for d in (d1, d2):
        assert set(d.moved()) == lora
        _outside_is_zero(d, lora)  # every other parameter: exactly zero
        assert d.meta["params"]["n_tensors"] == 8
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 32, (6, 8), generator=gen)
    y = torch.randint(0, 32, (6, 8), generator=gen)

    def loss_fn(out, target):
        return torch.nn.functional.cross_entropy(
            out.logits.reshape(-1, 32), target.reshape(-1)
        )

    before = {k: v.clone() for k, v in model.state_dict().items()}
    s = lnn.plane(model, loss_fn, (x, y), (d1, d2), steps=3, span=0.5, progress=False)
    for k, v in model.state_dict().items():  # the user's model is untouched
        assert torch.equal(v, before[k])
    assert s.metadata["directions"][0]["params"]["names"] == sorted(
        lora, key=names.index
    )
    # reference: a copy with its adapter weights set by hand, plain forward
    alphas, betas = s.coords("alpha"), s.coords("beta")
    for i, a in enumerate(alphas):
        for j, b in enumerate(betas):
            ref = copy.deepcopy(model).eval()
            with torch.no_grad():
                for n, p in ref.named_parameters():
                    p.add_(float(a) * d1.tensors[n] + float(b) * d2.tensors[n])
                want = float(loss_fn(ref(x), y))
            assert s.field("loss")[i, j] == pytest.approx(want, rel=1e-5, abs=1e-6)
    assert np.ptp(s.field("loss")) > 0


def test_random_lines_restricted():
    net = _net()
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 3, generator=gen), torch.randn(16, 2, generator=gen)
    out = lnn.random_lines(
        net,
        torch.nn.functional.mse_loss,
        (x, y),
        count=2,
        seed=3,
        params="4.*",
        steps=3,
        progress=False,
    )
    metas = out.curves.metadata["directions"]
    assert [m["params"]["names"] for m in metas] == [["4.weight", "4.bias"]] * 2
    # each curve is the line along the restricted direction
    d = lnn.random_directions(net, 2, seed=3, params="4.*")[1]
    ref = lnn.line(
        net, torch.nn.functional.mse_loss, (x, y), d, steps=3, progress=False
    )
    np.testing.assert_allclose(out.curves.field("loss")[1], ref.field("loss"))
