"""The batched evaluation engine: the loss at many points of a plane.

A grid point with coordinates ``c = (c₁, …, c_m)`` has parameters
``θ(c) = θ₀ + Σ_j c_j d_j``; the engine loads them with
``torch.func.functional_call`` (the user's module is never written to) and
averages the loss over the data, cut into tiles.

How the work is organised (chosen per call, see :class:`Evaluator`):

* values that the directions cannot change, and ``Linear`` layers whose
  output is affine in ``c``, are computed once per tile (:mod:`._split`);
* small models evaluate many grid points per forward pass with
  ``torch.func.vmap`` (``strategy="vmap"``), the number of points per pass
  set from a memory budget;
* large models run a plain loop over grid points and tiles
  (``strategy="loop"``), convolutional inputs in ``channels_last`` layout;
  batched convolutions under ``vmap`` are slow on CPU;
* if ``vmap`` cannot handle a model, the loop is used and gives the same
  numbers.

The loss function must return the *mean* over a batch; tile means are
averaged with weights proportional to tile size, which equals the mean over
all samples.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from lossmap.nn import _bn
from lossmap.nn._data import Tiles
from lossmap.nn._split import Split, affine_parts, build_split, forward_passes

STRATEGIES = ("auto", "vmap", "loop")
#: Forward-pass precisions: plain (the evaluation dtype), or bfloat16 autocast.
PRECISIONS = ("float", "bf16")
#: Default memory budget (bytes) for vmap batches and cached activations.
DEFAULT_MEMORY = 1 << 30
#: ``auto`` uses vmap when (parameters run per point) × (samples) is below this
#: and the model has no convolution.
VMAP_MAX_WORK = 5e7
MAX_POINTS_PER_PASS = 4096
#: Working set of one vmap pass (activations of all its points). Larger passes
#: fall out of cache: on a 64-64-64-10 MLP over 1,797 samples, 313 points per
#: pass (1 GiB) took 2.3x as long as 19 (64 MiB).
PASS_BYTES = 64 << 20


@dataclass
class EngineSpec:
    """Everything a worker needs to evaluate grid points (picklable when the
    model, loss and metrics are)."""

    model: nn.Module
    loss_fn: Callable[..., torch.Tensor]
    metrics: dict[str, Callable[..., torch.Tensor]]
    inputs: torch.Tensor
    targets: torch.Tensor
    center: dict[str, torch.Tensor]
    directions: list[dict[str, torch.Tensor]]
    bn: str = "eval"
    dtype: torch.dtype = torch.float32
    batch_size: int | None = None
    subset: int | None = None
    seed: int | None = None
    bn_inputs: torch.Tensor | None = None
    strategy: str = "auto"
    memory: int = DEFAULT_MEMORY
    precision: str = "float"
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def fields(self) -> list[str]:
        names = ["loss", *self.metrics]
        if self.subset is not None:
            names += [f"{n}_stderr" for n in list(names)]
        return names


def _nonzero(t: torch.Tensor) -> bool:
    return bool(torch.any(t != 0))


class Evaluator:
    """Evaluate the loss and metrics at grid points; use as a context manager.

    Parameters
    ----------
    spec : EngineSpec
        The model, data, center, directions and options.
    """

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        self.fields = spec.fields
        self.work = _bn.working_copy(spec.model)
        self.guard = _bn.ModelGuard(self.work)
        try:
            with forward_passes():  # set-up runs probes and caching passes
                self._setup()
        except BaseException:
            self.guard.restore()
            raise

    # ---------------------------------------------------------------- set-up
    def _setup(self) -> None:
        spec = self.spec
        _bn.configure(self.guard, self.work, spec.bn)
        dtype = spec.dtype
        self.center = {n: t.detach().to(dtype) for n, t in spec.center.items()}
        self.device = next(iter(self.center.values())).device
        self.dirs = [
            {n: t.detach().to(dtype=dtype, device=self.device) for n, t in d.items()}
            for d in spec.directions
        ]
        self.m = len(self.dirs)
        self.moved = {n for d in self.dirs for n, t in d.items() if _nonzero(t)}
        self.buffers = {
            n: (b.to(dtype) if b.is_floating_point() else b)
            for n, b in self.work.named_buffers()
        }
        has_conv = any(
            isinstance(mod, nn.modules.conv._ConvNd) for mod in self.work.modules()
        )
        self.channels_last = has_conv and spec.inputs.dim() == 4
        self.tiles = Tiles.build(
            spec.inputs,
            spec.targets,
            device=self.device,
            dtype=dtype,
            rows=spec.batch_size,
            subset=spec.subset,
            seed=spec.seed,
            channels_last=self.channels_last,
        )
        self.bn_tiles = None
        if spec.bn == "recompute" and _bn.has_batchnorm(self.work):
            bx = spec.bn_inputs if spec.bn_inputs is not None else spec.inputs
            self.bn_tiles = Tiles.build(
                bx,
                torch.zeros(bx.shape[0]),
                device=self.device,
                dtype=dtype,
                rows=spec.batch_size,
                channels_last=self.channels_last,
            )
        self.split: Split | None = None
        self.cached: list[tuple[list[torch.Tensor], list[tuple]]] = []
        if spec.bn != "recompute" and spec.strategy != "loop-plain":
            self._try_split()
        runner = self.split.rest if self.split is not None else self.work
        self.runner = runner
        run_params = {n for n, _ in runner.named_parameters()}
        run_buffers = {n for n, _ in runner.named_buffers()}
        self.run_buffers = {n: b for n, b in self.buffers.items() if n in run_buffers}
        self.fixed = {
            n: t
            for n, t in self.center.items()
            if n in run_params and n not in self.moved
        }
        self.stack = {
            n: torch.stack([d[n] for d in self.dirs])
            for n in sorted(self.moved & run_params)
        }
        self.strategy = self._choose_strategy(run_params)
        self.fallback: str | None = None
        self.points_per_pass = self._points_per_pass() if self.strategy == "vmap" else 1

    def _try_split(self) -> None:
        split = build_split(self.work, self.moved, n_directions=self.m)
        if split is None:
            return
        names = split.prefix_names()
        state = {n: t for n, t in {**self.center, **self.buffers}.items() if n in names}
        cached = []
        budget = self.spec.memory
        used = 0
        with torch.no_grad(), forward_passes():
            for x, _ in self.tiles.tiles:
                outs = functional_call(split.prefix, state, (x,))
                frontier = list(outs[: split.n_frontier])
                aff = [
                    affine_parts(z, path, bias, self.center, self.dirs)
                    for z, (path, bias) in zip(outs[split.n_frontier :], split.affine)
                ]
                used += sum(t.numel() * t.element_size() for t in frontier)
                used += sum(
                    a.numel() * a.element_size() + b.numel() * b.element_size()
                    for a, b in aff
                )
                if used > budget:
                    return
                cached.append((frontier, aff))
        self.split, self.cached = split, cached

    def _choose_strategy(self, run_params: set[str]) -> str:
        strategy = self.spec.strategy
        if strategy == "loop-plain":
            return "loop"
        if self.spec.bn == "recompute":
            return "loop"
        if strategy in ("vmap", "loop"):
            return strategy
        if self.channels_last:
            return "loop"
        numel = sum(self.center[n].numel() for n in run_params)
        work = numel * self.tiles.n_used
        return "vmap" if work <= VMAP_MAX_WORK else "loop"

    def _points_per_pass(self) -> int:
        """Grid points per vmap pass from the memory budget."""
        x, _y = self.tiles.tiles[0]
        counts = [x.numel()]

        def hook(_m: Any, _i: Any, out: Any) -> None:
            if isinstance(out, torch.Tensor):
                counts.append(out.numel())

        handles = [m.register_forward_hook(hook) for m in self.runner.modules()]
        try:
            with torch.no_grad():
                self._point(
                    torch.zeros(self.m, dtype=self.spec.dtype, device=self.device),
                    {n: self.center[n] for n in self.stack},
                    0,
                )
        finally:
            for h in handles:
                h.remove()
        item = torch.empty((), dtype=self.spec.dtype).element_size()
        per_point = 3 * sum(counts) * item
        per_point += 2 * sum(t[0].numel() for t in self.stack.values()) * item
        budget = min(self.spec.memory, PASS_BYTES)
        return int(max(1, min(MAX_POINTS_PER_PASS, budget // max(per_point, 1))))

    # ------------------------------------------------------------ evaluation
    def _point(
        self,
        coef: torch.Tensor,
        moved: dict[str, torch.Tensor],
        t: int,
        scalars: list[float] | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """Loss and metrics of one point on tile ``t`` (vmappable)."""
        x, y = self.tiles.tiles[t]
        if self.split is not None:
            frontier, aff = self.cached[t]
            args = [*frontier]
            for y0, ys in aff:
                if scalars is not None:  # one point: two fused passes
                    acc = torch.add(y0, ys[0], alpha=scalars[0]) if self.m else y0
                    for j in range(1, self.m):
                        acc.add_(ys[j], alpha=scalars[j])
                else:  # under vmap: one batched (k, m) @ (m, ...) product
                    acc = y0 + torch.tensordot(coef, ys, dims=1)
                args.append(acc)
        else:
            args = [x]
        if moved or self.fixed or self.run_buffers:
            out = functional_call(
                self.runner, ({**self.fixed, **moved}, self.run_buffers), tuple(args)
            )
        else:  # nothing left to load (e.g. a one-layer model, fully cached)
            out = self.runner(*args)
        vals = [self.spec.loss_fn(out, y)]
        vals += [fn(out, y) for fn in self.spec.metrics.values()]
        return tuple(torch.as_tensor(v).reshape(()) for v in vals)

    def _weights(self, coefs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Moved parameters at each point, shape ``(k, *param_shape)``."""
        return {
            n: self.center[n].unsqueeze(0) + torch.tensordot(coefs, d, dims=1)
            for n, d in self.stack.items()
        }

    def _batch_vmap(self, coefs: torch.Tensor) -> np.ndarray:
        wts = self._weights(coefs)
        out = np.empty((len(self.tiles.tiles), len(self._value_fields), coefs.shape[0]))
        for t in range(len(self.tiles.tiles)):
            with warnings.catch_warnings():  # vmap's "performance drop" notes
                warnings.filterwarnings("ignore", "There is a performance drop")
                res = vmap(lambda c, w, t=t: self._point(c, w, t), in_dims=(0, 0))(
                    coefs, wts
                )
            out[t] = torch.stack(res).double().cpu().numpy()
        return out

    def _batch_loop(self, coefs: torch.Tensor) -> np.ndarray:
        k = coefs.shape[0]
        out = np.empty((len(self.tiles.tiles), len(self._value_fields), k))
        for i in range(k):
            scalars = coefs[i].tolist()
            wts = {n: w[0] for n, w in self._weights(coefs[i : i + 1]).items()}
            if self.channels_last:
                wts = {
                    n: (
                        w.contiguous(memory_format=torch.channels_last)
                        if w.dim() == 4
                        else w
                    )
                    for n, w in wts.items()
                }
            if self.bn_tiles is not None:
                self._recompute_stats(wts)
            for t in range(len(self.tiles.tiles)):
                res = self._point(coefs[i], wts, t, scalars)
                out[t, :, i] = torch.stack(res).double().cpu().numpy()
        return out

    def _recompute_stats(self, wts: dict[str, torch.Tensor]) -> None:
        fresh = _bn.fresh_bn_buffers(
            self.work, dtype=self.spec.dtype, device=self.device
        )
        buffers = {**self.buffers, **fresh}
        params = {**self.fixed, **wts}
        with _bn.statistics_pass(self.work):
            for x, _ in self.bn_tiles.tiles:
                functional_call(self.work, (params, buffers), (x,))
        self.run_buffers = {n: b for n, b in buffers.items() if n in self.run_buffers}

    @property
    def _value_fields(self) -> list[str]:
        return ["loss", *self.spec.metrics]

    def evaluate(
        self, coeffs: np.ndarray, callback: Callable[[int], None] | None = None
    ) -> dict[str, np.ndarray]:
        """Fields at grid points ``coeffs`` of shape ``(n_points, m)``.

        Returns ``{field: array of shape (n_points,)}`` in float64.
        """
        coeffs = np.asarray(coeffs, dtype=np.float64)
        if coeffs.ndim != 2:
            coeffs = coeffs.reshape(-1, self.m)
        n = coeffs.shape[0]
        per_tile = np.empty((len(self.tiles.tiles), len(self._value_fields), n))
        step = self.points_per_pass
        with torch.no_grad(), self._autocast(), forward_passes():
            all_c = torch.as_tensor(coeffs, dtype=self.spec.dtype, device=self.device)
            for start in range(0, n, step):
                c = all_c[start : start + step]
                per_tile[:, :, start : start + step] = self._batch(c)
                if callback is not None:
                    callback(c.shape[0])
        w = self.tiles.weights.numpy()[:, None, None]
        values = np.sum(w * per_tile, axis=0)
        out = {name: values[i] for i, name in enumerate(self._value_fields)}
        if self.spec.subset is not None:
            se = self.tiles.stderr(per_tile)
            for i, name in enumerate(self._value_fields):
                out[f"{name}_stderr"] = se[i]
        return out

    def _autocast(self) -> Any:
        """bfloat16 autocast of the forward passes when asked, else nothing."""
        if self.spec.precision != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def _batch(self, c: torch.Tensor) -> np.ndarray:
        if self.strategy == "vmap":
            try:
                return self._batch_vmap(c)
            except Exception as exc:
                if self.spec.strategy == "vmap":
                    raise
                self.strategy, self.points_per_pass = "loop", 1
                self.fallback = f"{type(exc).__name__}: {exc}"[:300]
        return self._batch_loop(c)

    def describe(self) -> dict[str, Any]:
        """How the evaluation was organised (for a surface's metadata)."""
        info: dict[str, Any] = {
            "strategy": self.strategy,
            "points_per_pass": self.points_per_pass,
            "tile_rows": self.tiles.rows,
            "channels_last": self.channels_last,
            "split": self.split.describe() if self.split is not None else None,
        }
        if self.fallback:
            info["vmap_fallback"] = self.fallback
        return info

    def close(self) -> None:
        self.guard.restore()

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# --------------------------------------------------------------- workers
_LOCAL = threading.local()


def run_chunk(
    spec: EngineSpec, index: tuple[int, ...], coeffs: np.ndarray
) -> tuple[tuple[int, ...], dict[str, np.ndarray], dict[str, Any]]:
    """Evaluate one chunk of grid points; the job an executor runs.

    The evaluator is built once per worker thread or process and reused for
    later chunks of the same call (keyed by ``spec.token``).
    """
    cache = getattr(_LOCAL, "cache", None)
    if cache is None or cache[0] != spec.token:
        if cache is not None:
            cache[1].close()
        ev = Evaluator(spec)
        if ev.work is spec.model:  # no private copy: never keep it around
            try:
                return index, ev.evaluate(coeffs), ev.describe()
            finally:
                ev.close()
        _LOCAL.cache = cache = (spec.token, ev)
    ev = cache[1]
    return index, ev.evaluate(coeffs), ev.describe()
