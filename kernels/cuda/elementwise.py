"""Activations on the GPU: the CUDA twins of kernels/elementwise.py (same names, signatures,
codes and formulas, see ``_activations.pxd`` and ``_elementwise.pyx``).

Design: one thread per element for the elementwise codes (the code is uniform across a launch,
so the branch costs no divergence); one thread per row for softmax/log_softmax, summing the row
in float64 in a fixed order, so results do not depend on the launch geometry.

Legend: N elements of a flat array; R rows, C columns (softmax runs over C, the last axis).
"""
import math

from numba import cuda

from ._launch import grid_1d

SELU_ALPHA_SCALE = 1.7580993408473766
SELU_SCALE = 1.0507009873554805
N_ELEMENTWISE = 15


@cuda.jit(device=True, inline=True)
def _sigmoid(x):
    z = math.exp(-abs(x))
    r = 1.0 / (1.0 + z)
    return r if x >= 0 else z * r


@cuda.jit(device=True)
def act_scalar(code, x, alpha):
    """act_code(x) for the elementwise codes 0..14 (kernels.elementwise.ACTIVATIONS)."""
    if code == 1:
        return 0.0 if x < 0 else x
    if code == 2:
        return _sigmoid(x)
    if code == 3:
        return math.tanh(x)
    if code == 4:
        return alpha * x if x < 0 else x
    if code == 5:
        return alpha * math.expm1(x) if x < 0 else x
    if code == 6:
        return SELU_ALPHA_SCALE * math.expm1(x) if x < 0 else SELU_SCALE * x
    if code == 7:
        return 0.5 * x * math.erfc(-x * 0.7071067811865476)
    if code == 8:
        return x * _sigmoid(2.0 * 0.7978845608028654 * (x + 0.044715 * x * x * x))
    if code == 9:
        return x * _sigmoid(x)
    if code == 10:
        return (x if x > 0 else 0.0) + math.log1p(math.exp(-abs(x)))
    if code == 11:
        return x / (1.0 + abs(x))
    if code == 12:
        return min(max(x + 3.0, 0.0), 6.0) / 6.0
    if code == 13:
        return min(max(x, 0.0), 6.0)
    if code == 14:
        return math.exp(x)
    return x


@cuda.jit(device=True)
def act_derivative(code, x, y, alpha):
    """d act_code / dx at forward input x and output y (the CPU backward's formulas and kinks)."""
    if code == 1:
        return 1.0 if x > 0 else 0.0
    if code == 2:
        return y * (1.0 - y)
    if code == 3:
        return 1.0 - y * y
    if code == 4:
        return 1.0 if x > 0 else alpha
    if code == 5:
        return 1.0 if x > 0 else y + alpha
    if code == 6:
        return SELU_SCALE if x > 0 else y + SELU_ALPHA_SCALE
    if code == 7:
        cdf = 0.5 * math.erfc(-x * 0.7071067811865476)
        return cdf + x * 0.3989422804014327 * math.exp(-0.5 * x * x)
    if code == 8:
        s = _sigmoid(2.0 * 0.7978845608028654 * (x + 0.044715 * x * x * x))
        du = 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * x * x)
        return s + 2.0 * x * s * (1.0 - s) * du
    if code == 9:
        s = _sigmoid(x)
        return s + x * s * (1.0 - s)
    if code == 10:
        return _sigmoid(x)
    if code == 11:
        d = 1.0 + abs(x)
        return 1.0 / (d * d)
    if code == 12:
        return 1.0 / 6.0 if -3.0 < x < 3.0 else 0.0
    if code == 13:
        return 1.0 if 0.0 < x < 6.0 else 0.0
    if code == 14:
        return y
    return 1.0


@cuda.jit
def _activation_forward(code, x, alpha, y_out):
    i = cuda.grid(1)
    if i < x.shape[0]:
        y_out[i] = act_scalar(code, x[i], alpha)


@cuda.jit
def _activation_backward(code, x, y, dy, alpha, dx_out):
    i = cuda.grid(1)
    if i < x.shape[0]:
        dx_out[i] = dy[i] * act_derivative(code, x[i], y[i], alpha)


