"""ParamSpace: names, kinds, flattening and entry addresses."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from lossmap.nn import ParamSpace  # noqa: E402


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.BatchNorm2d(4),
        torch.nn.Flatten(),
        torch.nn.LayerNorm(4 * 6 * 6),
        torch.nn.Linear(4 * 6 * 6, 5),
    )


def test_names_shapes_kinds_follow_named_parameters():
    net = _net()
    space = ParamSpace(net)
    assert space.names == tuple(n for n, _ in net.named_parameters())
    assert space.shapes["0.weight"] == (4, 3, 3, 3)
    kinds = {n: space.kind(n) for n in space.names}
    assert kinds == {
        "0.weight": "weight",
        "0.bias": "bias",
        "1.weight": "norm",
        "1.bias": "norm",
        "3.weight": "norm",
        "3.bias": "norm",
        "4.weight": "weight",
        "4.bias": "bias",
    }
    assert space.size == sum(p.numel() for p in net.parameters())
    assert space.names_of_kind("bias") == ("0.bias", "4.bias")


def test_flatten_unflatten_round_trip_matches_parameters_to_vector():
    net = _net()
    space = ParamSpace(net)
    values = space.values(net)
    flat = space.flatten(values)
    ref = torch.nn.utils.parameters_to_vector(net.parameters()).detach()
    assert torch.equal(flat, ref)
    back = space.unflatten(flat)
    assert all(torch.equal(back[n], values[n]) for n in space.names)


def test_flatten_fills_missing_with_zeros():
    space = ParamSpace(torch.nn.Linear(2, 3))
    flat = space.flatten({"bias": torch.ones(3)})
    assert flat.tolist() == [0.0] * 6 + [1.0] * 3


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("4.weight[3, 7]", ("4.weight", (3, 7))),
        ("4.weight[-1,-1]", ("4.weight", (4, 143))),
        (" 4.bias[0] ", ("4.bias", (0,))),
        ("0.weight[1, 2, 0, 2]", ("0.weight", (1, 2, 0, 2))),
    ],
)
def test_entry_parses_addresses(spec, expected):
    assert ParamSpace(_net()).entry(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope[0]", "'nope' is not a parameter of the model"),
        ("4.weight[3]", "must have 2 index(es)"),
        ("4.weight[5, 0]", "index 5 of parameter entry"),
        ("4.weight", "needs an index"),
        ("4.weight[a, b]", "must be integers"),
        ("4.weight[1, 2", "cannot parse"),
    ],
)
def test_entry_errors(spec, message):
    with pytest.raises((ValueError, KeyError)) as info:
        ParamSpace(_net()).entry(spec)
    assert message in str(info.value)


def test_check_names_wrong_shape_and_unknown_name():
    space = ParamSpace(torch.nn.Linear(2, 3))
    with pytest.raises(ValueError, match=r"`d`\['weight'\] must have shape \(3, 2\)"):
        space.check({"weight": torch.zeros(2, 3)}, what="d")
    with pytest.raises(ValueError, match="names 'w', which is not a parameter"):
        space.check({"w": torch.zeros(3, 2)}, what="d")
    with pytest.raises(ValueError, match="lacks parameter"):
        space.check({"weight": torch.zeros(3, 2)}, what="d", complete=True)
    with pytest.raises(ValueError, match=r"must have shape \(9,\)"):
        space.unflatten(torch.zeros(8))


def test_module_without_parameters_is_refused():
    with pytest.raises(ValueError, match="no parameters"):
        ParamSpace(torch.nn.ReLU())
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        ParamSpace("model")
