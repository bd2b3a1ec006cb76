"""Parameter selections: names, module names, patterns, modules, predicates."""

import pickle

import pytest

torch = pytest.importorskip("torch")

from lossmap.nn.params import (  # noqa: E402
    ParamSpace,
    describe_selection,
    select,
    selection_meta,
)


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = torch.nn.Linear(4, 4)
        self.ff = torch.nn.Linear(4, 4, bias=False)
        self.norm = torch.nn.LayerNorm(4)


def _net():
    torch.manual_seed(0)
    net = torch.nn.Sequential(Block(), Block(), torch.nn.Linear(4, 2))
    return net


def test_all_by_default():
    net = _net()
    assert select(net, None) == frozenset(n for n, _ in net.named_parameters())


def test_exact_name_module_name_and_pattern():
    net = _net()
    assert select(net, "2.weight") == {"2.weight"}
    assert select(net, "0.attn") == {"0.attn.weight", "0.attn.bias"}
    assert select(net, "0") == {
        "0.attn.weight",
        "0.attn.bias",
        "0.ff.weight",
        "0.norm.weight",
        "0.norm.bias",
    }
    assert select(net, "*.attn.*") == {
        "0.attn.weight",
        "0.attn.bias",
        "1.attn.weight",
        "1.attn.bias",
    }
    # a name prefix that is not a module boundary matches nothing
    with pytest.raises(ValueError, match=r"`params` entry '0.at' matches no"):
        select(net, "0.at")


def test_module_callable_and_union():
    net = _net()
    assert select(net, net[1].ff) == {"1.ff.weight"}
    assert select(net, net) == select(net, None)
    got = select(net, lambda name, t: t.dim() == 2 and name.startswith("1."))
    assert got == {"1.attn.weight", "1.ff.weight"}
    both = select(net, ["*.ff.*", net[2]])
    assert both == {"0.ff.weight", "1.ff.weight", "2.weight", "2.bias"}
    # select's own result can be passed back
    assert select(net, both) == both


def test_space_and_mapping_sources():
    net = _net()
    space = ParamSpace(net)
    assert select(space, net[0].norm) == {"0.norm.weight", "0.norm.bias"}
    mapping = {n: p.detach() for n, p in net.named_parameters()}
    assert select(mapping, "*.norm.bias") == {"0.norm.bias", "1.norm.bias"}
    with pytest.raises(TypeError, match=r"resolve it first with lossmap\.nn\.select"):
        select(mapping, net[0])
    # a pickled space has no model: module entries then need the model
    again = pickle.loads(pickle.dumps(space))
    assert again.model is None
    assert select(again, "2.*") == {"2.weight", "2.bias"}
    with pytest.raises(TypeError, match="resolved only against the model"):
        select(again, net[0])


def test_errors_name_the_argument():
    net = _net()
    with pytest.raises(ValueError, match=r"`params` entry 'decoder\.\*' matches no"):
        select(net, "decoder.*")
    with pytest.raises(ValueError, match="not a submodule of the model"):
        select(net, torch.nn.Linear(4, 4))
    with pytest.raises(ValueError, match="selects no parameter"):
        select(net, lambda n, t: False)
    with pytest.raises(TypeError, match="must return True or False"):
        select(net, lambda n, t: "yes")
    with pytest.raises(
        TypeError,
        match=r"`params` must be None \(all parameters\), a parameter or "
        r"module name.*got int",
    ):
        select(net, 3)
    with pytest.raises(ValueError, match="empty list"):
        select(net, [])
    with pytest.raises(TypeError, match="nested list"):
        select(net, [["0.ff.weight"]])
    with pytest.raises(ValueError, match=r"`ignore_me` entry"):
        select(net, "nope", what="ignore_me")
    with pytest.raises(TypeError, match=r"`model` must be a torch\.nn\.Module"):
        select(3, None)


def test_relu_submodule_without_parameters():
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    with pytest.raises(ValueError, match="submodule without parameters"):
        select(net, net[1])


def test_descriptions_and_meta():
    net = _net()
    assert describe_selection(net, "*.attn.*") == (
        "parameters matching '*.attn.*' (4 tensors, 40 values)"
    )
    assert describe_selection(net, "2.weight") == (
        "parameter '2.weight' (1 tensor, 8 values)"
    )
    assert describe_selection(net, net[1].ff) == (
        "parameters of '1.ff' (Linear) (1 tensor, 16 values)"
    )
    text = describe_selection(net, ["0", "*.ff.*"])
    assert (
        text
        == "parameters of '0' or parameters matching '*.ff.*' (6 tensors, 60 values)"
    )
    assert describe_selection(net, None) == "all parameters (12 tensors, 98 values)"
    assert "chosen by" in describe_selection(net, lambda n, t: n.endswith("bias"))
    assert selection_meta(net, None) is None
    meta = selection_meta(net, [net[0].attn, "2.*"])
    assert meta["spec"] == [{"module": "0.attn", "type": "Linear"}, "2.*"]
    assert meta["names"] == ["0.attn.weight", "0.attn.bias", "2.weight", "2.bias"]
    assert meta["n_tensors"] == 4
    assert meta["n_values"] == 20 + 10
    assert selection_meta(net, "2.*")["spec"] == "2.*"


def test_tied_weights_are_found_through_either_module():
    emb = torch.nn.Embedding(5, 3)
    head = torch.nn.Linear(3, 5, bias=False)
    head.weight = emb.weight  # tied, as in language models
    net = torch.nn.ModuleDict({"emb": emb, "head": head})
    assert [n for n, _ in net.named_parameters()] == ["emb.weight"]
    assert select(net, "head") == {"emb.weight"}
    assert select(net, net["head"]) == {"emb.weight"}
    with pytest.raises(ValueError, match="matches no parameter"):
        select(net, "head.*")  # patterns see the listed names only


def test_compiled_regular_expression_matches_whole_names():
    import re

    net = _net()
    names = [n for n, _ in net.named_parameters()]
    rx = re.compile(r"[01]\.(attn|ff)\.weight")
    want = {n for n in names if re.fullmatch(r"[01]\.(attn|ff)\.weight", n)}
    assert want == {"0.attn.weight", "0.ff.weight", "1.attn.weight", "1.ff.weight"}
    assert select(net, rx) == want
    assert select(net, [rx, "2"]) == want | {"2.weight", "2.bias"}
    assert select(ParamSpace(net), rx) == want
    meta = selection_meta(net, rx)
    assert meta["spec"] == {"regex": rx.pattern}
    assert meta["n_tensors"] == 4
    assert "regular expression" in describe_selection(net, rx)
    # whole names only: 'attn' alone is no full name
    with pytest.raises(ValueError, match=r"`params` regular expression 'attn'"):
        select(net, re.compile("attn"))
    with pytest.raises(TypeError, match="must be of str"):
        select(net, re.compile(rb"attn"))
