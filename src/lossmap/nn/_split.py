"""Splitting a model into the part a plane moves and the part it does not.

Along a plane ``θ(a, b) = θ₀ + a·d₁ + b·d₂`` two kinds of work repeat at every
grid point and can be done once per data tile instead:

* every value that depends only on the inputs and on parameters the
  directions leave at zero (the *frontier* of such values is cached);
* a ``Linear`` layer whose input is such a value but whose parameters move:
  its output is affine in the plane's coordinates,
  ``z (W₀ + a·W₁ + b·W₂)ᵀ + (c₀ + a·c₁ + b·c₂) = Y₀ + a·Y₁ + b·Y₂``,
  so ``Y₀, Y₁, Y₂`` are cached and each grid point costs a weighted sum
  instead of a matrix product.

The split uses ``torch.fx`` symbolic tracing; a model that cannot be traced
(data-dependent control flow, ...) is simply evaluated whole.
Convolutions are not turned into affine maps: a channel-expanding
convolution's output is larger than its input, so combining cached outputs
moves more memory than recomputing them.

Where ``torch.tanh`` is slow (see :func:`tanh_form`), the part that runs at
every grid point computes ``tanh`` by NumPy's vectorised loop
(:func:`numpy_tanh`) or as ``expm1(2x) / (expm1(2x) + 2)``
(:func:`expm1_tanh`); both are as accurate (within 2.5e-7 relative in
float32).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from lossmap import _cpu

#: A Linear layer becomes an affine map when each output costs at least this
#: many multiply-adds, or no more than the weighted sum of its cached parts
#: (``in_features <= m + 1`` for ``m`` directions: a one-input neuron); in
#: between, recomputing the product is about as cheap and needs no cache.
MIN_IN_FEATURES = 64

_MODULE_METHODS = {
    name: nn.Module.__dict__[name] for name in ("__call__", "__getattr__")
}


class _Gate:
    """Traces one at a time and never during the engine's forward passes.

    ``torch.fx`` tracing replaces ``torch.nn.Module.__call__`` (and
    ``__getattr__``) process-wide while it runs. Two traces at once (threads
    of an executor) corrupt each other and can leave the patch in place for
    good; a forward pass in another thread meanwhile is routed into the trace
    and fails ("module is not installed as a submodule"). So a trace is
    exclusive and the engine's forward passes share the gate. Requests are
    served in arrival order (consecutive passes together), so neither a
    trace nor a pass waits forever. A thread's passes may nest, and a thread
    may trace inside its own passes (they step aside meanwhile).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: collections.deque[object] = collections.deque()
        self._passes = 0
        self._tracing = False
        self._local = threading.local()

    def _enter(self, tracing: bool) -> None:
        me = object()
        with self._cond:
            self._queue.append(me)
            while not (
                self._queue[0] is me
                and not self._tracing
                and not (tracing and self._passes)
            ):
                self._cond.wait()
            self._queue.popleft()
            if tracing:
                self._tracing = True
            else:
                self._passes += 1
            self._cond.notify_all()  # the next in line may be a pass too

    def _leave(self, tracing: bool) -> None:
        with self._cond:
            if tracing:
                self._tracing = False
            else:
                self._passes -= 1
            self._cond.notify_all()

    @contextlib.contextmanager
    def passes(self) -> Iterator[None]:
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            self._enter(tracing=False)
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            if depth == 0:
                self._leave(tracing=False)

    @contextlib.contextmanager
    def trace(self) -> Iterator[None]:
        inside = getattr(self._local, "depth", 0) > 0
        if inside:  # this thread's passes step aside while it traces
            self._leave(tracing=False)
        self._enter(tracing=True)
        try:
            yield
        finally:
            self._leave(tracing=True)
            if inside:
                self._enter(tracing=False)


_GATE = _Gate()

#: Wrap every forward pass of the engine: ``with forward_passes(): ...``.
forward_passes = _GATE.passes


def trace(model: nn.Module) -> fx.GraphModule:
    """``fx.symbolic_trace(model)`` behind the gate; torch's globals restored."""
    t = trace_graph(model)
    return fx.GraphModule(t.root, t.graph, type(model).__name__)


