"""Plain-words descriptions of saved surfaces (lossmap.describe, torch-free)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from lossmap import Surface
from lossmap.describe import describe_metadata, direction_name, direction_names


def _plane(**meta):
    a = np.linspace(-1, 1, 21)
    b = np.linspace(-0.5, 1.5, 11)
    loss = 0.2 + np.add.outer(a**2, (b - 0.5) ** 2)
    acc = 1 - loss / loss.max()
    return Surface(
        axes={"alpha": a, "beta": b},
        fields={"loss": loss, "accuracy": acc},
        metadata=meta,
    )


def test_describe_metadata_in_words():
    s = _plane(
        model="Net",
        n_params=1234,
        loss_fn="cross_entropy",
        directions=[
            {"kind": "random", "seed": 7, "norm": "filter", "ignore": "biasbn"},
            {"kind": "pca", "component": 1, "explained_variance_ratio": 0.0312},
        ],
        bn="recompute",
        data={"n_samples": 1000, "subset": 200, "seed": 3, "input_shape": [1, 8, 8]},
        versions={"torch": "2.13.0"},
        fingerprint={"center": "abc"},
        note="hello",
    )
    lines = describe_metadata(s)
    assert lines[0] == (
        "A plane through parameter space: alpha (21 points, -1 to 1) × "
        "beta (11 points, -0.5 to 1.5)."
    )
    assert "Lowest loss 0.2 at alpha = 0, beta = 0.5." in lines
    assert "Model: Net with 1,234 parameters." in lines
    assert lines[lines.index("Loss function: cross_entropy.") + 1].startswith(
        "Direction 1: a random Gaussian direction, seed 7, filter-normalised"
    )
    assert any(
        "principal direction of the training trajectory (component 2), explains "
        "3.1 % of the trajectory's variance" in ln
        for ln in lines
    )
    assert "BatchNorm running statistics were recomputed at every grid point." in lines
    assert (
        "Data: 1000 samples, a subset of 200 (seed 3), inputs of shape 1×8×8." in lines
    )
    assert "Computed with torch 2.13.0." in lines
    assert "Note: hello." in lines
    assert not any("abc" in ln for ln in lines)  # fingerprints are not prose


def test_two_random_directions_are_told_apart():
    dirs = [
        {"kind": "random", "seed": 0, "index": 0, "norm": "filter"},
        {"kind": "random", "seed": 0, "index": 1, "norm": "filter"},
    ]
    s = _plane(directions=dirs)
    assert direction_names(s) == [
        "direction 1: random, seed 0",
        "direction 2: random, seed 0",
    ]
    lines = describe_metadata(s)
    assert any(ln.startswith("Direction 1:") and "seed 0, draw 0" in ln for ln in lines)
    assert any(ln.startswith("Direction 2:") and "seed 0, draw 1" in ln for ln in lines)
    assert direction_name(1, {"kind": "pca", "component": 1}) == "direction 1: PC2"
    # without recorded directions the axis names stay
    assert direction_names(_plane()) == ["alpha", "beta"]


def test_describe_loads_no_heavy_library():
    code = (
        "import sys, lossmap.describe; "
        "print([m for m in ('torch', 'matplotlib', 'plotly', 'dash') "
        "if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_engine_metadata_reads_as_words():
    s = _plane(
        data={
            "n_samples": 64,
            "subset": None,
            "kind": "pair",
            "structure": ["float32[n, 2]", "int64[n]"],
            "input_shape": [2],
        },
        objective={"terms": [{"loss_fn": "cross_entropy", "weight": 1}]},
        optimize=True,
    )
    lines = describe_metadata(s)
    assert (
        "Data: 64 samples, inputs of shape 2, each batch an (input, target) pair "
        "of float32[n, 2] and int64[n]." in lines
    )
    assert "Objective: cross_entropy (mean)." in lines
    assert not any(ln.startswith("Optimize") for ln in lines)


def test_moving_parameters_and_loss_terms_in_words():
    sel = {
        "spec": "*.attn.*",
        "n_tensors": 4,
        "n_values": 40,
        "description": "parameters matching '*.attn.*' (4 tensors, 40 values)",
    }
    d = {"kind": "random", "seed": 0, "index": 0, "norm": "filter", "params": sel}
    lines = describe_metadata(_plane(directions=[d, {**d, "index": 1}]))
    assert (
        "Moving: parameters matching '*.attn.*' (4 tensors, 40 values); "
        "all others fixed." in lines
    )
    # the selection is said once, not again inside each direction's sentence
    assert sum("attn" in line for line in lines) == 1
    # the surface's own record wins; its absence means every parameter moves
    top = describe_metadata(_plane(params={"description": "the last layer"}))
    assert "Moving: the last layer; all others fixed." in top
    assert "Moving: all parameters." in describe_metadata(_plane())
    terms = {
        "data": {"fn": "mse_loss", "weight": 1.0, "reduction": "mean"},
        "physics": {"fn": "residual", "weight": 0.1, "reduction": "sum"},
    }
    lines = describe_metadata(_plane(loss_terms=terms))
    assert "Loss terms: data (mse_loss, mean) + 0.1 × physics (residual, sum)." in lines
    assert not any(line.startswith("Loss terms: data {") for line in lines)


def test_embedding_record_in_words():
    from lossmap.describe import describe_embedding

    rec = {
        "kind": "nn.embedding",
        "coords": [[0, 0], [1, 0], [2, 1], [0, 1]],
        "run": [0, 0, 1, 1],
        "step": [0, 5, 0, 5],
        "runs": ["seed0", "seed1"],
        "loss": [2.0, 0.25, 1.5, 0.5],
        "metrics": {"accuracy": [0.1, 0.9, 0.2, 0.8]},
        "meta": {
            "method": "pca",
            "n_params": 1234,
            "explained_variance_ratio": [0.75, 0.125],
        },
    }
    lines = describe_embedding(rec)
    assert lines[0] == (
        "A map of 4 checkpoints from 2 run(s) (seed0, seed1), placed in 2-D by PCA."
    )
    assert "Each checkpoint is a vector of 1,234 parameters." in lines
    assert (
        "The two axes explain 75.0 % and 12.5 % of the checkpoints' variance." in lines
    )
    assert "Loss from 0.25 to 2; points are coloured by it." in lines
    assert "Also measured: accuracy." in lines
    tsne = describe_embedding(
        {**rec, "loss": None, "meta": {"method": "tsne", "seed": 3, "perplexity": 2.0}}
    )
    assert "placed in 2-D by t-SNE." in tsne[0]
    assert "Settings: seed 3, perplexity 2." in tsne
    assert any("not evaluated" in line for line in tsne)


def test_engine_subset_and_named_terms_read_as_words():
    torch = pytest.importorskip("torch")
    from lossmap import nn as lnn

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)
    )
    x, y = torch.randn(16, 3), torch.randn(16, 1)
    mse = torch.nn.functional.mse_loss
    l1 = torch.nn.functional.l1_loss
    s = lnn.line(
        net,
        {"fit": mse, "robust": l1},
        (x, y),
        lnn.random_direction(net, seed=0, params="*.weight"),
        params="*.weight",
        weights={"fit": 1.0, "robust": 0.5},
        span=0.5,
        steps=5,
        progress=False,
    )
    lines = describe_metadata(s)
    assert (
        "Moving: parameters matching '*.weight' (2 tensors, 16 values); "
        "all others fixed." in lines
    )
    assert "Loss terms: fit (mse_loss, mean) + 0.5 × robust (l1_loss, mean)." in lines
