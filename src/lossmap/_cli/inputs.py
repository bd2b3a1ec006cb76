"""What the network commands read: the user's model, weights, data and loss.

Every option of ``lossmap plane/line/pca/hessian`` that names user code or a
file is turned into a Python object here, once, before anything is computed
or written. A problem becomes a ``ValueError``/``TypeError`` whose one-line
message names the option, what was expected and what came; the CLI prints it
and exits with code 2.

* ``--model pkg.module:factory`` or ``path/to/file.py:factory``: a callable
  returning a ``torch.nn.Module``.
* ``--weights ckpt.pt`` (``torch.load(weights_only=True)``; never unpickled)
  or ``ckpt.safetensors``, a plain state dict or one nested under
  ``--weights-key`` (dots go deeper: ``ema.model``).
* ``--data pkg.module:function`` returning a batch the library accepts.
* ``--loss``: a name from :mod:`lossmap.losses` or ``torch.nn.functional``,
  ``module:function``, or ``output.loss`` (the model output's own loss).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "OUTPUT_LOSS",
    "build_model",
    "conventions",
    "load_callable",
    "load_data",
    "load_weights",
    "param_names",
    "resolve_loss",
    "resolve_metrics",
    "select_params",
]

#: ``--loss`` value meaning "the loss the model's output carries"
#: (:data:`lossmap.nn.batch.OUTPUT_LOSS`).
OUTPUT_LOSS = "output.loss"

_SPEC = re.compile(r"^(?P<where>[^:]+(?:\.py)?):(?P<name>[A-Za-z_][\w.]*)$")
_STATE_KEYS = ("state_dict", "model_state_dict", "model", "module", "net")


# ------------------------------------------------------------- user code
def _import_file(path: Path, option: str) -> Any:
    """Import ``path`` as a module named after the file (its folder on sys.path)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"`{option}` names file {str(path)!r}, which does not exist"
        )
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = path.stem
    known = sys.modules.get(name)
    if (
        known is not None
        and Path(getattr(known, "__file__", "") or "") == path.resolve()
    ):
        return known
    spec = importlib.util.spec_from_file_location(name, path.resolve())
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except Exception as exc:
        del sys.modules[name]
        raise ValueError(
            f"`{option}`: importing {str(path)!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    return module


def load_callable(spec: str, option: str) -> Callable[..., Any]:
    """``pkg.module:name`` or ``path/file.py:name`` → the callable it names."""
    match = _SPEC.match(spec.strip()) if isinstance(spec, str) else None
    if match is None:
        raise ValueError(
            f"`{option}` must be MODULE:NAME or FILE.py:NAME (e.g. "
            f"mypkg.nets:make_model or nets.py:make_model), got {spec!r}"
        )
    where, name = match["where"], match["name"]
    if where.endswith(".py") or "/" in where or "\\" in where:
        module = _import_file(Path(where), option)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise ValueError(
                f"`{option}` must name an importable module, got {where!r} ({exc})"
            ) from exc
    obj: Any = module
    for part in name.split("."):
        if not hasattr(obj, part):
            found = sorted(
                n
                for n, v in vars(module).items()
                if callable(v) and not n.startswith("_")
            )
            raise ValueError(
                f"`{option}` must name a callable in {where!r}, got {name!r}, which "
                f"is not there (callables found: {', '.join(found[:12]) or 'none'})"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(
            f"`{option}` must name a callable, got {name!r} of type "
            f"{type(obj).__name__}"
        )
    return obj


# ------------------------------------------------------------------ model
def _nested(state: Any, key: str | None, path: Path) -> Mapping[str, Any]:
    import torch

    if key:
        for part in key.split("."):
            if not isinstance(state, Mapping) or part not in state:
                keys = list(state)[:12] if isinstance(state, Mapping) else []
                raise ValueError(
                    f"`--weights-key` must name an entry of {path.name}, got "
                    f"{key!r} (top-level keys: {keys})"
                )
            state = state[part]
    if not isinstance(state, Mapping):
        raise TypeError(
            f"`--weights` must hold a state dict (name → tensor), got "
            f"{type(state).__name__} in {path.name}"
        )
    if all(isinstance(v, torch.Tensor) for v in state.values()):
        return state
    if key is None:
        nested = [k for k in _STATE_KEYS if isinstance(state.get(k), Mapping)]
        if len(nested) == 1:
            return _nested(state[nested[0]], None, path)
    raise ValueError(
        f"`--weights` must be a state dict of tensors, got a checkpoint with "
        f"keys {list(state)[:12]} in {path.name}; name the entry holding the "
        f"weights with --weights-key"
    )


def load_weights(path: str | Path, key: str | None = None) -> dict[str, Any]:
    """A state dict from a weights-only ``.pt`` file or a ``.safetensors`` one."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"`--weights` must be a checkpoint file, got missing {str(path)!r}"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state: Any = load_file(str(path), device="cpu")
        except Exception as exc:
            raise ValueError(
                f"`--weights` {path.name} is not a readable safetensors file ({exc})"
            ) from exc
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise ValueError(
                f"`--weights` must be a weights-only checkpoint, got {path.name}, "
                "which holds pickled Python objects; lossmap never unpickles "
                "files. Re-save just the tensors, e.g. "
                "torch.save(model.state_dict(), 'weights.pt') or "
                "safetensors.torch.save_file(model.state_dict(), "
                "'weights.safetensors')"
            ) from None
        except Exception as exc:
            raise ValueError(
                f"`--weights` {path.name} is not a torch checkpoint "
                f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]})"
            ) from None
    return dict(_nested(state, key, path))


def _short(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_state(model: Any, state: Mapping[str, Any], what: str) -> None:
    """Refuse ``state`` unless its keys and shapes are exactly the model's."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        hint = ""
        if unexpected and all(k.startswith("module.") for k in unexpected):
            hint = " (the checkpoint's keys start with 'module.': saved from "
            hint += "DataParallel; re-save model.module.state_dict())"
        raise ValueError(
            f"`--weights` {what} does not match the model: missing keys "
            f"[{_short(missing) or 'none'}], unexpected keys "
            f"[{_short(unexpected) or 'none'}]{hint}"
        )
    wrong = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if tuple(state[k].shape) != tuple(v.shape)
    ]
    if wrong:
        raise ValueError(
            f"`--weights` {what} does not match the model: shapes differ for "
            f"{_short(wrong, 4)}"
        )
    bad = {
        k: int((~v.isfinite()).sum())
        for k, v in state.items()
        if hasattr(v, "is_floating_point")
        and v.is_floating_point()
        and not bool(v.isfinite().all())
    }
    if bad:
        first = next(iter(bad))
        raise ValueError(
            f"`--weights` {what} must hold finite values, got "
            f"{sum(bad.values())} NaN or infinite value(s) in {len(bad)} "
            f"tensor(s), e.g. {bad[first]} in {first!r} (a diverged run?)"
        )


def build_model(
    spec: str,
    weights: str | Path | None = None,
    *,
    weights_key: str | None = None,
    device: str | None = None,
) -> Any:
    """Call the ``--model`` factory, load ``--weights``, move it to ``device``."""
    import torch

    factory = load_callable(spec, "--model")
    try:
        model = factory()
    except Exception as exc:
        raise ValueError(
            f"`--model` {spec} raised {type(exc).__name__} when called with no "
            f"arguments: {exc}"
        ) from exc
    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            f"`--model` {spec} must return a torch.nn.Module, got "
            f"{type(model).__name__}"
        )
    if weights is not None:
        state = load_weights(weights, weights_key)
        check_state(model, state, Path(weights).name)
        model.load_state_dict(state)
    if device:
        model.to(torch.device(device))
    model.eval()
    return model


