"""Normalization ops: batch normalization over one channel axis; layer and RMS normalization
over feature axes.

- ``batch_normalization(x, mean, variance, axis, offset, scale, epsilon)``: keras.ops's op, the
  inference form with given statistics, run as one fused kernel y = x * s + t with
  s = scale / sqrt(variance + epsilon) and t = offset - mean * s computed per channel.
- ``batch_normalization_training(x, scale, offset, axis, epsilon)``: normalizes with the batch's
  own mean and (biased) variance and returns (y, mean, variance), as a training-mode
  BatchNormalization layer needs; the statistics come from a deterministic kernel.
- ``moments(x, axes)``: keras.ops's mean and variance, composed from reductions.
- ``layer_normalization(x, gamma, beta, axis, epsilon)`` and ``rms_normalization(x, scale, axis,
  epsilon)``: keras.ops's, each direction one fused kernel over an (R, C) view with the
  normalized axes last (moved there with one copy when they are not).

The kernels work on an (R, C) view with the channel axis last; another ``axis`` is moved last
(one copy) and back. Per-channel arithmetic (C values) happens here in float64; every loop over
rows is a kernel.
"""
import math

import numpy as np

from .. import config, kernels
from ..autograd import Function, is_recording
from ..tensor import Tensor
from .core import contiguous, float_array, out_buffer, value
from .math import maximum, multiply, reciprocal
from .math import sqrt as _sqrt
from .reduce import mean as _mean
from .reduce import norm as _vector_norm
from .reduce import sum as _sum
from .reduce import var as _var
from .shape import reshape


def _to_rows(x, axis):
    """x as a C-contiguous (R, C) array with ``axis`` last, and how to undo it."""
    axis = axis % x.ndim
    moved = axis != x.ndim - 1
    xt = np.moveaxis(x, axis, -1) if moved else x
    return contiguous(xt).reshape(-1, x.shape[axis]), xt.shape, axis, moved


def _from_rows(y_rc, shape_t, axis, moved):
    y = y_rc.reshape(shape_t)
    return np.moveaxis(y, -1, axis) if moved else y


def _channel(v, c, dtype):
    """A per-channel parameter (or None) as a float64 (C,) vector for the per-channel math."""
    return None if v is None else np.asarray(v, dtype=np.float64).reshape(c)


class BatchNormInference(Function):
    """y = (x - mean) / sqrt(var + eps) * gamma + beta with given mean/var (None gamma = 1, beta = 0)."""

    @staticmethod
    def forward(ctx, x, gamma, beta, mean, var, axis, epsilon):
        x_rc, shape_t, axis, moved = _to_rows(x, axis)
        c = x_rc.shape[1]
        mean64, var64 = _channel(mean, c, x.dtype), _channel(var, c, x.dtype)
        inv_std = 1.0 / np.sqrt(var64 + epsilon)
        gamma64 = _channel(gamma, c, x.dtype)
        scale = inv_std if gamma is None else gamma64 * inv_std
        shift = -mean64 * scale
        if beta is not None:
            shift += _channel(beta, c, x.dtype)
        y_rc = out_buffer(x_rc.shape, x_rc.dtype)
        kernels.get("batch_norm_forward")(x_rc, scale.astype(x.dtype), shift.astype(x.dtype), y_rc,
                                          kernels.threads_for(x_rc.size))
        ctx.save(x_rc)
        ctx.mean64, ctx.inv_std, ctx.gamma64, ctx.scale = mean64, inv_std, gamma64, scale
        ctx.layout = (shape_t, axis, moved)
        ctx.shapes = tuple(None if v is None else np.shape(v) for v in (gamma, beta, mean, var))
        return _from_rows(y_rc, *ctx.layout)

    @staticmethod
    def backward(ctx, dy, needs):
        (x_rc,) = ctx.saved
        dtype = x_rc.dtype
        dy_rc, _, _, _ = _to_rows(dy.astype(dtype, copy=False), ctx.layout[1])
        c = x_rc.shape[1]
        threads = kernels.threads_for(x_rc.size)
        dx = dgamma = dbeta = dmean = dvar = None
        if needs[0]:
            dx_rc = np.empty_like(x_rc)  # dx = dy * scale: the forward kernel with a zero shift
            kernels.get("batch_norm_forward")(dy_rc, ctx.scale.astype(dtype), np.zeros(c, dtype=dtype), dx_rc,
                                              threads)
            dx = _from_rows(dx_rc, *ctx.layout)
        if any(needs[1:]):
            # sum(dy * xhat) and sum(dy), xhat = (x - mean) * inv_std
            sum_dyxhat, sum_dy = np.empty(c, dtype=dtype), np.empty(c, dtype=dtype)
            kernels.get("batch_norm_backward_params")(dy_rc, x_rc, ctx.mean64, ctx.inv_std, sum_dyxhat, sum_dy,
                                                      threads)
            g = np.ones(c) if ctx.gamma64 is None else ctx.gamma64
            grads = {
                1: sum_dyxhat,
                2: sum_dy,
                3: -g * ctx.inv_std * sum_dy,
                4: -0.5 * g * ctx.inv_std ** 2 * sum_dyxhat.astype(np.float64),
            }
            dgamma, dbeta, dmean, dvar = (
                np.asarray(grads[i], dtype=dtype).reshape(ctx.shapes[i - 1]) if needs[i] else None
                for i in (1, 2, 3, 4))
        return dx, dgamma, dbeta, dmean, dvar


