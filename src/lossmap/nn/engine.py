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

Data, calls and losses follow the batch contract (:mod:`lossmap.nn.batch`):
every term and metric is carried over tiles as ``(sum, count)`` and divided
once, so no value depends on the tile size. An optimisation is kept only if it
reproduces the plain evaluation at the centre; a loss or model that needs
autograd (``torch.autograd.grad`` inside) is evaluated plainly with gradients
enabled.
"""

from __future__ import annotations

import contextlib
import math
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
from lossmap.nn._split import (
    Split,
    affine_parts,
    build_split,
    forward_passes,
    rewrite,
    traced,
)
from lossmap.nn.batch import ROWS_IMAGES, Batch, Data, Objective, tolerance

STRATEGIES = ("auto", "vmap", "loop")
#: Forward-pass precisions: plain (the evaluation dtype), or bfloat16 autocast.
PRECISIONS = ("float", "bf16")
#: Default memory budget (bytes) for vmap batches and cached activations.
DEFAULT_MEMORY = 1 << 30
#: ``auto`` uses vmap when (parameters run per point) × (samples) is below this
#: and the model has no convolution.
VMAP_MAX_WORK = 5e7
MAX_POINTS_PER_PASS = 8192
#: Working set of one vmap pass (activations of all its points). Larger passes
#: fall out of cache: on a 64-64-64-10 MLP over 1,797 samples, 313 points per
#: pass (1 GiB) took 2.3x as long as 19 (64 MiB).
PASS_BYTES = 64 << 20
#: Convolutional models without a user ``batch_size``: tiles sized so that the
#: largest activation (one module's output) of a tile holds at most this many
#: bytes and stays in cache. On the CNN benchmark (W2, 2,048 images 3×32×32,
#: 1 thread) 32-image tiles (4 MiB activations) ran 0.145 s a grid point
#: against 0.204 s for 128 images.
TILE_ACTIVATION_BYTES = 4 << 20
#: Fewest rows an activation-sized tile gets.
MIN_TILE_ROWS = 8
#: With a random subset, tiles are small enough to give at least this many
#: tile means, from which the standard error is estimated.
MIN_TILES_FOR_STDERR = 8


@dataclass
class EngineSpec:
    """Everything a worker needs to evaluate grid points (picklable when the
    model, loss and metrics are)."""

    model: nn.Module
    objective: Objective
    data: Data
    center: dict[str, torch.Tensor]
    directions: list[dict[str, torch.Tensor]]
    bn: str = "eval"
    dtype: torch.dtype = torch.float32
    batch_size: int | None = None
    subset: int | None = None
    seed: int | None = None
    bn_data: Data | None = None
    strategy: str = "auto"
    memory: int = DEFAULT_MEMORY
    precision: str = "float"
    #: False: every point by a plain forward pass (no fx split, no vmap).
    optimize: bool = True
    #: The model or loss differentiates inside (found by the probe): run with
    #: gradients enabled, plainly.
    needs_grad: bool = False
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def plain(self) -> bool:
        return self.strategy == "loop-plain" or not self.optimize or self.needs_grad

    @property
    def fields(self) -> list[str]:
        names = list(self.objective.fields)
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
        self.obj = spec.objective
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
        data, rows = spec.data, spec.batch_size
        self.n_total, self.indices = data.n, None
        if spec.subset is not None and spec.subset < data.n:
            rng = np.random.default_rng(spec.seed)
            self.indices = rng.choice(data.n, size=spec.subset, replace=False)
            data = data.take(self.indices)
            if rows is None:
                rows = min(
                    data.default_rows(),
                    max(1, math.ceil(data.n / MIN_TILES_FOR_STDERR)),
                )
        if self.obj.whole_batch:
            if len(data.blocks) > 1:
                raise ValueError(
                    "a loss term with reduction='batch' needs all data in one tile, "
                    f"but the data comes in {len(data.blocks)} blocks of different "
                    "shapes (pad every batch to one length)"
                )
            rows = data.n
        has_conv = any(
            isinstance(mod, nn.modules.conv._ConvNd) for mod in self.work.modules()
        )
        first = data.first
        self.single = self.obj.single_input(first)
        self.channels_last = (
            has_conv and self.single and self.obj.model_args(first)[0][0].dim() == 4
        )
        if rows is None:
            rows = data.default_rows()
            # under bn="batch" a tile is the batch its statistics come from:
            # its size is part of the value, so never the engine's choice
            per_tile_stats = spec.bn == "batch" and _bn.has_batchnorm(self.work)
            if self.channels_last and not per_tile_stats:
                rows = min(rows, self._activation_rows(first))
        self.rows = max(1, min(int(rows), max(b.n for b in data.blocks)))
        self.n_used = data.n
        self.tiles = data.tiles(
            self.rows, device=self.device, dtype=dtype, channels_last=self.channels_last
        )
        self.values = [t.value for t in self.tiles]
        self.tile_rows = np.array([t.n for t in self.tiles], dtype=np.float64)
        self.bn_tiles: list[Batch] | None = None
        if spec.bn == "recompute" and _bn.has_batchnorm(self.work):
            bdata = spec.bn_data if spec.bn_data is not None else spec.data
            self.bn_tiles = bdata.tiles(
                spec.batch_size,
                device=self.device,
                dtype=dtype,
                channels_last=self.channels_last,
            )
        self.fallback: str | None = None
        self._configure(plain=spec.plain)
        if not spec.plain:
            self._verify_optimised()

    def _activation_rows(self, first: Batch) -> int:
        """Rows per tile whose largest activation fits :data:`TILE_ACTIVATION_BYTES`
        (measured with forward hooks on two rows of the first block, in the
        precision the passes run in: bfloat16 activations take half the bytes,
        so a bf16 tile holds twice the rows — on W2, 64 images a tile ran 78
        ms a point against 86 ms for 32, one thread; 46 against 54, two)."""
        sample = first.rows(0, min(2, first.n)).to(self.device, self.spec.dtype)
        largest = [0]

        def hook(_m: Any, _i: Any, out: Any) -> None:
            if isinstance(out, torch.Tensor):
                largest[0] = max(largest[0], out.numel() * out.element_size())

        state = (self.center, self.buffers)
        handles = [m.register_forward_hook(hook) for m in self.work.modules()]
        try:
            with torch.no_grad(), self._autocast():
                self.obj.forward(
                    lambda *a, **k: functional_call(self.work, state, a, k),
                    sample,
                    sample.value,
                )
        except Exception:  # the probe reports real errors; keep the default
            return ROWS_IMAGES
        finally:
            for h in handles:
                h.remove()
        per_row = largest[0] / max(sample.n, 1)
        return max(MIN_TILE_ROWS, int(TILE_ACTIVATION_BYTES // max(per_row, 1)))

    def _configure(self, *, plain: bool) -> None:
        """Choose the split, the runner and the strategy."""
        self.split: Split | None = None
        self.cached: list[tuple[list[torch.Tensor], list[tuple]]] = []
        self.rewritten: dict | None = None
        gm = None if plain else traced(self.work)  # traced once for both uses
        if gm is not None and self.spec.bn != "recompute" and self.single:
            self._try_split(gm)
        runner = self.split.rest if self.split is not None else self.work
        if self.split is None and gm is not None:
            found = rewrite(gm)
            if found is not None:
                runner, self.rewritten = found
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
        self._buffers: dict[tuple, torch.Tensor] = {}
        self._lowp_names = (
            {
                f"{path}.{leaf}" if path else leaf
                for path, mod in runner.named_modules()
                if isinstance(mod, nn.Linear | nn.modules.conv._ConvNd)
                for leaf, _ in mod.named_parameters(recurse=False)
            }
            if self.spec.precision == "bf16"
            else set()
        )
        self._fixed_lowp: dict[str, torch.Tensor] | None = None
        self.strategy = "loop" if plain else self._choose_strategy(run_params)
        self.points_per_pass = self._points_per_pass() if self.strategy == "vmap" else 1

    def _verify_optimised(self) -> None:
        """Keep an optimisation only if it gives the plain values at the centre.

        The first tile is evaluated at the centre through the split and/or
        ``vmap`` and by a plain forward pass of the whole model. A ``vmap``
        that fails falls back to the loop (unless ``strategy="vmap"`` was
        asked for); any difference beyond rounding, or an error, turns every
        optimisation off.
        """
        zero = torch.zeros((1, self.m), dtype=self.spec.dtype, device=self.device)
        fast = None
        with torch.no_grad(), forward_passes():
            if self.strategy == "vmap":
                try:
                    fast = self._batch_vmap(zero, tiles=[0])[0, :, 0]
                except Exception as exc:
                    if self.spec.strategy == "vmap":
                        raise
                    self.strategy, self.points_per_pass = "loop", 1
                    self.fallback = f"vmap failed: {type(exc).__name__}: {exc}"[:300]
            if (
                self.split is None
                and self.rewritten is None
                and self.strategy != "vmap"
            ):
                return
            reason = None
            try:
                if fast is None:
                    fast = self._batch_loop(zero, tiles=[0])[0, :, 0]
                state = (self.center, self.buffers)
                out = self.obj.forward(
                    lambda *a, **k: functional_call(self.work, state, a, k),
                    self.tiles[0],
                    self.values[0],
                )
                parts = self.obj.read(out, self.tiles[0], self.values[0])
                ref = np.array([float(v) for pair in parts for v in pair])
                tol = tolerance(self.spec.dtype)
                close = np.abs(fast - ref) <= tol * np.maximum(np.abs(ref), 1e-12)
                if not np.all(close | (np.isnan(fast) & np.isnan(ref))):
                    reason = f"values at the centre {fast} != plain {ref}"
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"[:300]
        if reason is not None:
            self.fallback = f"optimisations off ({reason})"
            self._configure(plain=True)

    def _try_split(self, gm: Any) -> None:
        split = build_split(gm, self.moved, n_directions=self.m)
        if split is None:
            return
        names = split.prefix_names()
        state = {n: t for n, t in {**self.center, **self.buffers}.items() if n in names}
        cached = []
        budget = self.spec.memory
        used = 0
        with torch.no_grad(), forward_passes():
            for tile in self.tiles:
                x = self.obj.model_args(tile)[0][0]
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
        if self.spec.bn == "recompute":
            return "loop"
        if strategy in ("vmap", "loop"):
            return strategy
        if self.channels_last:
            return "loop"
        numel = sum(self.center[n].numel() for n in run_params)
        work = numel * self.n_used
        return "vmap" if work <= VMAP_MAX_WORK else "loop"

    def _points_per_pass(self) -> int:
        """Grid points per vmap pass from the memory budget."""
        counts = [sum(t.numel() for t in self.tiles[0].leaves)]

        def hook(_m: Any, _i: Any, out: Any) -> None:
            if isinstance(out, torch.Tensor):
                counts.append(out.numel())

        handles = [m.register_forward_hook(hook) for m in self.runner.modules()]
        try:
            with torch.no_grad(), forward_passes():
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
        coef: torch.Tensor | None,
        moved: dict[str, torch.Tensor],
        t: int,
        scalars: list[float] | None = None,
        fixed: dict[str, torch.Tensor] | None = None,
        accs: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """``(sum, count)`` of every term and metric at one point on tile ``t``,
        flattened (vmappable)."""
        tile, value = self.tiles[t], self.values[t]
        fixed = self.fixed if fixed is None else fixed
        state = ({**fixed, **moved}, self.run_buffers)
        if self.split is not None:
            frontier, aff = self.cached[t]
            args = [*frontier]
            for layer, (y0, ys) in enumerate(aff):
                if accs is not None:  # combined for all points before vmap
                    acc = accs[layer]
                elif scalars is not None:  # one point: fused passes into a buffer
                    acc = self._buffer(layer, y0)
                    if self.m:
                        torch.add(y0, ys[0], alpha=scalars[0], out=acc)
                    else:
                        acc.copy_(y0)
                    for j in range(1, self.m):
                        acc.add_(ys[j], alpha=scalars[j])
                else:  # one coefficient vector (sizing a pass): a small product
                    acc = y0 + torch.tensordot(coef, ys, dims=1)
                args.append(acc)
            if moved or fixed or self.run_buffers:
                out = functional_call(self.runner, state, tuple(args))
            else:  # nothing left to load (e.g. a one-layer model, fully cached)
                out = self.runner(*args)
        else:
            out = self.obj.forward(
                lambda *a, **k: functional_call(self.runner, state, a, k), tile, value
            )
        parts = self.obj.read(out, tile, value)
        return tuple(v.reshape(()) for pair in parts for v in pair)

    def _buffer(self, layer: int, like: torch.Tensor) -> torch.Tensor:
        """A reused output buffer for affine layer ``layer``'s combination
        (the per-point graph consumes it before the next point is computed)."""
        key = (layer, tuple(like.shape))
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = torch.empty_like(like)
        return buf

    def _point_weights(self, scalars: list[float]) -> dict[str, torch.Tensor]:
        """Moved parameters at one point, ``θ₀ + Σ c_j d_j`` by scaled adds."""
        out = {}
        for n in self.stack:
            w = self.center[n].clone()
            for j, c in enumerate(scalars):
                w.add_(self.dirs[j][n], alpha=c)
            out[n] = w
        return out

    def _low_precision(
        self, wts: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Under bfloat16 autocast: the weights of Linear and convolution layers
        cast once per point (autocast would cast them again on every tile)."""
        if not self._lowp_names or not torch.is_autocast_enabled(self.device.type):
            return wts, self.fixed
        if self._fixed_lowp is None:
            self._fixed_lowp = {
                n: t.to(torch.bfloat16) if n in self._lowp_names else t
                for n, t in self.fixed.items()
            }
        cast = {
            n: w.to(torch.bfloat16) if n in self._lowp_names else w
            for n, w in wts.items()
        }
        return cast, self._fixed_lowp

    def _weights(self, coefs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Moved parameters at each point, shape ``(k, *param_shape)``."""
        return {
            n: self.center[n].unsqueeze(0) + torch.tensordot(coefs, d, dims=1)
            for n, d in self.stack.items()
        }

    def _batch_vmap(
        self, coefs: torch.Tensor, tiles: list[int] | None = None
    ) -> np.ndarray:
        wts = self._weights(coefs)
        tiles = range(len(self.tiles)) if tiles is None else tiles
        out = np.empty((len(self.tiles), self._n_values, coefs.shape[0]))
        with warnings.catch_warnings():  # vmap's "performance drop" notes
            warnings.filterwarnings("ignore", "There is a performance drop")
            for t in tiles:
                # each affine layer's Y₀ + Σ c_j Y_j for all k points: one addmm
                accs = [
                    torch.addmm(
                        y0.reshape(1, -1), coefs.to(ys.dtype), ys.reshape(self.m, -1)
                    ).reshape(-1, *y0.shape)
                    for y0, ys in (self.cached[t][1] if self.split is not None else [])
                ]
                # a point is its moved weights and affine outputs; only these
                # are batched (the coefficients are not read, unless nothing
                # else moves: then they give vmap its batch size)
                if wts:
                    res = vmap(lambda w, a, t=t: self._point(None, w, t, accs=a))(
                        wts, accs
                    )
                elif accs:
                    res = vmap(lambda a, t=t: self._point(None, {}, t, accs=a))(accs)
                else:
                    res = vmap(lambda c, t=t: self._point(c, {}, t, accs=[]))(coefs)
                out[t] = torch.stack(res).detach().double().cpu().numpy()
        return out

    def _batch_loop(
        self, coefs: torch.Tensor, tiles: list[int] | None = None
    ) -> np.ndarray:
        k = coefs.shape[0]
        tiles = range(len(self.tiles)) if tiles is None else tiles
        out = np.empty((len(self.tiles), self._n_values, k))
        for i in range(k):
            scalars = coefs[i].tolist()
            wts = self._point_weights(scalars)
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
            wts, fixed = self._low_precision(wts)
            for t in tiles:
                res = self._point(coefs[i], wts, t, scalars, fixed)
                out[t, :, i] = torch.stack(res).detach().double().cpu().numpy()
        return out

    def _recompute_stats(self, wts: dict[str, torch.Tensor]) -> None:
        fresh = _bn.fresh_bn_buffers(
            self.work, dtype=self.spec.dtype, device=self.device
        )
        buffers = {**self.buffers, **fresh}
        params = {**self.fixed, **wts}
        state = (params, buffers)
        with _bn.statistics_pass(self.work):
            for tile in self.bn_tiles:
                self.obj.forward(
                    lambda *a, **k: functional_call(self.work, state, a, k), tile
                )
        self.run_buffers = {n: b for n, b in buffers.items() if n in self.run_buffers}

    @property
    def _n_values(self) -> int:
        """Numbers per point and tile: a (sum, count) per term and metric."""
        return 2 * len(self.obj.parts)

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
        per_tile = np.empty((len(self.tiles), self._n_values, n))
        step = self.points_per_pass
        grad = torch.enable_grad() if self.spec.needs_grad else torch.no_grad()
        with grad, self._autocast(), forward_passes():
            all_c = torch.as_tensor(coeffs, dtype=self.spec.dtype, device=self.device)
            for start in range(0, n, step):
                c = all_c[start : start + step]
                per_tile[:, :, start : start + step] = self._batch(c)
                if callback is not None:
                    callback(c.shape[0])
        sums, counts = per_tile[:, 0::2].sum(axis=0), per_tile[:, 1::2].sum(axis=0)
        out = self.obj.finish(sums, counts)
        if self.spec.subset is not None:
            tile_values = self.obj.finish(
                np.moveaxis(per_tile[:, 0::2], 0, 1),
                np.moveaxis(per_tile[:, 1::2], 0, 1),
            )
            for name in list(out):
                out[f"{name}_stderr"] = self._stderr(tile_values[name])
        return out

    def _stderr(self, tile_values: np.ndarray) -> np.ndarray:
        """Standard error of the subset's value from per-tile values.

        ``tile_values`` has shape ``(n_tiles, n_points)``. Uses the between-tile
        spread of the tile values weighted by rows (a batch-means / ratio
        estimator) with the finite-population correction
        ``1 - n_used / n_total``.
        """
        w = self.tile_rows / self.tile_rows.sum()
        t = len(w)
        if t < 2:
            return np.full(tile_values.shape[1:], np.nan)
        w = w[:, None]
        mean = np.sum(w * tile_values, axis=0)
        var = t / (t - 1) * np.sum((w * (tile_values - mean)) ** 2, axis=0)
        fpc = max(0.0, 1.0 - self.n_used / self.n_total)
        return np.sqrt(var * fpc)

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
                self.fallback = f"vmap failed: {type(exc).__name__}: {exc}"[:300]
        return self._batch_loop(c)

    def describe(self) -> dict[str, Any]:
        """How the evaluation was organised (for a surface's metadata)."""
        info: dict[str, Any] = {
            "strategy": self.strategy,
            "points_per_pass": self.points_per_pass,
            "tile_rows": self.rows,
            "needs_grad": self.spec.needs_grad,
            "channels_last": self.channels_last,
            "split": self.split.describe() if self.split is not None else None,
        }
        if self.rewritten:
            info["rewritten"] = self.rewritten
        if self.fallback:
            info["fallback"] = self.fallback
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