def state_of(
    model: Any, path: str | Path, weights_key: str | None = None
) -> dict[str, Any]:
    """The parameters of checkpoint ``path``, checked against ``model``."""
    state = load_weights(path, weights_key)
    check_state(model, state, Path(path).name)
    device = next(iter(model.parameters())).device
    names = [n for n, _ in model.named_parameters()]
    return {n: state[n].to(device) for n in names}


# ------------------------------------------------------------------- data
def _to(obj: Any, device: Any) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, tuple | list):
        return type(obj)(_to(o, device) for o in obj)
    if isinstance(obj, Mapping):
        return {k: _to(v, device) for k, v in obj.items()}
    return obj


def load_data(spec: str, device: str | None = None) -> Any:
    """Call the ``--data`` function; check its result is a batch lossmap accepts.

    Any form of the batch contract (:mod:`lossmap.nn.batch`): a tensor, an
    ``(inputs, targets)`` pair, a tuple or mapping of tensors, or a
    DataLoader/iterable of these.
    """
    from lossmap.nn import batch

    fn = load_callable(spec, "--data")
    try:
        data = fn()
    except Exception as exc:
        raise ValueError(
            f"`--data` {spec} raised {type(exc).__name__} when called with no "
            f"arguments: {exc}"
        ) from exc
    try:
        batch.materialise(data, what="--data")
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{exc} (returned by {spec})") from None
    return _to(data, device) if device else data


