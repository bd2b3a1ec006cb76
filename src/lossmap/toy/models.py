"""Two-parameter models ``f(x; w, b)`` with exact derivatives in ``(w, b)``.

Each model is a function of ``z = w*x + b`` (an *activation* of one neuron):

* ``line``      f = z
* ``tanh``      f = tanh(z)           (one tanh neuron)
* ``logistic``  f = sigmoid(z)        (logistic regression; a probability)

Shapes: ``w`` and ``b`` broadcast to a grid shape ``S``; ``x`` has shape
``(n,)``; predictions have shape ``S + (n,)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

__all__ = ["MODELS", "Derivatives", "Model", "get_model"]


class Derivatives(NamedTuple):
    """Prediction and its derivatives in (w, b), each of shape ``S + (n,)``."""

    f: np.ndarray
    f_w: np.ndarray
    f_b: np.ndarray
    f_ww: np.ndarray
    f_wb: np.ndarray
    f_bb: np.ndarray


def _sigmoid(z: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@dataclass(frozen=True)
class Model:
    """A one-neuron model ``f = act(w*x + b)``.

    Attributes
    ----------
    name : str
    act : callable
        The activation, ``z -> f``.
    act_d : callable
        ``f, z -> (f', f'')``: first and second derivative of the activation.
    output : {"value", "probability"}
    formula : str
        For titles, e.g. ``"tanh(w·x + b)"``.
    """

    name: str
    act: Callable[[np.ndarray], np.ndarray]
    act_d: Callable[[np.ndarray, np.ndarray], tuple[Any, Any]]
    output: str
    formula: str

    def z(self, x: Any, w: Any, b: Any) -> np.ndarray:
        """Pre-activation ``w*x + b``, shape ``S + (n,)``."""
        x = np.asarray(x, dtype=np.float64)
        w = np.asarray(w, dtype=np.float64)[..., None]
        b = np.asarray(b, dtype=np.float64)[..., None]
        return w * x + b

    def predict(self, x: Any, w: Any, b: Any) -> np.ndarray:
        """Prediction ``f(x; w, b)``, shape ``S + (n,)``."""
        return self.act(self.z(x, w, b))

    def derivatives(self, x: Any, w: Any, b: Any) -> Derivatives:
        """Prediction and its first and second derivatives in ``(w, b)``."""
        x = np.asarray(x, dtype=np.float64)
        z = self.z(x, w, b)
        f = self.act(z)
        d1, d2 = self.act_d(f, z)
        return Derivatives(f, d1 * x, d1 + 0.0 * x, d2 * x * x, d2 * x, d2 + 0.0 * x)


def _line_d(f: np.ndarray, z: np.ndarray) -> tuple[Any, Any]:
    return np.ones_like(z), np.zeros_like(z)


def _tanh_d(f: np.ndarray, z: np.ndarray) -> tuple[Any, Any]:
    d1 = 1.0 - f * f
    return d1, -2.0 * f * d1


def _logistic_d(f: np.ndarray, z: np.ndarray) -> tuple[Any, Any]:
    d1 = f * (1.0 - f)
    return d1, d1 * (1.0 - 2.0 * f)


MODELS: dict[str, Model] = {
    "line": Model("line", lambda z: z, _line_d, "value", "w·x + b"),
    "tanh": Model("tanh", np.tanh, _tanh_d, "value", "tanh(w·x + b)"),
    "logistic": Model("logistic", _sigmoid, _logistic_d, "probability", "σ(w·x + b)"),
}


def get_model(name: str | Model) -> Model:
    """Look a model up by name: ``"line"``, ``"tanh"`` or ``"logistic"``."""
    if isinstance(name, Model):
        return name
    if not isinstance(name, str) or name not in MODELS:
        raise ValueError(f"`model` must be one of {list(MODELS)}, got {name!r}")
    return MODELS[name]
