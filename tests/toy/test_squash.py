"""The factorised grid path of tanh/logistic + MSE against plain NumPy broadcasting."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.special import expit

from lossmap import toy
from lossmap.toy import _squash
from lossmap.toy._base import Landscape
from lossmap.toy.models import MODELS

ACT = {"tanh": np.tanh, "logistic": expit}


def direct(model, x, y, w, b, l2=0.0, l1=0.0):
    """Plain broadcasting over the whole grid: the independent reference."""
    pred = ACT[model](w[:, None, None] * x + b[None, :, None])
    out = np.mean((pred - y) ** 2, axis=-1)
    ww, bb = np.meshgrid(w, b, indexing="ij")
    return out + l2 * (ww**2 + bb**2) + l1 * (np.abs(ww) + np.abs(bb))


def data(n, model, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, n)
    y = np.tanh(0.8 * x - 0.3) + 0.1 * rng.standard_normal(n)
    if model == "logistic":
        y = (rng.uniform(size=n) < expit(1.5 * x)).astype(float)
    return x, y


@pytest.mark.parametrize("model", ["tanh", "logistic"])
@pytest.mark.parametrize(("n", "steps"), [(1, 9), (7, (13, 5)), (50, 101), (300, 31)])
def test_surface_matches_plain_broadcasting(model, n, steps):
    x, y = data(n, model)
    p = toy.problem(model, (x, y), "mse")
    s = p.surface(((-3.0, 2.5), (-1.5, 4.0)), steps=steps)
    w, b = s.coords(0), s.coords(1)
    np.testing.assert_allclose(
        s.field("loss"), direct(model, x, y, w, b), rtol=0, atol=1e-12
    )
    # the grid path really ran (not the generic one)
    assert _squash.mse_grid(MODELS[model], x, y, w, b) is not None


@pytest.mark.parametrize("block", [1, 1000, 1 << 20])
def test_any_block_size_gives_the_same_numbers(monkeypatch, block):
    x, y = data(23, "tanh")
    w, b = np.linspace(-2, 2, 37), np.linspace(-1, 1, 29)
    monkeypatch.setattr(_squash, "BLOCK_ELEMENTS", block)
    got = _squash.mse_grid(MODELS["tanh"], x, y, w, b)
    np.testing.assert_allclose(got, direct("tanh", x, y, w, b), rtol=0, atol=1e-12)


@pytest.mark.parametrize("model", ["tanh", "logistic"])
def test_penalties_are_added(model):
    x, y = data(40, model)
    p = toy.problem(model, (x, y), "mse", l2=0.3, l1=0.05)
    s = p.surface(((-2.0, 2.0), (-2.0, 2.0)), steps=21)
    ref = direct(model, x, y, s.coords(0), s.coords(1), l2=0.3, l1=0.05)
    np.testing.assert_allclose(s.field("loss"), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("model", ["tanh", "logistic"])
def test_exact_near_the_edge_of_its_range(model):
    # |k·w·x| + |k·b| just under MAX_EXPONENT: saturated units, large exponents
    x, y = data(30, model)
    x = x / np.abs(x).max()
    k = 2.0 if model == "tanh" else 1.0
    w = np.linspace(-150, 150, 41) * 2 / k
    b = np.linspace(-140, 140, 43) * 2 / k
    got = _squash.mse_grid(MODELS[model], x, y, w, b)
    assert got is not None
    np.testing.assert_allclose(got, direct(model, x, y, w, b), rtol=0, atol=1e-12)


def test_wide_grids_fall_back_to_the_direct_path():
    x, y = data(30, "tanh")
    p = toy.problem("tanh", (x, y), "mse")
    region = ((-400.0, 400.0), (-5.0, 5.0))
    w, b = p.grid(region, steps=21)
    assert _squash.mse_grid(MODELS["tanh"], x, y, w, b) is None
    s = p.surface(region, steps=21)
    np.testing.assert_allclose(s.field("loss"), direct("tanh", x, y, w, b), atol=1e-12)
    assert np.array_equal(s.field("loss"), Landscape.evaluate_grid(p, w, b))


def test_perfect_fit_keeps_its_tiny_loss():
    # the loss at the true parameters is ~0, not a cancellation residue
    x = np.linspace(-2, 2, 25)
    y = np.tanh(0.5 * x + 0.25)
    p = toy.problem("tanh", (x, y), "mse")
    s = p.surface(w=(0.0, 1.0), b=(0.0, 0.5), steps=(5, 3))  # hits (0.5, 0.25)
    assert 0.0 <= s.field("loss")[2, 1] < 1e-30
    assert s.field("loss").min() == s.field("loss")[2, 1]


def test_other_models_and_losses_take_the_direct_path():
    x, y = data(20, "tanh")
    # a user's model that is called "tanh" but computes something else
    odd = dataclasses.replace(MODELS["tanh"], act=np.sin)
    p = toy.problem(odd, (x, y), "mse")
    s = p.surface(((-1.0, 1.0), (-1.0, 1.0)), steps=7)
    w, b = s.coords(0), s.coords(1)
    ref = np.mean((np.sin(w[:, None, None] * x + b[None, :, None]) - y) ** 2, -1)
    np.testing.assert_allclose(s.field("loss"), ref, atol=1e-12)
    # MAE and the line model: unchanged generic path, same numbers as before
    for prob in (toy.problem("tanh", (x, y), "mae"), toy.problem("line", (x, y))):
        s = prob.surface(((-1.0, 1.0), (-1.0, 1.0)), steps=7)
        w, b = s.coords(0), s.coords(1)
        assert np.array_equal(s.field("loss"), Landscape.evaluate_grid(prob, w, b))