class BatchNormTraining(Function):
    """Normalization with the batch's statistics: outputs (y, mean, variance), each differentiable."""

    n_outputs = 3

    @staticmethod
    def forward(ctx, x, gamma, beta, axis, epsilon):
        x_rc, shape_t, axis, moved = _to_rows(x, axis)
        r, c = x_rc.shape
        mean64, var64 = np.empty(c), np.empty(c)
        threads = kernels.threads_for(x_rc.size)
        kernels.get("batch_norm_moments")(x_rc, mean64, var64, threads)
        inv_std = 1.0 / np.sqrt(var64 + epsilon)
        gamma64 = _channel(gamma, c, x.dtype)
        scale = inv_std if gamma is None else gamma64 * inv_std
        shift = -mean64 * scale
        if beta is not None:
            shift += _channel(beta, c, x.dtype)
        y_rc = np.empty_like(x_rc)
        kernels.get("batch_norm_forward")(x_rc, scale.astype(x.dtype), shift.astype(x.dtype), y_rc, threads)
        ctx.save(x_rc)
        ctx.mean64, ctx.inv_std, ctx.gamma64 = mean64, inv_std, gamma64
        ctx.layout = (shape_t, axis, moved)
        ctx.param_shapes = (None if gamma is None else np.shape(gamma), None if beta is None else np.shape(beta))
        return _from_rows(y_rc, *ctx.layout), mean64.astype(x.dtype), var64.astype(x.dtype)

    @staticmethod
    def backward(ctx, dys, needs):
        dy, dmean, dvar = dys
        (x_rc,) = ctx.saved
        dtype = x_rc.dtype
        r, c = x_rc.shape
        dy_rc, _, _, _ = _to_rows(dy.astype(dtype, copy=False), ctx.layout[1])
        threads = kernels.threads_for(x_rc.size)
        dgamma, dbeta = np.empty(c, dtype=dtype), np.empty(c, dtype=dtype)
        kernels.get("batch_norm_backward_params")(dy_rc, x_rc, ctx.mean64, ctx.inv_std, dgamma, dbeta, threads)
        dx = None
        if needs[0]:
            # dx = a * dy - k * (x - mean) - b (see batch_norm_backward_input), with the
            # gradients reaching the mean and variance outputs folded into k and b.
            g = np.ones(c) if ctx.gamma64 is None else ctx.gamma64
            a = g * ctx.inv_std
            k = a * ctx.inv_std * dgamma.astype(np.float64) / r
            b = a * dbeta.astype(np.float64) / r
            if np.any(dmean):
                b -= np.asarray(dmean, dtype=np.float64).reshape(c) / r
            if np.any(dvar):
                k -= 2.0 * np.asarray(dvar, dtype=np.float64).reshape(c) / r
            dx_rc = np.empty_like(x_rc)
            kernels.get("batch_norm_backward_input")(dy_rc, x_rc, ctx.mean64.astype(dtype), a.astype(dtype),
                                                     k.astype(dtype), b.astype(dtype), dx_rc, threads)
            dx = _from_rows(dx_rc, *ctx.layout)
        gshape, bshape = ctx.param_shapes
        return (dx, dgamma.reshape(gshape) if needs[1] else None, dbeta.reshape(bshape) if needs[2] else None)


