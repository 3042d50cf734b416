"""Reference layer and RMS normalization over the last axis: plain NumPy in float64, from the
formulas. Written independently of dlcore (never imports it).

Forward: y = (x - mean) / sqrt(var + eps) * gamma + beta (RMS: mean = 0, var -> mean(x^2)).
Backward, with xhat the normalized x, rstd = 1 / sqrt(var + eps) and g = dy * gamma:
dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) (RMS: without mean(g)),
dgamma = sum over rows of dy * xhat, dbeta = sum over rows of dy.
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
