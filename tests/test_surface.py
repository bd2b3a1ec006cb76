"""Surface: validation, immutability, access, slicing, xarray."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lossmap import Surface


@pytest.fixture
def surf() -> Surface:
    w = np.linspace(-1, 1, 5)
    b = np.linspace(0, 2, 3)
    loss = np.add.outer((w - 0.5) ** 2, (b - 1) ** 2)
    return Surface(
        axes={"w": w, "b": b},
        fields={"loss": loss, "acc": -loss},
        metadata={"source": "test", "steps": np.int64(5)},
    )


def test_shape_names_and_ij_indexing(surf):
    assert surf.shape == (5, 3)
    assert surf.names == ("w", "b")
    assert surf.ndim == 2
    w, b = surf.mesh()
    np.testing.assert_allclose(surf.loss, (w - 0.5) ** 2 + (b - 1) ** 2)


def test_argmin_argmax(surf):
    p = surf.argmin()
    assert p.coords == {"w": 0.5, "b": 1.0}
    assert p.value == 0.0
    assert p.index == (3, 1)
    assert surf.argmax("acc").coords == {"w": 0.5, "b": 1.0}


def test_argmin_ignores_non_finite():
    s = Surface(axes={"a": [0.0, 1.0, 2.0]}, fields={"loss": [np.nan, 2.0, -np.inf]})
    assert s.argmin().coords == {"a": 1.0}


def test_immutable(surf):
    with pytest.raises(ValueError, match="read-only"):
        surf.loss[0, 0] = 1.0
    with pytest.raises(AttributeError):
        surf.metadata = {}
    with pytest.raises(TypeError):
        surf.fields["loss"] = np.zeros((5, 3))
    # the caller's array is copied, not shared
    arr = np.zeros(3)
    s = Surface(axes={"a": [0.0, 1.0, 2.0]}, fields={"loss": arr})
    arr[0] = 5
    assert s.loss[0] == 0


def test_slice_keeps_other_axis_and_records_position(surf):
    s = surf.slice("b", 1.05)
    assert s.names == ("w",)
    np.testing.assert_allclose(s.loss, surf.loss[:, 1])
    assert s.metadata["sliced_at"] == {"b": 1.0}
    t = surf.slice("w", 0.5)
    np.testing.assert_allclose(t.field("acc"), surf.field("acc")[3, :])


def test_with_fields_and_metadata(surf):
    s2 = surf.with_fields(extra=np.ones((5, 3))).with_metadata(note="x")
    assert s2.field_names == ("loss", "acc", "extra")
    assert s2.metadata["note"] == "x"
    assert "extra" not in surf.fields


def test_metadata_is_json_friendly(surf):
    assert json.loads(json.dumps(dict(surf.metadata)))["steps"] == 5


def test_allclose(surf):
    assert surf.allclose(surf.with_metadata(other=1))
    assert not surf.allclose(surf.with_fields(loss=surf.loss + 1e-3))


def test_to_xarray(surf):
    pytest.importorskip("xarray")
    ds = surf.to_xarray()
    np.testing.assert_allclose(ds["loss"].sel(w=0.5, b=1.0), 0.0)
    assert json.loads(ds.attrs["lossmap_metadata"])["source"] == "test"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"axes": {}, "fields": {"loss": []}}, ValueError, "1 or 2 named"),
        (
            {"axes": {"a": [0, 1], "b": [0, 1], "c": [0, 1]}, "fields": {"loss": 0}},
            ValueError,
            "1 or 2 named",
        ),
        (
            {"axes": {"a": [1.0, 0.0]}, "fields": {"loss": [0, 0]}},
            ValueError,
            "strictly increasing",
        ),
        (
            {"axes": {"a": [0.0, 1.0]}, "fields": {"acc": [0, 0]}},
            ValueError,
            "containing 'loss'",
        ),
        (
            {"axes": {"a": [0.0, 1.0]}, "fields": {"loss": [0, 0, 0]}},
            ValueError,
            r"field 'loss' must have shape \(2,\) .* got \(3,\)",
        ),
        (
            {"axes": {"a": [[0.0, 1.0]]}, "fields": {"loss": [0, 0]}},
            ValueError,
            "non-empty 1-D",
        ),
        (
            {"axes": {"a": [0.0, 1.0]}, "fields": {"loss": ["x", "y"]}},
            TypeError,
            r"field 'loss' must be an array of real numbers, got list",
        ),
        (
            {"axes": {"a": [0.0, 1.0]}, "fields": {"loss": np.array(["1", "2"])}},
            TypeError,
            r"field 'loss' must be an array of real numbers, got an array of dtype",
        ),
        (
            {"axes": {"a": [0.0, 1.0]}, "fields": {"loss": [1j, 2]}},
            TypeError,
            r"field 'loss' must be an array of real numbers",
        ),
        (
            {"axes": {"a": ["0", "b"]}, "fields": {"loss": [0, 0]}},
            TypeError,
            r"axis 'a' must be an array of real numbers",
        ),
        (
            {"axes": {"a": [0.0, np.nan]}, "fields": {"loss": [0, 0]}},
            ValueError,
            r"axis 'a' must be finite, got 1 NaN",
        ),
    ],
)
def test_bad_input(kwargs, error, message):
    with pytest.raises(error, match=message):
        Surface(**kwargs)


def test_lookup_errors(surf):
    with pytest.raises(KeyError, match="'zz' is not a field"):
        surf.field("zz")
    with pytest.raises(KeyError, match="'q' is not an axis"):
        surf.coords("q")
    with pytest.raises(ValueError, match="needs a 2-D surface"):
        surf.slice("b", 1.0).slice("w", 0.0)
