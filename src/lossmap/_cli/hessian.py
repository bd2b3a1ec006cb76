"""``lossmap hessian``: eigenvalues, trace, density and blocks of a curvature matrix.

A thin layer over :mod:`lossmap.nn.curvature`. :func:`hessian_options` checks
every setting before anything is loaded (the same checks for the command line
and an experiment file); :func:`do_hessian` then builds one operator and runs
each asked-for part on it — one Lanczos run for ``--top``/``--bottom``, the
trace, the density, the blocks — printing a line for each and collecting the
``--out`` JSON record (``kind`` "nn.hessian").

The model, data and loss options, :class:`~lossmap._cli.netcommon.Inputs` and
the recorded command are the network commands' common ground
(:mod:`lossmap._cli.netcommon`); :mod:`lossmap._cli.experiment` runs this
command from an experiment file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from lossmap._cli import inputs
from lossmap._cli.netcommon import (
    Bn,
    Call,
    Data,
    Device,
    Inputs,
    Logits,
    Loss,
    Model,
    Targets,
    Weights,
    WeightsKey,
    command_line,
    run_command,
)
from lossmap._progress import progress

#: ``--trace-method``: the library's trace estimators by function name.
TRACE_METHODS = ("hutchinson", "hutchpp")
#: ``--loss`` spellings whose likelihood ``--matrix fisher`` knows (the
#: lossmap.losses name or the torch.nn.functional one); others need
#: ``--likelihood``.
_LIKELIHOOD_OF_LOSS = {
    "cross_entropy": "categorical",
    "mse": "gaussian",
    "mse_loss": "gaussian",
    "bce_with_logits": "bernoulli",
    "binary_cross_entropy_with_logits": "bernoulli",
}
#: Words for the matrices in the printed summary.
MATRIX_WORDS = {
    "hessian": "Hessian",
    "ggn": "generalised Gauss-Newton",
    "empirical_fisher": "empirical Fisher",
    "fisher": "Monte-Carlo Fisher",
}

# ------------------------------------------------------------------ options
Params = Annotated[
    list[str] | None,
    typer.Option(
        help="Parameters the matrix is taken over (the others stay fixed): "
        "names, module names or glob patterns, repeat or comma-join (default: "
        "every parameter)."
    ),
]
Matrix = Annotated[
    str,
    typer.Option(
        help="Curvature matrix: hessian, ggn (generalised Gauss-Newton), "
        "empirical_fisher or fisher (Monte-Carlo true Fisher)."
    ),
]
Likelihood = Annotated[
    str | None,
    typer.Option(
        help="--matrix fisher: categorical, gaussian or bernoulli (inferred "
        "for cross_entropy, mse and bce_with_logits)."
    ),
]
FisherSamples = Annotated[
    int | None,
    typer.Option(help="--matrix fisher: targets drawn per input (default 1)."),
]
Top = Annotated[int, typer.Option(help="How many largest eigenvalues (0: none).")]
Bottom = Annotated[
    int,
    typer.Option(
        help="How many smallest eigenvalues (0: none; the most negative are "
        "a saddle's escape directions); same Lanczos run as --top."
    ),
]
Tol = Annotated[
    float | None,
    typer.Option(
        help="Lanczos residual tolerance relative to the matrix norm (default "
        "1e-8, at least 100 machine epsilons)."
    ),
]
MaxIter = Annotated[
    int | None,
    typer.Option(
        help="Most Lanczos steps (default: min(dim, max(300, 10 × the "
        "eigenvalues asked for)))."
    ),
]
Probes = Annotated[
    int,
    typer.Option(
        help="Most probes for the trace (0: no trace); fewer with --target-se."
    ),
]
TraceMethod = Annotated[
    str, typer.Option(help="Trace estimator: hutchinson or hutchpp (Hutch++).")
]
TargetSe = Annotated[
    float | None,
    typer.Option(
        help="Stop the trace once its standard error is at most this (after 10 probes)."
    ),
]
Density = Annotated[bool, typer.Option(help="Estimate the eigenvalue density (SLQ).")]
DensityProbes = Annotated[
    int, typer.Option(help="SLQ probes; their spread is the density's error band.")
]
DensitySteps = Annotated[
    int, typer.Option(help="Lanczos steps per SLQ probe (at most dim).")
]
Blocks = Annotated[
    str | None,
    typer.Option(
        help="Also each block's top eigenvalue and trace (Hutch++): module "
        "(one block per layer) or parameter."
    ),
]
Seed = Annotated[int, typer.Option(help="Seed of the Lanczos start, probes and draws.")]
Out = Annotated[Path | None, typer.Option(help="Write the results (.json).")]


# --------------------------------------------------------- checking options
def hessian_options(s: dict[str, Any]) -> dict[str, Any]:
    """The ``lossmap hessian`` settings checked (before anything is loaded).

    Every message names the option, what it expects and what came; the same
    checks serve the command line and an experiment file.
    """
    from lossmap._validation import check_choice, check_int
    from lossmap.nn.curvature import MATRICES

    o: dict[str, Any] = {}
    o["matrix"] = check_choice("--matrix", s.get("matrix", "hessian"), MATRICES)
    o.update(_lanczos_options(s))
    o.update(_trace_options(s))
    o.update(_density_options(s))
    blocks = s.get("blocks")
    o["blocks"] = None if blocks is None else _check_blocks(blocks)
    o["seed"] = check_int("--seed", s.get("seed", 0), minimum=0)
    o.update(_fisher_options(s, o["matrix"]))
    out = s.get("out")
    if out is not None and Path(out).suffix != ".json":
        raise ValueError(f"`--out` must end in .json, got {Path(out).name!r}")
    o["out"] = out
    return o


def _lanczos_options(s: dict[str, Any]) -> dict[str, Any]:
    """``--top``, ``--bottom``, ``--tol`` and ``--max-iter``."""
    from lossmap._validation import check_float, check_int

    o: dict[str, Any] = {}
    o["top"] = check_int("--top", s.get("top", 5), minimum=0)
    o["bottom"] = check_int("--bottom", s.get("bottom", 0), minimum=0)
    tol = s.get("tol")
    o["tol"] = (
        None if tol is None else check_float("--tol", tol, minimum=0.0, strict_min=True)
    )
    it = s.get("max_iter")
    o["max_iter"] = None if it is None else check_int("--max-iter", it, minimum=1)
    return o


def _trace_options(s: dict[str, Any]) -> dict[str, Any]:
    """``--probes``, ``--trace-method`` and ``--target-se``."""
    from lossmap._validation import check_choice, check_float, check_int

    o: dict[str, Any] = {}
    o["probes"] = check_int("--probes", s.get("probes", 50), minimum=0)
    if o["probes"] == 1:
        raise ValueError(
            "`--probes` must be 0 (no trace) or >= 2 (a standard error needs two "
            "probes), got 1"
        )
    o["trace_method"] = check_choice(
        "--trace-method", s.get("trace_method", "hutchinson"), TRACE_METHODS
    )
    se = s.get("target_se")
    o["target_se"] = (
        None
        if se is None
        else check_float("--target-se", se, minimum=0.0, strict_min=True)
    )
    if o["target_se"] is not None and o["probes"] == 0 and s.get("blocks") is None:
        raise ValueError(
            "`--target-se` needs a trace: `--probes` must be >= 2 (the most probes), "
            "got 0"
        )
    return o


def _density_options(s: dict[str, Any]) -> dict[str, Any]:
    """``--density``, ``--density-probes`` and ``--density-steps``."""
    from lossmap._validation import check_int

    density = s.get("density", True)
    if not isinstance(density, bool):
        raise TypeError(f"`--density` must be true or false, got {density!r}")
    return {
        "density": density,
        "density_probes": check_int(
            "--density-probes", s.get("density_probes", 4), minimum=1
        ),
        "density_steps": check_int(
            "--density-steps", s.get("density_steps", 80), minimum=2
        ),
    }


def _check_blocks(value: Any) -> str:
    """``--blocks``, checked against the library's own grouping names."""
    from types import SimpleNamespace

    from lossmap.nn.curvature import blocks_by

    if not isinstance(value, str):
        raise TypeError(f"`--blocks` must be a string, got {value!r}")
    try:
        blocks_by(SimpleNamespace(names=[]), value)
    except ValueError as exc:
        raise ValueError(str(exc).replace("`by`", "`--blocks`", 1)) from None
    return value


