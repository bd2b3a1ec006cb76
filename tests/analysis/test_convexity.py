"""lossmap.analysis.convexity: known convex and non-convex landscapes."""

from __future__ import annotations

import numpy as np
import pytest

from lossmap import toy
from lossmap.analysis import convexity
from lossmap.toy import functions


@pytest.mark.parametrize(
    "spec",
    [
        ("line", "noisy-line", "mse"),
        ("line", "line-with-outliers", "huber"),
        ("logistic", "binary-overlapping", "bce"),
    ],
)
def test_convex_problems(spec):
    c = convexity(toy.problem(*spec))
    assert c.convex
    assert c.psd_fraction == 1.0
    assert c.chord_violations == 0
    assert c.min_eigenvalue >= 0


def test_mae_is_convex_by_chords_though_its_hessian_is_zero():
    c = convexity(toy.problem("line", "line-with-outliers", "mae"))
    assert not c.smooth
    assert c.convex
    assert c.min_eigenvalue == 0.0


@pytest.mark.parametrize(
    "landscape",
    [
        toy.problem("tanh", "noisy-line", "mse"),
        toy.problem("tanh", "two-points", "mse"),
        functions.get("rastrigin"),
        functions.get("himmelblau"),
    ],
    ids=["tanh-mse-noisy", "tanh-mse-two", "rastrigin", "himmelblau"],
)
def test_non_convex(landscape):
    c = convexity(landscape)
    assert not c.convex
    assert c.psd_fraction < 1.0
    assert c.chord_violations > 0
    # the reported worst chord really violates Jensen's inequality at some t
    a, b = c.worst_chord
    t = np.linspace(0, 1, 401)[:, None]
    mid = landscape.loss_at(t * a + (1 - t) * b)
    chord = t[:, 0] * landscape.loss_at(a) + (1 - t[:, 0]) * landscape.loss_at(b)
    assert np.max(mid - chord) > 0
    # and the Hessian really has a negative eigenvalue where reported
    lam = np.linalg.eigvalsh(landscape.hessian_at(c.min_eigenvalue_at))
    assert lam[0] == pytest.approx(c.min_eigenvalue)
    assert lam[0] < 0


def test_quadratic_psd_map_and_surface():
    q = functions.get("quadratic", condition=5.0, angle=0.3)
    c = convexity(q, steps=21)
    assert c.convex
    np.testing.assert_allclose(c.surface.field("min_eigenvalue"), 1.0)
    assert c.surface.shape == (21, 21)
    assert c.describe()["convex"] is True


def test_saddle_psd_fraction_zero():
    c = convexity(functions.get("saddle"), steps=11)
    assert c.psd_fraction == 0.0
    assert not c.convex


def test_seeded():
    p = toy.problem("tanh", "noisy-line", "mse")
    a, b = convexity(p, seed=1), convexity(p, seed=1)
    assert a.chord_violations == b.chord_violations
    assert a.worst_gap == b.worst_gap
