"""Reference batch normalization: plain NumPy in float64, from the formulas.

Written independently of dlcore (never imports it). ``axis`` is the normalized (channel) axis;
statistics run over every other axis. The backward is the textbook closed form of
d/dx of y = gamma * (x - mean) / sqrt(var + eps) + beta with batch statistics:
dx = gamma / sqrt(var + eps) * (dy - mean(dy) - xhat * mean(dy * xhat)).
"""
import numpy as np


def _axes(x, axis):
    axis = axis % x.ndim
    return tuple(i for i in range(x.ndim) if i != axis), axis


def _bcast(v, x, axis):
    shape = [1] * x.ndim
    shape[axis % x.ndim] = -1
    return np.asarray(v, dtype=np.float64).reshape(shape)


def moments(x, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    axes, _ = _axes(x, axis)
    mean = x.mean(axis=axes)
    var = ((x - _bcast(mean, x, axis)) ** 2).mean(axis=axes)
    return mean, var


def inference(x, gamma, beta, mean, var, epsilon, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    xhat = (x - _bcast(mean, x, axis)) / np.sqrt(_bcast(var, x, axis) + epsilon)
    return xhat * _bcast(gamma, x, axis) + _bcast(beta, x, axis)


def training(x, gamma, beta, epsilon, axis=-1):
    """(y, batch mean, batch biased variance)."""
    mean, var = moments(x, axis)
    return inference(x, gamma, beta, mean, var, epsilon, axis), mean, var


def training_backward(x, dy, gamma, epsilon, axis=-1):
    """(dx, dgamma, dbeta) of training-mode batch normalization."""
    x, dy = np.asarray(x, dtype=np.float64), np.asarray(dy, dtype=np.float64)
    axes, _ = _axes(x, axis)
    mean, var = moments(x, axis)
    inv_std = 1.0 / np.sqrt(var + epsilon)
    xhat = (x - _bcast(mean, x, axis)) * _bcast(inv_std, x, axis)
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * xhat).sum(axis=axes)
    dx = _bcast(np.asarray(gamma) * inv_std, x, axis) * (
        dy - _bcast(dy.mean(axis=axes), x, axis) - xhat * _bcast((dy * xhat).mean(axis=axes), x, axis))
    return dx, dgamma, dbeta


def moving_update(moving, batch, momentum):
    return np.asarray(moving, dtype=np.float64) * momentum + np.asarray(batch, dtype=np.float64) * (1 - momentum)


def scale_shift(mean, var, gamma, beta, epsilon):
    """(scale, shift, inv_std) of y = x * scale + shift = (x - mean) / sqrt(var + eps) * gamma + beta."""
    inv_std = 1.0 / np.sqrt(np.asarray(var, dtype=np.float64) + epsilon)
    scale = inv_std * (1.0 if gamma is None else np.asarray(gamma, dtype=np.float64))
    shift = (0.0 if beta is None else np.asarray(beta, dtype=np.float64)) - np.asarray(mean, dtype=np.float64) * scale
    return scale, shift, inv_std


def backward_terms(gamma, inv_std, dgamma, dbeta, dmean, dvar, rows):
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
