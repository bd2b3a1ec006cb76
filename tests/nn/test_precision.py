"""The bfloat16 preview mode of plane/line: accuracy, labels, stores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import lossmap.nn as lnn
from lossmap.nn._grid import check_points

#: bf16 keeps 8 bits of mantissa (relative rounding 2⁻⁹ ≈ 2e-3 per value);
#: a loss averaged over hundreds of samples stays well inside 2e-2.
RTOL = 2e-2


@pytest.fixture(autouse=True)
def _bf16_even_if_emulated(monkeypatch):
    """These tests check accuracy and labels, which hold for emulated bfloat16
    too: run them on every CPU (the gate is tested in test_bf16.py)."""
    monkeypatch.setenv("LOSSMAP_BF16", "1")


@pytest.fixture(scope="module")
def setup() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor], list]:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 5)
    )
    x = torch.randn(256, 16)
    y = torch.randint(0, 5, (256,))
    dirs = lnn.random_directions(model, 2, seed=3)
    return model, (x, y), dirs


def _plane(setup, **kw):
    model, data, dirs = setup
    kw.setdefault("steps", (7, 6))
    return lnn.plane(model, F.cross_entropy, data, dirs, progress=False, **kw)


@pytest.mark.parametrize("strategy", ["vmap", "loop"])
def test_bf16_plane_close_to_float(setup, strategy):
    full = _plane(setup, strategy=strategy)
    fast = _plane(setup, strategy=strategy, precision="bf16")
    np.testing.assert_allclose(fast.field("loss"), full.field("loss"), rtol=RTOL)
    # it really ran in reduced precision: not bit-identical
    assert not np.array_equal(fast.field("loss"), full.field("loss"))
    assert fast.field("loss").dtype == np.float64


def test_metadata_labels_and_recorded_error(setup):
    full = _plane(setup, strategy="loop")
    fast = _plane(setup, strategy="loop", precision="bf16", metrics="accuracy")
    assert full.metadata["precision"] == "float"
    assert "precision_error" not in full.metadata
    meta = fast.metadata
    assert meta["precision"] == "bf16-autocast"
    points = [tuple(p) for p in meta["precision_check_points"]]
    assert points == check_points(fast.shape)
    assert points == [
        (3, 3),
        (0, 0),
        (0, 3),
        (0, 5),
        (3, 0),
        (3, 5),
        (6, 0),
        (6, 3),
        (6, 5),
    ]
    # loop strategy: each point is computed alone, so the full-precision
    # re-evaluation equals the float surface exactly at those points
    diff = [abs(fast.field("loss")[p] - full.field("loss")[p]) for p in points]
    assert meta["precision_error"] == max(diff)
    assert 0 < meta["precision_error"] < RTOL * full.field("loss").max()
    assert set(meta["precision_errors"]) == {"loss", "accuracy"}
    assert meta["precision_errors"]["loss"] == meta["precision_error"]


def test_recorded_error_vmap(setup):
    full = _plane(setup, strategy="vmap")
    fast = _plane(setup, strategy="vmap", precision="bf16")
    points = [tuple(p) for p in fast.metadata["precision_check_points"]]
    diff = max(abs(fast.field("loss")[p] - full.field("loss")[p]) for p in points)
    # vmap batches differ in size, so float32 rounding may differ slightly
    assert fast.metadata["precision_error"] == pytest.approx(diff, abs=1e-5)


def test_default_is_float_bit_identical(setup):
    default = _plane(setup, metrics="accuracy")
    explicit = _plane(setup, metrics="accuracy", precision="float")
    for f in default.field_names:
        assert np.array_equal(default.field(f), explicit.field(f))
    assert default.metadata == explicit.metadata
    # and the float surface matches the plain per-point reference
    model, data, dirs = setup
    a, b = default.coords("alpha")[1], default.coords("beta")[4]
    params = {
        n: p.detach() + a * dirs[0].tensors[n] + b * dirs[1].tensors[n]
        for n, p in model.named_parameters()
    }
    ref = lnn.evaluate_params(model, F.cross_entropy, data, params)["loss"]
    assert default.field("loss")[1, 4] == pytest.approx(ref, rel=1e-5)


def test_line_and_random_lines(setup):
    model, data, dirs = setup
    kw = dict(steps=5, progress=False)
    full = lnn.line(model, F.cross_entropy, data, dirs[0], **kw)
    fast = lnn.line(model, F.cross_entropy, data, dirs[0], precision="bf16", **kw)
    np.testing.assert_allclose(fast.field("loss"), full.field("loss"), rtol=RTOL)
    assert fast.metadata["precision_check_points"] == [[2], [0], [4]]
    rl = lnn.random_lines(
        model, F.cross_entropy, data, count=3, seed=0, precision="bf16", **kw
    )
    singles = [
        lnn.line(model, F.cross_entropy, data, d, precision="bf16", **kw)
        for d in lnn.random_directions(model, 3, seed=0)
    ]
    worst = max(s.metadata["precision_error"] for s in singles)
    assert rl.curves.metadata["precision_error"] == worst
    assert rl.summary.metadata["precision"] == "bf16-autocast"


def test_bad_precision(setup):
    with pytest.raises(ValueError, match=r"`precision` must be one of \['float', "):
        _plane(setup, precision="half")
    # checked before anything else, even a bad `steps`
    with pytest.raises(ValueError, match="`precision` must be one of"):
        _plane(setup, precision="x", steps=1)
    with pytest.raises(TypeError, match="`precision` must be a string"):
        _plane(setup, precision=16)
    model, data, dirs = setup
    with pytest.raises(ValueError, match="`precision` must be one of"):
        lnn.line(model, F.cross_entropy, data, dirs[0], precision="bf32")
    # autocast would silently leave float64 alone: refused, not mislabelled
    with pytest.raises(ValueError, match=r"needs float32 evaluation.*float64"):
        _plane(setup, precision="bf16", dtype=torch.float64)


def test_store_refuses_other_precision(setup, tmp_path):
    path = tmp_path / "plane.zarr"
    pytest.importorskip("zarr")
    full = _plane(setup, store=path)
    with pytest.raises(ValueError, match="different settings"):
        _plane(setup, store=path, precision="bf16")
    again = _plane(setup, store=path)  # same settings: resumes
    assert np.array_equal(again.field("loss"), full.field("loss"))
    other = tmp_path / "bf16.zarr"
    fast = _plane(setup, store=other, precision="bf16")
    assert fast.metadata["precision"] == "bf16-autocast"
    with pytest.raises(ValueError, match="different settings"):
        _plane(setup, store=other)
    resumed = _plane(setup, store=other, precision="bf16")
    assert np.array_equal(resumed.field("loss"), fast.field("loss"))
    assert resumed.metadata["precision_error"] == pytest.approx(
        fast.metadata["precision_error"], abs=1e-6
    )


def test_executor_chunks_run_in_bf16(setup):
    from concurrent.futures import ThreadPoolExecutor

    here = _plane(setup, strategy="loop", precision="bf16")
    with ThreadPoolExecutor(2) as pool:
        there = _plane(setup, strategy="loop", precision="bf16", executor=pool)
    # per point, the loop is independent of chunking: identical numbers
    assert np.array_equal(here.field("loss"), there.field("loss"))
    assert there.metadata["precision_error"] == here.metadata["precision_error"]
