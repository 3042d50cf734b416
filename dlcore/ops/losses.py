"""Per-sample losses, named as the ``keras.losses`` functions: each reduces over the LAST axis
(or ``axis`` where Keras has one) and returns a Tensor of shape ``y_pred.shape[:-1]``.

Differentiable with respect to ``y_pred`` only (``y_true`` is a constant). The squared, absolute,
Huber, log-cosh and cross-entropy losses call the Cython kernels of ``dlcore.kernels.losses``
(forward and backward); the rest are composed from dlcore.ops primitives.

Shapes: ``y_true`` and ``y_pred`` must have the same shape, except for Keras's allowance of a
trailing axis of size 1 on one side (``(N,)`` vs ``(N, 1)``), which is squeezed or expanded as
``keras.losses.squeeze_or_expand_to_same_rank`` does. Anything else is a ValueError naming the
loss, the expected and the received shapes (no silent broadcasting). ``y_true`` is cast to
``y_pred``'s float dtype (integer labels to int64 for the sparse loss).
"""
import warnings

import numpy as np

from .. import config, devices, kernels
from ..autograd import Function
from ..tensor import Tensor
from .core import cast, contiguous, convert_to_tensor, device_of, empty_on, value
from .elementwise import sigmoid, softmax, softplus
from .math import (abs as abs_, add, clip, divide, log, maximum, multiply, negative, power, sqrt, square,
                   subtract)
from .reduce import max as max_, mean, sum as sum_
from .shape import reshape, transpose


# ---- conversion and validation ---------------------------------------------------------------
def _as_pred(y_pred):
    """``y_pred`` as a float Tensor (kept as is, graph included, when it already is one)."""
    if not isinstance(y_pred, Tensor):
        y_pred = convert_to_tensor(y_pred)
    if y_pred.dtype.kind != "f":
        y_pred = cast(y_pred, config.floatx())
    return y_pred


def _reshape_like(x, shape):
    if tuple(np.shape(value(x))) == tuple(shape):
        return x
    if isinstance(x, Tensor):
        return reshape(x, shape)
    return np.reshape(x, shape)


def squeeze_or_expand_to_same_rank(x1, x2, expand_rank_1=True):
    """Keras's rule: when the ranks differ by exactly one and the longer has a trailing axis of
    size 1, squeeze it (or, if the shorter is rank 1 and ``expand_rank_1``, expand the shorter).
    Works on Tensors (differentiably) and arrays."""
    s1, s2 = tuple(np.shape(value(x1))), tuple(np.shape(value(x2)))
    if len(s1) == len(s2) + 1 and s1[-1] == 1:
        if len(s2) == 1 and expand_rank_1:
            x2 = _reshape_like(x2, s2 + (1,))
        else:
            x1 = _reshape_like(x1, s1[:-1])
    elif len(s2) == len(s1) + 1 and s2[-1] == 1:
        if len(s1) == 1 and expand_rank_1:
            x1 = _reshape_like(x1, s1 + (1,))
        else:
            x2 = _reshape_like(x2, s2[:-1])
    return x1, x2


def _prepare(name, y_true, y_pred):
    """(y_true ndarray in y_pred's dtype, y_pred float Tensor) with equal shapes, or ValueError."""
    y_pred = _as_pred(y_pred)
    t = np.asarray(value(y_true))
    if t.dtype.kind not in "biuf":
        raise ValueError(f"{name}: y_true must be numeric; received dtype {t.dtype}")
    t = t.astype(y_pred.dtype, copy=False)
    shape_t, shape_p = t.shape, y_pred.shape
    t, y_pred = squeeze_or_expand_to_same_rank(t, y_pred)
    if t.shape != y_pred.shape:
        raise ValueError(f"{name}: y_true and y_pred must have the same shape (a trailing axis of "
                         f"size 1 may differ); received y_true.shape={shape_t}, "
                         f"y_pred.shape={shape_p}")
    if y_pred.ndim == 0:
        raise ValueError(f"{name}: expected y_pred of rank >= 1 (the loss reduces over its last "
                         f"axis); received a scalar")
    return t, y_pred


