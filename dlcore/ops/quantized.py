"""int8 inference ops (kernels: quantized): the int8 dense product with dynamic per-row activation
quantization, the int8 embedding lookup, the int8 convolutions (Conv1D/Conv2D through the
implicit-GEMM kernel, depthwise directly), the int8 max pooling of calibrated conv stacks, the int8
LSTM / GRU (input projection of all steps as one int8 GEMM, then the int8 recurrence), and the
weight packing they read (and its inverse, for the Keras layout on demand).

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
from .core import contiguous, value, zeros_state
from .conv import _hashable, _plan, normalize_tuple
from .elementwise import activation_code
from .embedding import checked_ids


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


def unpack_int8(packed):
    """The int8 (K, M) kernel (Keras layout, a new array) of a :class:`PackedInt8`: the inverse of
    :func:`pack_int8` (P[(panel * kq + g) * 64 + c * 4 + r] = W[4 g + r, 16 panel + c])."""
    panels, kq = (packed.m + 15) // 16, (packed.k + 3) // 4
    blocks = packed.data.reshape(panels, kq, 16, 4).transpose(1, 3, 0, 2).reshape(kq * 4, panels * 16)
    return np.ascontiguousarray(blocks[:packed.k, :packed.m])


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
        y = np.empty((n, m), dtype=np.float32)
        kernels.get("int8_dense_forward")(x2, packed, csum, w_scale, b, activation_code(activation), float(alpha), y,
                                          threads)  # rows quantized inside: one kernel call
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


def int8_embedding_lookup(table, scale, ids, _who="int8_embedding_lookup"):
    """``table[ids] / scale[ids, None]`` (float32) for an int8 (V, D) table (ids checked as
    ``embedding_lookup`` checks them)."""
    t = contiguous(np.asarray(value(table)))
    s = np.ascontiguousarray(value(scale), dtype=np.float32)
    ids_v = checked_ids(ids, t.shape[0], _who)
    flat = np.ascontiguousarray(ids_v, dtype=np.int64).reshape(-1)
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


class Int8Recurrence(Function):
    """LSTM / GRU over (N, T, K) float32 inputs with int8 kernels (forward only): the inputs of all steps
    quantized per row and multiplied by the input kernel as one int8 GEMM (exact int32), then the int8
    recurrence kernel, which dequantizes those products per step. Returns (output, h) or (output, h, c)."""

    @staticmethod
    def forward(ctx, cell, x, kernel, kernel_scale, recurrent, recurrent_scale, b, h0, c0, mask, go_backwards,
                return_sequences, zero_output, act, rec, reset_after):
        from .recurrent import GATES, _last_rows  # (the recurrent family loads with its layers)

        n, t_len, k = x.shape
        u = recurrent_scale.shape[0] // GATES[cell]
        if go_backwards:
            x = x[:, ::-1]
            mask = None if mask is None else mask[:, ::-1]
        bias_in, brh = b, None
        if cell == "gru" and b is not None and reset_after:
            bias_in = b[0].copy()
            bias_in[:2 * u] += b[1][:2 * u]
            brh = np.ascontiguousarray(b[1][2 * u:])
        rows = n * t_len
        threads = kernels.threads_for(rows * kernel.m * max(k, 1) // 4)
        q = np.empty((rows, (k + 3) // 4 * 4), dtype=np.int8)
        x_scale = np.empty((n, t_len), dtype=np.float32)
        kernels.get("quantize_rows")(contiguous(x.reshape(rows, k)), q, x_scale.reshape(rows), threads)
        xacc = np.empty((n, t_len, (kernel.m + 15) // 16 * 16), dtype=np.int32)
        kernels.get("int8_matmul")(q, kernel.data, kernel.csum, xacc.reshape(rows, -1), threads)
        h = zeros_state((n, u), np.float32) if h0 is None else np.array(h0, dtype=np.float32, order="C")
        y = np.empty((n, t_len, u), np.float32) if return_sequences else None
        mask_u8 = None if mask is None else np.ascontiguousarray(mask, dtype=np.uint8)
        threads = kernels.threads_for(xacc.size)
        if cell == "lstm":
            c = zeros_state((n, u), np.float32) if c0 is None else np.array(c0, dtype=np.float32, order="C")
            kernels.get("int8_lstm_forward")(xacc, x_scale, kernel_scale, bias_in, recurrent.data, recurrent.csum,
                                             recurrent_scale, mask_u8, act[0], act[1], rec[0], rec[1], zero_output,
                                             h, c, y, threads)
            states = (h, c)
        else:
            zr, hh = recurrent
            kernels.get("int8_gru_forward")(xacc, x_scale, kernel_scale, bias_in, zr.data, zr.csum, hh.data, hh.csum,
                                            recurrent_scale, brh, mask_u8, act[0], act[1], rec[0], rec[1], reset_after,
                                            zero_output, h, y, threads)
            states = (h,)
        last_rows = _last_rows(mask, zero_output)
        if return_sequences:
            output = y
        else:
            output = h if last_rows is None else np.where(last_rows[:, None], h, 0).astype(np.float32)
        return (output,) + states

    @staticmethod
    def backward(ctx, dy, needs):
        raise ValueError("int8 recurrent ops run inference only (no gradient)")


def int8_recurrent(cell, inputs, kernel, kernel_scale, recurrent_kernel, recurrent_scale, bias=None,
                   initial_state=None, mask=None, go_backwards=False, return_sequences=False,
                   zero_output_for_mask=False, activation="tanh", recurrent_activation="sigmoid", reset_after=True):
    """``cell`` ("lstm" or "gru") over (N, T, K) inputs with int8 kernels, Keras's gate orders and masks
    (see ops.lstm / ops.gru): ``kernel`` the PackedInt8 of the (K, G) input kernel, ``recurrent_kernel`` the
    PackedInt8 of the (U, 4U) LSTM kernel, or for GRU the pair (PackedInt8 of R[:, :2U], of R[:, 2U:]);
    ``kernel_scale`` / ``recurrent_scale`` (G,) float32. Returns Tensors (output, h) or (output, h, c)."""
    from .recurrent import GATES, _act_pair

    if cell not in ("lstm", "gru"):
        raise ValueError(f"int8_recurrent: cell must be 'lstm' or 'gru', received {cell!r}")
    who = f"int8_{cell}"
    xv = np.asarray(value(inputs), dtype=np.float32)
    w_scale = np.ascontiguousarray(value(kernel_scale), dtype=np.float32)
    r_scale = np.ascontiguousarray(value(recurrent_scale), dtype=np.float32)
    g = w_scale.shape[0] if w_scale.ndim == 1 else -1
    u = g // GATES[cell]
    if xv.ndim != 3 or xv.shape[-1] != kernel.k:
        raise ValueError(f"{who}: expected inputs of shape (batch, timesteps, {kernel.k}), received {xv.shape}")
    rows = recurrent_kernel.k if cell == "lstm" else recurrent_kernel[0].k
    cols = recurrent_kernel.m if cell == "lstm" else recurrent_kernel[0].m + recurrent_kernel[1].m
    if g != kernel.m or g % GATES[cell] or r_scale.shape != (g,) or (rows, cols) != (u, g):
        raise ValueError(f"{who}: expected a kernel ({kernel.k}, {GATES[cell]} units) with scales of that width and "
                         f"a recurrent kernel (units, {GATES[cell]} units); received kernel ({kernel.k}, {kernel.m}), "
                         f"kernel_scale {w_scale.shape}, recurrent kernel ({rows}, {cols}), recurrent scale "
                         f"{r_scale.shape}")
    b = None if bias is None else np.ascontiguousarray(value(bias), dtype=np.float32)
    expected = (2, g) if cell == "gru" and reset_after else (g,)
    if b is not None and b.shape != expected:
        raise ValueError(f"{who}: bias must have shape {expected}, received {b.shape}")
    states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
    states = [None if s is None else np.asarray(value(s), dtype=np.float32) for s in states] + [None, None]
    n, t_len = xv.shape[:2]
    for i, s in enumerate(states[:2]):
        if s is not None and s.shape != (n, u):
            raise ValueError(f"{who}: initial state {i} must have shape {(n, u)}, received {s.shape}")
    mask_v = None if mask is None else np.asarray(value(mask), dtype=bool)
    if mask_v is not None and mask_v.shape != (n, t_len):
        raise ValueError(f"{who}: mask must have shape {(n, t_len)} (batch, timesteps), received {mask_v.shape}")
    if mask_v is not None and mask_v.all():
        mask_v = None
    out = Int8Recurrence.forward(None, cell, xv, kernel, w_scale, recurrent_kernel, r_scale, b, states[0], states[1],
                                 mask_v, bool(go_backwards), bool(return_sequences), bool(zero_output_for_mask),
                                 _act_pair(activation, "tanh"), _act_pair(recurrent_activation, "sigmoid"),
                                 bool(reset_after))
    return tuple(Tensor(o) for o in out)


__all__ = ["PackedInt8", "QuantizedTensor", "pack_int8", "unpack_int8", "int8_recurrent", "int8_dense", "int8_embedding_lookup", "quantize_input", "int8_conv",
           "int8_max_pool"]