def _check(x, axis, op_name):
    if x.ndim < 1 or not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{op_name}: axis {axis} is out of bounds for an input of shape {x.shape}")
    return axis % x.ndim


def _check_param(p, c, name, op_name):
    if p is None:
        return
    size = int(np.size(value(p)))
    if size != c:
        raise ValueError(f"{op_name}: `{name}` must hold one value per channel ({c}), received shape "
                         f"{np.shape(value(p))}")


def batch_normalization(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3):
    """``(x - mean) / sqrt(variance + epsilon) * scale + offset`` along ``axis`` (keras.ops), fused."""
    xv = value(x)
    if not isinstance(xv, np.ndarray) or xv.dtype.kind != "f":
        x = xv = float_array(xv)
    axis = _check(xv, int(axis), "batch_normalization")
    c = xv.shape[axis]
    for p, name in ((mean, "mean"), (variance, "variance"), (offset, "offset"), (scale, "scale")):
        _check_param(p, c, name, "batch_normalization")
    return BatchNormInference.apply(x, scale, offset, mean, variance, axis=axis, epsilon=float(epsilon))


def batch_normalization_training(x, scale=None, offset=None, axis=-1, epsilon=1e-3):
    """Normalize ``x`` with its own per-channel mean and biased variance over every axis but
    ``axis``; returns (y, mean, variance) as Tensors, y = (x - mean) / sqrt(variance + epsilon)
    * scale + offset (the training-mode half of Keras's BatchNormalization)."""
    xv = value(x)
    if not isinstance(xv, np.ndarray) or xv.dtype.kind != "f":
        x = xv = float_array(xv)
    axis = _check(xv, int(axis), "batch_normalization_training")
    if xv.size == 0:
        raise ValueError(f"batch_normalization_training: cannot compute statistics of an empty input "
                         f"(shape {xv.shape})")
    c = xv.shape[axis]
    for p, name in ((offset, "offset"), (scale, "scale")):
        _check_param(p, c, name, "batch_normalization_training")
    return BatchNormTraining.apply(x, scale, offset, axis=axis, epsilon=float(epsilon))


def moments(x, axes, keepdims=False, synchronized=False):
    """Mean and (biased) variance of ``x`` over ``axes`` (keras.ops.moments)."""
    return _mean(x, axis=axes, keepdims=keepdims), _var(x, axis=axes, keepdims=keepdims)