def _axis_last(name, t, y_pred, axis):
    """Move ``axis`` of both to the end (the kernels reduce over the last axis)."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"{name}: axis must be an int; received axis={axis!r}")
    ndim = y_pred.ndim
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}: axis={axis} is out of range for y_pred of rank {ndim}")
    axis = int(axis) % ndim
    if axis == ndim - 1:
        return t, y_pred
    perm = tuple(i for i in range(ndim) if i != axis) + (axis,)
    return np.transpose(t, perm), transpose(y_pred, perm)


def _check_smoothing(name, label_smoothing):
    ls = float(label_smoothing or 0.0)
    if not 0.0 <= ls <= 1.0:
        raise ValueError(f"{name}: label_smoothing must be in [0, 1]; received {label_smoothing!r}")
    return ls


# ---- kernel-backed Functions -----------------------------------------------------------------
class RowLoss(Function):
    """loss[...] = kernel(y_true[..., :], y_pred[..., :]) over the last axis.

    ``kernel``: the family prefix in dlcore.kernels.losses ("mse", "huber", ...); ``attrs``: the
    kernel's extra scalars (delta, from_logits, eps). Inputs: y_true and y_pred of one float
    dtype and one shape. The gradient goes to y_pred only.
    """

    runs_on_gpu = True  # predictions on the GPU: the targets go in, the per-sample losses stay there

    @staticmethod
    def forward(ctx, y_true, y_pred, kernel, attrs):
        shape = tuple(y_pred.shape)
        d = shape[-1]
        device = device_of(y_pred)
        if device != "cpu":
            p2 = y_pred.reshape(-1, d)
            t2 = devices.to_device(contiguous(np.asarray(y_true, dtype=p2.dtype)).reshape(-1, d))
            out = empty_on(device, p2.shape[0], p2.dtype)
            kernels.get(kernel + "_forward", device)(t2, p2, out, **attrs)
        else:
            p2 = contiguous(y_pred).reshape(-1, d)
            t2 = contiguous(y_true).reshape(-1, d)
            out = np.empty(p2.shape[0], dtype=p2.dtype)
            kernels.get(kernel + "_forward")(t2, p2, out, **attrs, n_threads=kernels.threads_for(p2.size))
        ctx.save(t2, p2)
        ctx.kernel, ctx.attrs, ctx.shape, ctx.device = kernel, attrs, shape, device
        return out.reshape(shape[:-1])

    @staticmethod
    def backward(ctx, dy, needs):
        if not needs[1]:
            return None, None
        t2, p2 = ctx.saved
        if ctx.device != "cpu":
            dp = empty_on(ctx.device, p2.shape, p2.dtype)
            kernels.get(ctx.kernel + "_backward", ctx.device)(t2, p2, devices.to_device(dy).reshape(p2.shape[0]), dp,
                                                              **ctx.attrs)
            return None, dp.reshape(ctx.shape)
        dl = contiguous(np.asarray(dy, dtype=p2.dtype).reshape(-1))
        dp = np.empty_like(p2)
        kernels.get(ctx.kernel + "_backward")(t2, p2, dl, dp, **ctx.attrs,
                                              n_threads=kernels.threads_for(p2.size))
        return None, dp.reshape(ctx.shape)


class SparseCrossentropy(Function):
    """loss[...] = cross-entropy of integer ``labels`` (shape y_pred.shape[:-1]) against the
    class scores on y_pred's last axis; rows where ``valid`` is False give 0 and no gradient."""

    runs_on_gpu = True

    @staticmethod
    def forward(ctx, labels, y_pred, from_logits, eps, valid):
        shape = y_pred.shape
        lab = contiguous(labels.reshape(-1))
        device = device_of(y_pred)
        if device != "cpu":  # predictions on the GPU: labels go in, per-sample losses come out
            shape = tuple(shape)
            p2, lab = y_pred.reshape(-1, shape[-1]), devices.to_device(lab)
            out_dev = empty_on(device, p2.shape[0], p2.dtype)
            kernels.get("sparse_categorical_crossentropy_forward", device)(lab, p2, out_dev, from_logits, eps)
            out = out_dev if valid is None else out_dev.copy_to_host()  # ignore_class masks on the host
        else:
            p2 = contiguous(y_pred).reshape(-1, shape[-1])
            out = np.empty(p2.shape[0], dtype=p2.dtype)
            kernels.get("sparse_categorical_crossentropy_forward")(
                lab, p2, out, from_logits=from_logits, eps=eps, n_threads=kernels.threads_for(p2.size))
        if valid is not None:
            out[~valid.reshape(-1)] = 0
        ctx.save(lab, p2)
        ctx.shape, ctx.from_logits, ctx.eps, ctx.valid = shape, from_logits, eps, valid
        return out.reshape(shape[:-1])

    @staticmethod
    def backward(ctx, dy, needs):
        if not needs[1]:
            return None, None
        lab, p2 = ctx.saved
        device = device_of(p2)
        if devices.is_device_array(dy):  # the loss was reduced on the device
            dl = dy.reshape(p2.shape[0])
        else:
            dl = np.array(np.asarray(dy, dtype=p2.dtype).reshape(-1), copy=True)
            if ctx.valid is not None:
                dl[~ctx.valid.reshape(-1)] = 0
        if device != "cpu":
            dp = empty_on(device, p2.shape, p2.dtype)
            kernels.get("sparse_categorical_crossentropy_backward", device)(
                lab, p2, devices.to_device(dl), dp, ctx.from_logits, ctx.eps)
            return None, dp.reshape(ctx.shape)
        dp = np.empty_like(p2)
        kernels.get("sparse_categorical_crossentropy_backward")(
            lab, p2, dl, dp, from_logits=ctx.from_logits, eps=ctx.eps,
            n_threads=kernels.threads_for(p2.size))
        return None, dp.reshape(ctx.shape)


