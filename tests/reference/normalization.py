"""Reference layer and RMS normalization over the last axis: plain NumPy in float64, from the
formulas. Written independently of dlcore (never imports it).

Forward: y = (x - mean) / sqrt(var + eps) * gamma + beta (RMS: mean = 0, var -> mean(x^2)).
Backward, with xhat the normalized x, rstd = 1 / sqrt(var + eps) and g = dy * gamma:
dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) (RMS: without mean(g)),
dgamma = sum over rows of dy * xhat, dbeta = sum over rows of dy.

Batch normalization (the batch_* functions): ``axis`` is the normalized (channel) axis;
statistics run over every other axis. The backward is the textbook closed form of
d/dx of y = gamma * (x - mean) / sqrt(var + eps) + beta with batch statistics:
dx = gamma / sqrt(var + eps) * (dy - mean(dy) - xhat * mean(dy * xhat)).
"""
import numpy as np


def forward(x, gamma, beta, epsilon, rms=False):
    """(y, mean, rstd) with mean/rstd per row (shape (R,))."""
    x = np.asarray(x, dtype=np.float64)
    mean = np.zeros(x.shape[0]) if rms else x.mean(axis=1)
    centered = x - mean[:, None]
    rstd = 1.0 / np.sqrt((centered ** 2).mean(axis=1) + epsilon)
    y = centered * rstd[:, None] * np.asarray(gamma, np.float64) + np.asarray(beta, np.float64)
    return y, mean, rstd


def backward(dy, x, gamma, epsilon, rms=False):
    """(dx, dgamma, dbeta) of forward."""
    dy = np.asarray(dy, dtype=np.float64)
    _, mean, rstd = forward(x, np.ones(x.shape[1]), np.zeros(x.shape[1]), epsilon, rms)
    xhat = (np.asarray(x, np.float64) - mean[:, None]) * rstd[:, None]
    g = dy * np.asarray(gamma, np.float64)
    mean_g = 0.0 if rms else g.mean(axis=1, keepdims=True)
    dx = rstd[:, None] * (g - mean_g - xhat * (g * xhat).mean(axis=1, keepdims=True))
    return dx, (dy * xhat).sum(axis=0), dy.sum(axis=0)


# ---- batch normalization ----
def _axes(x, axis):
    axis = axis % x.ndim
    return tuple(i for i in range(x.ndim) if i != axis), axis


def _bcast(v, x, axis):
    shape = [1] * x.ndim
    shape[axis % x.ndim] = -1
    return np.asarray(v, dtype=np.float64).reshape(shape)


def batch_moments(x, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    axes, _ = _axes(x, axis)
    mean = x.mean(axis=axes)
    var = ((x - _bcast(mean, x, axis)) ** 2).mean(axis=axes)
    return mean, var


def batch_inference(x, gamma, beta, mean, var, epsilon, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    xhat = (x - _bcast(mean, x, axis)) / np.sqrt(_bcast(var, x, axis) + epsilon)
    return xhat * _bcast(gamma, x, axis) + _bcast(beta, x, axis)


def batch_training(x, gamma, beta, epsilon, axis=-1):
    """(y, batch mean, batch biased variance)."""
    mean, var = batch_moments(x, axis)
    return batch_inference(x, gamma, beta, mean, var, epsilon, axis), mean, var


def batch_training_backward(x, dy, gamma, epsilon, axis=-1):
    """(dx, dgamma, dbeta) of training-mode batch normalization."""
    x, dy = np.asarray(x, dtype=np.float64), np.asarray(dy, dtype=np.float64)
    axes, _ = _axes(x, axis)
    mean, var = batch_moments(x, axis)
    inv_std = 1.0 / np.sqrt(var + epsilon)
    xhat = (x - _bcast(mean, x, axis)) * _bcast(inv_std, x, axis)
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * xhat).sum(axis=axes)
    dx = _bcast(np.asarray(gamma) * inv_std, x, axis) * (
        dy - _bcast(dy.mean(axis=axes), x, axis) - xhat * _bcast((dy * xhat).mean(axis=axes), x, axis))
    return dx, dgamma, dbeta


def batch_moving_update(moving, batch, momentum):
    return np.asarray(moving, dtype=np.float64) * momentum + np.asarray(batch, dtype=np.float64) * (1 - momentum)


def batch_scale_shift(mean, var, gamma, beta, epsilon):
    """(scale, shift, inv_std) of y = x * scale + shift = (x - mean) / sqrt(var + eps) * gamma + beta."""
    inv_std = 1.0 / np.sqrt(np.asarray(var, dtype=np.float64) + epsilon)
    scale = inv_std * (1.0 if gamma is None else np.asarray(gamma, dtype=np.float64))
    shift = (0.0 if beta is None else np.asarray(beta, dtype=np.float64)) - np.asarray(mean, dtype=np.float64) * scale
    return scale, shift, inv_std


def batch_backward_terms(gamma, inv_std, dgamma, dbeta, dmean, dvar, rows):
    """(a, k, b) with dx = a * dy - k * (x - mean) - b: the training backward's closed form
    (a = gamma * inv_std, k = a * inv_std * dgamma / R, b = a * dbeta / R), plus the gradients
    reaching the batch mean (d mean / dx = 1 / R) and variance (d var / dx = 2 (x - mean) / R)."""
    a = (1.0 if gamma is None else np.asarray(gamma, dtype=np.float64)) * inv_std
    k = a * inv_std * np.asarray(dgamma, dtype=np.float64) / rows
    b = a * np.asarray(dbeta, dtype=np.float64) / rows
    if dmean is not None:
        b = b - np.asarray(dmean, dtype=np.float64) / rows
    if dvar is not None:
        k = k - 2.0 * np.asarray(dvar, dtype=np.float64) / rows
    return a, k, b
