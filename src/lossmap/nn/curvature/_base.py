"""The curvature operator's shared ground: data, parameters, model, products.

:class:`CurvatureOperator` owns everything that is the same for every
curvature matrix of a mean loss ``L(θ) = (1/N) Σₙ ℓ(f(xₙ; θ), yₙ)``:

* the data and the loss through the batch contract of :mod:`lossmap.nn.batch`
  (any batch form; ``call``, ``targets``, ``logits``; loss terms with their
  reductions and weights). Every term is a ``(sum, count)`` over the tiles; a
  first pass totals the counts ``C_k`` (they do not depend on the parameters),
  and each tile contributes the curvature of ``Σ_k w_k · sum_k,tile / C_k``
  (``w_k · sum`` for a ``"sum"`` term), so the operator is exactly the matrix
  of the loss over the whole data set, whatever the tiling;
* the parameter selection (:func:`_selected`): the matrix is the block of the
  chosen parameters, the others stay fixed;
* the model: a private *working copy* (new module objects over the same
  tensors, see :mod:`lossmap.nn._bn`) whose flags are set once for the
  products (a model that cannot be copied has its flags set around each
  product and restored, also on error). The user's module is never run,
  never has a flag, ``requires_grad`` or ``.grad`` changed; values enter
  through ``torch.func.functional_call``;
* BatchNorm modes: ``"eval"`` (running statistics), ``"batch"`` (statistics
  of each tile; the matrix then depends on the tiling) and ``"recompute"``
  (running statistics re-estimated from the data at the operator's point, then
  held fixed: the matrix is the curvature of the eval-mode loss with those
  statistics);
* attention: products run under the math kernel of
  ``scaled_dot_product_attention``, whose double backward exists;
* products on a batch of vectors: ``matmat(V)`` with ``V`` of shape
  ``(b, dim)`` computes ``b`` products in one backward pass per tile
  (``is_grads_batched``), except for models with convolutions on a CPU,
  where a batched convolution backward is slower than a loop (on the
  benchmark's small CNN 5.5 against 5.3 ms a vector; on its MLP batching
  takes 0.67 against 1.0 ms). A pass that hits an operation without a
  batching rule (an error, or torch's "performance drop" fallback) makes
  the operator loop from then on. The choice depends only on the model,
  the device and the operations met, never on a timing, so the same call
  gives the same numbers bit for bit, also when a curvature map resumes;
* the count of matrix-vector products computed (:attr:`products`).

A subclass supplies only :meth:`_tile_state` (what to keep per tile, e.g. the
gradient graph) and :meth:`_tile_product` (the tile's matrix times a batch of
vectors). The graph of each tile is kept across products when the operator
judges it fits in memory (``keep_graph``).

The design follows the operator pattern of curvlinops (Dangel et al.,
"curvlinops: a library for curvature linear operators", 2024): a base class
owns the loop, a matrix writes its per-batch product.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from lossmap._validation import check_choice, check_int
from lossmap.nn import _bn
from lossmap.nn import batch as nb

__all__ = ["CurvatureOperator"]

#: Keep every tile's graph when (samples × selected parameters) is below this
#: (a proxy for the memory the graphs need: about 8 bytes per entry and layer).
KEEP_GRAPH_WORK = 2e8


def _selected(model: nn.Module, params: Any) -> list[str]:
    """Names of the parameters the matrix is taken over, in model order.

    ``None``: every parameter with ``requires_grad``; anything else is a
    selection as :func:`lossmap.nn.params.select` reads it (names, module
    names, patterns, submodules, callables, lists of these).
    """
    from lossmap.nn.params import select

    named = dict(model.named_parameters())
    if params is None:
        chosen = {n for n, p in named.items() if p.requires_grad}
    else:
        chosen = set(select(model, params))
    names = [n for n in named if n in chosen]
    if not names:
        raise ValueError(
            f"`params` must select at least one parameter, got none from {params!r}"
        )
    return names


@contextlib.contextmanager
def _math_attention() -> Iterator[None]:
    """The math kernel of scaled-dot-product attention (has a double backward)."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # pragma: no cover - older torch
        yield
        return
    with sdpa_kernel(SDPBackend.MATH):
        yield


