"""Losses on the GPU: the CUDA twins of kernels/losses.py (mean squared and absolute error,
binary, categorical and sparse categorical cross-entropy), with the CPU formulas of
``_losses.pyx``.

Design: one thread per sample row, the row sums in float64 in a fixed order. The per-sample
losses stay on the device; the op tier reduces them there (``sum_axis0`` / ``matmul``), so only
the scalar loss crosses to the host.
Legend: M samples, D values per sample, C classes.
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


@cuda.jit
def _row_loss_forward(kind, t_md, p_md, loss_out_m, from_logits, lo, hi):
    i = cuda.grid(1)
    if i < p_md.shape[0]:
        d, s = p_md.shape[1], 0.0
        if kind == _CCE:
            s = _cce_forward_row(t_md, p_md, loss_out_m, i, from_logits, lo, hi)
        else:
            for j in range(d):
                t, p = t_md[i, j], p_md[i, j]
                if kind == _MSE:
                    s += (t - p) * (t - p)
                elif kind == _MAE:
                    s += abs(t - p)
                elif from_logits:  # max(x, 0) - x t + log1p(exp(-|x|))
                    s += max(p, 0.0) - p * t + math.log1p(math.exp(-abs(p)))
                else:
                    c = _clip(p, lo, hi)
                    s -= t * math.log(c) + (1.0 - t) * math.log(1.0 - c)
            s /= d
        loss_out_m[i] = s


@cuda.jit(device=True)
def _cce_forward_row(t_md, p_md, scratch_m, i, from_logits, lo, hi):
    c, s = p_md.shape[1], 0.0
    if from_logits:
        top = p_md[i, 0]
        for j in range(1, c):
            top = max(top, p_md[i, j])
        e = 0.0
        for j in range(c):
            e += math.exp(p_md[i, j] - top)
        lse = top + math.log(e)
        for j in range(c):
            s += t_md[i, j] * (lse - p_md[i, j])
        return s
    total = 0.0
    for j in range(c):
        total += p_md[i, j]
    inv = 1.0 / total
    for j in range(c):
        scratch_m[i] = p_md[i, j] * inv  # rounded to the array dtype, as the CPU kernel rounds it
        s -= t_md[i, j] * math.log(_clip(scratch_m[i], lo, hi))
    return s


@cuda.jit
def _row_loss_backward(kind, t_md, p_md, dloss_m, dp_md, from_logits, lo, hi):
    i = cuda.grid(1)
    if i < p_md.shape[0]:
        d, dl = p_md.shape[1], dloss_m[i]
        if kind == _CCE:
            _cce_backward_row(t_md, p_md, dl, dp_md, i, from_logits, lo, hi)
            return
        for j in range(d):
            t, p = t_md[i, j], p_md[i, j]
            if kind == _MSE:
                g = 2.0 * (p - t)
            elif kind == _MAE:
                g = 1.0 if p > t else (-1.0 if p < t else 0.0)
            elif from_logits:
                e = math.exp(-abs(p))
                g = (1.0 / (1.0 + e) if p >= 0 else e / (1.0 + e)) - t
            elif p < lo or p > hi:
                g = 0.0
            else:
                g = (1.0 - t) / (1.0 - p) - t / p
            dp_md[i, j] = dl / d * g


@cuda.jit(device=True)
def _cce_backward_row(t_md, p_md, dl, dp_md, i, from_logits, lo, hi):
    c = p_md.shape[1]
    if from_logits:  # dl * (sum(t) softmax(x) - t)
        top = p_md[i, 0]
        for j in range(1, c):
            top = max(top, p_md[i, j])
        e, st = 0.0, 0.0
        for j in range(c):
            e += math.exp(p_md[i, j] - top)
            st += t_md[i, j]
        for j in range(c):
            dp_md[i, j] = dl * (st * math.exp(p_md[i, j] - top) / e - t_md[i, j])
        return
    total = 0.0
    for j in range(c):
        total += p_md[i, j]
    inv = 1.0 / total
    gr = 0.0
    for j in range(c):
        dp_md[i, j] = p_md[i, j] * inv  # r rounded to the array dtype for the clip test
        if lo <= dp_md[i, j] <= hi:
            gr -= t_md[i, j]
    for j in range(c):
        r = p_md[i, j] * inv
        g = -t_md[i, j] / r if lo <= dp_md[i, j] <= hi else 0.0
        dp_md[i, j] = dl * inv * (g - gr)


_MSE, _MAE, _BCE, _CCE = 0, 1, 2, 3


def _row_forward(kind, y_true_md, y_pred_md, loss_out_m, from_logits=False, eps=1e-7):
    if y_pred_md.shape[0]:
        lo, hi = _bounds(y_pred_md, eps)
        _row_loss_forward[grid_1d(y_pred_md.shape[0])](kind, y_true_md, y_pred_md, loss_out_m, bool(from_logits),
                                                       lo, hi)


def _row_backward(kind, y_true_md, y_pred_md, dloss_m, dpred_out_md, from_logits=False, eps=1e-7):
    if y_pred_md.shape[0]:
        lo, hi = _bounds(y_pred_md, eps)
        _row_loss_backward[grid_1d(y_pred_md.shape[0])](kind, y_true_md, y_pred_md, dloss_m, dpred_out_md,
                                                        bool(from_logits), lo, hi)


def mse_forward(y_true_md, y_pred_md, loss_out_m, n_threads=1):
    """loss_out_m[i] = mean_d (y_true - y_pred)^2; (M, D), (M, D), (M,) device arrays."""
    _row_forward(_MSE, y_true_md, y_pred_md, loss_out_m)


def mse_backward(y_true_md, y_pred_md, dloss_m, dpred_out_md, n_threads=1):
    """dpred_out_md = dloss * 2 (p - t) / D; device arrays."""
    _row_backward(_MSE, y_true_md, y_pred_md, dloss_m, dpred_out_md)


def mae_forward(y_true_md, y_pred_md, loss_out_m, n_threads=1):
    """loss_out_m[i] = mean_d |y_true - y_pred|; device arrays."""
    _row_forward(_MAE, y_true_md, y_pred_md, loss_out_m)


def mae_backward(y_true_md, y_pred_md, dloss_m, dpred_out_md, n_threads=1):
    """dpred_out_md = dloss * sign(p - t) / D (sign(0) = 0); device arrays."""
    _row_backward(_MAE, y_true_md, y_pred_md, dloss_m, dpred_out_md)


def binary_crossentropy_forward(y_true_md, y_pred_md, loss_out_m, from_logits=False, eps=1e-7, n_threads=1):
    """loss_out_m[i] = mean_d binary cross-entropy (p clipped to [eps, 1 - eps], or logits)."""
    _row_forward(_BCE, y_true_md, y_pred_md, loss_out_m, from_logits, eps)


def binary_crossentropy_backward(y_true_md, y_pred_md, dloss_m, dpred_out_md, from_logits=False, eps=1e-7,
                                 n_threads=1):
    """dpred_out_md = dloss * d(bce)/dp / D (0 outside the clip range; sigmoid(x) - t for logits)."""
    _row_backward(_BCE, y_true_md, y_pred_md, dloss_m, dpred_out_md, from_logits, eps)


def categorical_crossentropy_forward(y_true_mc, y_pred_mc, loss_out_m, from_logits=False, eps=1e-7,
                                     n_threads=1):
    """loss_out_m[i] = -sum_c t log(q), q = clip(p / sum p) or softmax(x); device arrays."""
    _row_forward(_CCE, y_true_mc, y_pred_mc, loss_out_m, from_logits, eps)


def categorical_crossentropy_backward(y_true_mc, y_pred_mc, dloss_m, dpred_out_mc, from_logits=False, eps=1e-7,
                                      n_threads=1):
    """dpred_out_mc = dloss * d(cce)/dp; device arrays."""
    _row_backward(_CCE, y_true_mc, y_pred_mc, dloss_m, dpred_out_mc, from_logits, eps)


KERNELS = {
    "mse_forward": mse_forward,
    "mse_backward": mse_backward,
    "mae_forward": mae_forward,
    "mae_backward": mae_backward,
    "binary_crossentropy_forward": binary_crossentropy_forward,
    "binary_crossentropy_backward": binary_crossentropy_backward,
    "categorical_crossentropy_forward": categorical_crossentropy_forward,
    "categorical_crossentropy_backward": categorical_crossentropy_backward,
    "sparse_categorical_crossentropy_forward": sparse_categorical_crossentropy_forward,
    "sparse_categorical_crossentropy_backward": sparse_categorical_crossentropy_backward,
}
