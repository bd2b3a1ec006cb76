"""Server-side checks of page values: every bad value is refused by name."""

from __future__ import annotations

import math

import pytest

from lossmap import toy
from lossmap.explorer import validate as v

PRESETS = toy.preset_names()
GOOD = {
    "model": "line",
    "preset": "two-points",
    "loss": "mse",
    "delta": 0.5,
    "l2": 0.0,
    "region": (-2, 3, -2.5, 2.5),
    "steps": 201,
}


def _problem(**changes):
    kw = {**GOOD, **changes}
    return v.problem_settings(
        kw["model"],
        kw["preset"],
        kw["loss"],
        kw["delta"],
        kw["l2"],
        kw["region"],
        kw["steps"],
        presets=PRESETS,
    )


def test_good_problem_settings_are_hashable_and_typed():
    s = _problem()
    assert s.region == ((-2.0, 3.0), (-2.5, 2.5))
    assert s.steps == 201
    assert hash(s) == hash(_problem())
    assert s.loss_params == {}
    assert _problem(loss="huber", delta=0.3).loss_params == {"delta": 0.3}
    # numbers typed into a box may arrive as strings
    assert _problem(l2="0.25").l2 == 0.25


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": "cubic"}, r"`model` must be one of \['line', 'tanh', 'logistic'\]"),
        ({"model": None}, "`model` must be one of"),
        ({"preset": "../../etc/passwd"}, "`data` must be one of"),
        ({"loss": "cross_entropy"}, "`loss` must be one of"),
        ({"loss": ["mse"]}, "`loss` must be one of"),
        ({"delta": 0}, "`δ` must be > 0"),
        ({"delta": float("nan")}, "`δ` must be finite, got nan"),
        ({"l2": -1}, "`L2` must be >= 0"),
        ({"l2": float("inf")}, "`L2` must be finite"),
        ({"l2": "abc"}, "`L2` must be a number, got 'abc'"),
        ({"l2": True}, "`L2` must be a number, got True"),
        ({"l2": None}, "`L2` must be a number, got nothing"),
        ({"steps": 100_000}, "`grid size` must be <= 401, got 100000"),
        ({"steps": 5}, "`grid size` must be >= 11"),
        ({"steps": 50.5}, "`grid size` must be a whole number"),
        ({"region": (3, -2, -2.5, 2.5)}, r"the w range must have min < max"),
        ({"region": (-2, 3, -2.5, 1e9)}, r"`b max` must be <= 10000"),
        ({"region": (-2, 3, None, 2.5)}, r"`b min` must be a number"),
    ],
)
def test_bad_problem_settings_are_refused(changes, message):
    with pytest.raises(v.InputError, match=message):
        _problem(**changes)


def test_input_error_is_a_value_error():
    assert issubclass(v.InputError, ValueError)


RUN = {
    "optimizers": ["gd", "adam"],
    "hyper": {"gd": {"lr": 0.1}, "adam": {"lr": 0.1, "b1": 0.9, "b2": 0.999}},
    "steps": 100,
    "schedule": "constant",
}
AVAILABLE = {"gd": ("lr",), "sgd": ("lr",), "adam": ("lr", "b1", "b2")}


def _run(**changes):
    kw = {**RUN, **changes}
    return v.run_settings(
        kw["optimizers"],
        kw["hyper"],
        kw["steps"],
        kw["schedule"],
        available=AVAILABLE,
        schedules=("constant", "cosine"),
        batch_size=kw.get("batch"),
    )


def test_run_settings():
    rs = _run(optimizers=["adam", "gd", "adam"])
    assert rs.optimizers == ("adam", "gd")  # duplicates dropped, order kept
    assert rs.steps == 100
    assert isinstance(rs.steps, int)
    assert rs.hyper["adam"] == {"lr": 0.1, "b1": 0.9, "b2": 0.999}
    # any spelling of a number: off-step values and exponents
    rs = _run(hyper={"gd": {"lr": "1e-3"}, "adam": {"lr": "0.015", "b1": "0.99"}})
    assert rs.hyper == {"gd": {"lr": 0.001}, "adam": {"lr": 0.015, "b1": 0.99}}
    assert _run(batch="3").batch_size == 3


def _with(name, key, value):
    return {"hyper": {**RUN["hyper"], name: {**RUN["hyper"][name], key: value}}}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"optimizers": []}, "choose at least one optimizer"),
        ({"optimizers": None}, "choose at least one optimizer"),
        ({"optimizers": ["gd", "lbfgs"]}, "`optimizer` must be one of"),
        ({"optimizers": ["gd"] * 9}, "at most 8 optimizers"),
        (_with("gd", "lr", 0), "`gd learning rate` must be > 0, got 0"),
        (_with("gd", "lr", -3), "`gd learning rate` must be > 0, got -3"),
        (_with("gd", "lr", float("inf")), "`gd learning rate` must be finite"),
        (_with("gd", "lr", 1e9), "`gd learning rate` must be <= 1000"),
        (_with("adam", "b1", 1.0), "`adam b1` must be <= 0.9999"),
        (_with("gd", "beta", 0.5), "`gd setting` must be one of"),
        ({"hyper": [1, 2]}, "optimizer settings must be a mapping"),
        ({"steps": 0}, "`steps` must be >= 1"),
        ({"steps": 10**7}, "`steps` must be <= 2000"),
        ({"schedule": "linear"}, "`schedule` must be one of"),
        ({"batch": 0}, "`batch size` must be >= 1"),
    ],
)
def test_bad_run_settings_are_refused(changes, message):
    with pytest.raises(v.InputError, match=message):
        _run(**changes)


def test_long_values_are_never_echoed_in_full():
    huge = "x" * 7_000_000
    with pytest.raises(v.InputError) as err:
        v.check_name("loss", huge, ("mse",))
    assert len(str(err.value)) < 200
    assert "7,000,002 characters" in str(err.value)
    with pytest.raises(v.InputError) as err:
        v.check_number("L2", huge)
    assert len(str(err.value)) < 200


def test_point():
    assert v.check_point([1, -2.5]) == (1.0, -2.5)
    for bad in (None, [1], [1, 2, 3], "1,2", [1, math.nan], [1e300, 0]):
        with pytest.raises(v.InputError):
            v.check_point(bad)


def test_store_paths_outside_the_root_are_refused(tmp_path):
    root = tmp_path / "stores"
    (root / "a.zarr").mkdir(parents=True)
    (tmp_path / "secret.zarr").mkdir()
    assert v.store_path(root, "a.zarr") == (root / "a.zarr").resolve()
    for bad, message in [
        ("../secret.zarr", "outside the store folder"),
        (str(tmp_path / "secret.zarr"), "outside the store folder"),
        ("/etc", "outside the store folder"),
        ("missing.zarr", "does not exist"),
        ("", "must be a path"),
        (None, "must be a path"),
        ("a\x00b", "must be a path"),
    ]:
        with pytest.raises(v.InputError, match=message):
            v.store_path(root, bad)
    # a symlink inside the root that points outside it is refused too
    (root / "link.zarr").symlink_to(tmp_path / "secret.zarr")
    with pytest.raises(v.InputError, match="outside the store folder"):
        v.store_path(root, "link.zarr")
    with pytest.raises(v.InputError, match="no store folder"):
        v.store_path(None, "a.zarr")
