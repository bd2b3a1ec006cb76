"""Array backends for :mod:`lossmap.losses`: the same formulas on NumPy or torch.

torch is never imported here: :func:`ops_for` recognises a tensor only when
torch is already loaded (``sys.modules``), so NumPy users never pay for it.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np


class _NumpyOps:
    abs = staticmethod(np.abs)
    exp = staticmethod(np.exp)
    log = staticmethod(np.log)
    log1p = staticmethod(np.log1p)
    tanh = staticmethod(np.tanh)
    sinh = staticmethod(np.sinh)
    minimum = staticmethod(np.minimum)
    sign = staticmethod(np.sign)
    where = staticmethod(np.where)

    @staticmethod
    def asarray(x: Any) -> np.ndarray:
        return (
            np.asarray(x, dtype=np.float64)
            if not isinstance(x, np.ndarray) or x.dtype.kind not in "fc"
            else x
        )

    @staticmethod
    def clip(x: Any, lo: float, hi: float) -> Any:
        return np.clip(x, lo, hi)

    @staticmethod
    def relu(x: Any) -> Any:
        return np.maximum(x, 0.0)

    @staticmethod
    def sigmoid(z: Any) -> Any:
        # stable for large |z|
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))

    @staticmethod
    def log_softmax(z: Any) -> Any:
        m = np.max(z, axis=-1, keepdims=True)
        s = z - m
        return s - np.log(np.sum(np.exp(s), axis=-1, keepdims=True))

    @staticmethod
    def take(z: Any, idx: Any) -> Any:
        idx = np.asarray(idx).astype(np.intp)
        return np.take_along_axis(z, idx[..., None], axis=-1)[..., 0]

    @staticmethod
    def onehot(idx: Any, like: Any) -> Any:
        idx = np.asarray(idx).astype(np.intp)
        out = np.zeros(np.shape(like), dtype=np.asarray(like).dtype)
        np.put_along_axis(out, idx[..., None], 1.0, axis=-1)
        return out

    @staticmethod
    def sum_last(x: Any) -> Any:
        return np.sum(x, axis=-1)

    @staticmethod
    def eye_like(z: Any) -> Any:
        return np.eye(np.shape(z)[-1], dtype=np.asarray(z).dtype)

    @staticmethod
    def outer_last(a: Any, b: Any) -> Any:
        return a[..., :, None] * b[..., None, :]

    @staticmethod
    def is_integer(x: Any) -> bool:
        return np.asarray(x).dtype.kind in "iub"


class _TorchOps:
    def __init__(self, torch: Any) -> None:
        self.t = torch
        self.abs = torch.abs
        self.exp = torch.exp
        self.log = torch.log
        self.log1p = torch.log1p
        self.tanh = torch.tanh
        self.sinh = torch.sinh
        self.sign = torch.sign
        self.sigmoid = torch.sigmoid
        self.relu = torch.relu

    def asarray(self, x: Any) -> Any:
        return x if x.is_floating_point() else x.double()

    def where(self, c: Any, a: Any, b: Any) -> Any:
        t = self.t
        ref = next((v for v in (a, b) if isinstance(v, t.Tensor)), c)
        dt = ref.dtype if ref.is_floating_point() else t.float64
        a = a if isinstance(a, t.Tensor) else t.as_tensor(a, dtype=dt, device=c.device)
        b = b if isinstance(b, t.Tensor) else t.as_tensor(b, dtype=dt, device=c.device)
        return t.where(c, a, b)

    def clip(self, x: Any, lo: float, hi: float) -> Any:
        return self.t.clamp(x, lo, hi)

    def minimum(self, x: Any, bound: float) -> Any:
        return self.t.clamp(x, max=bound)

    def log_softmax(self, z: Any) -> Any:
        return self.t.log_softmax(z, dim=-1)

    def take(self, z: Any, idx: Any) -> Any:
        return self.t.gather(z, -1, idx.long().unsqueeze(-1)).squeeze(-1)

    def onehot(self, idx: Any, like: Any) -> Any:
        out = self.t.zeros_like(like)
        return out.scatter(-1, idx.long().unsqueeze(-1), 1.0)

    def sum_last(self, x: Any) -> Any:
        return x.sum(dim=-1)

    def eye_like(self, z: Any) -> Any:
        return self.t.eye(z.shape[-1], dtype=z.dtype, device=z.device)

    def outer_last(self, a: Any, b: Any) -> Any:
        return a.unsqueeze(-1) * b.unsqueeze(-2)

    def is_integer(self, x: Any) -> bool:
        return not (x.is_floating_point() or x.is_complex())


NUMPY = _NumpyOps()


def ops_for(*xs: Any) -> Any:
    torch = sys.modules.get("torch")
    if torch is not None and any(isinstance(x, torch.Tensor) for x in xs):
        return _TorchOps(torch)
    return NUMPY


def prepare(pred: Any, target: Any) -> tuple[Any, Any, Any]:
    ops = ops_for(pred, target)
    torch = sys.modules.get("torch")
    if ops is not NUMPY:
        # bring a plain number or array alongside a tensor
        if not isinstance(pred, torch.Tensor):
            pred = torch.as_tensor(pred, dtype=target.dtype, device=target.device)
        if not isinstance(target, torch.Tensor):
            target = torch.as_tensor(target, dtype=pred.dtype, device=pred.device)
    return ops, ops.asarray(pred), ops.asarray(target)