class DeviceLossSum(Function):
    """scale * sum(values * weights) of per-sample losses on the GPU, returned as a host scalar:
    the one value that crosses per step. values: device (...); weights: host, values' shape, or
    None (sample weights and masks are batch data: they go in with the batch). The backward
    fills d values = dy * scale on the device, or uploads dy * scale * weights."""

    runs_on_gpu = True

    @staticmethod
    def forward(ctx, values, weights, scale):
        size, dtype = values.size, values.dtype
        total = empty_on("cuda", (1, 1), dtype)
        if size == 0:
            total[:] = 0
        elif weights is None:  # one thread adds the rows in order: deterministic
            kernels.get("sum_axis0", "cuda")(values.reshape(size, 1), total.reshape(1))
        else:
            w = devices.to_device(np.ascontiguousarray(weights, dtype=dtype).reshape(size, 1))
            kernels.get("matmul", "cuda")(w, values.reshape(size, 1), total, True, False, 1.0, 0.0)
        ctx.shape, ctx.dtype, ctx.weights, ctx.scale = tuple(values.shape), dtype, weights, scale
        return np.asarray(total.copy_to_host()[0, 0] * scale, dtype=dtype)

    @staticmethod
    def backward(ctx, dy, needs):
        g = float(np.asarray(dy)) * ctx.scale
        if ctx.weights is None:
            dv = empty_on("cuda", ctx.shape, ctx.dtype)
            dv[:] = g
        else:
            dv = devices.to_device(np.ascontiguousarray(ctx.weights * g, dtype=ctx.dtype))
        return dv, None


def device_loss_sum(values, weights=None, scale=1.0):
    """``scale * sum(values * weights)`` for per-sample losses on the GPU, as a host scalar Tensor
    (weights: None or a host array of values' shape)."""
    return DeviceLossSum.apply(values, weights, scale=float(scale))


