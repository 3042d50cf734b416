"""Pooling ops: ``max_pool`` and ``average_pool`` (keras.ops names), 1-D and 2-D.

Inputs are channels_last, (N, L, C) or (N, H, W, C); ``data_format="channels_first"`` moves the
channel axis last and back around the kernels. Keras's "same" padding puts the extra cell at the
end (bottom/right); padded cells never count: max pooling ignores them and average pooling
divides by the real cells of each window, as Keras does. 1-D pooling runs the 2-D kernels with
H = 1. Max pooling records argmax indices only while a tape records; inference runs the plain
kernel.
"""
import numpy as np

from .. import kernels
from ..autograd import Function, is_recording
from .core import contiguous, float_array, value
from .shape import transpose

PADDINGS = ("valid", "same")


def pool_output_length(size, pool, stride, padding):
    """Output length of a pooling (or strided convolution) window along one axis (Keras)."""
    if size is None:
        return None
    if padding == "same":
        return (size + stride - 1) // stride
    return (size - pool) // stride + 1


def same_pad_before(size, pool, stride):
    """Keras/TensorFlow "same" padding before the data: half the total, rounded down."""
    out = (size + stride - 1) // stride
    return max((out - 1) * stride + pool - size, 0) // 2


def normalize_tuple(value_, rank, name, allow_zero=False, owner="pooling"):
    """``value_`` (an int or a sequence of ``rank`` ints) as a tuple of positive ints."""
    if isinstance(value_, (int, np.integer)) and not isinstance(value_, bool):
        value_ = (int(value_),) * rank
    try:
        out = tuple(int(v) for v in value_)
        ok = len(out) == rank and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                      for v in value_)
    except TypeError:
        ok = False
    if not ok or any(v < 0 or (v == 0 and not allow_zero) for v in out):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{owner}: the `{name}` argument must be a tuple of {rank} {kind} integers "
                         f"(or one integer). Received: {name}={value_!r}")
    return out


class Pool(Function):
    """max or average pooling over (N, H, W, C), or (N, L, C) as H = 1.

    Attributes: mode ("max"/"average"), pool (PH, PW), strides (SH, SW), pads (PT, PL),
    out (OH, OW), recording (keep argmax indices for the backward).
    """

    @staticmethod
    def forward(ctx, x, mode, pool, strides, pads, out, recording):
        ctx.shape = x.shape
        x4 = contiguous(x if x.ndim == 4 else x[:, None])
        n, _, _, c = x4.shape
        y = np.empty((n,) + tuple(out) + (c,), dtype=x4.dtype)
        args = (pool[0], pool[1], strides[0], strides[1], pads[0], pads[1])
        threads = kernels.threads_for(y.size * pool[0] * pool[1])
        if mode == "max" and recording:
            argmax = np.empty(y.shape, dtype=np.int32)
            kernels.get("max_pool2d_forward_argmax")(x4, *args, y, argmax, threads)
            ctx.save(argmax)
        else:
            kernels.get("max_pool2d_forward" if mode == "max" else "avg_pool2d_forward")(x4, *args, y, threads)
        ctx.mode, ctx.args, ctx.shape4, ctx.dtype = mode, args, x4.shape, x4.dtype
        return y if x.ndim == 4 else y[:, 0]

    @staticmethod
    def backward(ctx, dy, needs):
        dy = dy.astype(ctx.dtype, copy=False)
        dy4 = contiguous(dy if len(ctx.shape) == 4 else dy[:, None])
        dx = np.empty(ctx.shape4, dtype=ctx.dtype)
        threads = kernels.threads_for(dx.size)
        ph, pw, sh, sw, pt, pl = ctx.args
        if ctx.mode == "max":
            (argmax,) = ctx.saved
            kernels.get("max_pool2d_backward")(dy4, argmax, *ctx.args, dx, threads)
        else:
            kernels.get("avg_pool2d_backward")(dy4, *ctx.args, dx, threads)
        return (dx.reshape(ctx.shape),)


def _pool(mode, inputs, pool_size, strides, padding, data_format, op_name):
    x = value(inputs)
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        inputs = x = float_array(x)
    if x.ndim not in (3, 4):
        raise ValueError(f"{op_name}: expected a 3-D (batch, steps, channels) or 4-D (batch, height, width, "
                         f"channels) input, received shape {x.shape}")
    rank = x.ndim - 2
    pool = normalize_tuple(pool_size, rank, "pool_size", owner=op_name)
    strides = pool if strides is None else normalize_tuple(strides, rank, "strides", owner=op_name)
    padding = str(padding).lower()
    if padding not in PADDINGS:
        raise ValueError(f"{op_name}: `padding` must be 'valid' or 'same', received {padding!r}")
    channels_first = data_format == "channels_first"
    if channels_first:
        inputs = transpose(inputs, (0,) + tuple(range(2, x.ndim)) + (1,))
    spatial = value(inputs).shape[1:-1]
    out = tuple(pool_output_length(s, p, st, padding) for s, p, st in zip(spatial, pool, strides))
    if any(o <= 0 for o in out):
        raise ValueError(f"{op_name}: the pool window {pool} with strides {strides} and padding {padding!r} "
                         f"does not fit the input's spatial shape {tuple(spatial)}; computed output "
                         f"size {out} would be empty. Input shape received: {x.shape}")
    pads = tuple(same_pad_before(s, p, st) if padding == "same" else 0
                 for s, p, st in zip(spatial, pool, strides))
    if rank == 1:  # run the 2-D kernels with H = 1
        pool, strides, pads, out = (1,) + pool, (1,) + strides, (0,) + pads, (1,) + out
    y = Pool.apply(inputs, mode=mode, pool=pool, strides=strides, pads=pads, out=out, recording=is_recording())
    if channels_first:
        y = transpose(y, (0, x.ndim - 1) + tuple(range(1, x.ndim - 1)))
    return y


def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Max pooling over the spatial axes of a channels_last (N, L, C) or (N, H, W, C) input."""
    return _pool("max", inputs, pool_size, strides, padding, data_format, "max_pool")


def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Average pooling; with "same" padding each window averages its real (unpadded) cells."""
    return _pool("average", inputs, pool_size, strides, padding, data_format, "average_pool")


__all__ = ["max_pool", "average_pool"]