class LayerNorm(Function):
    """y = (x - mean) * rstd * gamma + beta over the trailing ``n_axes`` axes of the permuted x
    (RMS form: mean = 0 and rstd from the mean square). gamma/beta: C values or None."""

    @staticmethod
    def forward(ctx, x, gamma, beta, perm, n_axes, epsilon, rms):
        xt = x if perm is None else np.transpose(x, perm)
        shape_t = xt.shape
        c = math.prod(shape_t[xt.ndim - n_axes:])
        r = math.prod(shape_t[:xt.ndim - n_axes])
        x_rc = contiguous(xt).reshape(r, c)
        g = np.ones(c, x.dtype) if gamma is None else contiguous(np.asarray(gamma, x.dtype).reshape(c))
        b = np.zeros(c, x.dtype) if beta is None else contiguous(np.asarray(beta, x.dtype).reshape(c))
        y_rc, mean, rstd = out_buffer(x_rc.shape, x_rc.dtype), np.empty(r), np.empty(r)
        kernels.get("layer_norm_forward")(x_rc, g, b, epsilon, rms, y_rc, mean, rstd, kernels.threads_for(r * c))
        if ctx is not None:
            ctx.save(x_rc, g, mean, rstd)
            ctx.layout = (perm, shape_t, rms)
            ctx.param_shapes = tuple(None if p is None else np.shape(p) for p in (gamma, beta))
        y = y_rc.reshape(shape_t)
        return y if perm is None else np.transpose(y, np.argsort(perm))

    @staticmethod
    def backward(ctx, dy, needs):
        x_rc, g, mean, rstd = ctx.saved
        perm, shape_t, rms = ctx.layout
        dy = dy.astype(x_rc.dtype, copy=False)
        dy_rc = contiguous(dy if perm is None else np.transpose(dy, perm)).reshape(x_rc.shape)
        need_params = bool(needs[1] or needs[2])
        dx_rc = np.empty_like(x_rc) if needs[0] else np.empty((1, 1), x_rc.dtype)
        dgamma, dbeta = np.empty_like(g), np.empty_like(g)
        kernels.get("layer_norm_backward")(dy_rc, x_rc, mean, rstd, g, rms, dx_rc, dgamma, dbeta, bool(needs[0]),
                                           need_params, kernels.threads_for(x_rc.size))
        dx = None
        if needs[0]:
            dx = dx_rc.reshape(shape_t)
            dx = dx if perm is None else np.transpose(dx, np.argsort(perm))
        gshape, bshape = ctx.param_shapes
        return (dx, dgamma.reshape(gshape) if needs[1] else None, dbeta.reshape(bshape) if needs[2] else None)


def _norm_axes(x, axis, op_name):
    """Sorted non-negative axes, and the permutation moving them last (None if they already are)."""
    axes = [axis] if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool) else axis
    if not isinstance(axes, (list, tuple)) or not axes or not all(
            isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axes):
        raise TypeError(f"{op_name}: `axis` must be an int or a list/tuple of ints, received axis={axis!r}")
    for a in axes:
        if not -x.ndim <= a < x.ndim:
            raise ValueError(f"{op_name}: axis {a} is out of bounds for an input of shape {x.shape}")
    if len({int(a) % x.ndim for a in axes}) != len(axes):
        raise ValueError(f"{op_name}: repeated axes in axis={axis!r}")
    axes = sorted(int(a) % x.ndim for a in axes)
    rest = [i for i in range(x.ndim) if i not in axes]
    perm = None if axes == list(range(x.ndim - len(axes), x.ndim)) else tuple(rest + axes)
    return axes, perm


def _fits(p, c):
    return p is None or int(np.size(value(p))) == c


def _fits_last(p, xv):
    """Whether p is None or an array of the last axis's size (one value per normalized feature)."""
    return p is None or np.shape(value(p)) == xv.shape[-1:]


def _float_input(x):
    xv = value(x)
    if not isinstance(xv, np.ndarray) or xv.dtype.kind != "f":
        x = xv = float_array(xv)
    return x, xv


def layer_normalization(x, gamma=None, beta=None, axis=-1, epsilon=None, rms_scaling=False):
    """``(x - mean) / sqrt(var + epsilon) * gamma + beta`` with mean and (biased) variance over
    ``axis`` (an int or a list) of each example (keras.ops.layer_normalization; ``epsilon``
    defaults to ``dl.config.epsilon()``). gamma/beta hold one value per normalized element, in
    the normalized axes' shape or broadcastable to x. ``rms_scaling=True`` is Keras's deprecated
    form ``x / sqrt(var + epsilon) * gamma`` (no centering, no beta)."""
    x, xv = _float_input(x)
    epsilon = config.epsilon() if epsilon is None else float(epsilon)
    if type(axis) is int and axis == -1 and not rms_scaling and xv.ndim and _fits_last(gamma, xv) and _fits_last(beta, xv):
        if not is_recording():  # the common case, kept cheap for batch-1 latency: no graph node
            return Tensor(LayerNorm.forward(None, xv, value(gamma), value(beta), perm=None, n_axes=1,
                                            epsilon=epsilon, rms=False))
        return LayerNorm.apply(x, gamma, beta, perm=None, n_axes=1, epsilon=epsilon, rms=False)
    axes, perm = _norm_axes(xv, axis, "layer_normalization")
    c = math.prod(xv.shape[a] for a in axes)
    if rms_scaling:  # Keras's deprecated variant, composed (no kernel of its own)
        y = multiply(x, _rsqrt(_var(x, axis=tuple(axes), keepdims=True), epsilon))
        return y if gamma is None else multiply(y, _broadcast(gamma, xv, axes))
    if _fits(gamma, c) and _fits(beta, c):
        return LayerNorm.apply(x, gamma, beta, perm=perm, n_axes=len(axes), epsilon=epsilon, rms=False)
    for p, name in ((gamma, "gamma"), (beta, "beta")):
        if p is not None:
            _check_broadcast(p, xv, name, "layer_normalization")
    mean, variance = moments(x, axes=tuple(axes), keepdims=True)
    y = multiply(x - mean, _rsqrt(variance, epsilon))  # gamma/beta broadcast over more than the axes
    y = y if gamma is None else multiply(y, gamma)
    return y if beta is None else y + beta


