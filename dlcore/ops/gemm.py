"""Matrix products: matmul and the fused dense op y = act(x @ w + b)."""
import numpy as np

from .. import devices, kernels
from ..autograd import Function, is_recording
from ..tensor import Tensor
from .core import (compute_precision, contiguous, device_of, empty_on, float_array, out_buffer, round_array,
                   unbroadcast, value)
from .elementwise import ACTIVATIONS


def _matmul(a, b, trans_a=False, trans_b=False, precision=None):
    """op(a) @ op(b) for 2-D float arrays of one dtype, through the BLAS kernel (the bfloat16 one
    for float32 arrays when ``precision`` is "bfloat16")."""
    m = a.shape[1] if trans_a else a.shape[0]
    n = b.shape[0] if trans_b else b.shape[1]
    device = device_of(a)
    if precision == "bfloat16" and device == "cpu" and a.dtype == np.float32:
        out = np.empty((m, n), dtype=np.float32)
        kernels.get("matmul_bf16")(contiguous(a), contiguous(b), out, trans_a, trans_b, 0.0, -1)
        return out
    if device != "cpu":  # device arrays are made C-contiguous by the ops that allocate them
        out = empty_on(device, (m, n), a.dtype)
        kernels.get("matmul", device)(a, b, out, trans_a, trans_b, 1.0, 0.0)
        return out
    out = np.empty((m, n), dtype=a.dtype)
    k = a.shape[0] if trans_a else a.shape[1]
    kernels.get("matmul")(contiguous(a), contiguous(b), out, trans_a, trans_b, 1.0, 0.0,
                          kernels.team_threads_for_macs(m * n * k))
    return out


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        a, b = float_array(a), float_array(b)
        if a.dtype != b.dtype:
            dtype = np.result_type(a, b)
            a, b = a.astype(dtype), b.astype(dtype)
        precision = compute_precision()
        if ctx is not None:
            ctx.save(a, b)
            ctx.precision = precision
        if a.ndim == 2 and b.ndim == 2:
            return _matmul(a, b, precision=precision)
        return np.matmul(round_array(a, precision), round_array(b, precision))

    @staticmethod
    def backward(ctx, dy, needs):
        a, b = ctx.saved
        if a.ndim == 2 and b.ndim == 2:
            da = _matmul(dy, b, trans_b=True, precision=ctx.precision) if needs[0] else None
            db = _matmul(a, dy, trans_a=True, precision=ctx.precision) if needs[1] else None
            return da, db
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        dy2 = dy
        if a.ndim == 1:
            dy2 = np.expand_dims(dy2, -2)
        if b.ndim == 1:
            dy2 = np.expand_dims(dy2, -1)
        da = db = None
        if needs[0]:
            da = unbroadcast(np.matmul(dy2, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if needs[1]:
            db = unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), dy2), b2.shape).reshape(b.shape)
        return da, db


