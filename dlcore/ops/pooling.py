"""Pooling ops: ``max_pool`` and ``average_pool`` (keras.ops names), 1-D, 2-D and 3-D.

Inputs are channels_last, (N, L, C), (N, H, W, C) or (N, D, H, W, C); ``data_format=
"channels_first"`` moves the channel axis last and back around the kernels. Keras's "same"
padding puts the extra cell at the end (bottom/right); padded cells never count: max pooling
ignores them and average pooling divides by the real cells of each window, as Keras does. 1-D
pooling runs the 2-D kernels with H = 1, 3-D pooling two 2-D passes (see PoolPlan). Max pooling
records argmax indices only while a tape records; inference runs the plain kernel. 2x2 windows
with stride 2 and no padding run the *_2x2 kernels (uint8 argmax); the checked geometry of each
(shape, arguments) is cached as a PoolPlan.
"""
import functools
import math
from typing import NamedTuple

import numpy as np

from .. import devices, kernels
from ..autograd import Function, is_recording
from .conv import _hashable, _threads, axis_pads, conv2d_bias_act, normalize_tuple, output_length
from .conv import _plan as _conv_plan
from .core import Tensor, compute_precision, contiguous, device_of, empty_on, float_array, out_buffer, value
from .elementwise import ACTIVATIONS
from .shape import transpose

PADDINGS = ("valid", "same")


class PoolPlan(NamedTuple):
    """A checked pooling, in the 2-D kernels' terms (cached per input shape and arguments).
    Rank 1 is H = 1; rank 3 pools (H, W) of the N * D images, then ``depth``, a second plan over
    (D, OH * OW) with (PD, 1) windows: max is separable, and so is the average, because the real
    cells of a box window are the product of its real cells along each axis."""

    pool: tuple  # (PH, PW)
    strides: tuple  # (SH, SW)
    pads: tuple  # (PT, PL)
    out: tuple  # (OH, OW)
    tiles: bool  # 2x2 windows, stride 2, no padding: the max/avg_pool2d_2x2 kernels
    channels_first: bool
    rank: int  # 1, 2 or 3
    depth: tuple = None  # rank 3: the PoolPlan of the pass over depth

    @property
    def args(self):
        return self.pool + self.strides + self.pads


class Pool(Function):
    """max or average pooling over (N, H, W, C), (N, L, C) as H = 1 or (N, D, H, W, C) in two passes.

    Attributes: mode ("max"/"average"), plan (a PoolPlan), recording (keep the argmax for the
    backward: uint8 window offsets on the 2x2 path, int32 otherwise).
    """

    runs_on_gpu = True

    @staticmethod
    def forward(ctx, x, mode, plan, recording):
        if type(x) is not np.ndarray:  # a GPU array: 1-D and 2-D pooling, channels_last
            if plan.rank == 3 or plan.channels_first:
                raise ValueError("pooling on the GPU: 1-D and 2-D channels_last pooling run there; 3-D and "
                                 "channels_first pooling run on the CPU only")
            x4 = x if plan.rank == 2 else x.reshape((x.shape[0], 1) + tuple(x.shape[1:]))
        else:
            x4 = x if plan.rank == 2 else x[:, None] if plan.rank == 1 else x.reshape((-1,) + x.shape[2:])
            if not x4.flags.c_contiguous:
                x4 = np.ascontiguousarray(x4)
        y, argmax = _pool_forward(x4, mode, plan, recording)
        if plan.depth is None:
            if recording:
                ctx.passes = [(plan, x4.shape, argmax)]
        else:
            y4 = y.reshape(x.shape[0], x.shape[1], -1, x.shape[-1])
            y, depth_argmax = _pool_forward(y4, mode, plan.depth, recording)
            if recording:  # the backward runs the passes in reverse
                ctx.passes = [(plan.depth, y4.shape, depth_argmax), (plan, x4.shape, argmax)]
            y = y.reshape((x.shape[0], plan.depth.out[0]) + plan.out + x.shape[-1:])
        if recording:
            ctx.mode, ctx.shape, ctx.dtype = mode, x.shape, x4.dtype
            ctx.device = "cpu" if type(x4) is np.ndarray else "cuda"
        if plan.rank != 1:
            return y
        return y[:, 0] if type(y) is np.ndarray else y.reshape((y.shape[0],) + tuple(y.shape[2:]))

    @staticmethod
    def backward(ctx, dy, needs):
        device = ctx.device
        dx = dy.astype(ctx.dtype, copy=False) if device == "cpu" else devices.to_device(dy)
        for plan, shape4, argmax in ctx.passes:
            dy4 = (contiguous(dx) if device == "cpu" else dx).reshape(shape4[:1] + plan.out + shape4[3:])
            dx = empty_on(device, shape4, ctx.dtype)
            threads = kernels.threads_for(dx.size)
            if ctx.mode == "max":
                if plan.tiles:
                    kernels.get("max_pool2d_2x2_backward", device)(dy4, argmax, dx, threads)
                else:
                    kernels.get("max_pool2d_backward", device)(dy4, argmax, *plan.args, dx, threads)
            elif plan.tiles:
                kernels.get("avg_pool2d_2x2_backward", device)(dy4, dx, threads)
            else:
                kernels.get("avg_pool2d_backward", device)(dy4, *plan.args, dx, threads)
        return (dx.reshape(ctx.shape),)