def rms_normalization(x, scale=None, axis=-1, epsilon=None):
    """``x / sqrt(mean(x**2) + epsilon) * scale`` over ``axis`` (an int or a list) of each example
    (keras.ops.rms_normalization; ``epsilon`` defaults to ``dl.config.epsilon()``), fused."""
    x, xv = _float_input(x)
    epsilon = config.epsilon() if epsilon is None else float(epsilon)
    if xv.ndim == 0:
        x = xv = xv.reshape(1)
    axes, perm = _norm_axes(xv, axis, "rms_normalization")
    c = int(np.prod([xv.shape[a] for a in axes], dtype=np.int64))
    if _fits(scale, c):
        return LayerNorm.apply(x, scale, None, perm=perm, n_axes=len(axes), epsilon=epsilon, rms=True)
    _check_broadcast(scale, xv, "scale", "rms_normalization")
    ms = _mean(multiply(x, x), axis=tuple(axes), keepdims=True)
    return multiply(multiply(x, _rsqrt(ms, epsilon)), scale)


def normalize(x, axis=-1, order=2, epsilon=None):
    """``x`` divided by its ``order``-norm over ``axis``, the norm floored at ``epsilon``
    (keras.ops.normalize; ``epsilon`` defaults to ``dl.config.epsilon()``)."""
    if not isinstance(order, int) or isinstance(order, bool) or order < 1:
        raise ValueError(f"normalize: `order` must be an int >= 1, received order={order!r}")
    x, xv = _float_input(x)
    if xv.ndim == 0:
        x = xv = xv.reshape(1)
    epsilon = config.epsilon() if epsilon is None else float(epsilon)
    axis = tuple(axis) if isinstance(axis, list) else axis
    if order == 2:  # x * min(rsqrt(sum x^2), 1 / epsilon), as Keras, without an infinite rsqrt(0)
        return multiply(x, _rsqrt(maximum(_sum(multiply(x, x), axis=axis, keepdims=True), epsilon * epsilon), 0.0))
    return x / maximum(_vector_norm(x, ord=order, axis=axis, keepdims=True), epsilon)


def _rsqrt(v, epsilon):
    return reciprocal(_sqrt(v + epsilon))


def _broadcast(p, x, axes):
    """A parameter in the normalized axes' shape, reshaped to broadcast against x."""
    pv = np.asarray(value(p))
    if pv.ndim == x.ndim or pv.size != int(np.prod([x.shape[a] for a in axes])):
        return p
    return reshape(p, [x.shape[i] if i in axes else 1 for i in range(x.ndim)])


def _check_broadcast(p, x, name, op_name):
    try:
        np.broadcast_shapes(np.shape(value(p)), x.shape)
    except ValueError:
        raise ValueError(f"{op_name}: `{name}` of shape {np.shape(value(p))} holds neither one value per "
                         f"normalized element nor broadcasts to the input's shape {x.shape}") from None


__all__ = ["batch_normalization", "batch_normalization_training", "moments", "layer_normalization",
           "rms_normalization", "normalize"]