@dataclass
class Traced:
    """A module's ``torch.fx`` graph and the module its node targets name.

    What :func:`fx.symbolic_trace` returns minus the ``GraphModule`` around
    it: building one generates and compiles Python code, which only the
    modules that are actually run need (:func:`build_split` makes two from
    one trace).
    """

    root: nn.Module
    graph: fx.Graph

    def submodule(self, target: Any) -> nn.Module:
        return self.root.get_submodule(str(target))


def trace_graph(model: nn.Module) -> Traced:
    """``model`` traced as :func:`fx.symbolic_trace` does, behind the gate and
    with torch's globals restored; no ``GraphModule`` is built."""
    with _GATE.trace():
        try:
            tracer = fx.Tracer()
            graph = tracer.trace(model)
            graph.owning_module = tracer.root  # for dead-code elimination
            return Traced(tracer.root, graph)
        finally:
            for name, method in _MODULE_METHODS.items():
                if nn.Module.__dict__.get(name) is not method:  # pragma: no cover
                    setattr(nn.Module, name, method)


#: ``tanh`` stays exactly ``tanh`` above this magnitude (|x| > 19.1 rounds to
#: ±1 even in float64), so ``expm1`` never overflows.
_TANH_CLAMP = 20.0
_TANH_ENV = "LOSSMAP_TANH"


def expm1_tanh(x: torch.Tensor) -> torch.Tensor:
    """``tanh(x)`` as ``e / (e + 2)`` with ``e = expm1(2x)``, ``x`` clamped to ±20.

    Relative error within a few units in the last place everywhere (``expm1``
    keeps small arguments exact; the clamp only touches values that round to
    ±1), NaN stays NaN, ±inf gives ±1. Used where torch's own ``tanh`` takes
    a slow path: its CPU kernel calls MKL's vector maths, which on non-Intel
    CPUs runs about 5x slower than torch's own vectorised ``expm1``.
    """
    e = torch.expm1(torch.clamp(x, -_TANH_CLAMP, _TANH_CLAMP).mul_(2.0))
    return e.div_(e + 2.0)  # both temporaries are fresh: in place


def _numpy_tanh_kernel(x: torch.Tensor) -> torch.Tensor:
    """``tanh`` of a float32/float64 CPU tensor by NumPy's vectorised loop."""
    src = x.detach().contiguous()
    return torch.from_numpy(np.tanh(src.numpy()))


