"""lossmap.toy.functions: exact derivatives, documented minima, registry."""

from __future__ import annotations

import numpy as np
import pytest

from lossmap.toy import Landscape, functions

NAMES = functions.available()


def test_registry_names():
    assert set(NAMES) == {
        "quadratic",
        "rosenbrock",
        "himmelblau",
        "beale",
        "booth",
        "saddle",
        "monkey-saddle",
        "rastrigin",
        "ackley",
        "six-hump-camel",
    }
    assert functions.get("six_hump_camel").name == "six-hump-camel"


def _points(f, rng, n=40):
    (lo0, hi0), (lo1, hi1) = f.region
    pts = rng.uniform([lo0, lo1], [hi0, hi1], size=(n, 2))
    return pts[np.linalg.norm(pts, axis=-1) > 1e-2]  # away from Ackley's tip


@pytest.mark.parametrize("name", NAMES)
def test_gradient_and_hessian_match_central_differences(name, rng):
    """Central differences (error O(h²)) of the exact value and gradient."""
    f = functions.get(name)
    pts = _points(f, rng)
    h = 1e-5
    e = np.eye(2) * h
    fd_grad = np.stack(
        [(f.loss_at(pts + e[k]) - f.loss_at(pts - e[k])) / (2 * h) for k in range(2)],
        -1,
    )
    fd_hess = np.stack(
        [(f.grad_at(pts + e[k]) - f.grad_at(pts - e[k])) / (2 * h) for k in range(2)],
        -1,
    )
    g, hs = f.grad_at(pts), f.hessian_at(pts)
    scale_g = 1 + np.abs(g).max()
    scale_h = 1 + np.abs(hs).max()
    np.testing.assert_allclose(g, fd_grad, atol=1e-6 * scale_g)
    np.testing.assert_allclose(hs, fd_hess, atol=1e-6 * scale_h)
    np.testing.assert_allclose(hs, np.swapaxes(hs, -1, -2))


@pytest.mark.parametrize("name", NAMES)
def test_vectorised_shapes(name):
    f = functions.get(name)
    assert isinstance(f, Landscape)
    x = np.linspace(-1, 1, 4)[:, None]
    y = np.linspace(-1, 1, 3)[None, :]
    assert f.loss(x, y).shape == (4, 3)
    assert f.grad(x, y).shape == (4, 3, 2)
    assert f.hessian(x, y).shape == (4, 3, 2, 2)
    assert f.hessian(0.3, 0.2).shape == (2, 2)
    s = f.surface(steps=11)
    assert s.names == ("x", "y")
    assert s.metadata["landscape"]["name"] == name
    assert f.title
    # figures read their title from the metadata: the function's title, not
    # its registry name ("Rosenbrock", not "rosenbrock")
    assert s.metadata["landscape"]["title"] == f.title


@pytest.mark.parametrize("name", NAMES)
def test_documented_minima_are_minima(name):
    f = functions.get(name)
    (lo0, hi0), (lo1, hi1) = f.region
    for pt in [*f.minima, *f.local_minima]:
        assert lo0 <= pt[0] <= hi0
        assert lo1 <= pt[1] <= hi1
        g = f.grad_at(pt)
        assert np.linalg.norm(g) < 1e-7, (name, pt, g)
        if f.smooth:
            assert np.all(np.linalg.eigvalsh(f.hessian_at(pt)) > 0)
    if f.minima:
        vals = f.loss_at(np.array(f.minima))
        np.testing.assert_allclose(vals, f.min_value, atol=1e-12)
        # nothing on a fine grid is lower than the global minimum
        assert f.surface(steps=201).loss.min() >= f.min_value - 1e-12
    else:
        assert f.min_value is None


def test_known_values():
    # closed forms at hand-checked points
    assert functions.get("rosenbrock").loss(0.0, 0.0) == 1.0
    assert functions.get("rosenbrock", a=2.0).minima == [(2.0, 4.0)]
    assert functions.get("booth").loss(0.0, 0.0) == 74.0
    assert functions.get("beale").loss(0.0, 0.0) == pytest.approx(14.203125)
    assert functions.get("himmelblau").loss(0.0, 0.0) == 170.0
    assert functions.get("rastrigin").loss(1.0, 0.0) == pytest.approx(1.0)
    assert functions.get("ackley").loss(0.0, 0.0) == pytest.approx(0.0, abs=1e-14)
    q = functions.get("quadratic", condition=50.0, angle=0.4)
    lam = np.linalg.eigvalsh(q.hessian(0.1, 0.2))
    np.testing.assert_allclose(lam, [1.0, 50.0])
    assert q.eigenvalues == (1.0, 50.0)
    assert functions.get("monkey-saddle").loss(1.0, 1.0) == -2.0
    np.testing.assert_array_equal(functions.get("monkey-saddle").hessian(0, 0), 0)


@pytest.mark.parametrize(
    ("kwargs", "exc", "message"),
    [
        ({"name": "sphere"}, ValueError, "`function` must be one of"),
        ({"name": "quadratic", "condition": 0.5}, ValueError, "`condition` must be >="),
        ({"name": "booth", "a": 1.0}, TypeError, "does not take"),
    ],
)
def test_errors(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        functions.get(**kwargs)