# ------------------------------------------------------------------ losses
class LossmapLoss:
    """A :mod:`lossmap.losses` loss as ``fn(outputs, targets) -> mean``.

    Refuses outputs and targets of different shapes for regression and binary
    losses, which would otherwise broadcast to a wrong number.
    """

    def __init__(self, name: str) -> None:
        from lossmap import losses

        self.loss = losses.get(name)
        self.__name__ = self.loss.name

    def __call__(self, outputs: Any, targets: Any) -> Any:
        if self.loss.task != "categorical":
            if outputs.shape != targets.shape and outputs.numel() == targets.numel():
                targets = targets.reshape(outputs.shape).to(outputs.dtype)
            if outputs.shape != targets.shape:
                raise ValueError(
                    f"`--loss` {self.loss.name} needs outputs and targets of the "
                    f"same shape, got {tuple(outputs.shape)} and "
                    f"{tuple(targets.shape)}"
                )
        return self.loss.mean(outputs, targets)


def resolve_loss(spec: str) -> Callable[..., Any] | str:
    """``--loss``: lossmap name, torch.nn.functional name, MODULE:FN or output.loss."""
    import torch.nn.functional as F

    from lossmap import losses

    spec = spec.strip()
    if spec == OUTPUT_LOSS:  # the batch contract reads the output's own loss
        return OUTPUT_LOSS
    if ":" in spec:
        return load_callable(spec, "--loss")
    key = spec.lower().replace("-", "_")
    if key in losses.available():
        return LossmapLoss(key)
    fn = getattr(F, spec, None)
    if callable(fn) and not spec.startswith("_"):
        return fn
    raise ValueError(
        f"`--loss` must be one of {list(losses.available())}, a "
        f"torch.nn.functional loss (e.g. nll_loss), MODULE:FUNCTION or "
        f"{OUTPUT_LOSS}, got {spec!r}"
    )


def resolve_metrics(
    specs: Sequence[str] | None,
) -> dict[str, Callable[..., Any]] | None:
    """``--metric`` names (``accuracy``) or MODULE:FUNCTION, by name."""
    from lossmap.nn import METRICS

    if not specs:
        return None
    out: dict[str, Callable[..., Any]] = {}
    for spec in specs:
        if ":" in spec:
            fn = load_callable(spec, "--metric")
            out[spec.rsplit(":", 1)[1].rsplit(".", 1)[-1]] = fn
        elif spec in METRICS:
            out[spec] = METRICS[spec]
        else:
            raise ValueError(
                f"`--metric` must be one of {sorted(METRICS)} or MODULE:FUNCTION, "
                f"got {spec!r}"
            )
    return out


def select_params(model: Any, patterns: Sequence[str] | None) -> list[str] | None:
    """``--params``: names, module names or glob patterns (repeat or comma-join).

    Returns the spec as a list of strings (what the library's ``params=``
    takes, recorded as given), after checking every entry matches.
    """
    from lossmap.nn import select

    if not patterns:
        return None
    spec = [p.strip() for pattern in patterns for p in pattern.split(",") if p.strip()]
    select(model, spec, what="--params")
    return spec


def param_names(model: Any, spec: Sequence[str] | None) -> list[str] | None:
    """The parameter names ``spec`` selects, in the model's order."""
    from lossmap.nn import select

    if spec is None:
        return None
    chosen = select(model, list(spec), what="--params")
    return [n for n, _ in model.named_parameters() if n in chosen]


def conventions(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``--call``/``--targets``/``--logits`` as the batch contract takes them.

    Each is a word (``kwargs``, ``labels``, ``logits``), a number (an index
    into a tuple batch, for ``--targets``) or ``MODULE:FUNCTION``; options not
    given are left to the contract's ``"auto"``.
    """
    out: dict[str, Any] = {}
    for name in ("call", "targets", "logits"):
        value = settings.get(name)
        if value is None:
            continue
        value = str(value).strip()
        if ":" in value:
            out[name] = load_callable(value, f"--{name}")
        elif name == "targets" and value.lstrip("-").isdigit():
            out[name] = int(value)
        else:
            out[name] = value
    return out
