"""int8 inference ops (kernels: quantized): the int8 dense product with dynamic per-row activation
quantization, the int8 embedding lookup, the int8 convolutions (Conv1D/Conv2D through the
implicit-GEMM kernel, depthwise directly), the int8 max pooling of calibrated conv stacks, and the
weight packing they read.

Keras 3 semantics (``layer.quantize("int8")``): a weight is int8 with a float32 scale per output
channel (``w_q = round(w * scale)``, so ``w ~= w_q / scale``); activations are quantized per row
at call time with the same abs-max rule; ``y = (x_q @ w_q) / (x_scale * w_scale) + bias``.
These ops run forward only: the layers refuse to record them on a tape.
"""
import functools
from collections import namedtuple

import numpy as np

from .. import kernels
from ..autograd import Function
from ..tensor import Tensor
from .core import contiguous, value
from .conv import _hashable, _plan, normalize_tuple
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


class QuantizedTensor(Tensor):
    """An int8 Tensor with its per-tensor ``scale`` (float = value / scale): what a calibrated int8
    convolution hands the next one in the inference plan's int8 conv stacks. A plain int8 Tensor is
    a number like any other; only this type is read as quantized."""

    __slots__ = ("scale",)

    def __init__(self, value, scale):
        super().__init__(value)
        self.scale = float(scale)


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


def quantize_input(x, input_scale=None):
    """(int8 array, (N,) float32 per-sample scales) of float ``x`` (N, ...): with ``input_scale`` a
    static per-tensor scale (``q = clip(round(x * input_scale), -127, 127)``), else dynamic per sample
    (Keras's abs-max rule over each sample: scale = 127 / (max|x[n]| + 1e-7))."""
    x = contiguous(np.asarray(x, dtype=np.float32))
    n = x.shape[0]
    q = np.empty(x.shape, dtype=np.int8)
    threads = kernels.threads_for(x.size)
    if input_scale is not None:
        kernels.get("quantize_static")(x.reshape(-1), np.float32(input_scale), q.reshape(-1), threads)
        return q, np.full(n, input_scale, dtype=np.float32)
    scale = np.empty(n, dtype=np.float32)
    rows = x.reshape(n, -1)
    kernels.get("quantize_rows")(rows, q.reshape(rows.shape), scale, threads)
    return q, scale