@cuda.jit(device=True)
def softmax_row(y, i, log):
    """Row i of y in place: softmax (or log_softmax) over the last axis, max subtracted first."""
    c = y.shape[1]
    top = y[i, 0]
    for j in range(1, c):
        top = max(top, y[i, j])
    s = 0.0
    for j in range(c):
        s += math.exp(y[i, j] - top)
    if log:
        shift = top + math.log(s)
        for j in range(c):
            y[i, j] = y[i, j] - shift
    else:
        for j in range(c):
            y[i, j] = math.exp(y[i, j] - top) / s


@cuda.jit
def _softmax_forward(x_rc, y_out, log):
    i = cuda.grid(1)
    if i < x_rc.shape[0]:
        for j in range(x_rc.shape[1]):
            y_out[i, j] = x_rc[i, j]
        softmax_row(y_out, i, log)


@cuda.jit
def _softmax_backward(y_2d, dy_2d, dx_out, log):
    i = cuda.grid(1)
    if i < y_2d.shape[0]:
        s = 0.0
        for j in range(y_2d.shape[1]):
            s += dy_2d[i, j] if log else dy_2d[i, j] * y_2d[i, j]
        for j in range(y_2d.shape[1]):
            if log:
                dx_out[i, j] = dy_2d[i, j] - math.exp(y_2d[i, j]) * s
            else:
                dx_out[i, j] = y_2d[i, j] * (dy_2d[i, j] - s)


def _check_code(kernel, code):
    if code < 0 or code >= N_ELEMENTWISE:
        raise ValueError(f"{kernel} takes elementwise codes 0..14, received {code}")


def activation_forward(code, x, alpha, y_out, n_threads=1):
    """y_out[i] = act_code(x[i]); x, y_out: (N,) device arrays (may be the same)."""
    _check_code("activation_forward", code)
    if x.shape[0]:
        _activation_forward[grid_1d(x.shape[0])](code, x, alpha, y_out)


def activation_backward(code, x, y, dy, alpha, dx_out, n_threads=None):
    """dx_out = dy * act_code'(x); x, y, dy, dx_out: (N,) device arrays (dy may be dx_out)."""
    _check_code("activation_backward", code)
    if x.shape[0]:
        _activation_backward[grid_1d(x.shape[0])](code, x, y, dy, alpha, dx_out)


def softmax_forward(x_rc, y_out, n_threads=1):
    """y_out[r] = softmax(x_rc[r]); (R, C) device arrays."""
    if x_rc.shape[0] and x_rc.shape[1]:
        _softmax_forward[grid_1d(x_rc.shape[0])](x_rc, y_out, False)


def log_softmax_forward(x_rc, y_out, n_threads=1):
    """y_out[r] = log_softmax(x_rc[r]); (R, C) device arrays."""
    if x_rc.shape[0] and x_rc.shape[1]:
        _softmax_forward[grid_1d(x_rc.shape[0])](x_rc, y_out, True)


def softmax_backward(y_2d, dy_2d, dx_out):
    """dx_out[r] = y[r] * (dy[r] - sum(dy[r] * y[r])); (R, C) device arrays."""
    if y_2d.shape[0]:
        _softmax_backward[grid_1d(y_2d.shape[0])](y_2d, dy_2d, dx_out, False)


def log_softmax_backward(y_2d, dy_2d, dx_out):
    """dx_out[r] = dy[r] - exp(y[r]) * sum(dy[r]); (R, C) device arrays."""
    if y_2d.shape[0]:
        _softmax_backward[grid_1d(y_2d.shape[0])](y_2d, dy_2d, dx_out, True)


KERNELS = {
    "activation_forward": activation_forward,
    "activation_backward": activation_backward,
    "softmax_forward": softmax_forward,
    "softmax_backward": softmax_backward,
    "log_softmax_forward": log_softmax_forward,
    "log_softmax_backward": log_softmax_backward,
}
