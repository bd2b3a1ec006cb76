"""Analytic test surfaces with exact gradients and Hessians.

Each is a :class:`lossmap.toy.Landscape` of ``(x, y)``, vectorised over
broadcastable arrays, with its usual domain as :attr:`~TestFunction.region`
and its known minima documented in :attr:`~TestFunction.minima` (the global
ones) and :attr:`~TestFunction.local_minima` (other local minima, where there
are a few).

=================  ===========================================  ======================
name               formula                                      global minima
=================  ===========================================  ======================
``quadratic``      ½·θᵀAθ, eigenvalues 1 and κ (``condition``)   (0, 0), value 0
``rosenbrock``     (a − x)² + b·(y − x²)², a = 1, b = 100        (1, 1), value 0
``himmelblau``     (x² + y − 11)² + (x + y² − 7)²                four, value 0
``beale``          Σᵢ (cᵢ − x + x·yⁱ)², c = (1.5, 2.25, 2.625)   (3, 0.5), value 0
``booth``          (x + 2y − 7)² + (2x + y − 5)²                 (1, 3), value 0
``saddle``         x² − y²                                      none (saddle at 0)
``monkey-saddle``  x³ − 3x·y²                                   none (degenerate at 0)
``rastrigin``      20 + Σ (xᵢ² − 10·cos 2πxᵢ)                    (0, 0), value 0
``ackley``         −20·e^(−0.2·√(½|θ|²)) − e^(½Σcos 2πxᵢ) + e + 20  (0, 0), value 0
``six-hump-camel`` (4 − 2.1x² + x⁴/3)x² + xy + (4y² − 4)y²        (±0.0898, ∓0.7127)
=================  ===========================================  ======================

Sources for domains and minima: Rosenbrock (Comput. J. 3, 1960), Himmelblau
("Applied Nonlinear Programming", 1972), and the test-function catalogues of
Jamil & Yang (Int. J. Math. Model. Numer. Optim. 4, 2013) and Surjanovic &
Bingham (Virtual Library of Simulation Experiments, SFU).

>>> from lossmap.toy import functions
>>> f = functions.get("himmelblau")
>>> float(f.loss(3.0, 2.0)), len(f.minima)
(0.0, 4)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from lossmap._validation import check_choice, check_float
from lossmap.toy._base import Landscape, Region

__all__ = [
    "Ackley",
    "Beale",
    "Booth",
    "Himmelblau",
    "MonkeySaddle",
    "Quadratic",
    "Rastrigin",
    "Rosenbrock",
    "Saddle",
    "SixHumpCamel",
    "TestFunction",
    "available",
    "get",
]

Point = tuple[float, float]


class TestFunction(Landscape):
    """Base class: subclasses implement ``_f``, ``_g`` and ``_h`` on arrays.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"six-hump-camel"``.
    minima : list of (x, y)
        The known global minima inside :attr:`region` (empty if unbounded below).
    local_minima : list of (x, y)
        Other known local minima inside :attr:`region` (listed where few).
    min_value : float or None
        The global minimum value (None if there is none).
    """

    __test__ = False  # not a pytest class
    name: str = ""
    minima: list[Point] = []  # noqa: RUF012
    local_minima: list[Point] = []  # noqa: RUF012
    min_value: float | None = 0.0
    param_names = ("x", "y")

    def _f(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _g(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        raise NotImplementedError

    def _h(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any, Any]:
        raise NotImplementedError

    @staticmethod
    def _xy(p0: Any, p1: Any) -> tuple[np.ndarray, np.ndarray]:
        return np.broadcast_arrays(
            np.asarray(p0, dtype=np.float64), np.asarray(p1, dtype=np.float64)
        )

    def loss(self, p0: Any, p1: Any) -> np.ndarray:
        """Value at ``(x, y)``; arrays broadcast."""
        x, y = self._xy(p0, p1)
        return np.asarray(self._f(x, y), dtype=np.float64)

    def grad(self, p0: Any, p1: Any) -> np.ndarray:
        """Gradient, shape ``broadcast(x, y).shape + (2,)``."""
        x, y = self._xy(p0, p1)
        gx, gy = self._g(x, y)
        return np.stack(np.broadcast_arrays(gx, gy), axis=-1).astype(np.float64)

    def hessian(self, p0: Any, p1: Any) -> np.ndarray:
        """Hessian, shape ``broadcast(x, y).shape + (2, 2)``."""
        x, y = self._xy(p0, p1)
        hxx, hxy, hyy = np.broadcast_arrays(*self._h(x, y), x)[:3]
        row0 = np.stack([hxx, hxy], axis=-1)
        row1 = np.stack([hxy, hyy], axis=-1)
        return np.stack([row0, row1], axis=-2).astype(np.float64)

    def params(self) -> dict[str, float]:
        """The function's settings (empty for parameter-free functions)."""
        return {}

    def describe(self) -> dict[str, Any]:
        # the title too: figures take theirs from the metadata ("Rosenbrock",
        # "saddle x² − y²"), which held only the registry name
        return {
            "kind": "function",
            "name": self.name,
            "title": self.title,
            **self.params(),
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


class Quadratic(TestFunction):
    """``½·θᵀAθ`` with eigenvalues ``scale`` and ``scale·condition``.

    The eigenvector of the large eigenvalue makes the angle ``angle`` (radians)
    with the y-axis; ``angle = 0`` gives ``½·scale·(x² + condition·y²)``.
    Gradient descent with rate η converges iff ``η < 2/λmax``, at the rate
    ``max|1 − η·λ|`` per step (Nocedal & Wright, "Numerical Optimization",
    2nd ed., §3.3).
    """

    name = "quadratic"
    region: Region = ((-2.0, 2.0), (-2.0, 2.0))
    minima = [(0.0, 0.0)]  # noqa: RUF012

    def __init__(
        self, condition: float = 10.0, *, scale: float = 1.0, angle: float = 0.0
    ) -> None:
        self.condition = check_float("condition", condition, minimum=1.0)
        self.scale = check_float("scale", scale, minimum=0.0, strict_min=True)
        self.angle = check_float("angle", angle)
        c, s = math.cos(self.angle), math.sin(self.angle)
        rot = np.array([[c, -s], [s, c]])
        lam = np.diag([self.scale, self.scale * self.condition])
        self.matrix = rot @ lam @ rot.T
        self.title = f"quadratic bowl (κ = {self.condition:g})"

    @property
    def eigenvalues(self) -> tuple[float, float]:
        """``(λmin, λmax)`` of the Hessian."""
        return self.scale, self.scale * self.condition

    def params(self) -> dict[str, float]:
        return {"condition": self.condition, "scale": self.scale, "angle": self.angle}

    def _f(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        (a, b), (_, d) = self.matrix
        return 0.5 * (a * x * x + 2.0 * b * x * y + d * y * y)

    def _g(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        (a, b), (_, d) = self.matrix
        return a * x + b * y, b * x + d * y

    def _h(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any, Any]:
        (a, b), (_, d) = self.matrix
        return a, b, d


class Rosenbrock(TestFunction):
    """``(a − x)² + b·(y − x²)²``: a long curved valley, minimum ``(a, a²)``."""

    name = "rosenbrock"
    title = "Rosenbrock"
    region: Region = ((-2.0, 2.0), (-1.0, 3.0))

    def __init__(self, a: float = 1.0, b: float = 100.0) -> None:
        self.a = check_float("a", a)
        self.b = check_float("b", b, minimum=0.0, strict_min=True)
        self.minima = [(self.a, self.a**2)]

    def params(self) -> dict[str, float]:
        return {"a": self.a, "b": self.b}

    def _f(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        u, v = self.a - x, y - x * x
        return u * u + self.b * v * v

    def _g(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        v = y - x * x
        return -2.0 * (self.a - x) - 4.0 * self.b * x * v, 2.0 * self.b * v

    def _h(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any, Any]:
        b = self.b
        return 2.0 - 4.0 * b * y + 12.0 * b * x * x, -4.0 * b * x, 2.0 * b


class Himmelblau(TestFunction):
    """``(x² + y − 11)² + (x + y² − 7)²``: four minima of value 0.

    In [-5, 5]² it also has one local maximum near (−0.2708, −0.9230), value
    about 181.62, and four saddles.
    """

    name = "himmelblau"
    title = "Himmelblau"
    region: Region = ((-5.0, 5.0), (-5.0, 5.0))
    minima = [  # noqa: RUF012
        (3.0, 2.0),
        (-2.805118086952745, 3.131312518250573),
        (-3.779310253377747, -3.2831859912861696),
        (3.5844283403304917, -1.8481265269644036),
    ]
    maximum: Point = (-0.2708445906673476, -0.9230385564799815)

    def _f(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        a, b = x * x + y - 11.0, x + y * y - 7.0
        return a * a + b * b

    def _g(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        a, b = x * x + y - 11.0, x + y * y - 7.0
        return 4.0 * x * a + 2.0 * b, 2.0 * a + 4.0 * y * b

    def _h(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any, Any]:
        return (
            12.0 * x * x + 4.0 * y - 42.0,
            4.0 * (x + y),
            4.0 * x + 12.0 * y * y - 26.0,
        )


class Beale(TestFunction):
    """``Σᵢ₌₁³ (cᵢ − x + x·yⁱ)²`` with ``c = (1.5, 2.25, 2.625)``; minimum (3, 0.5)."""

    name = "beale"
    title = "Beale"
    region: Region = ((-4.5, 4.5), (-4.5, 4.5))
    minima = [(3.0, 0.5)]  # noqa: RUF012
    _C = (1.5, 2.25, 2.625)

    def _parts(self, x: np.ndarray, y: np.ndarray) -> list[tuple[Any, ...]]:
        out = []
        for i, c in enumerate(self._C, start=1):
            r = c - x + x * y**i
            rx, ry = y**i - 1.0, i * x * y ** (i - 1)
            rxy, ryy = i * y ** (i - 1), i * (i - 1) * x * y ** max(i - 2, 0)
            out.append((r, rx, ry, rxy, ryy))
        return out

    def _f(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return sum(p[0] * p[0] for p in self._parts(x, y))

    def _g(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        parts = self._parts(x, y)
        return sum(2 * r * rx for r, rx, *_ in parts), sum(
            2 * r * ry for r, _, ry, *_ in parts
        )

    def _h(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any, Any]:
        hxx = hxy = hyy = 0.0
        for r, rx, ry, rxy, ryy in self._parts(x, y):
            hxx = hxx + 2 * rx * rx
            hxy = hxy + 2 * (rx * ry + r * rxy)
            hyy = hyy + 2 * (ry * ry + r * ryy)
        return hxx, hxy, hyy


class Booth(TestFunction):
    """``(x + 2y − 7)² + (2x + y − 5)²``: a convex quadratic, minimum (1, 3)."""

    name = "booth"
    title = "Booth"
    region: Region = ((-10.0, 10.0), (-10.0, 10.0))
    minima = [(1.0, 3.0)]  # noqa: RUF012

    def _f(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        u, v = x + 2 * y - 7.0, 2 * x + y - 5.0
        return u * u + v * v

    def _g(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        u, v = x + 2 * y - 7.0, 2 * x + y - 5.0
        return 2 * u + 4 * v, 4 * u + 2 * v

    def _h(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any, Any]:
        return 10.0, 8.0, 10.0


class Saddle(TestFunction):
    """``x² − y²``: one saddle at the origin, unbounded below (no minimum)."""

    name = "saddle"
    title = "saddle x² − y²"
    region: Region = ((-2.0, 2.0), (-2.0, 2.0))
    min_value = None

    def _f(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return x * x - y * y

    def _g(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        return 2.0 * x, -2.0 * y

    def _h(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any, Any]:
        return 2.0, 0.0, -2.0


class MonkeySaddle(TestFunction):
    """``x³ − 3x·y²``: three valleys meet at the origin, where the Hessian is 0."""

    name = "monkey-saddle"
    title = "monkey saddle x³ − 3xy²"
    region: Region = ((-1.5, 1.5), (-1.5, 1.5))
    min_value = None

    def _f(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return x**3 - 3.0 * x * y * y

    def _g(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        return 3.0 * x * x - 3.0 * y * y, -6.0 * x * y

    def _h(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any, Any]:
        return 6.0 * x, -6.0 * y, -6.0 * x


class Rastrigin(TestFunction):
    """``2A + Σ (xᵢ² − A·cos 2πxᵢ)``, A = 10: a bowl covered in dips.

    Local minima sit near every integer point; the global one is the origin.
    """

    name = "rastrigin"
    title = "Rastrigin"
    region: Region = ((-5.12, 5.12), (-5.12, 5.12))
    minima = [(0.0, 0.0)]  # noqa: RUF012

    def __init__(self, A: float = 10.0) -> None:
        self.A = check_float("A", A, minimum=0.0)

    def params(self) -> dict[str, float]:
        return {"A": self.A}

    def _f(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        t = 2.0 * math.pi
        return 2 * self.A + x * x + y * y - self.A * (np.cos(t * x) + np.cos(t * y))

    def _g(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        t = 2.0 * math.pi
        return 2 * x + self.A * t * np.sin(t * x), 2 * y + self.A * t * np.sin(t * y)

    def _h(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any, Any]:
        t = 2.0 * math.pi
        k = self.A * t * t
        return 2 + k * np.cos(t * x), 0.0, 2 + k * np.cos(t * y)


class Ackley(TestFunction):
    """``−a·e^(−b·√(½|θ|²)) − e^(½Σcos 2πxᵢ) + e + a``, a = 20, b = 0.2.

    A nearly flat, dimpled plain with a cone-shaped hole at the origin. The
    cone's tip is a kink, so ``smooth`` is False: at exactly (0, 0) the gradient
    of the cone term is taken as 0 and its Hessian term is left out.
    """

    name = "ackley"
    title = "Ackley"
    region: Region = ((-5.0, 5.0), (-5.0, 5.0))
    minima = [(0.0, 0.0)]  # noqa: RUF012
    smooth = False
    _A, _B = 20.0, 0.2

    def _f(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        t = 2.0 * math.pi
        r = np.sqrt(0.5 * (x * x + y * y))
        e = np.exp(0.5 * (np.cos(t * x) + np.cos(t * y)))
        return -self._A * np.exp(-self._B * r) - e + math.e + self._A

    def _cone(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any, Any]:
        r = np.sqrt(0.5 * (x * x + y * y))
        safe = np.where(r > 0, r, 1.0)
        k = np.where(r > 0, self._A * self._B * np.exp(-self._B * r), 0.0)
        return r, safe, k

    def _g(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        t = 2.0 * math.pi
        _, safe, k = self._cone(x, y)
        e = np.exp(0.5 * (np.cos(t * x) + np.cos(t * y)))
        gx = k * 0.5 * x / safe + math.pi * e * np.sin(t * x)
        gy = k * 0.5 * y / safe + math.pi * e * np.sin(t * y)
        return gx, gy

    def _h(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any, Any]:
        t, pi2 = 2.0 * math.pi, math.pi**2
        _, r, k = self._cone(x, y)
        rx, ry = 0.5 * x / r, 0.5 * y / r
        rxx = 0.5 / r - 0.25 * x * x / r**3
        rxy = -0.25 * x * y / r**3
        ryy = 0.5 / r - 0.25 * y * y / r**3
        b = self._B
        sx, sy = np.sin(t * x), np.sin(t * y)
        e = np.exp(0.5 * (np.cos(t * x) + np.cos(t * y)))
        hxx = k * (rxx - b * rx * rx) + pi2 * e * (2 * np.cos(t * x) - sx * sx)
        hxy = k * (rxy - b * rx * ry) - pi2 * e * sx * sy
        hyy = k * (ryy - b * ry * ry) + pi2 * e * (2 * np.cos(t * y) - sy * sy)
        return hxx, hxy, hyy


class SixHumpCamel(TestFunction):
    """``(4 − 2.1x² + x⁴/3)·x² + x·y + (−4 + 4y²)·y²``: six minima, two global.

    Global minima (±0.08984, ∓0.71266), value −1.031628; local minima
    (∓1.70361, ±0.79608), value −0.215464, and (±1.60710, ±0.56865), value
    2.104250.
    """

    name = "six-hump-camel"
    title = "six-hump camel"
    region: Region = ((-2.0, 2.0), (-1.0, 1.0))
    minima = [  # noqa: RUF012
        (0.08984201310031807, -0.7126564030207396),
        (-0.08984201310031807, 0.7126564030207396),
    ]
    local_minima = [  # noqa: RUF012
        (-1.7036067149699814, 0.7960835686726251),
        (1.7036067149699814, -0.7960835686726251),
        (1.6071047529201974, 0.5686514548841314),
        (-1.6071047529201974, -0.5686514548841314),
    ]
    min_value = -1.0316284534898776

    def _f(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x2, y2 = x * x, y * y
        return (4.0 - 2.1 * x2 + x2 * x2 / 3.0) * x2 + x * y + (-4.0 + 4.0 * y2) * y2

    def _g(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        return 8 * x - 8.4 * x**3 + 2 * x**5 + y, x - 8 * y + 16 * y**3

    def _h(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any, Any]:
        return 8 - 25.2 * x * x + 10 * x**4, 1.0, -8 + 48 * y * y


_REGISTRY: dict[str, Callable[..., TestFunction]] = {
    "quadratic": Quadratic,
    "rosenbrock": Rosenbrock,
    "himmelblau": Himmelblau,
    "beale": Beale,
    "booth": Booth,
    "saddle": Saddle,
    "monkey-saddle": MonkeySaddle,
    "rastrigin": Rastrigin,
    "ackley": Ackley,
    "six-hump-camel": SixHumpCamel,
}
for _name, _cls in _REGISTRY.items():
    if not _cls.title:  # type: ignore[attr-defined]
        _cls.title = _name  # type: ignore[attr-defined]


def available() -> tuple[str, ...]:
    """Names accepted by :func:`get`."""
    return tuple(_REGISTRY)


def get(name: str | TestFunction, **params: Any) -> TestFunction:
    """A test function by name, e.g. ``get("quadratic", condition=100)``.

    ``_`` is accepted for ``-`` (``"six_hump_camel"``); a TestFunction passes
    through.
    """
    if isinstance(name, TestFunction):
        return name
    if isinstance(name, str):
        name = name.replace("_", "-").lower()
    check_choice("function", name, _REGISTRY)
    try:
        return _REGISTRY[name](**params)
    except TypeError:
        raise TypeError(f"function {name!r} does not take {sorted(params)}") from None
