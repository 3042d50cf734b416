"""Batch normalization ops over one channel axis.

- ``batch_normalization(x, mean, variance, axis, offset, scale, epsilon)``: keras.ops's op, the
  inference form with given statistics, run as one fused kernel y = x * s + t with
  s = scale / sqrt(variance + epsilon) and t = offset - mean * s computed per channel.
- ``batch_normalization_training(x, scale, offset, axis, epsilon)``: normalizes with the batch's
  own mean and (biased) variance and returns (y, mean, variance), as a training-mode
  BatchNormalization layer needs; the statistics come from a deterministic kernel.
- ``moments(x, axes)``: keras.ops's mean and variance, composed from reductions.

The kernels work on an (R, C) view with the channel axis last; another ``axis`` is moved last
(one copy) and back. Per-channel arithmetic (C values) happens here in float64; every loop over
rows is a kernel.
"""
import numpy as np

from .. import kernels
from ..autograd import Function
from .core import contiguous, float_array, value
from .reduce import mean as _mean
from .reduce import var as _var


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
        y_rc = np.empty_like(x_rc)
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


__all__ = ["batch_normalization", "batch_normalization_training", "moments"]
