"""Argument checks that raise lossmap's standard messages.

Every message names the argument, what was expected and what came, e.g.
"`steps` must be >= 2, got 1". ValueError for values, TypeError for types.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np


def check_int(
    name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """Return ``value`` as an int, or raise a clear error."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"`{name}` must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be <= {maximum}, got {value}")
    return value


def check_float(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict_min: bool = False,
) -> float:
    """Return ``value`` as a finite float, or raise a clear error."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise TypeError(f"`{name}` must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be finite, got {value}")
    if minimum is not None:
        if strict_min and value <= minimum:
            raise ValueError(f"`{name}` must be > {minimum}, got {value}")
        if not strict_min and value < minimum:
            raise ValueError(f"`{name}` must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be <= {maximum}, got {value}")
    return value


def check_range(name: str, value: Any) -> tuple[float, float]:
    """Return a ``(lo, hi)`` pair of finite floats with ``lo < hi``."""
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a pair (lo, hi), got {value!r}") from None
    lo = check_float(f"{name}[0]", lo)
    hi = check_float(f"{name}[1]", hi)
    if not lo < hi:
        raise ValueError(f"`{name}` must satisfy lo < hi, got ({lo}, {hi})")
    return lo, hi


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``."""
    choices = list(choices)
    if not isinstance(value, str):
        raise TypeError(f"`{name}` must be a string, one of {choices}, got {value!r}")
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}, got {value!r}")
    return value


def check_finite_array(
    name: str, value: Any, *, ndim: int | None = None, min_size: int = 1
) -> np.ndarray:
    """Return ``value`` as a float64 array with finite entries."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"`{name}` must be an array of numbers, got {type(value).__name__}"
        ) from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"`{name}` must be {ndim}-dimensional, got shape {arr.shape}")
    if arr.size < min_size:
        raise ValueError(
            f"`{name}` must hold at least {min_size} value(s), got {arr.size}"
        )
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"`{name}` must be finite, got {bad} NaN/inf value(s)")
    return arr