def _pool_forward(x4, mode, plan, recording):
    """(y, argmax) of a C-contiguous (N, H, W, C) float array (NumPy or GPU); argmax None unless
    max pooling is recording."""
    device = "cpu" if type(x4) is np.ndarray else device_of(x4)
    shape = (x4.shape[0],) + plan.out + (x4.shape[3],)
    y = out_buffer(shape, x4.dtype) if device == "cpu" else empty_on(device, shape, x4.dtype)
    threads = kernels.threads_for(y.size * plan.pool[0] * plan.pool[1])
    argmax = None
    if plan.tiles:
        if mode == "max":
            argmax = empty_on(device, y.shape, np.uint8) if recording else None
            kernels.get("max_pool2d_2x2_forward", device)(x4, y, argmax, threads)
        else:
            kernels.get("avg_pool2d_2x2_forward", device)(x4, y, threads)
    elif mode == "max" and recording:
        argmax = empty_on(device, y.shape, np.int32)
        kernels.get("max_pool2d_forward_argmax", device)(x4, *plan.args, y, argmax, threads)
    else:
        kernels.get("max_pool2d_forward" if mode == "max" else "avg_pool2d_forward", device)(x4, *plan.args, y,
                                                                                              threads)
    return y, argmax


def _plan2(pool, strides, pads, out, spatial, channels_first, rank):
    """The PoolPlan of a 2-D pass over ``spatial`` (H, W)."""
    # the 2x2 kernels need whole windows: "same" on an odd size adds a padded cell, left out here
    tiles = (pool == (2, 2) and strides == (2, 2) and pads == (0, 0)
             and out == (spatial[0] // 2, spatial[1] // 2))
    return PoolPlan(pool, strides, pads, out, tiles, channels_first, rank)


@functools.lru_cache(maxsize=256)
def _plan(shape, pool_size, strides, padding, data_format, op_name):
    """The PoolPlan of an input of ``shape``, with the argument checks (errors name ``op_name``)."""
    if len(shape) not in (3, 4, 5):
        raise ValueError(f"{op_name}: expected a 3-D (batch, steps, channels), 4-D (batch, height, width, "
                         f"channels) or 5-D (batch, depth, height, width, channels) input, received shape {shape}")
    rank = len(shape) - 2
    pool = normalize_tuple(pool_size, rank, "pool_size", op_name, minimum=1)
    strides = pool if strides is None else normalize_tuple(strides, rank, "strides", op_name, minimum=1)
    padding = str(padding).lower()
    if padding not in PADDINGS:
        raise ValueError(f"{op_name}: `padding` must be 'valid' or 'same', received {padding!r}")
    channels_first = data_format == "channels_first"
    spatial = shape[2:] if channels_first else shape[1:-1]
    out = tuple(output_length(s, p, st, 1, padding) for s, p, st in zip(spatial, pool, strides))
    if any(o <= 0 for o in out):
        raise ValueError(f"{op_name}: the pool window {pool} with strides {strides} and padding {padding!r} "
                         f"does not fit the input's spatial shape {tuple(spatial)}; computed output "
                         f"size {out} would be empty. Input shape received: {shape}")
    pads = tuple(axis_pads(s, p, st, 1, padding)[0] for s, p, st in zip(spatial, pool, strides))
    if rank == 1:
        return _plan2((1,) + pool, (1,) + strides, (0,) + pads, (1,) + out, (1,) + spatial, channels_first, 1)
    if rank == 2:
        return _plan2(pool, strides, pads, out, spatial, channels_first, 2)
    depth = _plan2((pool[0], 1), (strides[0], 1), (pads[0], 0), (out[0], out[1] * out[2]),
                   (spatial[0], out[1] * out[2]), channels_first, 2)
    return _plan2(pool[1:], strides[1:], pads[1:], out[1:], spatial[1:], channels_first, 3)._replace(depth=depth)


def _pool(mode, inputs, pool_size, strides, padding, data_format, op_name):
    x = inputs.value if type(inputs) is Tensor else value(inputs)
    if (type(x) is not np.ndarray or x.dtype.kind != "f") and not devices.is_device_array(x):
        inputs = x = float_array(x)
    plan = _plan(x.shape, pool_size if type(pool_size) is tuple else _hashable(pool_size),
                 strides if type(strides) is tuple else _hashable(strides), padding, data_format, op_name)
    if plan.channels_first:
        inputs = transpose(inputs, (0,) + tuple(range(2, x.ndim)) + (1,))
    if not is_recording() and not plan.channels_first:  # nothing to record: no graph node
        return Tensor(Pool.forward(None, x, mode, plan, False))
    y = Pool.apply(inputs, mode=mode, plan=plan, recording=is_recording())
    if plan.channels_first:
        y = transpose(y, (0, x.ndim - 1) + tuple(range(1, x.ndim - 1)))
    return y


class GlobalPool(Function):
    """max or mean over the spatial axes of (N, ..., C) channels_last: (N, C), or (N, 1, ..., 1, C)
    with keepdims. Max ties share the gradient evenly (TensorFlow's reduce_max gradient)."""

    runs_on_gpu = True

    @staticmethod
    def forward(ctx, x, mode, keepdims):
        device = "cpu" if type(x) is np.ndarray else device_of(x)
        x = contiguous(x) if device == "cpu" else x
        shape = tuple(x.shape)
        x3 = x.reshape(shape[0], math.prod(shape[1:-1]), shape[-1])
        y = (out_buffer((x3.shape[0], x3.shape[2]), x3.dtype) if device == "cpu"
             else empty_on(device, (x3.shape[0], x3.shape[2]), x3.dtype))
        kernels.get("global_max_pool_forward" if mode == "max" else "global_avg_pool_forward", device)(
            x3, y, kernels.threads_for(x3.size))
        if ctx is not None:
            if mode == "max":
                ctx.save(x3, y)
            ctx.mode, ctx.shape, ctx.dtype, ctx.device = mode, shape, x.dtype, device
        return y.reshape((shape[0],) + (1,) * (x.ndim - 2) + (shape[-1],)) if keepdims else y

    @staticmethod
    def backward(ctx, dy, needs):
        n, c, device = ctx.shape[0], ctx.shape[-1], ctx.device
        if device == "cpu":
            dy2 = contiguous(dy.astype(ctx.dtype, copy=False).reshape(n, c))
        else:
            dy2 = devices.to_device(dy).reshape(n, c)
        dx = empty_on(device, ctx.shape, ctx.dtype)
        dx3 = dx.reshape(n, math.prod(ctx.shape[1:-1]), c)
        threads = kernels.threads_for(dx.size)
        if ctx.mode == "max":
            x3, y = ctx.saved
            kernels.get("global_max_pool_backward", device)(x3, y, dy2, dx3, threads)
        else:
            kernels.get("global_avg_pool_backward", device)(dy2, dx3, threads)
        return (dx,)


def global_pool(inputs, mode, keepdims=False):
    """Max ("max") or mean ("average") over the spatial axes of a channels_last (N, ..., C) input
    with at least one spatial cell: (N, C), or (N, 1, ..., 1, C) with ``keepdims``."""
    x = value(inputs)
    if (not isinstance(x, np.ndarray) or x.dtype.kind != "f") and not devices.is_device_array(x):
        inputs = x = float_array(x)
    if not is_recording():  # nothing to record: no graph node
        return Tensor(GlobalPool.forward(None, x, mode, bool(keepdims)))
    return GlobalPool.apply(inputs, mode=mode, keepdims=bool(keepdims))


def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Max pooling over the spatial axes of a channels_last (N, L, C) or (N, H, W, C) input."""
    return _pool("max", inputs, pool_size, strides, padding, data_format, "max_pool")


def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Average pooling; with "same" padding each window averages its real (unpadded) cells."""
    return _pool("average", inputs, pool_size, strides, padding, data_format, "average_pool")


@functools.lru_cache(maxsize=256)
def _conv_pool_plan(xshape, xdtype, kshape, kdtype, padding, activation, who):
    """(output shape, pad top, pad left, activation code, multiply-adds) of the fused kernel, or
    None where the two ops run instead (the conv's own checks then raise for bad input)."""
    if (len(kshape) != 4 or len(xshape) != 4 or padding not in ("valid", "same") or kshape[2] != xshape[3]
            or xdtype != kdtype or activation not in ACTIVATIONS):
        return None
    plan = _conv_plan(xshape, kshape, (1, 1), padding, (1, 1), 1, who)
    n, oh, ow, o = plan.out4
    if oh < 2 or ow < 2:
        return None
    macs = n * (oh // 2 * 2) * (ow // 2 * 2) * o * kshape[0] * kshape[1] * kshape[2]
    return (n, oh // 2, ow // 2, o), plan.args[2], plan.args[3], ACTIVATIONS[activation], macs


# ConvPool's backward takes the weight gradient straight from the pooled gradient (no input
# gradient wanted: a first layer) up to this many taps (KH * KW * C); above, unpooling then the
# GEMM weight gradient is faster. 1 thread, batch 64, 3x3 relu layers, ms, unpool + relu + GEMM
# weight gradient / the pooled kernel: 32x32x1 -> 32 1.44 / 0.36, 32x32x3 2.73 / 1.25, 32x32x8
# 4.29 / 3.30, 16x16x16 1.28 / 1.62, 15x15x32 -> 64 2.38 / 3.79.
_POOL_WGRAD_MAX_TAPS = 96


class ConvPool(Function):
    """y = max_pool_2x2(act(conv(x, w) + b)) for a stride-1 one-group (N, H, W, C) convolution with
    linear or relu, while a tape records: one fused kernel pass that keeps the pooled output and
    the pooling's uint8 argmax, never the convolution's output (the two ops would write it, read
    it back to pool, and read and write it again for the activation's backward).

    Backward: relu's derivative is read off the pooled output (relu(z) at the argmax is the
    pooled value), so dz = unpool(dy * (y > 0)) over the (2 PH, 2 PW) pixels the pooling reads;
    the rows and columns the pooling's floor drops get no gradient and are left out of the
    convolution's backward kernels (their H and W come from x). A layer whose input needs no
    gradient (a first layer) with few taps takes its weight and bias gradients straight from dy and
    the argmax (conv2d_pool2x2_backward_weight), never writing that (2 PH, 2 PW) gradient.
    """

    @staticmethod
    def forward(ctx, x, w, b, shape, pad_top, pad_left, code, macs):
        x, w = contiguous(x), contiguous(w)
        y = out_buffer(shape, w.dtype)
        argmax = np.empty(shape, np.uint8)
        kernels.get("conv2d_pool2x2_forward")(x, w, b, pad_top, pad_left, code, 0.0, y,
                                              kernels.team_threads_for_macs(macs), argmax)
        ctx.save(x, w, y, argmax)
        ctx.args, ctx.code, ctx.has_bias = (1, 1, pad_top, pad_left, 1, 1, 1), code, b is not None
        return y

    @staticmethod
    def backward(ctx, dy, needs):
        x, w, y, argmax = ctx.saved
        n, ph, pw, o = y.shape
        dy = contiguous(dy.astype(w.dtype, copy=False).reshape(y.shape))
        taps = w.shape[0] * w.shape[1] * w.shape[2]
        if not needs[0] and taps <= _POOL_WGRAD_MAX_TAPS:  # a first layer: no (2 PH, 2 PW) gradient
            dw = np.empty_like(w) if needs[1] else None
            db = np.empty(o, w.dtype) if ctx.has_bias and needs[2] else None
            if dw is not None or db is not None:
                kernels.get("conv2d_pool2x2_backward_weight")(
                    x, dy, y, argmax, ctx.args[2], ctx.args[3], ctx.code == ACTIVATIONS["relu"],
                    np.empty_like(w) if dw is None else dw, db, _threads(y.size * 4, taps))
            return None, dw, db
        if ctx.code == ACTIVATIONS["relu"]:  # else linear
            masked = np.empty_like(y)
            kernels.get("activation_backward")(ctx.code, y.reshape(-1), y.reshape(-1), dy.reshape(-1), 0.0,
                                               masked.reshape(-1))
            dy = masked
        dz = np.empty((n, 2 * ph, 2 * pw, o), w.dtype)
        kernels.get("max_pool2d_2x2_backward")(dy, argmax, dz, kernels.threads_for(dz.size))
        threads = _threads(dz.size, w.shape[0] * w.shape[1] * w.shape[2])
        dx = dw = db = None
        if needs[0]:
            dx = np.empty_like(x)
            kernels.get("conv2d_backward_input")(dz, w, *ctx.args, dx, threads)
        want_db = ctx.has_bias and needs[2]
        if needs[1]:
            dw = np.empty_like(w)
            db = np.empty(o, w.dtype) if want_db else None
            kernels.get("conv2d_backward_weight")(x, dz, *ctx.args, dw, db, threads)
        elif want_db:
            db = np.empty(o, w.dtype)
            kernels.get("sum_axis0")(dz.reshape(-1, o), db, kernels.threads_for(dz.size))
        return dx, dw, db


def conv2d_bias_act_max_pool(inputs, kernel, bias=None, padding="valid", activation="linear", alpha=0.0,
                             _who="conv"):
    """``max_pool(conv2d_bias_act(inputs, kernel, bias, 1, padding, ...), 2, 2, "valid")``: a
    stride-1 2-D convolution then 2x2 max pooling (the common CNN block). With NumPy arrays it is
    one kernel pass that never writes the convolution's output (bit-identical to the two ops);
    while a tape records, for linear and relu, it is the differentiable ``ConvPool`` (the same
    forward, keeping the pooling's argmax); otherwise it is the two ops.

    inputs: (N, H, W, C); kernel: (KH, KW, C, C_out); bias: (C_out,) or None; padding "valid"
    or "same". Output: (N, OH // 2, OW // 2, C_out), (OH, OW) the convolution's output size.
    """
    kv = kernel.value if isinstance(kernel, Tensor) else kernel
    xv = inputs.value if isinstance(inputs, Tensor) else inputs
    recording = is_recording()
    if (type(xv) is np.ndarray and type(kv) is np.ndarray and type(padding) is str and type(activation) is str
            and (not recording or (activation in ("linear", "relu") and kv.dtype.kind == "f"
                                   and compute_precision() is None))):
        fused = _conv_pool_plan(xv.shape, xv.dtype, kv.shape, kv.dtype, padding, activation, _who)
        if fused is not None:
            shape, pad_top, pad_left, code, macs = fused
            b = bias.value if isinstance(bias, Tensor) else bias
            if b is not None and (type(b) is not np.ndarray or b.dtype != kv.dtype or not b.flags.c_contiguous):
                if recording and isinstance(bias, Tensor):  # the gradient must reach the Variable
                    return max_pool(conv2d_bias_act(inputs, kernel, bias, 1, padding, 1, 1, activation, alpha,
                                                    _who=_who), 2, 2, "valid")
                b = np.ascontiguousarray(float_array(b, dtype=kv.dtype))
            if recording:
                return ConvPool.apply(inputs, kernel, bias if isinstance(bias, Tensor) else b, shape=shape,
                                      pad_top=pad_top, pad_left=pad_left, code=code, macs=macs)
            y = out_buffer(shape, kv.dtype)
            kernels.get("conv2d_pool2x2_forward")(contiguous(xv), contiguous(kv), b, pad_top, pad_left, code,
                                                  float(alpha), y,
                                                  kernels.team_threads_for_macs(macs))
            return Tensor(y)
    return max_pool(conv2d_bias_act(inputs, kernel, bias, 1, padding, 1, 1, activation, alpha, _who=_who),
                    2, 2, "valid")


__all__ = ["max_pool", "average_pool", "conv2d_bias_act_max_pool"]