def _fisher_options(s: dict[str, Any], matrix: str) -> dict[str, Any]:
    """``--likelihood`` and ``--fisher-samples`` (for ``--matrix fisher`` only).

    Without ``--likelihood`` the likelihood is the one behind ``--loss``.
    """
    from lossmap._validation import check_choice, check_int
    from lossmap.nn.curvature import LIKELIHOODS

    likelihood = s.get("likelihood")
    if likelihood is not None:
        likelihood = check_choice("--likelihood", likelihood, LIKELIHOODS)
        if matrix != "fisher":
            raise ValueError(
                f"`--likelihood` applies to --matrix fisher only, got --matrix {matrix}"
            )
    draws = s.get("fisher_samples")
    if draws is not None and matrix != "fisher":
        raise ValueError(
            f"`--fisher-samples` applies to --matrix fisher only, got --matrix {matrix}"
        )
    samples = check_int("--fisher-samples", 1 if draws is None else draws, minimum=1)
    if matrix == "fisher" and likelihood is None:
        spec = str(s.get("loss", "cross_entropy")).strip()
        likelihood = _LIKELIHOOD_OF_LOSS.get(spec.lower().replace("-", "_"))
        if likelihood is None:
            raise ValueError(
                f"`--matrix fisher` needs the likelihood behind `--loss`: give "
                f"`--likelihood` (one of {list(LIKELIHOODS)}); it is known only for "
                f"the losses {sorted(_LIKELIHOOD_OF_LOSS)}, got --loss {spec!r}"
            )
    return {"likelihood": likelihood, "fisher_samples": samples}