def _numpy_tanh_meta(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _numpy_tanh_vmap(info: Any, in_dims: tuple, x: torch.Tensor) -> tuple:
    # elementwise: the batched tensor is computed whole, its batch dim kept
    return torch.ops.lossmap.numpy_tanh(x), in_dims[0]


def _lean_batching_rule() -> Any:
    """The ``FuncTorchBatched`` kernel of ``numpy_tanh``, or None where this
    torch lacks the functorch internals it needs.

    What ``torch.library.register_vmap`` installs for an elementwise rule,
    without its generic wrapping (``custom_function_call_vmap_helper``:
    about 25 µs a call, once per engine pass): unwrap the tensor at the
    current ``vmap`` level, compute the whole batch one level down (the
    batching key excluded, as that helper does), and put the batch
    dimension back where it was.
    """
    try:
        from torch._C._functorch import _add_batch_dim, _unwrap_batched
        from torch._functorch.pyfunctorch import retrieve_current_functorch_interpreter

        below = torch._C.DispatchKeySet(torch._C.DispatchKey.FuncTorchBatched)
        exclude = torch._C._ExcludeDispatchKeyGuard
    except (ImportError, AttributeError):  # pragma: no cover - other torch
        return None

    def batched(keyset: Any, x: torch.Tensor) -> torch.Tensor:
        level = retrieve_current_functorch_interpreter().level()
        inner, bdim = _unwrap_batched(x, level)
        with exclude(below):
            y = torch.ops.lossmap.numpy_tanh(inner)
        return y if bdim is None else _add_batch_dim(y, bdim, level)

    return batched


def _numpy_tanh_backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
    (y,) = ctx.saved_tensors
    return grad * (1 - y * y)


def _numpy_tanh_save(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
    ctx.save_for_backward(output)


def _define_numpy_tanh() -> torch.library.Library | None:
    """Register ``lossmap::numpy_tanh`` (CPU kernel, ``vmap`` rule,
    derivative) once per process. Defined with ``torch.library.Library``
    rather than ``custom_op``, whose first call imports ``torch._dynamo``
    (about 1.5 s)."""
    if hasattr(torch.ops.lossmap, "numpy_tanh"):
        return None
    lib = torch.library.Library("lossmap", "FRAGMENT")
    lib.define("numpy_tanh(Tensor x) -> Tensor")
    lib.impl("numpy_tanh", _numpy_tanh_kernel, "CPU")
    lib.impl("numpy_tanh", _numpy_tanh_meta, "Meta")
    lean = _lean_batching_rule()
    if lean is not None:
        lib.impl("numpy_tanh", lean, "FuncTorchBatched", with_keyset=True)
    else:
        torch.library.register_vmap("lossmap::numpy_tanh", _numpy_tanh_vmap, lib=lib)
    torch.library.register_autograd(
        "lossmap::numpy_tanh",
        _numpy_tanh_backward,
        setup_context=_numpy_tanh_save,
        lib=lib,
    )
    return lib


_NUMPY_TANH_LIB = _define_numpy_tanh()


def numpy_tanh(x: torch.Tensor) -> torch.Tensor:
    """``tanh(x)`` by NumPy's SIMD loop on float32/float64 CPU tensors
    (``torch.tanh`` for anything else), also under ``vmap`` and autograd.

    NumPy's float32 and float64 ``tanh`` have vectorised AVX2 and AVX-512
    loops accurate to about one unit in the last place; torch's CPU ``tanh``
    calls MKL's vector maths, which on non-Intel CPUs takes a slow path (here
    about 10x slower than NumPy's loop on a 400k-value tensor).
    """
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return torch.tanh(x)
    return torch.ops.lossmap.numpy_tanh(x)


def _numpy_tanh_vectorised() -> bool:
    """NumPy dispatches its float32 and float64 ``tanh`` to a SIMD target
    (not the baseline loop) on this CPU."""
    try:
        from numpy.lib import introspect

        info = introspect.opt_func_info(func_name="^tanh$")["tanh"]
        targets = [info[k]["current"] for k in ("ff", "dd")]
    except Exception:  # NumPy < 2.0 or an unexpected layout: do not assume
        return False
    return all(t and not t.startswith("baseline") for t in targets)


#: The ways the per-point graph can compute ``tanh``: name -> the function
#: that replaces ``torch.tanh`` (None: torch's own).
TANH_FORMS: dict[str, Any] = {"torch": None, "expm1": expm1_tanh, "numpy": numpy_tanh}


@functools.lru_cache(maxsize=1)
def tanh_form() -> str:
    """How the per-point graph computes ``tanh`` on this machine.

    ``"torch"`` where torch's CPU ``tanh`` is fast (no MKL, or an Intel CPU);
    elsewhere (MKL on a non-Intel CPU) ``"numpy"`` when NumPy's ``tanh`` has
    a SIMD loop for this CPU (:func:`numpy_tanh`), else ``"expm1"``
    (:func:`expm1_tanh`). ``LOSSMAP_TANH=torch|expm1|numpy`` overrides.

    Decided from what the machine is (vendor, torch build, NumPy's dispatch),
    never from a timing, so every run on one machine makes the same choice
    and a resumed surface matches an uninterrupted one bit for bit.
    """
    forced = os.environ.get(_TANH_ENV, "").strip().lower()
    if forced in TANH_FORMS:
        return forced
    if forced:
        raise ValueError(
            f"{_TANH_ENV} must be one of {', '.join(map(repr, TANH_FORMS))}, "
            f"got {forced!r}"
        )
    mkl = torch.backends.mkl.is_available()
    if not mkl or _cpu.cpu_info().vendor == "GenuineIntel":
        return "torch"
    return "numpy" if _numpy_tanh_vectorised() else "expm1"


def _pointwise_conv() -> Any:
    """oneDNN's convolution with a fused activation, where this torch has it."""
    if not torch.backends.mkldnn.is_available():
        return None
    return getattr(torch.ops.mkldnn, "_convolution_pointwise", None)


_FUSED_CONV = _pointwise_conv()


def _wrapped(x: torch.Tensor) -> bool:
    """A functorch wrapper (``vmap``'s batched tensor, a grad level)."""
    check = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)
    return bool(check(x)) if check is not None else False


def conv2d_relu(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int,
) -> torch.Tensor:
    """``relu(conv2d(x, weight, bias, ...))``, as one oneDNN call where it can.

    The activation is applied inside the convolution's output loop (one pass
    over the output fewer; in bfloat16, where a separate ``relu`` costs about
    a fifth of the convolution, the largest saving). Fused only on a CPU, for
    float32 or bfloat16 (bfloat16 autocast applied as autocast would), with no
    gradient wanted and outside ``vmap``; anything else takes the two plain
    calls. The values are the plain calls' (checked by the engine's centre
    check and the tests).
    """
    tensors = (x, weight) if bias is None else (x, weight, bias)
    plain = (
        _FUSED_CONV is None
        or x.device.type != "cpu"
        or x.dim() != 4
        or (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))
        or any(_wrapped(t) for t in tensors)
    )
    if not plain and torch.is_autocast_enabled("cpu"):
        if torch.get_autocast_dtype("cpu") != torch.bfloat16:
            plain = True
        else:
            x, weight = x.to(torch.bfloat16), weight.to(torch.bfloat16)
            bias = None if bias is None else bias.to(torch.bfloat16)
    if (
        plain
        or x.dtype not in (torch.float32, torch.bfloat16)
        or (weight.dtype != x.dtype or (bias is not None and bias.dtype != x.dtype))
    ):
        out = nn.functional.conv2d(x, weight, bias, stride, padding, dilation, groups)
        return torch.relu_(out)
    return _FUSED_CONV(
        x,
        weight,
        bias,
        list(padding),
        list(stride),
        list(dilation),
        groups,
        "relu",
        [],
        "",
    )


