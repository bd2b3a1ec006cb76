"""Directions: normalisation (Li et al. 2018), seeds, and directions between models."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lossmap import nn as lnn  # noqa: E402


def _net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 5, 3),
        torch.nn.BatchNorm2d(5),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(5 * 4 * 4, 7),
        torch.nn.ReLU(),
        torch.nn.Linear(7, 2),
    )


def _filter_norms(t):
    return t.reshape(t.shape[0], -1).norm(dim=1)


def test_filter_normalisation_gives_each_filter_the_weights_filter_norm():
    net = _net()
    d = lnn.random_direction(net, seed=3)
    for name in ("0.weight", "4.weight", "6.weight"):
        w = dict(net.named_parameters())[name].detach()
        torch.testing.assert_close(_filter_norms(d.tensors[name]), _filter_norms(w))
    # default ignore="biasbn": biases and BatchNorm parameters stay fixed
    for name in ("0.bias", "1.weight", "1.bias", "4.bias", "6.bias"):
        assert torch.count_nonzero(d.tensors[name]) == 0
    assert set(d.moved()) == {"0.weight", "4.weight", "6.weight"}


def test_filter_normalisation_keeps_the_gaussian_direction_of_each_filter():
    net = _net()
    raw = lnn.random_direction(net, seed=3, norm=None)
    d = lnn.random_direction(net, seed=3)
    a, b = raw.tensors["4.weight"], d.tensors["4.weight"]
    cos = torch.nn.functional.cosine_similarity(a, b, dim=1)
    torch.testing.assert_close(cos, torch.ones(7))


def test_ignore_none_moves_one_dimensional_parameters_scaled_as_one_filter():
    net = _net()
    d = lnn.random_direction(net, seed=1, ignore=None)
    # BatchNorm's bias starts at zero, so a normalised direction leaves it fixed
    assert set(d.moved()) == set(lnn.ParamSpace(net).names) - {"1.bias"}
    assert "1.bias" in lnn.random_direction(net, seed=1, ignore=None, norm=None).moved()
    b = net[4].bias.detach()
    torch.testing.assert_close(d.tensors["4.bias"].norm(), b.norm())


def test_layer_and_model_normalisation():
    net = _net()
    params = dict(net.named_parameters())
    d = lnn.random_direction(net, seed=2, norm="layer")
    for name in d.moved():
        torch.testing.assert_close(d.tensors[name].norm(), params[name].detach().norm())
    m = lnn.random_direction(net, seed=2, norm="model")
    moved_norm = torch.sqrt(sum(params[n].detach().pow(2).sum() for n in m.moved()))
    assert m.norm() == pytest.approx(float(moved_norm), rel=1e-6)


def test_ignore_patterns():
    net = _net()
    d = lnn.random_direction(net, seed=0, ignore=["0.*", "*.bias", "1.*"])
    assert set(d.moved()) == {"4.weight", "6.weight"}
    with pytest.raises(ValueError, match="matches no parameter"):
        lnn.random_direction(net, seed=0, ignore=["fc9.*"])


def test_seeds_reproducible_and_plane_directions_distinct():
    net = _net()
    a = lnn.random_direction(net, seed=5)
    b = lnn.random_direction(net, seed=5)
    assert torch.equal(a.flat(), b.flat())
    d1, d2 = lnn.random_plane(net, seed=5)
    assert torch.equal(d1.flat(), a.flat())
    assert not torch.equal(d2.flat(), d1.flat())
    assert d2.meta["index"] == 1
    assert d2.meta["seed"] == 5
    again = lnn.random_directions(net, 1, seed=5, first_index=1)[0]
    assert torch.equal(again.flat(), d2.flat())
    json.dumps(d2.meta)


def test_orthogonalize_makes_exactly_orthogonal_and_keeps_norm():
    net = _net()
    _, d2 = lnn.random_plane(net, seed=0)
    o1, o2 = lnn.random_plane(net, seed=0, orthogonalize=True)
    assert abs(o1.dot(o2)) < 1e-5 * o1.norm() * o2.norm()
    assert o2.norm() == pytest.approx(d2.norm(), rel=1e-6)
    assert o2.meta["orthogonalized"] is True


def test_flat_from_flat_norm():
    net = _net()
    d = lnn.random_direction(net, seed=0)
    back = lnn.Direction.from_flat(net, d.flat(), d.meta)
    assert torch.equal(back.flat(), d.flat())
    assert back.meta == d.meta
    assert d.norm() == pytest.approx(float(d.flat().double().norm()), rel=1e-12)


def test_interpolation_and_plane_through():
    a, b, c = _net(0), _net(1), _net(2)
    d = lnn.interpolation(a, b)
    pa = torch.nn.utils.parameters_to_vector(a.parameters()).detach()
    pb = torch.nn.utils.parameters_to_vector(b.parameters()).detach()
    pc = torch.nn.utils.parameters_to_vector(c.parameters()).detach()
    torch.testing.assert_close(d.flat(), pb - pa)
    u, v = lnn.plane_through(a, b, c)
    t, one = u.meta["points"]["c"]
    assert one == 1.0
    torch.testing.assert_close(pa + t * u.flat() + v.flat(), pc, atol=1e-6, rtol=0)
    assert abs(u.dot(v)) < 1e-4
    with pytest.raises(ValueError, match="identical parameters"):
        lnn.plane_through(a, a, c)
    with pytest.raises(ValueError, match="one line"):
        lnn.plane_through(a, b, b)


def test_axis_directions_and_from_tensors():
    net = _net()
    d1, d2 = lnn.axis_directions(net, "4.weight[3, 7]", "6.bias[0]")
    assert d1.moved() == ("4.weight",)
    assert d1.tensors["4.weight"][3, 7] == 1
    assert d1.norm() == 1.0
    assert d2.norm() == 1.0
    assert d2.meta == {"kind": "axis", "entry": "6.bias[0]"}
    u = lnn.from_tensors(
        net, {"6.bias": torch.tensor([1.0, -1.0])}, meta={"kind": "mine"}
    )
    assert u.moved() == ("6.bias",)
    assert u.meta == {"kind": "mine"}
    assert len(u.tensors) == len(lnn.ParamSpace(net))
    with pytest.raises(ValueError, match="must have shape"):
        lnn.from_tensors(net, {"6.bias": torch.zeros(3)})


def test_random_direction_errors():
    net = _net()
    with pytest.raises(ValueError, match="`norm` must be one of"):
        lnn.random_direction(net, seed=0, norm="unit")
    with pytest.raises(ValueError, match="`ignore` must be one of"):
        lnn.random_direction(net, seed=0, ignore="weights")
    with pytest.raises(TypeError, match="`seed` must be an integer"):
        lnn.random_direction(net, seed=0.5)


def test_directions_follow_parameter_dtype():
    net = _net().double()
    d = lnn.random_direction(net, seed=0)
    assert all(t.dtype == torch.float64 for t in d.tensors.values())
    assert np.isfinite(d.norm())