# ------------------------------------------------------------ records, words
def _flag(ok: bool) -> str:
    return "converged" if ok else "NOT converged"


def _eigen_record(eig: Any) -> dict[str, Any]:
    ok = [bool(r <= eig.tolerance) for r in eig.residuals]
    return {
        "eigenvalues": [float(v) for v in eig.values],
        "residuals": [float(r) for r in eig.residuals],
        "converged": ok,
    }


def _eigen_words(eig: Any) -> str:
    return ", ".join(
        f"{v:.6g} ({_flag(r <= eig.tolerance)})"
        for v, r in zip(eig.values, eig.residuals)
    )


def _trace_record(tr: Any, target_se: float | None, probes: int) -> dict[str, Any]:
    return {
        "value": float(tr.value),
        "stderr": float(tr.stderr),
        "probes": int(tr.probes),
        "method": tr.method,
        "products": int(tr.products),
        "exact_part": float(tr.exact_part),
        "max_probes": int(probes),
        "target_se": target_se,
        "target_met": None if target_se is None else bool(tr.stderr <= target_se),
    }


def _trace_words(tr: Any) -> str:
    if tr.method == "exact":
        return f"{tr.value:.6g} (exact, {tr.products} products)"
    return (
        f"{tr.value:.6g} ± {tr.stderr:.3g} ({tr.method}, {tr.probes} probes, "
        f"{tr.products} products)"
    )


# ------------------------------------------------------------------ the runner
class _Counted:
    """A curvature operator that reports each matrix-vector product."""

    def __init__(self, op: Any) -> None:
        self.op = op
        self.advance: Any = lambda n=1: None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.op, name)

    def matvec(self, v: Any) -> Any:
        out = self.op.matvec(v)
        self.advance(1)
        return out

    def matmat(self, V: Any) -> Any:
        out = self.op.matmat(V)
        self.advance(int(V.shape[0]))
        return out