class Dense(Function):
    """y = act(x @ w + b) over the last axis of x.

    x: (..., K); w: (K, M); b: (M,) or None; activation: a kernel activation name.
    Inference runs one fused kernel, and so does training with linear or relu; other activations
    keep z = x @ w + b for the backward pass.
    """

    runs_on_gpu = True

    @staticmethod
    def forward(ctx, x, w, b, activation, alpha, recording):
        lead = x.shape[:-1]
        device = "cpu" if type(w) is np.ndarray else device_of(w)
        x2 = x if x.ndim == 2 else x.reshape(-1, x.shape[x.ndim - 1])
        if device != "cpu":
            x2 = devices.to_device(x2)  # a batch enters the GPU here (no-op for device arrays)
        elif not x2.flags.c_contiguous:
            x2 = np.ascontiguousarray(x2)
        code = ACTIVATIONS.get(activation)
        if code is None:
            raise ValueError(f"dense: activation {activation!r} has no fused kernel")
        y2 = (out_buffer((x2.shape[0], w.shape[1]), w.dtype) if device == "cpu"
              else empty_on(device, (x2.shape[0], w.shape[1]), w.dtype))
        threads = kernels.team_threads_for_macs(y2.size * x2.shape[1])
        precision = compute_precision() if device == "cpu" and w.dtype == np.float32 else None
        if precision == "bfloat16":  # bf16 operands, float32 sums (the kernel rounds x and w)
            dense_forward = kernels.get("dense_forward_bf16")
        else:  # float16: the layer rounded x; w is read in float32 (rounding it per call costs more than the product)
            dense_forward = kernels.get("dense_forward", device)
        if not recording or activation in ("linear", "relu"):
            dense_forward(x2, w, b, code, alpha, y2, threads)
            z2 = y2  # relu's derivative reads z > 0, which is y > 0: the fused kernel serves training too
        else:
            z2 = empty_on(device, y2.shape, y2.dtype)
            dense_forward(x2, w, b, 0, 0.0, z2, threads)
            # the activation's threads by its elements (the product's would wake OpenMP for a
            # (128, 10) softmax: 36 us a call at 2 threads)
            act_threads = kernels.threads_for(z2.size)
            if activation in ("softmax", "log_softmax"):
                kernels.get(activation + "_forward", device)(z2, y2, act_threads)
            else:
                kernels.get("activation_forward", device)(code, z2.reshape(-1), alpha, y2.reshape(-1), act_threads)
        if recording:
            ctx.save(x2, w, z2, y2)
            ctx.lead, ctx.code, ctx.alpha, ctx.activation, ctx.has_bias = lead, code, alpha, activation, b is not None
            ctx.precision = precision
        return y2 if x2 is x else y2.reshape(lead + (w.shape[1],))

    @staticmethod
    def backward(ctx, dy, needs):
        x2, w, z2, y2 = ctx.saved
        device = "cpu" if type(w) is np.ndarray else device_of(w)
        if device == "cpu":
            dy2 = contiguous(dy.astype(w.dtype, copy=False).reshape(y2.shape))
        else:
            dy2 = devices.to_device(dy).reshape(y2.shape)
        if ctx.activation == "linear":
            dz = dy2
        elif ctx.activation in ("softmax", "log_softmax"):
            dz = empty_on(device, y2.shape, y2.dtype)
            kernels.get(ctx.activation + "_backward", device)(y2, dy2, dz)
        else:
            dz = empty_on(device, y2.shape, y2.dtype)
            kernels.get("activation_backward", device)(ctx.code, z2.reshape(-1), y2.reshape(-1), dy2.reshape(-1),
                                                       ctx.alpha, dz.reshape(-1))
        precision = ctx.precision
        dx = _matmul(dz, w, trans_b=True, precision=precision).reshape(ctx.lead + (w.shape[0],)) if needs[0] else None
        dw = _matmul(x2, dz, trans_a=True, precision=precision) if needs[1] else None
        db = None
        if ctx.has_bias and needs[2]:
            db = empty_on(device, w.shape[1], w.dtype)
            kernels.get("sum_axis0", device)(dz, db, kernels.threads_for(dz.size))
        return dx, dw, db


def matmul(x1, x2):
    return MatMul.apply(x1, x2)


dot = matmul


def dense(x, kernel, bias=None, activation="linear", alpha=0.0):
    """act(x @ kernel + bias) with a fused kernel; ``activation`` is a kernel activation name."""
    xv = x.value if type(x) is Tensor else x
    w = kernel.value if isinstance(kernel, Tensor) else kernel
    if type(xv) is not np.ndarray or xv.dtype != w.dtype:
        if not devices.is_device_array(xv):
            x = xv = float_array(value(xv), dtype=w.dtype)
        elif xv.dtype != w.dtype:
            raise TypeError(f"dense: the input on the GPU has dtype {xv.dtype}; the kernel has {w.dtype}")
    if not is_recording():  # nothing to record: the forward on the arrays, without a graph node
        b = bias.value if isinstance(bias, Tensor) else bias
        return Tensor(Dense.forward(None, xv, w, b, activation, float(alpha), False))
    return Dense.apply(x, kernel, bias, activation=activation, alpha=float(alpha), recording=True)


__all__ = ["matmul", "dot", "dense"]
