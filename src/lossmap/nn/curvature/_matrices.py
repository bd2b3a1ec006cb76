"""The curvature matrices: each writes only its product on one tile.

With ``f`` the model's outputs on a tile, ``J = ∂f/∂θ`` and ``ℓ`` the loss:

* :class:`HessianOperator` — ``H = ∇²_θ L`` by double back-propagation
  (Pearlmutter 1994, "Fast exact multiplication by the Hessian").
* :class:`GGNOperator` — the generalised Gauss-Newton matrix ``G = Jᵀ H_L J``
  with ``H_L = ∇²_f ℓ`` (Schraudolph 2002, "Fast curvature matrix-vector
  products for second-order gradient descent"); ``J v`` by the double-vjp
  trick (``J v = ∂/∂u [(Jᵀu)·v]``), so the tile's graph is built once.
* :class:`EmpiricalFisherOperator` — ``(1/N) Σₙ gₙ gₙᵀ`` with ``gₙ`` the
  gradient of sample ``n``'s loss at its observed target.
* :class:`FisherOperator` — the (Monte-Carlo) true Fisher: the same with
  targets drawn from the model's own predictive distribution, ``samples``
  draws per input, drawn once at construction (so the operator is one fixed
  symmetric matrix; ``sampled_targets`` holds the draws), scaled to the
  loss as given. For the
  categorical, Gaussian and Bernoulli likelihoods its expectation is the GGN
  (Martens 2020, "New insights and perspectives on the natural gradient
  method", §9.2); Kunstner, Hennig & Balles 2019 ("Limitations of the
  empirical Fisher approximation") show why the empirical Fisher is not.

Per-sample gradients of a mean loss are ``gₙ = Jₙᵀ ∇_f ℓₙ``, and the tile's
share of the loss is ``c · Σₙ ℓₙ`` (``c = 1/N``), so with ``rₙ = ∂(tile
share)/∂fₙ / √c`` the Fisher ``c · Σₙ gₙ gₙᵀ`` is ``Jᵀ (r ⊙ (r·Jv))`` summed over
the tiles — no per-sample backward passes. The Fishers need one loss term;
rows of the output are the samples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lossmap._validation import check_choice, check_int
from lossmap.nn import batch as nb
from lossmap.nn.curvature._base import CurvatureOperator

__all__ = [
    "LIKELIHOODS",
    "EmpiricalFisherOperator",
    "FisherOperator",
    "GGNOperator",
    "HessianOperator",
]

LIKELIHOODS = ("categorical", "gaussian", "bernoulli")


def _grad(
    outputs: Any,
    inputs: list[torch.Tensor],
    grad_outputs: Any,
    *,
    batched: bool,
    create_graph: bool = False,
) -> list[torch.Tensor]:
    """``torch.autograd.grad`` that returns zeros for unused inputs and for
    outputs that do not depend on ``inputs`` at all."""
    outs = outputs if isinstance(outputs, list | tuple) else [outputs]
    gos = grad_outputs if isinstance(grad_outputs, list | tuple) else [grad_outputs]
    pairs = [(o, g) for o, g in zip(outs, gos) if o.requires_grad]
    lead = next(iter(gos)).shape[:1] if batched else ()
    if not pairs:
        return [
            torch.zeros(*lead, *i.shape, dtype=i.dtype, device=i.device) for i in inputs
        ]
    got = torch.autograd.grad(
        [o for o, _ in pairs],
        inputs,
        grad_outputs=[g for _, g in pairs],
        retain_graph=True,
        create_graph=create_graph,
        allow_unused=True,
        is_grads_batched=batched,
    )
    return [
        g
        if g is not None
        else torch.zeros(*lead, *i.shape, dtype=i.dtype, device=i.device)
        for g, i in zip(got, inputs)
    ]


class HessianOperator(CurvatureOperator):
    """The Hessian of the mean loss over the data; see :class:`CurvatureOperator`
    for the parameters.

    Examples
    --------
    >>> import torch, torch.nn.functional as F
    >>> from lossmap.nn.curvature import HessianOperator
    >>> net = torch.nn.Linear(3, 1).double()
    >>> x = torch.randn(20, 3, dtype=torch.float64)
    >>> op = HessianOperator(net, F.mse_loss, (x, torch.zeros(20, 1).double()))
    >>> H = op.dense()   # 2/N Σ [x 1]ᵀ[x 1] for a linear model
    >>> X = torch.cat([x, torch.ones(20, 1, dtype=x.dtype)], 1)
    >>> bool(torch.allclose(H, 2 * X.T @ X / 20))
    True
    """

    kind = "hessian"

    def _tile_state(self, tile: Any, t: int) -> Any:
        theta, out = self.leaves_and_output(t)
        loss = self.tile_loss(out, tile)
        grads = _grad(
            loss, theta, torch.ones_like(loss), batched=False, create_graph=True
        )
        return theta, grads

    def _tile_product(
        self, state: Any, parts: list[torch.Tensor], batched: bool
    ) -> list[torch.Tensor]:
        theta, grads = state
        return _grad(list(grads), theta, parts, batched=batched)


class _OutputSpace(CurvatureOperator):
    """Shared by the GGN and the Fishers: the Jacobian products ``J v``, ``Jᵀ u``."""

    def _setup(self) -> None:
        # the loss must be a function of the model's output tensor; the
        # output's own .loss is not (refused here, not at the first product)
        if any(t.fn == nb.OUTPUT_LOSS for t in self.objective.terms):
            raise ValueError(
                f"{type(self).__name__} needs `loss_fn` as a function of the "
                f"model's output, got {nb.OUTPUT_LOSS!r}; pass `call=` returning "
                "the logits, e.g. `call=lambda model, b: model(input_ids="
                "b['input_ids'], attention_mask=b['attention_mask']).logits`, "
                "with `targets='labels'` and `loss_fn=F.cross_entropy`"
            )

    def _jacobian_state(self, tile: Any, t: int) -> tuple[Any, ...]:
        theta, out = self.leaves_and_output(t)
        if not isinstance(out, torch.Tensor):
            raise TypeError(
                f"{type(self).__name__} needs the model to return one tensor (the "
                f"output the loss is taken of), got {type(out).__name__}; pass "
                "`call=` returning that tensor, e.g. for a HuggingFace model "
                "`call=lambda model, b: model(input_ids=b['input_ids'], "
                "attention_mask=b['attention_mask']).logits` with "
                "`targets='labels'` and `loss_fn=F.cross_entropy`"
            )
        u = torch.zeros_like(out, requires_grad=True)
        jtu = _grad(out, theta, u, batched=False, create_graph=True)
        return theta, out, u, jtu

    @staticmethod
    def _jv(
        state: tuple[Any, ...], parts: list[torch.Tensor], batched: bool
    ) -> torch.Tensor:
        u, jtu = state[2], state[3]
        return _grad(list(jtu), [u], parts, batched=batched)[0]

    @staticmethod
    def _jtu(
        state: tuple[Any, ...], w: torch.Tensor, batched: bool
    ) -> list[torch.Tensor]:
        theta, out = state[0], state[1]
        return _grad(out, theta, w, batched=batched)


class GGNOperator(_OutputSpace):
    """The generalised Gauss-Newton matrix ``Jᵀ H_L J`` of the mean loss.

    ``H_L`` is the Hessian of ``loss_fn`` in the model's outputs; the matrix is
    positive semi-definite when the loss is convex in the outputs. Parameters
    as for :class:`CurvatureOperator`.
    """

    kind = "ggn"

    def _tile_state(self, tile: Any, t: int) -> Any:
        jac = self._jacobian_state(tile, t)
        f = jac[1].detach().requires_grad_(True)
        loss = self.tile_loss(f, tile)
        (gf,) = _grad(
            loss, [f], torch.ones_like(loss), batched=False, create_graph=True
        )
        return (*jac, f, gf)

    def _tile_product(
        self, state: Any, parts: list[torch.Tensor], batched: bool
    ) -> list[torch.Tensor]:
        f, gf = state[4], state[5]
        jv = self._jv(state, parts, batched)
        hjv = _grad(gf, [f], jv, batched=batched)[0]
        return self._jtu(state, hjv, batched)


class EmpiricalFisherOperator(_OutputSpace):
    """The empirical Fisher ``(1/N) Σₙ gₙ gₙᵀ`` at the observed targets.

    ``gₙ`` is the gradient of sample ``n``'s loss (rows of the model's output
    are samples). Parameters as for :class:`CurvatureOperator`.
    """

    kind = "empirical_fisher"

    def _setup(self) -> None:
        super()._setup()
        if len(self.objective.terms) != 1:
            raise ValueError(
                f"{type(self).__name__} needs one loss term (a per-sample "
                f"likelihood), got {len(self.objective.terms)}"
            )

    def _residuals(self, out: torch.Tensor, tile: Any, t: int) -> torch.Tensor:
        """Per-row output gradients, shape ``(draws, *out.shape)``, scaled so
        that ``Σ_rows Jᵀ r rᵀ J`` is the Fisher."""
        return self._per_row(out, tile)[None]

    def _per_row(self, out: torch.Tensor, tile: Any) -> torch.Tensor:
        # tile_loss = c · Σ_rows ℓ_row, so ∂/∂f_row = c · ∇ℓ_row, and the
        # Fisher c · Σ_rows g gᵀ is Σ_rows Jᵀ r rᵀ J with r = ∂/∂f_row / √c
        f = out.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(self.tile_loss(f, tile), f)
        return g / self.coefficients[0] ** 0.5

    def _tile_state(self, tile: Any, t: int) -> Any:
        jac = self._jacobian_state(tile, t)
        return (*jac, self._residuals(jac[1], tile, t))

    def _tile_product(
        self, state: Any, parts: list[torch.Tensor], batched: bool
    ) -> list[torch.Tensor]:
        r = state[4]  # (S, *out.shape)
        jv = self._jv(state, parts, batched)
        if not batched:
            jv = jv[None]
        n, s = r.shape[1], r.shape[0]
        rf = r.reshape(s, n, -1)  # (S, N, d)
        jf = jv.reshape(jv.shape[0], n, -1)  # (b, N, d)
        proj = torch.einsum("snd,bnd->sbn", rf, jf)
        w = torch.einsum("sbn,snd->bnd", proj, rf) / s
        w = w.reshape(jv.shape)
        return self._jtu(state, w if batched else w[0], batched)


def _likelihood_of(loss_fn: Callable[..., Any]) -> str | None:
    if loss_fn is F.cross_entropy or isinstance(loss_fn, nn.CrossEntropyLoss):
        return "categorical"
    if loss_fn is F.mse_loss or isinstance(loss_fn, nn.MSELoss):
        return "gaussian"
    if loss_fn is F.binary_cross_entropy_with_logits or isinstance(
        loss_fn, nn.BCEWithLogitsLoss
    ):
        return "bernoulli"
    return None


class FisherOperator(EmpiricalFisherOperator):
    """The true Fisher, with targets sampled from the model (Monte Carlo).

    Parameters
    ----------
    likelihood : {"categorical", "gaussian", "bernoulli"}, optional
        The distribution whose negative log-likelihood ``loss_fn`` is (up to
        constants and the mean's scale). Inferred for
        ``F.cross_entropy``/``nn.CrossEntropyLoss`` (logits, classes along
        dimension 1), ``F.mse_loss``/``nn.MSELoss`` (mean over all output
        entries: a Gaussian with variance ``d/2`` for ``d`` outputs per
        sample) and ``F.binary_cross_entropy_with_logits``; required otherwise.
    samples : int, default=1
        Targets drawn per input.
    seed : int, default=0
        Seeds the draws.

    Other parameters as for :class:`CurvatureOperator`.
    """

    kind = "fisher"

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[..., torch.Tensor],
        data: Any,
        *,
        likelihood: str | None = None,
        samples: int = 1,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        if likelihood is None:
            likelihood = _likelihood_of(loss_fn)
            if likelihood is None:
                raise ValueError(
                    "`likelihood` must be given for this `loss_fn` (one of "
                    f"{list(LIKELIHOODS)}), got None; it is inferred only for "
                    "cross_entropy, mse_loss and binary_cross_entropy_with_logits"
                )
        self.likelihood = check_choice("likelihood", likelihood, LIKELIHOODS)
        self.samples = check_int("samples", samples, minimum=1)
        self.seed = check_int("seed", seed, minimum=0)
        super().__init__(model, loss_fn, data, **kwargs)

    def _setup(self) -> None:
        super()._setup()
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        self.sampled_targets: list[torch.Tensor] = []
        with self._configured(), torch.no_grad():
            for tile in self.tiles:
                if not self.objective.is_pair(tile):
                    raise ValueError(
                        "FisherOperator needs `data` as (inputs, targets) pairs, to "
                        f"draw targets in their place; got {tile.describe()}"
                    )
                out = self.forward(self.theta, tile)
                if not isinstance(out, torch.Tensor):
                    raise TypeError(
                        "FisherOperator needs the model to return one tensor, got "
                        f"{type(out).__name__}"
                    )
                out = out.detach()
                self.sampled_targets.append(
                    torch.stack([self._draw(out, gen) for _ in range(self.samples)])
                )

    def _draw(self, out: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        cpu = out.double().cpu()
        if self.likelihood == "categorical":
            logits = cpu.movedim(1, -1) if cpu.dim() > 1 else cpu
            probs = torch.softmax(logits, dim=-1).reshape(-1, logits.shape[-1])
            draw = torch.multinomial(probs, 1, generator=gen).reshape(logits.shape[:-1])
            return draw.to(out.device)
        if self.likelihood == "gaussian":
            d = cpu[0].numel()
            noise = torch.randn(cpu.shape, generator=gen, dtype=torch.float64)
            return (cpu + (d / 2) ** 0.5 * noise).to(out)
        p = torch.sigmoid(cpu)
        return torch.bernoulli(p, generator=gen).to(out)

    def _terms(self, out: torch.Tensor) -> int:
        """Likelihood terms per sample that the mean loss averages over.

        ``loss_fn`` is ``c`` times the negative log-likelihood with ``c`` =
        1/terms (a mean over classes' positions or over Bernoulli outputs;
        the Gaussian's variance ``d/2`` already absorbs the mean over ``d``),
        and the GGN of the loss is ``c`` times the likelihood's Fisher, so the
        sampled outer products are scaled by ``1/c`` to match it.
        """
        if self.likelihood == "bernoulli":
            return int(out[0].numel())
        if self.likelihood == "categorical" and out.dim() > 2:
            return int(out[0, 0].numel())
        return 1

    def _residuals(self, out: torch.Tensor, tile: Any, t: int) -> torch.Tensor:
        scale = self._terms(out) ** 0.5
        inputs = tile.value[0]
        return torch.stack(
            [
                scale * self._per_row(out, nb.Batch.of((inputs, yh)))
                for yh in self.sampled_targets[t]
            ]
        )