def do_hessian(s: dict[str, Any]) -> dict[str, Any]:
    """Run ``lossmap hessian`` with the settings ``s``; return its JSON record.

    Each part prints its lines and gives its entries of the record, in the
    order of the record's keys.
    """
    o = hessian_options(s)
    inp = Inputs(s)
    op = _operator(inp, o, s)
    result = _matrix_part(op, inp, o, s)
    result.update(_eigen_part(op, o))
    if o["probes"] >= 2:
        result["trace"] = _trace_part(op, o)
    if o["density"]:
        result["density"] = _density_part(op, o)
    if o["blocks"] is not None:
        result["blocks"] = _blocks_part(op, o)
    result["products"] = int(op.products)
    typer.echo(f"products: {op.products} matrix-vector products in all")
    if s.get("experiment") is not None:
        result["_experiment"] = s["experiment"]
    if o["out"] is not None:
        Path(o["out"]).write_text(json.dumps(result, indent=1) + "\n")
        typer.echo(f"wrote {o['out']}")
    return result


def _operator(inp: Inputs, o: dict[str, Any], s: dict[str, Any]) -> _Counted:
    """The curvature operator of ``--matrix`` over ``--params``, counted."""
    from lossmap.nn import curvature as C

    names = inputs.param_names(inp.model, inp.params)
    extra: dict[str, Any] = {}
    if o["matrix"] == "fisher":
        extra = {
            "likelihood": o["likelihood"],
            "samples": o["fisher_samples"],
            "seed": o["seed"],
        }
    return _Counted(
        C.operator(
            inp.model,
            inp.loss,
            inp.data,
            matrix=o["matrix"],
            params=names,
            bn=s.get("bn", "eval"),
            **extra,
            **inputs.conventions(s),
        )
    )


def _matrix_part(
    op: _Counted, inp: Inputs, o: dict[str, Any], s: dict[str, Any]
) -> dict[str, Any]:
    """The record's head: which matrix, over what, at which loss."""
    for name in ("top", "bottom"):
        if o[name] > op.dim:
            typer.echo(
                f"--{name} {o[name]} is more than the {op.dim} parameter values: "
                f"{op.dim} eigenvalues"
            )
    result: dict[str, Any] = {
        "kind": "nn.hessian",
        "matrix": o["matrix"],
        "dim": op.dim,
        "params": list(op.names),
        "selection": {
            "given": None if inp.params is None else list(inp.params),
            "sizes": [int(n) for n in op.sizes],
            "bn": op.bn,
        },
        "samples": int(op.n_samples),
        "loss": float(op.loss()),
        "seed": o["seed"],
        "_command": command_line("hessian", s),
    }
    if o["matrix"] == "fisher":
        result["likelihood"] = o["likelihood"]
        result["fisher_samples"] = o["fisher_samples"]
    word = MATRIX_WORDS.get(o["matrix"], o["matrix"])
    typer.echo(
        f"matrix: {o['matrix']} ({word}) over {op.dim} parameter values in "
        f"{len(op.names)} tensor{'s' if len(op.names) > 1 else ''}, "
        f"{op.n_samples} samples, loss {op.loss():.6g}"
    )
    return result


def _eigen_part(op: _Counted, o: dict[str, Any]) -> dict[str, Any]:
    """``--top``/``--bottom``: the largest and smallest eigenvalues.

    The entries are ``lanczos``, then the top's ``eigenvalues``, ``residuals``
    and ``converged`` (where they were before ``--bottom`` came), ``bottom``.
    """
    from lossmap.nn import curvature as C

    top, bottom = min(o["top"], op.dim), min(o["bottom"], op.dim)
    wanted = {k: n for k, n in (("largest", top), ("smallest", bottom)) if n}
    if not wanted:
        return {"eigenvalues": []}
    edges, max_iter = _lanczos(op, o, wanted)
    any_eig = next(iter(edges.values()))
    # relative tolerance in effect (the library keeps it >= 100 eps)
    used = any_eig.tolerance / any_eig.norm if any_eig.norm > 0 else math.nan
    part: dict[str, Any] = {
        "lanczos": {
            "tol": o["tol"] if o["tol"] is not None else C.default_tol(op.dtype),
            "tol_used": None if math.isnan(used) else used,
            "tolerance": float(any_eig.tolerance),
            "norm": float(any_eig.norm),
            "iterations": int(any_eig.iterations),
            "restarts": int(any_eig.restarts),
            "max_iter": max_iter,
            "products": int(any_eig.products),
        }
    }
    if "largest" in edges:
        part.update(_eigen_record(edges["largest"]))  # "eigenvalues" etc.: the top
        typer.echo("top eigenvalues: " + _eigen_words(edges["largest"]))
    else:
        part["eigenvalues"] = []
    if "smallest" in edges:
        part["bottom"] = _eigen_record(edges["smallest"])
        typer.echo("bottom eigenvalues: " + _eigen_words(edges["smallest"]))
    _lanczos_words(edges, used, o["tol"], op.dtype)
    return part


