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

from .. import config, devices, kernels
from ..autograd import Function, is_recording
from ..tensor import Tensor
from .core import contiguous, device_of, empty_on, float_array, out_buffer, value
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
    if type(x) is not np.ndarray:  # a GPU array: channels last, viewed by reshape
        if axis != x.ndim - 1:
            raise ValueError(f"batch normalization on the GPU normalizes the last axis only, received axis={axis} "
                             f"for an input of shape {tuple(x.shape)}")
        shape = tuple(x.shape)
        return x.reshape(x.size // shape[-1], shape[-1]), shape, axis, False
    moved = axis != x.ndim - 1
    xt = np.moveaxis(x, axis, -1) if moved else x
    return contiguous(xt).reshape(-1, x.shape[axis]), xt.shape, axis, moved


def _from_rows(y_rc, shape_t, axis, moved):
    y = y_rc.reshape(shape_t)
    return np.moveaxis(y, -1, axis) if moved else y


def _channel(v, c, device):
    """A per-channel parameter (or None) as a (C,) array on ``device`` (host values are moved to a GPU)."""
    if v is None or (type(v) is np.ndarray and v.shape == (c,) and device == "cpu") or devices.is_device_array(v):
        return v
    v = np.asarray(v).reshape(c)
    return v if device == "cpu" else devices.to_device(v)


def _device(x, *params):
    """"cuda" when x or a parameter is a GPU array (x is then moved there), else "cpu"."""
    if type(x) is np.ndarray and (not devices.ARRAY_TYPES or not any(map(devices.is_device_array, params))):
        return "cpu", x
    return "cuda", devices.to_device(x)


def _scale_shift(device, mean_c, var_c, gamma_c, beta_c, epsilon, dtype, stats=False):
    """(scale, shift, inv_std[, mean, var]) per channel on ``device`` (kernel batch_norm_scale_shift)."""
    c = mean_c.shape[0]
    if device == "cpu":
        out = [np.empty(c, dtype), np.empty(c, dtype), np.empty(c)] + ([np.empty(c, dtype), np.empty(c, dtype)]
                                                                        if stats else [])
    else:
        out = [empty_on(device, c, d) for d in (dtype, dtype, np.float64) + ((dtype, dtype) if stats else ())]
    kernels.get("batch_norm_scale_shift", device)(mean_c, var_c, gamma_c, beta_c, epsilon, *out)
    return out


def _zeros(device, c, dtype):
    return np.zeros(c, dtype=dtype) if device == "cpu" else devices.to_device(np.zeros(c, dtype=dtype))


class BatchNormInference(Function):
    """y = (x - mean) / sqrt(var + eps) * gamma + beta with given mean/var (None gamma = 1, beta = 0)."""

    runs_on_gpu = True

    @staticmethod
    def forward(ctx, x, gamma, beta, mean, var, axis, epsilon):
        device, x = _device(x, gamma, beta, mean, var)
        x_rc, shape_t, axis, moved = _to_rows(x, axis)
        c = x_rc.shape[1]
        mean_c = _channel(mean, c, device)
        gamma_c = _channel(gamma, c, device)
        scale, shift, inv_std = _scale_shift(device, mean_c, _channel(var, c, device), gamma_c,
                                             _channel(beta, c, device), epsilon, x.dtype)
        y_rc = out_buffer(x_rc.shape, x_rc.dtype) if device == "cpu" else empty_on(device, x_rc.shape, x_rc.dtype)
        kernels.get("batch_norm_forward", device)(x_rc, scale, shift, y_rc, kernels.threads_for(x_rc.size))
        ctx.save(x_rc)
        ctx.mean_c, ctx.inv_std, ctx.gamma_c, ctx.scale, ctx.device = mean_c, inv_std, gamma_c, scale, device
        ctx.layout = (shape_t, axis, moved)
        ctx.shapes = tuple(None if v is None else tuple(np.shape(v)) for v in (gamma, beta, mean, var))
        return _from_rows(y_rc, *ctx.layout)

    @staticmethod
    def backward(ctx, dy, needs):
        (x_rc,) = ctx.saved
        dtype, device = x_rc.dtype, ctx.device
        dy = dy.astype(dtype, copy=False) if device == "cpu" else devices.to_device(dy)
        dy_rc, _, _, _ = _to_rows(dy, ctx.layout[1])
        c = x_rc.shape[1]
        threads = kernels.threads_for(x_rc.size)
        dx = dgamma = dbeta = dmean = dvar = None
        if needs[0]:
            dx_rc = empty_on(device, x_rc.shape, dtype)  # dx = dy * scale: the forward kernel with a zero shift
            kernels.get("batch_norm_forward", device)(dy_rc, ctx.scale, _zeros(device, c, dtype), dx_rc, threads)
            dx = _from_rows(dx_rc, *ctx.layout)
        if any(needs[1:]):
            if device != "cpu" and (needs[3] or needs[4]):
                raise ValueError("batch_normalization on the GPU: gradients with respect to the given mean and "
                                 "variance run on the CPU only")
            # sum(dy * xhat) and sum(dy), xhat = (x - mean) * inv_std
            sum_dyxhat, sum_dy = empty_on(device, c, dtype), empty_on(device, c, dtype)
            mean_c = ctx.mean_c if device != "cpu" else np.asarray(ctx.mean_c, dtype=np.float64)
            kernels.get("batch_norm_backward_params", device)(dy_rc, x_rc, mean_c, ctx.inv_std, sum_dyxhat,
                                                              sum_dy, threads)
            if device == "cpu":
                g = np.ones(c) if ctx.gamma_c is None else np.asarray(ctx.gamma_c, dtype=np.float64)
                grads = {1: sum_dyxhat, 2: sum_dy, 3: -g * ctx.inv_std * sum_dy,
                         4: -0.5 * g * ctx.inv_std ** 2 * sum_dyxhat.astype(np.float64)}
                dgamma, dbeta, dmean, dvar = (
                    np.asarray(grads[i], dtype=dtype).reshape(ctx.shapes[i - 1]) if needs[i] else None
                    for i in (1, 2, 3, 4))
            else:
                dgamma = sum_dyxhat.reshape(ctx.shapes[0]) if needs[1] else None
                dbeta = sum_dy.reshape(ctx.shapes[1]) if needs[2] else None
        return dx, dgamma, dbeta, dmean, dvar


class BatchNormTraining(Function):
    """Normalization with the batch's statistics: outputs (y, mean, variance), each differentiable."""

    n_outputs = 3
    runs_on_gpu = True

    @staticmethod
    def forward(ctx, x, gamma, beta, axis, epsilon, all_sum=None, replica_weight=1.0):
        device, x = _device(x, gamma, beta)
        if all_sum is not None and device != "cpu":
            raise ValueError("batch_normalization_training: synchronized statistics (across MPI replicas) run "
                             "on the CPU only")
        x_rc, shape_t, axis, moved = _to_rows(x, axis)
        r, c = x_rc.shape
        mean64, var64 = empty_on(device, c, np.float64), empty_on(device, c, np.float64)
        threads = kernels.threads_for(x_rc.size)
        kernels.get("batch_norm_moments", device)(x_rc, mean64, var64, threads)
        count = r
        if all_sum is not None:  # synchronized: the moments of the global batch
            mean64, var64, count = _global_moments(all_sum, mean64, var64, r)
        gamma_c = _channel(gamma, c, device)
        scale, shift, inv_std, mean, var = _scale_shift(device, mean64, var64, gamma_c, _channel(beta, c, device),
                                                        epsilon, x.dtype, stats=True)
        y_rc = empty_on(device, x_rc.shape, x_rc.dtype)
        kernels.get("batch_norm_forward", device)(x_rc, scale, shift, y_rc, threads)
        ctx.save(x_rc)
        ctx.mean64, ctx.mean, ctx.inv_std, ctx.gamma_c, ctx.device = mean64, mean, inv_std, gamma_c, device
        ctx.layout = (shape_t, axis, moved)
        ctx.sync = None if all_sum is None else (all_sum, float(replica_weight), count)
        ctx.param_shapes = (None if gamma is None else tuple(np.shape(gamma)),
                            None if beta is None else tuple(np.shape(beta)))
        return _from_rows(y_rc, *ctx.layout), mean, var

    @staticmethod
    def backward(ctx, dys, needs):
        dy, dmean, dvar = dys
        (x_rc,) = ctx.saved
        dtype, device = x_rc.dtype, ctx.device
        r, c = x_rc.shape
        dy = dy.astype(dtype, copy=False) if device == "cpu" else devices.to_device(dy)
        dy_rc, _, _, _ = _to_rows(dy, ctx.layout[1])
        threads = kernels.threads_for(x_rc.size)
        dgamma, dbeta = empty_on(device, c, dtype), empty_on(device, c, dtype)
        kernels.get("batch_norm_backward_params", device)(dy_rc, x_rc, ctx.mean64, ctx.inv_std, dgamma, dbeta,
                                                          threads)
        dx = None
        if needs[0]:
            # dx = a * dy - k * (x - mean) - b (see batch_norm_backward_input), with the
            # gradients reaching the mean and variance outputs folded into k and b.
            a, k, b = (empty_on(device, c, dtype) for _ in range(3))
            terms = kernels.get("batch_norm_backward_terms", device)
            if ctx.sync is None:
                terms(ctx.gamma_c, ctx.inv_std, dgamma, dbeta, _reached(dmean, c, device), _reached(dvar, c, device),
                      r, a, k, b)
            else:  # synchronized (CPU): every replica's sums, this replica's share of them
                sums = [dgamma.astype(np.float64), dbeta.astype(np.float64),
                        np.zeros(c) if dmean is None else np.asarray(dmean, dtype=np.float64).reshape(c),
                        np.zeros(c) if dvar is None else np.asarray(dvar, dtype=np.float64).reshape(c)]
                sums, scale = _global_gradient_sums(ctx.sync, sums)
                terms(ctx.gamma_c, ctx.inv_std, *sums, 1.0 / scale, a, k, b)
            dx_rc = empty_on(device, x_rc.shape, dtype)
            kernels.get("batch_norm_backward_input", device)(dy_rc, x_rc, ctx.mean, a, k, b, dx_rc, threads)
            dx = _from_rows(dx_rc, *ctx.layout)
        gshape, bshape = ctx.param_shapes
        return (dx, dgamma.reshape(gshape) if needs[1] else None, dbeta.reshape(bshape) if needs[2] else None)


def _reached(g, c, device):
    """The gradient reaching a statistic output as a (C,) array on ``device``, or None when none did."""
    if g is None or (not devices.is_device_array(g) and not np.any(g)):
        return None
    if device == "cpu":
        return np.asarray(g, dtype=np.float64).reshape(c)
    return devices.to_device(g).reshape(c)


def update_moving_statistic(moving, batch, momentum):
    """moving * momentum + batch * (1 - momentum) as a new array on the moving statistic's device
    (``moving``: the (C,) moving mean or variance; ``batch``: this batch's statistic)."""
    mv, bv = value(moving), value(batch)
    device = "cpu" if type(mv) is np.ndarray else device_of(mv)
    if device == "cpu":
        bv = np.asarray(devices.to_host(bv))
    out = empty_on(device, mv.shape, mv.dtype)
    kernels.get("batch_norm_update_moving", device)(mv, bv.reshape(mv.shape), float(momentum), out)
    return out


def _global_moments(all_sum, mean64, var64, rows):
    """The mean and biased variance over every replica's rows from this replica's (Keras's
    synchronized moments: one all-reduce of the sums, the sums of squares and the counts, in
    float64), and the global row count."""
    c = mean64.shape[0]
    local = np.concatenate([mean64 * rows, (var64 + mean64 * mean64) * rows, [float(rows)]])
    total = np.asarray(all_sum(local), dtype=np.float64)
    count = total[2 * c]
    mean = total[:c] / count
    return mean, np.maximum(total[c:2 * c] / count - mean * mean, 0.0), count


def _global_gradient_sums(sync, sums):
    """The per-channel gradient sums of every replica, each replica's weighted by its share
    ``w_r`` of the summed gradients (so that after the optimizer's weighted sum over replicas the
    input gradient is that of one process on the global batch), and the factor turning them into
    this replica's terms: ``1 / (w_self * global count)`` (``1 / rows`` with one replica)."""
    all_sum, weight, count = sync
    c = sums[0].shape[0]
    total = np.asarray(all_sum(np.concatenate(sums) * weight), dtype=np.float64)
    return [total[i * c:(i + 1) * c] for i in range(4)], 1.0 / (weight * count)


class CrossReplicaSum(Function):
    """The element-wise sum over replicas of a small array (per-channel sums); its backward sums
    the replicas' gradients weighted by their shares and divides by this replica's (see
    ``_global_gradient_sums``)."""

    @staticmethod
    def forward(ctx, x, all_sum, replica_weight):
        x = np.asarray(x)
        ctx.all_sum, ctx.weight, ctx.shape, ctx.dtype = all_sum, replica_weight, x.shape, x.dtype
        total = np.asarray(all_sum(x.astype(np.float64).reshape(-1)), dtype=np.float64)
        return total.reshape(x.shape).astype(x.dtype)

    @staticmethod
    def backward(ctx, dy, needs):
        weighted = np.asarray(dy, dtype=np.float64).reshape(-1) * ctx.weight
        total = np.asarray(ctx.all_sum(weighted), dtype=np.float64) / ctx.weight
        return (total.reshape(ctx.shape).astype(ctx.dtype),)


def cross_replica_sum(x, all_sum, replica_weight=1.0):
    """``x`` summed over replicas by ``all_sum`` (as in ``batch_normalization_training``),
    differentiable: the replicas' summed gradients are those of one process on the global batch.
    Every replica must call it, and run its backward, in the same order."""
    if not callable(all_sum):
        raise TypeError(f"cross_replica_sum: all_sum must be a function (the sum over replicas); "
                        f"received {type(all_sum).__name__}")
    if not replica_weight > 0:
        raise ValueError(f"cross_replica_sum: replica_weight must be positive; received {replica_weight!r}")
    return CrossReplicaSum.apply(x, all_sum=all_sum, replica_weight=float(replica_weight))


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
    if (not isinstance(xv, np.ndarray) or xv.dtype.kind != "f") and not devices.is_device_array(xv):
        x = xv = float_array(xv)
    axis = _check(xv, int(axis), "batch_normalization")
    c = xv.shape[axis]
    for p, name in ((mean, "mean"), (variance, "variance"), (offset, "offset"), (scale, "scale")):
        _check_param(p, c, name, "batch_normalization")
    return BatchNormInference.apply(x, scale, offset, mean, variance, axis=axis, epsilon=float(epsilon))


def batch_normalization_training(x, scale=None, offset=None, axis=-1, epsilon=1e-3, all_sum=None,
                                 replica_weight=1.0):
    """Normalize ``x`` with its own per-channel mean and biased variance over every axis but
    ``axis``; returns (y, mean, variance) as Tensors, y = (x - mean) / sqrt(variance + epsilon)
    * scale + offset (the training-mode half of Keras's BatchNormalization).

    Synchronized (``all_sum``: a function returning the element-wise sum over replicas of a
    float64 vector, the same on every replica): the statistics are those of the global batch,
    every replica's rows, and the backward all-reduces the per-channel sums of dy and dy * xhat,
    weighted by ``replica_weight`` (this replica's weight in the optimizer's sum of gradients
    over replicas), so that the replicas' summed gradients equal one process's on the global
    batch. Every replica must run the forward and the backward in the same order."""
    xv = value(x)
    if (not isinstance(xv, np.ndarray) or xv.dtype.kind != "f") and not devices.is_device_array(xv):
        x = xv = float_array(xv)
    axis = _check(xv, int(axis), "batch_normalization_training")
    if xv.size == 0:
        raise ValueError(f"batch_normalization_training: cannot compute statistics of an empty input "
                         f"(shape {xv.shape})")
    c = xv.shape[axis]
    for p, name in ((offset, "offset"), (scale, "scale")):
        _check_param(p, c, name, "batch_normalization_training")
    if all_sum is not None and not callable(all_sum):
        raise TypeError(f"batch_normalization_training: all_sum must be a function (the sum over replicas); "
                        f"received {type(all_sum).__name__}")
    if not replica_weight > 0:
        raise ValueError(f"batch_normalization_training: replica_weight must be positive; received {replica_weight!r}")
    return BatchNormTraining.apply(x, scale, offset, axis=axis, epsilon=float(epsilon), all_sum=all_sum,
                                   replica_weight=float(replica_weight))


def moments(x, axes, keepdims=False, synchronized=False):
    """Mean and (biased) variance of ``x`` over ``axes`` (keras.ops.moments)."""
    return _mean(x, axis=axes, keepdims=keepdims), _var(x, axis=axes, keepdims=keepdims)


class LayerNorm(Function):
    """y = (x - mean) * rstd * gamma + beta over the trailing ``n_axes`` axes of the permuted x
    (RMS form: mean = 0 and rstd from the mean square). gamma/beta: C values or None."""

    runs_on_gpu = True  # over the last axis, with (C,) gamma and beta

    @staticmethod
    def forward(ctx, x, gamma, beta, perm, n_axes, epsilon, rms):
        device, x = _device(x, gamma, beta)
        if device != "cpu":
            return _layer_norm_gpu(ctx, x, gamma, beta, perm, n_axes, epsilon, rms)
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
        device = "cpu" if type(x_rc) is np.ndarray else "cuda"
        if device == "cpu":
            dy = dy.astype(x_rc.dtype, copy=False)
            dy_rc = contiguous(dy if perm is None else np.transpose(dy, perm)).reshape(x_rc.shape)
        else:
            dy_rc = devices.to_device(dy).reshape(x_rc.shape)
        need_params = bool(needs[1] or needs[2])
        dx_rc = empty_on(device, x_rc.shape if needs[0] else (1, 1), x_rc.dtype)
        dgamma, dbeta = empty_on(device, g.shape, g.dtype), empty_on(device, g.shape, g.dtype)
        kernels.get("layer_norm_backward", device)(dy_rc, x_rc, mean, rstd, g, rms, dx_rc, dgamma, dbeta,
                                                   bool(needs[0]), need_params, kernels.threads_for(x_rc.size))
        dx = None
        if needs[0]:
            dx = dx_rc.reshape(shape_t)
            dx = dx if perm is None else np.transpose(dx, np.argsort(perm))
        gshape, bshape = ctx.param_shapes
        return (dx, dgamma.reshape(gshape) if needs[1] else None, dbeta.reshape(bshape) if needs[2] else None)


def _layer_norm_gpu(ctx, x, gamma, beta, perm, n_axes, epsilon, rms):
    """LayerNorm.forward on GPU arrays: the last axis only, gamma and beta (C,) or None."""
    shape = tuple(x.shape)
    c = shape[-1]
    if perm is not None or n_axes != 1 or any(p is not None and tuple(np.shape(p)) != (c,) for p in (gamma, beta)):
        raise ValueError("layer normalization on the GPU normalizes the last axis with (C,) gamma and beta only, "
                         f"received an input of shape {shape}")
    x_rc = x.reshape(x.size // c, c)
    g = devices.to_device(np.ones(c, x.dtype) if gamma is None else gamma)
    b = devices.to_device(np.zeros(c, x.dtype) if beta is None else beta)
    r = x_rc.shape[0]
    y_rc, mean, rstd = empty_on("cuda", x_rc.shape, x.dtype), empty_on("cuda", r, np.float64), empty_on(
        "cuda", r, np.float64)
    kernels.get("layer_norm_forward", "cuda")(x_rc, g, b, epsilon, rms, y_rc, mean, rstd)
    if ctx is not None:
        ctx.save(x_rc, g, mean, rstd)
        ctx.layout = (None, shape, rms)
        ctx.param_shapes = tuple(None if p is None else tuple(np.shape(p)) for p in (gamma, beta))
    return y_rc.reshape(shape)


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
    if (not isinstance(xv, np.ndarray) or xv.dtype.kind != "f") and not devices.is_device_array(xv):
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
