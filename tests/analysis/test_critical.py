"""lossmap.analysis.critical_points on surfaces with known stationary points."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from lossmap import toy
from lossmap.analysis import classify, critical_points
from lossmap.toy import functions


def _kinds(points):
    return Counter(p.kind for p in points)


def test_himmelblau_four_minima_four_saddles_one_maximum():
    f = functions.get("himmelblau")
    pts = critical_points(f, ((-5, 5), (-5, 5)))
    assert _kinds(pts) == {"minimum": 4, "saddle": 4, "maximum": 1}
    minima = [p for p in pts if p.kind == "minimum"]
    for p in minima:
        assert p.value == pytest.approx(0.0, abs=1e-20)
        assert p.is_global
        assert np.all(p.eigenvalues > 0)
    # each documented minimum was found to 1e-10
    found = np.array([p.theta for p in minima])
    for m in f.minima:
        assert np.min(np.linalg.norm(found - np.array(m), axis=1)) < 1e-10
    (maximum,) = [p for p in pts if p.kind == "maximum"]
    np.testing.assert_allclose(maximum.theta, f.maximum, atol=1e-10)
    assert maximum.value == pytest.approx(181.6165215, rel=1e-8)
    assert np.all(maximum.eigenvalues < 0)
    for p in pts:
        assert np.linalg.norm(f.grad_at(p.theta)) < 1e-8
        if p.kind == "saddle":
            assert p.eigenvalues[0] < 0 < p.eigenvalues[1]
            assert not p.is_global
    assert [p.value for p in pts] == sorted(p.value for p in pts)


def test_six_hump_camel_two_global_minima():
    f = functions.get("six-hump-camel")
    pts = critical_points(f)
    glob = [p for p in pts if p.is_global]
    assert len(glob) == 2
    for p in glob:
        assert p.value == pytest.approx(-1.0316284534898776, abs=1e-12)
    np.testing.assert_allclose(
        sorted(tuple(p.theta) for p in glob), sorted(f.minima), atol=1e-10
    )
    minima = [p for p in pts if p.kind == "minimum"]
    assert len(minima) == 6  # two global, four local
    assert sum(not p.is_global for p in minima) == 4


def test_saddle_has_one_saddle():
    pts = critical_points(functions.get("saddle"))
    assert len(pts) == 1
    (p,) = pts
    assert p.kind == "saddle"
    np.testing.assert_allclose(p.theta, 0.0, atol=1e-12)
    np.testing.assert_allclose(p.eigenvalues, [-2.0, 2.0])


def test_monkey_saddle_is_degenerate():
    pts = critical_points(functions.get("monkey-saddle"))
    assert [p.kind for p in pts] == ["degenerate"]
    np.testing.assert_allclose(pts[0].theta, 0.0, atol=1e-6)


def test_rastrigin_grid_of_minima_with_fine_starts():
    """Local minima sit near each integer point: 11 x 11 in [-5.12, 5.12]²."""
    pts = critical_points(functions.get("rastrigin"), starts=64)
    kinds = _kinds(pts)
    assert kinds["minimum"] == 121
    assert kinds["maximum"] == 100  # near each half-integer point, 10 x 10
    assert kinds["saddle"] == 220  # 11 x 10 + 10 x 11
    assert [tuple(p.theta) for p in pts if p.is_global] == [(0.0, 0.0)]


def test_line_mse_single_minimum_is_least_squares():
    p = toy.problem("line", "noisy-line", "mse")
    pts = critical_points(p)
    assert len(pts) == 1
    x, y = p.data.x, p.data.y
    w, b = np.polyfit(x, y, 1)
    np.testing.assert_allclose(pts[0].theta, [w, b], atol=1e-10)
    assert pts[0].kind == "minimum"
    assert pts[0].is_global


def test_classify():
    assert classify([1.0, 2.0]) == "minimum"
    assert classify([-1.0, -2.0]) == "maximum"
    assert classify([-1.0, 2.0]) == "saddle"
    assert classify([0.0, 2.0]) == "degenerate"
    assert classify([1e-9, 2.0], scale=1.0, tol=1e-6) == "degenerate"


def test_errors():
    with pytest.raises(ValueError, match="`starts` must be >= 2"):
        critical_points(functions.get("booth"), starts=1)