def _row_loss(name, kernel, y_true, y_pred, axis=-1, **attrs):
    t, p = _prepare(name, y_true, y_pred)
    if axis != -1:
        t, p = _axis_last(name, t, p, axis)
    return RowLoss.apply(t, p, kernel=kernel, attrs=attrs)


# ---- kernel-backed losses --------------------------------------------------------------------
def mean_squared_error(y_true, y_pred):
    """mean((y_true - y_pred)**2, axis=-1)."""
    return _row_loss("mean_squared_error", "mse", y_true, y_pred)


def mean_absolute_error(y_true, y_pred):
    """mean(|y_true - y_pred|, axis=-1)."""
    return _row_loss("mean_absolute_error", "mae", y_true, y_pred)


def huber(y_true, y_pred, delta=1.0):
    """mean(0.5 e**2 if |e| <= delta else delta |e| - 0.5 delta**2, axis=-1), e = y_pred - y_true."""
    return _row_loss("huber", "huber", y_true, y_pred, delta=float(delta))


def log_cosh(y_true, y_pred):
    """mean(log(cosh(y_pred - y_true)), axis=-1), evaluated stably."""
    return _row_loss("log_cosh", "log_cosh", y_true, y_pred)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """mean over ``axis`` of -(t log p + (1 - t) log(1 - p)), p clipped to [eps, 1 - eps]
    (or the stable logit form); label smoothing moves t to t (1 - ls) + 0.5 ls."""
    name = "binary_crossentropy"
    ls = _check_smoothing(name, label_smoothing)
    t, p = _prepare(name, y_true, y_pred)
    if ls:
        t = t * (1.0 - ls) + 0.5 * ls
    t, p = _axis_last(name, t, p, axis)
    return RowLoss.apply(t, p, kernel="binary_crossentropy",
                         attrs={"from_logits": bool(from_logits), "eps": config.epsilon()})


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """-sum over ``axis`` of t log q, q = softmax(y_pred) (logits) or clip(p / sum p, eps, 1 - eps);
    label smoothing moves t to t (1 - ls) + ls / num_classes."""
    name = "categorical_crossentropy"
    ls = _check_smoothing(name, label_smoothing)
    t, p = _prepare(name, y_true, y_pred)
    t, p = _axis_last(name, t, p, axis)
    if p.shape[-1] == 1:
        warnings.warn("In loss categorical_crossentropy, expected y_pred.shape to be (batch_size, "
                      f"num_classes) with num_classes > 1. Received: y_pred.shape={p.shape}. "
                      "Consider using 'binary_crossentropy' if you only have 2 classes.",
                      SyntaxWarning, stacklevel=2)
    if ls:
        t = t * (1.0 - ls) + ls / t.shape[-1]
    return RowLoss.apply(t, p, kernel="categorical_crossentropy",
                         attrs={"from_logits": bool(from_logits), "eps": config.epsilon()})