class CurvatureOperator:
    """Base of the curvature matrices of a mean loss; see the module docstring.

    Parameters
    ----------
    model : torch.nn.Module
        Never modified (see the module docstring).
    loss_fn : callable, "output.loss" or mapping of named terms
        As in :mod:`lossmap.nn.batch`, e.g. ``torch.nn.functional.cross_entropy``
        (a mean over the batch).
    data : a batch or an iterable of batches (:mod:`lossmap.nn.batch`)
    params : selection, optional
        The parameters the matrix is taken over (default: all that require
        grad; see :func:`lossmap.nn.params.select`); the others stay fixed.
    batch_size : int, optional
        Rows per tile (default: the contract's default tile, 1,024 dense rows
        or 128 images).
    bn : {"eval", "batch", "recompute"}, default="eval"
    at : mapping of str to tensor, optional
        Parameter (and buffer) values at which the matrix is taken (default:
        the model's); names not given keep the model's values.
    dtype : torch.dtype, optional
        Compute in this floating dtype (default: the parameters' dtype).
    keep_graph : bool, optional
        Keep each tile's graph between products (default: when samples ×
        parameters is below ``KEEP_GRAPH_WORK``).
    call, targets, logits, reduction, weights
        The batch contract's conventions (:class:`lossmap.nn.batch.Objective`).
    """

    #: Short name of the matrix (used in results and metadata).
    kind = "curvature"

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[..., torch.Tensor],
        data: Any,
        *,
        params: Any = None,
        batch_size: int | None = None,
        bn: str = "eval",
        at: Mapping[str, torch.Tensor] | None = None,
        dtype: torch.dtype | None = None,
        keep_graph: bool | None = None,
        call: Any = "auto",
        targets: Any = "auto",
        logits: Any = "auto",
        reduction: Any = "mean",
        weights: Any = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"`model` must be a torch.nn.Module, got {type(model).__name__}"
            )
        self.objective = nb.Objective.build(
            loss_fn,
            call=call,
            targets=targets,
            logits=logits,
            reduction=reduction,
            weights=weights,
        )
        self.bn = check_choice("bn", bn, _bn.BN_MODES)
        if batch_size is not None:
            batch_size = check_int("batch_size", batch_size, minimum=1)
        self.loss_fn = loss_fn
        self.names = _selected(model, params)
        named = {n: p.detach() for n, p in model.named_parameters()}
        #: Every parameter of the model, in order, with its shape.
        self.param_shapes = {n: tuple(t.shape) for n, t in named.items()}
        own_buffers = {n: b.detach() for n, b in model.named_buffers()}
        if at is not None:
            self._check_at(named, own_buffers, at)
            for n, t in at.items():
                target = named if n in named else own_buffers
                target[n] = torch.as_tensor(t).detach().to(target[n].device)
        first = named[self.names[0]]
        if dtype is None:
            dtype = first.dtype
        if not dtype.is_floating_point:
            raise TypeError(f"`dtype` must be a floating dtype, got {dtype}")
        self.dtype = dtype
        self.device = first.device
        self.shapes = [tuple(named[n].shape) for n in self.names]
        self.sizes = [int(np.prod(s, dtype=np.int64)) for s in self.shapes]
        self.dim = int(sum(self.sizes))
        self.theta = [named[n].to(dtype) for n in self.names]
        self.fixed = {
            n: (t.to(dtype) if t.is_floating_point() else t)
            for n, t in named.items()
            if n not in self.names
        }
        self._work = _bn.working_copy(model)
        self.buffers = {
            n: (b.to(dtype) if b.is_floating_point() else b)
            for n, b in own_buffers.items()
        }
        self.data = nb.materialise(data)
        rows = batch_size
        if self.objective.whole_batch:
            rows = self.data.n  # a "batch" term: all rows at once
        self.tiles = self.data.tiles(rows, device=self.device, dtype=dtype)
        self.n_samples = self.data.n
        self.products = 0
        if keep_graph is None:
            keep_graph = self.n_samples * self.dim <= KEEP_GRAPH_WORK
        self.keep_graph = bool(keep_graph)
        self._states: dict[int, Any] = {}
        #: Several vectors per backward pass (see the module docstring).
        self._batched = self._batching_pays()
        if self.bn == "recompute" and _bn.has_batchnorm(self._work):
            self._recompute_statistics()
        self._settled: str | None = None
        self._held = False
        if self._work is not model:
            # a private copy: set its flags once; nothing needs restoring
            _bn.configure(_bn.ModelGuard(self._work), self._work, self._mode())
            self._settled = self._mode()
        self._totals()
        self._setup()

    # ------------------------------------------------------------- set-up
    def _check_at(
        self, named: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], at: Any
    ) -> None:
        if not isinstance(at, Mapping):
            raise TypeError(
                f"`at` must map parameter names to tensors, got {type(at).__name__}"
            )
        for n, t in at.items():
            ref = named.get(n, buffers.get(n))
            if ref is None:
                raise ValueError(
                    f"`at` names {n!r}, which is not a parameter or buffer of the model"
                )
            shape = tuple(torch.as_tensor(t).shape)
            if shape != tuple(ref.shape):
                raise ValueError(
                    f"`at`[{n!r}] must have shape {tuple(ref.shape)}, got {shape}"
                )

    def _setup(self) -> None:
        """Hook for subclasses (called once the data and model are ready)."""

    def _recompute_statistics(self) -> None:
        """Running BatchNorm statistics at the operator's point, from the data."""
        fresh = _bn.fresh_bn_buffers(self._work, dtype=self.dtype, device=self.device)
        buffers = {**self.buffers, **fresh}
        params = {**self.fixed, **dict(zip(self.names, self.theta))}
        with (
            self._configured("recompute"),
            _bn.statistics_pass(self._work),
            torch.no_grad(),
        ):
            for tile in self.tiles:
                self.objective.forward(
                    lambda *a, **k: functional_call(
                        self._work, (params, buffers), a, k
                    ),
                    tile,
                )
        self.buffers = buffers

    def _mode(self) -> str:
        """BatchNorm mode of the products ("recompute" products use the
        re-estimated statistics in eval mode)."""
        return "eval" if self.bn == "recompute" else self.bn

    @contextlib.contextmanager
    def _configured(self, mode: str | None = None) -> Iterator[None]:
        """The working copy's flags for a product (BatchNorm ``mode``, default
        :meth:`_mode`), restored afterwards, also on error. A private copy
        set once to the product mode needs no work here."""
        if mode is None:
            mode = self._mode()
        if getattr(self, "_settled", None) == mode:
            with _math_attention():
                yield
            return
        guard = _bn.ModelGuard(self._work)
        try:
            _bn.configure(guard, self._work, mode)
            with _math_attention():
                yield
        finally:
            guard.restore()

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Hold the products' configuration (model flags, attention kernel)
        across many products: an algorithm enters it once instead of once per
        product (:func:`lossmap.nn.curvature._protocol.session`). Re-entrant."""
        if self._held:
            yield
            return
        with self._configured():
            self._held = True
            try:
                yield
            finally:
                self._held = False

    def _totals(self) -> None:
        """One pass over the data: each term's total count (the coefficients
        of the tile sums) and the loss at the operator's point."""
        sums = np.zeros(len(self.objective.terms))
        counts = np.zeros(len(self.objective.terms))
        # one tile whose graph is kept: this forward pass is the graph's too
        reuse = len(self.tiles) == 1 and self.keep_graph
        self._forwards: dict[int, tuple[list[torch.Tensor], Any]] = {}
        with self._configured(), torch.set_grad_enabled(reuse):
            for tile in self.tiles:
                theta = self.leaves() if reuse else self.theta
                out = self.forward(theta, tile)
                parts = self.objective.read(out, tile, explain=True)
                sums += [float(p[0].detach()) for p in parts]
                counts += [float(p[1].detach()) for p in parts]
                if reuse:
                    self._forwards[0] = (theta, out)
        if np.any(counts <= 0):
            raise ValueError(
                f"`loss_fn` counted no entries (counts {counts.tolist()}); a mask "
                "that removes every row leaves no loss to differentiate"
            )
        self._loss = float(
            self.objective.finish(sums[:, None], counts[:, None])["loss"][0]
        )
        #: Per term: the factor of its tile sums in the loss.
        self.coefficients = [
            t.weight * (1.0 if t.reduction == "sum" else 1.0 / c)
            for t, c in zip(self.objective.terms, counts)
        ]

    # ---------------------------------------------------- for subclasses
    def forward(self, theta: Sequence[torch.Tensor], tile: nb.Batch) -> Any:
        """Model output on a tile at selected parameter values ``theta`` (call
        inside :meth:`_configured`)."""
        values = {**self.fixed, **dict(zip(self.names, theta))}
        return self.objective.forward(
            lambda *a, **k: functional_call(self._work, (values, self.buffers), a, k),
            tile,
        )

    def tile_loss(self, output: Any, tile: nb.Batch) -> torch.Tensor:
        """The tile's share of the loss: ``Σ_k coefficient_k · sum_k``."""
        parts = self.objective.read(output, tile)
        return sum(c * p[0] for c, p in zip(self.coefficients, parts))

    def leaves(self) -> list[torch.Tensor]:
        """Fresh differentiable copies of the selected parameter values."""
        return [t.detach().clone().requires_grad_(True) for t in self.theta]

    def leaves_and_output(self, t: int) -> tuple[list[torch.Tensor], Any]:
        """Differentiable parameters and the model output on tile ``t`` (the
        forward pass of the first data pass when it was kept)."""
        kept = self._forwards.pop(t, None)
        if kept is not None:
            return kept
        theta = self.leaves()
        return theta, self.forward(theta, self.tiles[t])

    def _tile_state(self, tile: nb.Batch, t: int) -> Any:
        """What the product on tile ``t`` needs (e.g. a gradient graph)."""
        raise NotImplementedError

    def _tile_product(
        self, state: Any, parts: list[torch.Tensor], batched: bool
    ) -> list[torch.Tensor]:
        """The tile's matrix times vectors given per parameter.

        ``parts[i]`` has shape ``(b, *shape_i)`` when ``batched`` else
        ``shape_i``; returns the products in the same layout.
        """
        raise NotImplementedError

    # ---------------------------------------------------------- products
    def split(self, v: torch.Tensor) -> list[torch.Tensor]:
        """Per-parameter views of ``v`` of shape ``(..., dim)``."""
        lead = v.shape[:-1]
        return [
            c.reshape(*lead, *s)
            for c, s in zip(torch.split(v, self.sizes, dim=-1), self.shapes)
        ]

    def flatten(self, tensors: Sequence[torch.Tensor], lead: int = 0) -> torch.Tensor:
        """Concatenate per-parameter tensors into vectors of length :attr:`dim`."""
        return torch.cat([t.reshape(*t.shape[:lead], -1) for t in tensors], dim=lead)

    def unflatten(self, v: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split a vector of length :attr:`dim` into named parameter tensors."""
        return dict(zip(self.names, self.split(v)))

    def _state(self, t: int) -> Any:
        if t in self._states:
            return self._states[t]
        state = self._tile_state(self.tiles[t], t)
        if self.keep_graph:
            self._states[t] = state
        return state

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """``(M @ V.T).T`` for ``V`` of shape ``(b, dim)``: ``b`` products."""
        if not isinstance(V, torch.Tensor):
            V = torch.as_tensor(np.asarray(V))
        if V.dim() != 2 or V.shape[1] != self.dim:
            raise ValueError(
                f"`V` must have shape (b, {self.dim}), got {tuple(V.shape)}"
            )
        if V.dtype != self.dtype or V.device != self.device:
            V = V.to(dtype=self.dtype, device=self.device)
        b = V.shape[0]
        with contextlib.nullcontext() if self._held else self._configured():
            if len(self.tiles) == 1:
                total = self._apply(self._state(0), V)
            else:
                total = torch.zeros((b, self.dim), dtype=self.dtype, device=self.device)
                for t in range(len(self.tiles)):
                    total.add_(self._apply(self._state(t), V))
        self.products += b
        return total

    def _batching_pays(self) -> bool:
        """Batched products, except for convolutions on a CPU (see the module
        docstring): decided from the model and the device alone."""
        if self.device is not None and torch.device(self.device).type != "cpu":
            return True
        return not any(
            isinstance(m, nn.modules.conv._ConvNd) for m in self._work.modules()
        )

    def _apply(self, state: Any, V: torch.Tensor) -> torch.Tensor:
        """The tile's products with the rows of ``V``: in one batched backward
        pass, or one by one (see :meth:`_batching_pays`)."""
        if V.shape[0] == 1 or not self._batched:
            return self._looped(state, V)
        try:
            return self._batched_product(state, V)
        except RuntimeError:
            self._batched = False  # no batching rule here: loop from now on
            return self._looped(state, V)

    def _batched_product(self, state: Any, V: torch.Tensor) -> torch.Tensor:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = self._tile_product(state, self.split(V), True)
        for w in caught:
            if "There is a performance drop" in str(w.message):
                self._batched = False  # torch looped inside: loop from now on
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return self.flatten([o.detach() for o in out], lead=1)

    def _looped(self, state: Any, V: torch.Tensor) -> torch.Tensor:
        if V.shape[0] == 1:
            out = self._tile_product(state, self.split(V[0]), False)
            return self.flatten([o.detach() for o in out])[None]
        rows = [
            self.flatten(
                [o.detach() for o in self._tile_product(state, self.split(v), False)]
            )
            for v in V
        ]
        return torch.stack(rows)

    def matvec(self, v: Any) -> Any:
        """``M @ v`` for ``v`` of shape ``(dim,)`` (a tensor, or a NumPy array,
        which gives a NumPy array back)."""
        as_numpy = not isinstance(v, torch.Tensor)
        vt = torch.as_tensor(np.asarray(v)) if as_numpy else v
        if vt.shape != (self.dim,):
            raise ValueError(
                f"`v` must have shape ({self.dim},), got {tuple(vt.shape)}"
            )
        out = self.matmat(vt.reshape(1, -1))[0]
        return out.detach().cpu().double().numpy() if as_numpy else out

    __matmul__ = matvec

    @property
    def shape(self) -> tuple[int, int]:
        return (self.dim, self.dim)

    def dense(self, block: int = 64) -> torch.Tensor:
        """The full ``(dim, dim)`` matrix from ``dim`` products (small models)."""
        eye = torch.eye(self.dim, dtype=self.dtype, device=self.device)
        cols = [self.matmat(eye[i : i + block]) for i in range(0, self.dim, block)]
        return torch.cat(cols).T.contiguous()

    def to_scipy(self) -> Any:
        """This matrix as a ``scipy.sparse.linalg.LinearOperator`` (float64)."""
        from scipy.sparse.linalg import LinearOperator

        def mv(v: np.ndarray) -> np.ndarray:
            return self.matvec(np.asarray(v, dtype=np.float64).reshape(-1))

        def mm(V: np.ndarray) -> np.ndarray:
            out = self.matmat(torch.as_tensor(np.asarray(V, dtype=np.float64).T))
            return out.T.detach().cpu().double().numpy()

        return LinearOperator(
            (self.dim, self.dim), matvec=mv, rmatvec=mv, matmat=mm, dtype=np.float64
        )

    def loss(self) -> float:
        """The loss over the data at the operator's point (exact aggregation)."""
        return self._loss

    def release(self) -> None:
        """Drop the kept graphs (they are rebuilt on the next product)."""
        self._states.clear()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(dim={self.dim}, samples={self.n_samples}, "
            f"tiles={len(self.tiles)}, bn={self.bn!r}, dtype={self.dtype}, "
            f"products={self.products})"
        )
