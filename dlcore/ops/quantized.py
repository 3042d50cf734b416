"""int8 inference ops (kernels: quantized): the int8 dense product with dynamic per-row activation
quantization, the int8 embedding lookup, and the weight packing they read.

Keras 3 semantics (``layer.quantize("int8")``): a weight is int8 with a float32 scale per output
channel (``w_q = round(w * scale)``, so ``w ~= w_q / scale``); activations are quantized per row
at call time with the same abs-max rule; ``y = (x_q @ w_q) / (x_scale * w_scale) + bias``.
These ops run forward only: the layers refuse to record them on a tape.
"""
from collections import namedtuple

import numpy as np

from .. import kernels
from ..autograd import Function
from ..tensor import Tensor
from .core import contiguous, value
from .elementwise import activation_code


PackedInt8 = namedtuple("PackedInt8", "data csum k m")
PackedInt8.__doc__ = """An int8 (k, m) kernel in the int8 GEMM's layout: data (16-column panels, k in groups of 4,
zero-padded) and csum (column sums, m rounded up to 16)."""


def pack_int8(kernel_km):
    """The :class:`PackedInt8` of an int8 (K, M) kernel (Keras layout)."""
    w = np.asarray(kernel_km)
    if w.ndim != 2 or w.dtype != np.int8:
        raise ValueError(f"pack_int8: expected a 2-D int8 kernel (K, M), received dtype {w.dtype} and shape "
                         f"{w.shape}")
    k, m = w.shape
    panels, kq = (m + 15) // 16, (k + 3) // 4
    data, csum = np.zeros(panels * kq * 64, dtype=np.int8), np.zeros(panels * 16, dtype=np.int32)
    kernels.get("int8_pack")(np.ascontiguousarray(w), data, csum)
    return PackedInt8(data, csum, k, m)


class Int8Dense(Function):
    """y = act((quantize(x) @ w_q) / (x_scale * w_scale) + b) over the last axis of x (forward only).

    x: (..., K) float32; packed, csum: from pack_int8 of w_q (K, M); w_scale: (M,) float32;
    b: (M,) float32 or None; activation: a kernel activation name.
    """

    @staticmethod
    def forward(ctx, x, packed, csum, w_scale, b, k, activation, alpha):
        lead = x.shape[:-1]  # x's last axis is k (checked by int8_dense)
        x2 = contiguous(np.asarray(x, dtype=np.float32).reshape(-1, k))
        n, m = x2.shape[0], w_scale.shape[0]
        threads = kernels.threads_for(n * m * max(k, 1) // 4)
        q = np.empty((n, (k + 3) // 4 * 4), dtype=np.int8)
        x_scale = np.empty(n, dtype=np.float32)
        kernels.get("quantize_rows")(x2, q, x_scale, threads)
        y = np.empty((n, m), dtype=np.float32)
        kernels.get("int8_dense_forward")(q, x_scale, packed, csum, w_scale, b, activation_code(activation),
                                          float(alpha), y, threads)
        return y.reshape(lead + (m,))

    @staticmethod
    def backward(ctx, dy, needs):
        raise ValueError("int8_dense: an int8-quantized product runs inference only (no gradient)")


def int8_dense(x, packed, w_scale, bias=None, activation="linear", alpha=0.0):
    """act(x @ dequantized kernel + bias) through the int8 GEMM: ``packed`` from :func:`pack_int8`,
    ``w_scale`` (M,) Keras's kernel_scale. Returns float32 (..., M)."""
    xv = np.asarray(value(x))
    w_scale = np.ascontiguousarray(value(w_scale), dtype=np.float32)
    if activation_code(activation) is None:
        raise ValueError(f"int8_dense: activation {activation!r} has no fused kernel")
    if xv.ndim < 1 or xv.shape[-1] != packed.k:
        raise ValueError(f"int8_dense: expected inputs of shape (..., {packed.k}), received shape {xv.shape}")
    if w_scale.shape != (packed.m,):
        raise ValueError(f"int8_dense: expected w_scale of shape ({packed.m},), received {w_scale.shape}")
    b = None if bias is None else np.ascontiguousarray(value(bias),
                                                       dtype=np.float32)
    return Tensor(Int8Dense.forward(None, xv, packed.data, packed.csum, w_scale, b, packed.k, activation,
                                    alpha))


def int8_embedding_lookup(table, scale, ids):
    """``table[ids] / scale[ids, None]`` (float32) for an int8 (V, D) table, ids checked by the caller."""
    t = contiguous(np.asarray(value(table)))
    s = np.ascontiguousarray(value(scale), dtype=np.float32)
    ids_v = np.asarray(value(ids))
    flat = np.ascontiguousarray(ids_v, dtype=np.int64).reshape(-1)
    if flat.size and (int(flat.min()) < 0 or int(flat.max()) >= t.shape[0]):
        raise ValueError(f"int8_embedding_lookup: ids must be in [0, {t.shape[0]}), received ids in "
                         f"[{int(flat.min())}, {int(flat.max())}]")
    y = np.empty((flat.size, t.shape[1]), dtype=np.float32)
    kernels.get("int8_embedding_forward")(flat, t, s, y, kernels.threads_for(y.size))
    return Tensor(y.reshape(ids_v.shape + (t.shape[1],)))


__all__ = ["PackedInt8", "pack_int8", "int8_dense", "int8_embedding_lookup"]