def _sparse_labels(name, y_true, pred_shape, ignore_class):
    """(int64 labels of shape pred_shape[:-1], valid mask or None), validated."""
    t = np.asarray(value(y_true))
    received = t.shape
    if len(t.shape) == len(pred_shape) and t.shape[-1:] == (1,):
        t = t.reshape(t.shape[:-1])
    expected = tuple(pred_shape[:-1])
    if t.shape != expected:
        raise ValueError(f"{name}: y_true must hold one integer label per sample, of shape "
                         f"{expected} (or {expected + (1,)}) for y_pred of shape {tuple(pred_shape)}; "
                         f"received y_true.shape={received}")
    if t.dtype.kind == "f":
        if not np.all(np.isfinite(t)) or np.any(t != np.round(t)):
            bad = t[~np.isfinite(t) | (t != np.round(np.nan_to_num(t)))].ravel()[:5]
            raise ValueError(f"{name}: y_true must hold integer class labels; received "
                             f"non-integer values such as {bad.tolist()}")
    elif t.dtype.kind not in "biu":
        raise ValueError(f"{name}: y_true must hold integer class labels; received dtype {t.dtype}")
    labels = t.astype(np.int64, copy=False)  # int64 labels as they are (a captured step reads them)
    valid = None
    if ignore_class is not None:
        valid = labels != int(ignore_class)
        labels = np.where(valid, labels, 0)
    c = pred_shape[-1]
    out_of_range = (labels < 0) | (labels >= c)
    if np.any(out_of_range):
        bad = np.unique(labels[out_of_range])[:5]
        raise ValueError(f"{name}: labels must lie in [0, {c}) for y_pred with {c} classes; "
                         f"received {bad.tolist()}")
    return labels, valid


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    """logsumexp(q) - q[label] over ``axis``, q = y_pred (logits) or log(clip(p, eps, 1 - eps)).

    ``y_true``: integer labels of shape y_pred.shape[:-1] (or with a trailing 1). Labels equal to
    ``ignore_class`` give a loss of 0 (Loss classes then average over the other entries).
    """
    name = "sparse_categorical_crossentropy"
    p = _as_pred(y_pred)
    if p.ndim == 0:
        raise ValueError(f"{name}: expected y_pred of rank >= 1 (class scores on its last axis); "
                         f"received a scalar")
    _, p = _axis_last(name, np.empty((0,) * p.ndim), p, axis)
    labels, valid = _sparse_labels(name, y_true, p.shape, ignore_class)
    return SparseCrossentropy.apply(labels, p, from_logits=bool(from_logits), eps=config.epsilon(),
                                    valid=valid)


def sparse_valid_mask(y_true, y_pred, ignore_class):
    """The mask of entries whose label is not ``ignore_class`` (shape y_pred.shape[:-1])."""
    t = np.asarray(value(y_true))
    pred_shape = np.shape(value(y_pred))
    if len(t.shape) == len(pred_shape) and t.shape[-1:] == (1,):
        t = t.reshape(t.shape[:-1])
    return t != ignore_class


# ---- losses composed from primitives ---------------------------------------------------------
def _mean_last(x):
    return mean(x, axis=-1)


def mean_absolute_percentage_error(y_true, y_pred):
    """100 * mean(|(y_true - y_pred) / max(|y_true|, eps)|, axis=-1)."""
    t, p = _prepare("mean_absolute_percentage_error", y_true, y_pred)
    denom = np.maximum(np.abs(t), np.asarray(config.epsilon(), dtype=t.dtype))
    return multiply(100.0, _mean_last(abs_(divide(subtract(t, p), denom))))


def mean_squared_logarithmic_error(y_true, y_pred):
    """mean((log(max(y_pred, eps) + 1) - log(max(y_true, eps) + 1))**2, axis=-1)."""
    t, p = _prepare("mean_squared_logarithmic_error", y_true, y_pred)
    eps = config.epsilon()
    first = log(add(maximum(p, eps), 1.0))
    second = np.log(np.maximum(t, np.asarray(eps, dtype=t.dtype)) + t.dtype.type(1))
    return _mean_last(square(subtract(first, second)))


def _hinge_labels(t):
    """Binary {0, 1} labels become {-1, 1}; other labels are left as they are (Keras)."""
    if np.all((t == 0) | (t == 1)):
        return 2 * t - 1
    return t


def hinge(y_true, y_pred):
    """mean(max(1 - y_true * y_pred, 0), axis=-1); {0, 1} labels are mapped to {-1, 1}."""
    t, p = _prepare("hinge", y_true, y_pred)
    return _mean_last(maximum(subtract(1.0, multiply(_hinge_labels(t), p)), 0.0))


def squared_hinge(y_true, y_pred):
    """mean(max(1 - y_true * y_pred, 0)**2, axis=-1); {0, 1} labels are mapped to {-1, 1}."""
    t, p = _prepare("squared_hinge", y_true, y_pred)
    return _mean_last(square(maximum(subtract(1.0, multiply(_hinge_labels(t), p)), 0.0)))