def _fusable_conv(root: nn.Module, node: Any) -> bool:
    """``node`` is a plain 2-D convolution whose output only a ``relu`` reads."""
    if not isinstance(node, fx.Node) or len(node.users) != 1:
        return False
    if node.op != "call_module" or _FUSED_CONV is None:
        return False
    conv = root.get_submodule(str(node.target))
    return (
        type(conv) is nn.Conv2d
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
        and len(node.args) == 1
        and not node.kwargs
    )


def _fuse_conv_relu(root: nn.Module, graph: fx.Graph, relu: fx.Node) -> None:
    """Replace ``relu(conv(x))`` by one :func:`conv2d_relu` node."""
    conv_node = relu.args[0]
    name = str(conv_node.target)
    conv = root.get_submodule(name)
    with graph.inserting_before(conv_node):
        weight = graph.get_attr(f"{name}.weight")
        bias = None if conv.bias is None else graph.get_attr(f"{name}.bias")
        fused = graph.call_function(
            conv2d_relu,
            (
                conv_node.args[0],
                weight,
                bias,
                tuple(conv.stride),
                tuple(conv.padding),
                tuple(conv.dilation),
                conv.groups,
            ),
        )
    relu.replace_all_uses_with(fused)
    graph.erase_node(relu)
    graph.erase_node(conv_node)


#: An activation as fx records it: (functions, tensor method, module type).
_TANH = ({torch.tanh, nn.functional.tanh}, "tanh", nn.Tanh)
_RELU = ({torch.relu, nn.functional.relu}, "relu", nn.ReLU)
#: Modules whose output is a fresh tensor nothing else holds.
_FRESH_MODULES = (nn.Linear, nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm)


def _calls(root: nn.Module, node: fx.Node, kind: tuple) -> bool:
    """``node`` applies the activation ``kind`` to one argument, nothing else."""
    functions, method, module = kind
    hit = (
        (node.op == "call_function" and node.target in functions)
        or (node.op == "call_method" and node.target == method)
        or (
            node.op == "call_module"
            and type(root.get_submodule(str(node.target))) is module
        )
    )
    return hit and len(node.args) == 1 and not node.kwargs.get("inplace")