def _lanczos(
    op: _Counted, o: dict[str, Any], wanted: dict[str, int]
) -> tuple[dict[str, Any], int | None]:
    """One Lanczos run for both ends; the edges and the ``--max-iter`` used."""
    from lossmap.nn import curvature as C

    kmax = max(wanted.values())
    max_iter = o["max_iter"]
    if max_iter is not None and max_iter < kmax:
        raise ValueError(
            f"`--max-iter` must be at least the eigenvalues asked for at one "
            f"end (--top/--bottom, {kmax}), got {max_iter}"
        )
    if max_iter is not None:
        max_iter = min(max_iter, op.dim)  # the whole space: exact
    steps = max_iter or min(op.dim, max(300, 10 * kmax))
    with progress(steps, "Lanczos (at most)", unit="products") as op.advance:
        edges = C.lanczos_edges(
            op, wanted, tol=o["tol"], max_iter=max_iter, seed=o["seed"]
        )
    return edges, max_iter


def _lanczos_words(
    edges: dict[str, Any], used: float, tol: float | None, dtype: Any
) -> None:
    """Print the run's steps and tolerance, and what to do if it fell short."""
    any_eig = next(iter(edges.values()))
    typer.echo(
        f"Lanczos: {any_eig.iterations} steps, {any_eig.products} products, "
        f"residual tolerance {any_eig.tolerance:.3g} "
        f"(tol {used:.3g} × ‖M‖ ≈ {any_eig.norm:.4g})"
    )
    if tol is not None and used > 1.01 * tol:
        typer.echo(
            f"  --tol {tol:.3g} is below what {dtype} products can "
            f"resolve; {used:.3g} is used"
        )
    if not all(e.converged for e in edges.values()):
        typer.echo("  some pairs did not converge: raise --max-iter, or loosen --tol")


def _trace_part(op: _Counted, o: dict[str, Any]) -> dict[str, Any]:
    """``--probes``: the trace by ``--trace-method``, with its standard error."""
    from lossmap.nn import curvature as C

    fn = C.hutchpp if o["trace_method"] == "hutchpp" else C.hutchinson
    total = o["probes"] + (2 * min(32, op.dim) if fn is C.hutchpp else 0)
    with progress(total, o["trace_method"], unit="products") as op.advance:
        tr = fn(op, probes=o["probes"], target_se=o["target_se"], seed=o["seed"])
    typer.echo("trace: " + _trace_words(tr))
    if o["target_se"] is not None and tr.stderr > o["target_se"]:
        typer.echo(
            f"  the standard error {tr.stderr:.3g} is above --target-se "
            f"{o['target_se']:.3g} after the most probes ({o['probes']}); "
            "raise --probes"
        )
    return _trace_record(tr, o["target_se"], o["probes"])


