"""lossmap.analysis.basins: which minimum each start reaches."""

from __future__ import annotations

import numpy as np
import pytest

from lossmap import optim
from lossmap.analysis import basins
from lossmap.toy import functions


def test_himmelblau_four_basins_cover_the_square():
    f = functions.get("himmelblau")
    b = basins(f, optim.gd(0.01), steps=600, grid=25)
    assert len(b.minima) == 4
    assert b.kinds == ("minimum",) * 4
    np.testing.assert_allclose(b.values, 0.0, atol=1e-10)
    for m in f.minima:
        assert np.min(np.linalg.norm(b.points - np.array(m), axis=1)) < 1e-3
    assert b.labels.shape == (25, 25)
    assert b.counts.sum() == 625
    assert b.fractions.sum() == pytest.approx(1.0)
    # a start right next to a minimum lands in that minimum's basin
    i = np.argmin(np.abs(b.axes[0] - 3.0))
    j = np.argmin(np.abs(b.axes[1] - 2.0))
    k = np.argmin(np.linalg.norm(b.points - [3.0, 2.0], axis=1))
    assert b.labels[i, j] == k
    # every start's final point is the point of its label
    ok = b.labels >= 0
    np.testing.assert_allclose(b.final[ok], b.points[b.labels[ok]], atol=0.02)
    s = b.surface()
    assert s.field_names == ("loss", "basin", "steps")


def test_gd_gets_stuck_in_local_dips_on_camel():
    f = functions.get("six-hump-camel")
    b = basins(f, optim.gd(0.01), steps=3000, grid=21)
    vals = [v for v, k in zip(b.values, b.kinds) if k == "minimum"]
    assert len(vals) == 6
    assert vals[0] == pytest.approx(f.min_value, abs=1e-8)
    # a sizeable share of starts end in a non-global minimum
    glob = np.isclose(b.values, f.min_value, atol=1e-8)
    assert 0.2 < b.fractions[~glob].sum() < 0.9


def test_divergence_is_labelled():
    f = functions.get("quadratic", condition=10.0)
    b = basins(f, optim.gd(0.25), steps=200, grid=5)
    # η > 2/λmax: every start off the y = 0 line diverges along y; on the
    # line only the stable x-direction (λ = 1) is excited and it converges
    y_zero = np.isclose(b.axes[1], 0.0)
    assert (b.labels[:, ~y_zero] == -1).all()
    assert (b.labels[:, y_zero] == 0).all()
    assert b.diverged_fraction == pytest.approx(20 / 25)


@pytest.mark.parametrize(
    ("grid", "error", "message"),
    [
        (1, ValueError, "`grid` must be >= 2, got 1"),
        ((5, 1), ValueError, "`grid` must be >= 2, got 1"),
        (2.5, TypeError, "`grid` must be an integer, got 2.5"),
        ((3, 3, 3), TypeError, "`grid` must be an integer or a pair"),
    ],
)
def test_bad_grid_is_named_grid_not_steps(grid, error, message):
    # the grid of starts went to Landscape.grid(steps=grid), so the error
    # named `steps`, which is the optimizer's step count here
    f = functions.get("himmelblau")
    with pytest.raises(error, match=message.replace("(", r"\(")):
        basins(f, optim.gd(0.01), steps=10, grid=grid)
    b = basins(f, optim.gd(0.01), steps=10, grid=(3, 2))
    assert b.labels.shape == (3, 2)