def _fresh(root: nn.Module, node: Any) -> bool:
    """A tensor only one node reads and nobody else holds: an affine
    placeholder (the engine fills it afresh at every point) or the output of a
    Linear, convolution or BatchNorm layer."""
    if not isinstance(node, fx.Node) or len(node.users) != 1:
        return False
    return (node.op == "placeholder" and node.name.startswith("affine_")) or (
        node.op == "call_module"
        and isinstance(root.get_submodule(str(node.target)), _FRESH_MODULES)
    )


def _module(root: nn.Module, graph: fx.Graph) -> fx.GraphModule:
    """A GraphModule running ``graph`` (its code generated once, here)."""
    return fx.GraphModule(root, graph)


def rewrite_graph(gm: fx.GraphModule | Traced) -> dict:
    """The per-point rewrites, in place; returns what changed (empty if nothing).

    ``tanh`` becomes :func:`expm1_tanh` where :func:`tanh_form` says so; a
    ``relu`` of a 2-D convolution's output becomes one :func:`conv2d_relu`
    call, and any other ``relu`` becomes ``relu_`` where its input is fresh
    (one allocation and one pass over memory fewer per activation). All keep
    the values. A
    GraphModule is recompiled when something changed; a :class:`Traced`
    graph is only edited (its module is built afterwards, once).
    """
    root = gm.root if isinstance(gm, Traced) else gm
    graph = gm.graph
    form = tanh_form()
    fast_tanh = TANH_FORMS[form]
    tanh = relu = fused = 0
    for node in list(graph.nodes):
        if fast_tanh and _calls(root, node, _TANH) and not node.kwargs:
            node.op, node.target = "call_function", fast_tanh
            tanh += 1
        elif _calls(root, node, _RELU) and _fusable_conv(root, node.args[0]):
            _fuse_conv_relu(root, graph, node)
            fused += 1
        elif _calls(root, node, _RELU) and _fresh(root, node.args[0]):
            node.op, node.target, node.kwargs = "call_function", torch.relu_, {}
            relu += 1
    info: dict = {}
    if relu:
        info["in_place_relu"] = relu
    if fused:
        info["conv_relu"] = fused
    if tanh:
        info["tanh"] = f"{form} form ({tanh} calls; {_TANH_ENV})"
    if info:
        graph.eliminate_dead_code()
        if isinstance(gm, fx.GraphModule):
            gm.recompile()
    return info


def traced(model: nn.Module | Traced) -> Traced | None:
    """``model``'s graph (traced, or a copy of a GraphModule's, which is
    left as it is), or None when ``torch.fx`` cannot trace it."""
    if isinstance(model, Traced):
        return model
    if isinstance(model, fx.GraphModule):
        graph = fx.Graph(owning_module=model)
        graph.output(graph.graph_copy(model.graph, {}))
        return Traced(model, graph)
    try:
        return trace_graph(model)
    except Exception:
        return None


def rewrite(model: nn.Module | Traced) -> tuple[fx.GraphModule, dict] | None:
    """``model`` traced (see :func:`traced`) with :func:`rewrite_graph`'s
    rewrites, as a new GraphModule, or None when it cannot be traced or
    nothing changes. For models with nothing to cache. A :class:`Traced`
    graph is edited in place."""
    t = traced(model)
    if t is None:
        return None
    info = rewrite_graph(t)
    return (_module(t.root, t.graph), info) if info else None