def categorical_hinge(y_true, y_pred):
    """max(max((1 - t) * p, axis=-1) - sum(t * p, axis=-1) + 1, 0)."""
    t, p = _prepare("categorical_hinge", y_true, y_pred)
    pos = sum_(multiply(t, p), axis=-1)
    neg = max_(multiply(1.0 - t, p), axis=-1)
    return maximum(add(subtract(neg, pos), 1.0), 0.0)


def kl_divergence(y_true, y_pred):
    """sum(t * log(t / p), axis=-1) with t and p clipped to [eps, 1]."""
    t, p = _prepare("kl_divergence", y_true, y_pred)
    eps = config.epsilon()
    t = np.clip(t, np.asarray(eps, dtype=t.dtype), t.dtype.type(1))
    return sum_(multiply(t, log(divide(t, clip(p, eps, 1.0)))), axis=-1)


def poisson(y_true, y_pred):
    """mean(y_pred - y_true * log(y_pred + eps), axis=-1)."""
    t, p = _prepare("poisson", y_true, y_pred)
    return _mean_last(subtract(p, multiply(t, log(add(p, config.epsilon())))))


def _l2_normalize(x, axis):
    """x / max(||x||_2, eps) along ``axis`` (keras.ops.normalize); finite gradient at 0."""
    eps = config.epsilon()
    if isinstance(x, np.ndarray):
        norm = np.sqrt(np.maximum(np.sum(np.square(x), axis=axis, keepdims=True),
                                  np.asarray(eps * eps, dtype=x.dtype)))
        return x / norm
    return divide(x, sqrt(maximum(sum_(square(x), axis=axis, keepdims=True), eps * eps)))


def cosine_similarity(y_true, y_pred, axis=-1):
    """-sum(l2_normalize(y_true) * l2_normalize(y_pred), axis): -1 when aligned, 0 orthogonal."""
    t, p = _prepare("cosine_similarity", y_true, y_pred)
    return negative(sum_(multiply(_l2_normalize(t, axis), _l2_normalize(p, axis)), axis=axis))


# ---- focal and overlap losses (composed) -----------------------------------------------------
def _check_axis(name, axis, ndim):
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"{name}: axis must be an int; received axis={axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}: axis={axis} is out of range for y_pred of rank {ndim}")
    return int(axis)


def _check_float(name, arg, x, lo=None, hi=None):
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}: {arg} must be a number; received {arg}={x!r}")
    if (lo is not None and x < lo) or (hi is not None and x > hi):
        raise ValueError(f"{name}: {arg} must be in [{lo}, {hi if hi is not None else 'inf'}); "
                         f"received {arg}={x!r}")
    return float(x)


def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=False, alpha=0.25, gamma=2.0,
                              from_logits=False, label_smoothing=0.0, axis=-1):
    """mean over ``axis`` of (1 - p_t)**gamma * bce, p_t = t p + (1 - t)(1 - p) (Lin et al.);
    with ``apply_class_balancing`` also weighted by alpha (t = 1) / 1 - alpha (t = 0).
    Shapes: y_true, y_pred (N, ..., D) -> (N, ...)."""
    name = "binary_focal_crossentropy"
    ls = _check_smoothing(name, label_smoothing)
    alpha = _check_float(name, "alpha", alpha, 0.0, 1.0)
    gamma = _check_float(name, "gamma", gamma, 0.0)
    t, p = _prepare(name, y_true, y_pred)
    axis = _check_axis(name, axis, p.ndim)
    if ls:
        t = t * (1.0 - ls) + 0.5 * ls
    if from_logits:
        # the logit form Keras's backend uses, max(x, 0) - x t + log(1 + exp(-|x|)) = softplus(x) - x t
        bce = subtract(softplus(p), multiply(p, t))
        p = sigmoid(p)
    else:
        eps = config.epsilon()
        pc = clip(p, eps, 1.0 - eps)
        bce = negative(add(multiply(t, log(pc)), multiply(1.0 - t, log(subtract(1.0, pc)))))
    p_t = add(multiply(t, p), multiply(1.0 - t, subtract(1.0, p)))
    focal = multiply(power(subtract(1.0, p_t), gamma), bce)
    if apply_class_balancing:
        focal = multiply(t * alpha + (1.0 - t) * (1.0 - alpha), focal)
    return mean(focal, axis=axis)