def _density_part(op: _Counted, o: dict[str, Any]) -> dict[str, Any]:
    """``--density``: the eigenvalue density by SLQ, with the probes' spread."""
    import numpy as np

    from lossmap.nn import curvature as C

    m = min(o["density_steps"], op.dim)
    with progress(
        o["density_probes"] * m, "spectral density", unit="products"
    ) as op.advance:
        dens = C.slq(
            op, iterations=max(2, m), probes=o["density_probes"], seed=o["seed"]
        )
    spread = dens.spread
    if spread is not None and not np.all(np.isfinite(spread)):
        spread = None
    peak = float(dens.grid[int(np.argmax(dens.density))])
    spread_words = (
        f", largest spread ± {float(np.max(spread)):.3g}" if spread is not None else ""
    )
    typer.echo(
        f"spectral density: {dens.grid.size} points from "
        f"{dens.grid[0]:.4g} to {dens.grid[-1]:.4g}, peak at {peak:.4g} "
        f"({o['density_probes']} probes × {m} steps, {dens.products} products"
        f"{spread_words})"
    )
    return {
        "grid": dens.grid.tolist(),
        "density": dens.density.tolist(),
        "sigma": dens.sigma,
        "spread": None if spread is None else spread.tolist(),
        "probes": o["density_probes"],
        "steps": m,
        "mean": dens.mean,
        "mean_stderr": None if not np.isfinite(dens.mean_stderr) else dens.mean_stderr,
        "products": int(dens.products),
    }


def _blocks_part(op: _Counted, o: dict[str, Any]) -> dict[str, Any]:
    """``--blocks``: each block's top eigenvalue and trace."""
    from lossmap.nn import curvature as C

    groups = C.blocks_by(op, o["blocks"])
    block_probes = o["probes"] if o["probes"] >= 2 else 50
    total = sum(min(op.dim, 300) + block_probes + 64 for _ in groups)
    with progress(total, f"blocks by {o['blocks']}", unit="products") as op.advance:
        before = op.products
        blocks = C.block_curvature(
            op,
            groups,
            k=1,
            probes=block_probes,
            target_se=o["target_se"],
            tol=o["tol"],
            seed=o["seed"],
        )
    typer.echo(f"blocks (by {o['blocks']}):")
    width = max(len(n) for n in blocks)
    for name, b in blocks.items():
        typer.echo(
            f"  {name:<{width}}  {b.dim:>7} values  top {_eigen_words(b.top)}"
            f"  trace {_trace_words(b.trace)}"
        )
    return {
        "by": o["blocks"],
        "products": int(op.products - before),
        "items": {
            name: {
                "params": list(b.names),
                "dim": int(b.dim),
                "top": _eigen_record(b.top),
                "trace": _trace_record(b.trace, o["target_se"], block_probes),
                "products": int(b.top.products + b.trace.products),
            }
            for name, b in blocks.items()
        },
    }


# ------------------------------------------------------------ typer command
def hessian(
    model: Model,
    data: Data,
    loss: Loss = "cross_entropy",
    weights: Weights = None,
    weights_key: WeightsKey = None,
    params: Params = None,
    bn: Bn = "eval",
    call: Call = None,
    targets: Targets = None,
    logits: Logits = None,
    matrix: Matrix = "hessian",
    likelihood: Likelihood = None,
    fisher_samples: FisherSamples = None,
    top: Top = 5,
    bottom: Bottom = 0,
    tol: Tol = None,
    max_iter: MaxIter = None,
    probes: Probes = 50,
    trace_method: TraceMethod = "hutchinson",
    target_se: TargetSe = None,
    density: Density = True,
    density_probes: DensityProbes = 4,
    density_steps: DensitySteps = 80,
    blocks: Blocks = None,
    seed: Seed = 0,
    out: Out = None,
    device: Device = None,
) -> None:
    """Eigenvalues, trace and eigenvalue density of a curvature matrix of the loss.

    The Hessian by default, or --matrix ggn, empirical_fisher or fisher; over
    --params (default: every parameter). Each number says how good it is:
    converged flags for eigenvalues, a standard error for the trace, the
    spread between probes for the density, and how many matrix-vector
    products it took.
    """
    run_command(do_hessian, dict(locals()))


def register(app: Any) -> None:
    """Add ``hessian`` to the typer ``app``."""
    app.command("hessian")(hessian)