class _Inputs(nn.Module):
    """A prefix that caches the input itself ``count`` times (every cached
    value and affine input is the model's input): no code to generate."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (x,) * self.count


@dataclass
class Split:
    """A model cut at the frontier of values constant along the plane.

    ``prefix(x)`` returns the cached frontier values followed by the inputs of
    the affine layers; ``rest(*frontier, *affine_outputs)`` returns the model
    output.
    """

    prefix: nn.Module
    rest: fx.GraphModule
    n_frontier: int
    affine: tuple[tuple[str, bool], ...]  # (module path, has bias)
    #: What :func:`rewrite_graph` changed in ``rest``.
    rewrites: dict = field(default_factory=dict)

    def rest_names(self) -> set[str]:
        return {n for n, _ in self.rest.named_parameters()} | {
            n for n, _ in self.rest.named_buffers()
        }

    def prefix_names(self) -> set[str]:
        return {n for n, _ in self.prefix.named_parameters()} | {
            n for n, _ in self.prefix.named_buffers()
        }

    def describe(self) -> dict:
        return {
            "cached_values": self.n_frontier,
            "affine_layers": [p for p, _ in self.affine],
            **self.rewrites,
        }


def _owns_moved(target: str, moved: set[str]) -> bool:
    return any(n == target or n.startswith(target + ".") for n in moved)


def build_split(
    model: nn.Module, moved: set[str], *, n_directions: int = 2, affine: bool = True
) -> Split | None:
    """Cut ``model`` (a working copy, or its trace: see :func:`traced`; left
    unchanged) or return None if nothing can be cached."""
    t = traced(model)
    if t is None:
        return None
    root = t.root
    nodes = list(t.graph.nodes)
    if sum(n.op == "placeholder" for n in nodes) != 1:
        return None
    const: dict[fx.Node, bool] = {}
    affine_nodes: list[fx.Node] = []
    for node in nodes:
        ins = node.all_input_nodes
        if node.op == "placeholder":
            const[node] = True
        elif node.op == "get_attr":
            const[node] = not _owns_moved(str(node.target), moved)
        elif node.op == "call_module":
            mod = root.get_submodule(str(node.target))
            inputs_const = all(const[i] for i in ins)
            owns = _owns_moved(str(node.target), moved)
            const[node] = inputs_const and not owns
            if (
                affine
                and inputs_const
                and owns
                and type(mod) is nn.Linear
                and len(node.args) == 1
                and not node.kwargs
                and (
                    mod.in_features >= MIN_IN_FEATURES
                    or mod.in_features <= n_directions + 1
                )
            ):
                affine_nodes.append(node)
        elif node.op in ("call_function", "call_method"):
            const[node] = all(const[i] for i in ins)
    affine_set = set(affine_nodes)
    frontier = [
        n
        for n in nodes
        if const.get(n, False)
        and any(not const.get(u, False) and u not in affine_set for u in n.users)
    ]
    if not affine_nodes and all(n.op == "placeholder" for n in frontier):
        return None

    # both graphs are edited (dead code, rewrites) before their modules are
    # built, so each module's code is generated once; the graphs name root's
    # submodules meanwhile (dead-code elimination asks them about purity)
    pg = fx.Graph(owning_module=root)
    env: dict[fx.Node, fx.Node] = {}
    for node in nodes:
        if const.get(node, False):
            env[node] = pg.node_copy(node, lambda n: env[n])
    outs = [env[n] for n in frontier] + [env[a.args[0]] for a in affine_nodes]
    pg.output(tuple(outs))
    pg.eliminate_dead_code()
    if all(o.op == "placeholder" for o in outs):  # e.g. a first Linear layer
        prefix: nn.Module = _Inputs(len(outs))
    else:
        prefix = _module(root, pg)

    rg = fx.Graph(owning_module=root)
    env = {}
    for i, n in enumerate(frontier):
        env[n] = rg.placeholder(f"cached_{i}")
    for j, a in enumerate(affine_nodes):
        env[a] = rg.placeholder(f"affine_{j}")
    for node in nodes:
        if node in env or const.get(node, False):
            continue
        env[node] = rg.node_copy(node, lambda n: env[n])
    rewrites = rewrite_graph(Traced(root, rg))
    rest = _module(root, rg)
    info = tuple(
        (str(a.target), root.get_submodule(str(a.target)).bias is not None)
        for a in affine_nodes
    )
    return Split(prefix, rest, len(frontier), info, rewrites)


def affine_parts(
    z: torch.Tensor,
    path: str,
    has_bias: bool,
    center: dict[str, torch.Tensor],
    dirs: list[dict[str, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """``Y₀`` of shape ``(rows, out)`` and ``Y_j`` stacked, ``(m, rows, out)``."""
    w, b = f"{path}.weight", f"{path}.bias"
    y0 = nn.functional.linear(z, center[w], center[b] if has_bias else None)
    ys = [nn.functional.linear(z, d[w], d[b] if has_bias else None) for d in dirs]
    return y0, torch.stack(ys)
