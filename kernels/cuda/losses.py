"""Losses on the GPU: the CUDA twins of kernels/losses.py (sparse categorical cross-entropy so
far), with the CPU formulas of ``_losses.pyx``.

Design: one thread per sample row, the row sums in float64 in a fixed order.
Legend: M samples, C classes.
"""
import math

from numba import cuda

from ._launch import grid_1d


@cuda.jit(device=True)
def _clip(q, lo, hi):
    return lo if q < lo else (hi if q > hi else q)


@cuda.jit
def _scce_forward(labels_m, y_pred_mc, loss_out_m, from_logits, lo, hi):
    i = cuda.grid(1)
    if i < y_pred_mc.shape[0]:
        c, label = y_pred_mc.shape[1], labels_m[i]
        if from_logits:  # logsumexp(x) - x[label]
            top = y_pred_mc[i, 0]
            for j in range(1, c):
                top = max(top, y_pred_mc[i, j])
            s = 0.0
            for j in range(c):
                s += math.exp(y_pred_mc[i, j] - top)
            loss_out_m[i] = top + math.log(s) - y_pred_mc[i, label]
        else:  # TF backend: log(sum clip(p)) - log(clip(p)[label])
            s = 0.0
            for j in range(c):
                s += _clip(y_pred_mc[i, j], lo, hi)
            loss_out_m[i] = math.log(s) - math.log(_clip(y_pred_mc[i, label], lo, hi))


@cuda.jit
def _scce_backward(labels_m, y_pred_mc, dloss_m, dpred_out_mc, from_logits, lo, hi):
    i = cuda.grid(1)
    if i < y_pred_mc.shape[0]:
        c, label, dl = y_pred_mc.shape[1], labels_m[i], dloss_m[i]
        if from_logits:  # dl * (softmax(x) - onehot(label))
            top = y_pred_mc[i, 0]
            for j in range(1, c):
                top = max(top, y_pred_mc[i, j])
            s = 0.0
            for j in range(c):
                s += math.exp(y_pred_mc[i, j] - top)
            for j in range(c):
                g = math.exp(y_pred_mc[i, j] - top) / s
                dpred_out_mc[i, j] = dl * (g - 1.0 if j == label else g)
        else:  # dl * (1 / sum clip(p) - [j == label] / p), 0 outside the clip range
            s = 0.0
            for j in range(c):
                s += _clip(y_pred_mc[i, j], lo, hi)
            for j in range(c):
                q = y_pred_mc[i, j]
                if q < lo or q > hi:
                    dpred_out_mc[i, j] = 0.0
                elif j == label:
                    dpred_out_mc[i, j] = dl * (1.0 / s - 1.0 / q)
                else:
                    dpred_out_mc[i, j] = dl / s


def _bounds(y_pred_mc, eps):
    t = y_pred_mc.dtype.type  # the clip bounds rounded as the CPU kernel rounds them
    return t(eps), t(1.0 - eps)


def sparse_categorical_crossentropy_forward(labels_m, y_pred_mc, loss_out_m, from_logits=False,
                                            eps=1e-7, n_threads=1):
    """loss_out_m[i] = logsumexp(q) - q[label]; labels_m (M,) int64, y_pred_mc (M, C), device arrays."""
    if y_pred_mc.shape[0]:
        lo, hi = _bounds(y_pred_mc, eps)
        _scce_forward[grid_1d(y_pred_mc.shape[0])](labels_m, y_pred_mc, loss_out_m,
                                                    bool(from_logits), lo, hi)


def sparse_categorical_crossentropy_backward(labels_m, y_pred_mc, dloss_m, dpred_out_mc,
                                             from_logits=False, eps=1e-7, n_threads=1):
    """dpred_out_mc = dloss * d(scce)/dp; labels_m (M,) int64, the rest (M, C) / (M,) device arrays."""
    if y_pred_mc.shape[0]:
        lo, hi = _bounds(y_pred_mc, eps)
        _scce_backward[grid_1d(y_pred_mc.shape[0])](labels_m, y_pred_mc, dloss_m, dpred_out_mc,
                                                     bool(from_logits), lo, hi)


KERNELS = {
    "sparse_categorical_crossentropy_forward": sparse_categorical_crossentropy_forward,
    "sparse_categorical_crossentropy_backward": sparse_categorical_crossentropy_backward,
}