class Int8Conv(Function):
    """y = act(conv(x_q, w_q) / (w_scale * x_scale) + b) for int8 x_q (the kernels' 4-D form, see
    ConvPlan.x4), as float32 (out_scale None) or requantized to int8 (forward only).

    weights: a PackedInt8 of the (KH * KW * C, M) kernel, or with ``depthwise`` the int8 (KH, KW, C * DM)
    kernel; x_scale: (N,) float32; w_scale: (M,) float32; b: (M,) float32 or None.
    """

    @staticmethod
    def forward(ctx, xq, x_scale, weights, w_scale, b, plan, activation, alpha, out_scale, depthwise):
        n, oh, ow, m = plan.out4
        sh, sw, ph, pw, dh, dw, _ = plan.args
        kh, kw = plan.kernel4[:2]
        y = np.empty((n * oh * ow, m), dtype=np.float32) if out_scale is None else None
        yq = np.empty((n * oh * ow, m), dtype=np.int8) if out_scale is not None else None
        code, scale = activation_code(activation), np.float32(out_scale or 0.0)
        threads = kernels.threads_for(n * oh * ow * m * kh * kw * (1 if depthwise else xq.shape[-1]) // 4)
        if depthwise:
            kernels.get("int8_depthwise_forward")(xq, x_scale, weights, w_scale, b, sh, sw, ph, pw, dh, dw, oh, ow,
                                                  code, float(alpha), y, yq, scale, threads)
        else:
            kernels.get("int8_conv2d_forward")(xq, x_scale, weights.data, weights.csum, w_scale, b, kh, kw, sh, sw,
                                               ph, pw, dh, dw, oh, ow, code, float(alpha), y, yq, scale, threads)
        return plan.y((y if yq is None else yq).reshape(plan.out4))

    @staticmethod
    def backward(ctx, dy, needs):
        raise ValueError("int8_conv: an int8-quantized convolution runs inference only (no gradient)")


def int8_conv(inputs, weights, kernel_shape, w_scale, bias=None, strides=1, padding="valid", dilation_rate=1,
              input_scale=None, activation="linear", alpha=0.0, out_scale=None, depthwise=False, _who="int8_conv"):
    """act(conv(inputs, dequantized kernel) + bias) through the int8 kernels, 1-D or 2-D, channels_last.

    inputs: (N, *spatial, C) numbers, quantized per sample (``input_scale`` None) or with the static
    ``input_scale``; or a :class:`QuantizedTensor`, used as it is (its int8 values and scale).
    weights: the PackedInt8 of the int8 kernel ``kernel_shape`` = (*kernel_size, C, M) as (KH KW C, M);
    with ``depthwise`` the int8 kernel itself, ``kernel_shape`` = (*kernel_size, C, DM).
    w_scale: (M,) float32 (M = C * DM for depthwise). out_scale: None for float32 outputs, else
    int8 outputs ``clip(round(y * out_scale), -127, 127)``. Returns a Tensor (N, *new_spatial, M).
    """
    xv = value(inputs)
    if not isinstance(xv, np.ndarray):
        xv = np.asarray(xv, dtype=np.float32)
    kshape = tuple(kernel_shape)
    if len(kshape) not in (3, 4):
        raise ValueError(f"{_who}: int8 convolutions are 1-D or 2-D (a kernel of rank 3 or 4), received a kernel "
                         f"of shape {kshape}")
    if activation_code(activation) is None:
        raise ValueError(f"{_who}: activation {activation!r} has no fused kernel")
    groups = 1
    if depthwise:
        if xv.ndim >= 1 and kshape[-2] != xv.shape[-1]:
            raise ValueError(f"{_who}: expected inputs with {kshape[-2]} channels (depthwise kernel shape {kshape}), "
                             f"received inputs of shape {xv.shape}")
        kshape, groups = kshape[:-2] + (1, kshape[-2] * kshape[-1]), kshape[-2]
    plan = _plan(xv.shape, kshape, _hashable(strides), padding, _hashable(dilation_rate), groups, _who)
    w_scale = np.ascontiguousarray(value(w_scale), dtype=np.float32)
    if w_scale.shape != (kshape[-1],):
        raise ValueError(f"{_who}: expected w_scale of shape ({kshape[-1]},), received {w_scale.shape}")
    if type(inputs) is QuantizedTensor:
        xq, x_scale = contiguous(xv), np.full(xv.shape[0], inputs.scale, dtype=np.float32)
    else:
        xq, x_scale = quantize_input(xv, input_scale)
    if plan.reflect is not None:
        xq = np.pad(xq, plan.reflect, mode="reflect")
    if depthwise:
        weights = contiguous(np.asarray(value(weights))).reshape(plan.kernel4[:2] + (kshape[-1],))
    b = None if bias is None else np.ascontiguousarray(value(bias), dtype=np.float32)
    return Tensor(Int8Conv.forward(None, plan.x4(xq), x_scale, weights, w_scale, b, plan, activation, alpha,
                                   out_scale, depthwise))


@functools.lru_cache(maxsize=64)
def _pool_plan(shape, pool_size, strides):
    """(pool, strides, output shape) of "valid" max pooling over an input of ``shape`` (cached)."""
    rank = len(shape) - 2
    pool = normalize_tuple(pool_size, rank, "pool_size", "int8_max_pool", minimum=1)
    strides = pool if strides is None else normalize_tuple(strides, rank, "strides", "int8_max_pool", minimum=1)
    out = tuple((n - p) // s + 1 for n, p, s in zip(shape[1:-1], pool, strides))
    if min(out) <= 0:
        raise ValueError(f"int8_max_pool: pool_size {pool} is larger than the input of shape {shape}")
    if rank == 1:
        return (1,) + pool, (1,) + strides, (shape[0], 1) + out + shape[-1:]
    return pool, strides, (shape[0],) + out + shape[-1:]


def int8_max_pool(inputs, pool_size, strides=None):
    """Max pooling ("valid", channels_last, 1-D or 2-D) of int8 values: the calibrated conv stacks pool
    in int8 (a max commutes with the monotonic quantization). Returns an int8 Tensor (a QuantizedTensor
    of the same scale for one)."""
    x = value(inputs)
    if x.ndim not in (3, 4) or x.dtype != np.int8:
        raise ValueError(f"int8_max_pool: expected int8 inputs (N, L, C) or (N, H, W, C), received dtype {x.dtype} "
                         f"and shape {x.shape}")
    pool, strides, out = _pool_plan(x.shape, _hashable(pool_size), _hashable(strides))
    x4 = contiguous(x if x.ndim == 4 else x[:, None])
    y = np.empty(out, dtype=np.int8)
    kernels.get("int8_max_pool2d_forward")(x4, *pool, *strides, y, kernels.threads_for(y.size * pool[0] * pool[1]))
    y = y if x.ndim == 4 else y[:, 0]
    return QuantizedTensor(y, inputs.scale) if isinstance(inputs, QuantizedTensor) else Tensor(y)


__all__ = ["PackedInt8", "QuantizedTensor", "pack_int8", "int8_dense", "int8_embedding_lookup", "quantize_input", "int8_conv",
           "int8_max_pool"]