def categorical_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False,
                                   label_smoothing=0.0, axis=-1):
    """-sum over ``axis`` of alpha (1 - q)**gamma t log q, q = softmax(y_pred) (logits) or
    clip(p / sum p, eps, 1 - eps). Shapes: (N, ..., C) -> (N, ...)."""
    name = "categorical_focal_crossentropy"
    ls = _check_smoothing(name, label_smoothing)
    alpha = _check_float(name, "alpha", alpha)
    gamma = _check_float(name, "gamma", gamma, 0.0)
    t, p = _prepare(name, y_true, y_pred)
    axis = _check_axis(name, axis, p.ndim)
    if p.shape[-1] == 1:
        warnings.warn("In loss categorical_focal_crossentropy, expected y_pred.shape to be "
                      f"(batch_size, num_classes) with num_classes > 1. Received: y_pred.shape={p.shape}. "
                      "Consider using 'binary_crossentropy' if you only have 2 classes.",
                      SyntaxWarning, stacklevel=2)
    if ls:
        t = t * (1.0 - ls) + ls / t.shape[-1]
    if from_logits:
        p = softmax(p, axis=axis)
    eps = config.epsilon()
    q = clip(divide(p, sum_(p, axis=axis, keepdims=True)), eps, 1.0 - eps)
    cce = multiply(-t, log(q))
    return sum_(multiply(multiply(power(subtract(1.0, q), gamma), alpha), cce), axis=axis)


def _overlap_axis(name, axis, ndim):
    """``axis`` of Dice/Tversky: None (all axes) or an int / tuple of ints in range."""
    if axis is None:
        return None
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    for a in axes:
        _check_axis(name, a, ndim)
    return tuple(int(a) for a in axes) if isinstance(axis, (tuple, list)) else int(axis)


def dice(y_true, y_pred, axis=None):
    """1 - 2 sum(t p) / (sum(t) + sum(p) + eps), summed over ``axis`` (None: every axis, a
    scalar)."""
    t, p = _prepare("dice", y_true, y_pred)
    axis = _overlap_axis("dice", axis, p.ndim)
    intersection = sum_(multiply(t, p), axis=axis)
    denom = add(add(sum_(p, axis=axis), np.sum(t, axis=axis)), config.epsilon())
    return subtract(1.0, divide(multiply(2.0, intersection), denom))


def tversky(y_true, y_pred, alpha=0.5, beta=0.5, axis=None):
    """1 - TP / (TP + alpha FP + beta FN + eps) with TP = sum(t p), FP = sum((1 - p) t),
    FN = sum(p (1 - t)) over ``axis`` (Keras's definitions); alpha = beta = 0.5 is Dice."""
    name = "tversky"
    alpha = _check_float(name, "alpha", alpha)
    beta = _check_float(name, "beta", beta)
    t, p = _prepare(name, y_true, y_pred)
    axis = _overlap_axis(name, axis, p.ndim)
    tp = sum_(multiply(t, p), axis=axis)
    fp = sum_(multiply(subtract(1.0, p), t), axis=axis)
    fn = sum_(multiply(p, 1.0 - t), axis=axis)
    denom = add(add(add(tp, multiply(fp, alpha)), multiply(fn, beta)), config.epsilon())
    return subtract(1.0, divide(tp, denom))


# keras.losses aliases
mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kullback_leibler_divergence = kl_divergence
logcosh = log_cosh

__all__ = ["mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
           "mean_squared_logarithmic_error", "huber", "log_cosh", "binary_crossentropy",
           "categorical_crossentropy", "sparse_categorical_crossentropy", "hinge", "squared_hinge",
           "categorical_hinge", "kl_divergence", "poisson", "cosine_similarity",
           "binary_focal_crossentropy", "categorical_focal_crossentropy", "dice", "tversky"]
