"""Activations: Cython forward kernels (see _elementwise.pyx), Numba backward kernels.

Design: forwards are Cython because inference needs them. Backwards are Numba (training only),
compiled on first call through ``_config.jit``; this module never imports numba itself.
activation_backward splits the flat arrays into fixed blocks of _BLOCK elements, one prange
iteration per block, and dispatches on the activation code once per block, so each inner loop
is a tight loop over one formula. Derivatives use whichever of x (the forward input) and y (the
forward output) is cheaper and stable: y for sigmoid, tanh, elu, selu and exponential (as TF
does), x for the rest; sigmoids of x use exp(-|x|) so no formula overflows. Scalar math runs in
float64 and is stored in the array's dtype. softmax/log_softmax backward run one row per prange
iteration, each row sum in float64 in a fixed order: every output element is written by one
thread with the same arithmetic, so results do not depend on the thread count.

Legend: N elements of a flat array; R rows, C columns (softmax runs over C, the last axis).
"""
import math

from . import _config
from ._config import jit
from ._elementwise import (
    ACTIVATIONS,
    ELU,
    EXPONENTIAL,
    GELU,
    GELU_TANH,
    HARD_SIGMOID,
    LEAKY_RELU,
    LINEAR,
    LOG_SOFTMAX,
    N_ELEMENTWISE,
    RELU,
    RELU6,
    SELU,
    SIGMOID,
    SILU,
    SOFTMAX,
    SOFTPLUS,
    SOFTSIGN,
    TANH,
    FAST_BACKWARD_CODES,
    activation_forward,
    fast_activation_backward,
    log_softmax_forward,
    softmax_forward,
)


_BLOCK = 4096  # elements per prange iteration of activation_backward (fixed: thread-count free)

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_SQRT_2_OVER_PI = 0.7978845608028654  # sqrt(2/pi)
_INV_SQRT_2 = 0.7071067811865476  # 1/sqrt(2)
_INV_SQRT_2PI = 0.3989422804014327  # 1/sqrt(2 pi)
_GELU_CUBIC = 0.044715


@jit()
def _backward_block(code, x, y, dy, alpha, dx, i0, i1):
    """dx[i] = dy[i] * act'(x[i]) for i in [i0, i1); one formula per code, chosen once."""
    if code == LINEAR:
        for i in range(i0, i1):
            dx[i] = dy[i]
    elif code == RELU:
        for i in range(i0, i1):
            dx[i] = dy[i] if x[i] > 0.0 else 0.0  # derivative 0 at x == 0 (as TF/PyTorch)
    elif code == SIGMOID:
        for i in range(i0, i1):
            s = float(y[i])
            dx[i] = dy[i] * (s * (1.0 - s))
    elif code == TANH:
        for i in range(i0, i1):
            t = float(y[i])
            dx[i] = dy[i] * (1.0 - t * t)
    elif code == LEAKY_RELU:
        for i in range(i0, i1):
            dx[i] = dy[i] if x[i] > 0.0 else dy[i] * alpha
    elif code == ELU:
        # x < 0: d/dx alpha (e^x - 1) = alpha e^x = y + alpha.
        for i in range(i0, i1):
            dx[i] = dy[i] if x[i] > 0.0 else dy[i] * (y[i] + alpha)
    elif code == SELU:
        for i in range(i0, i1):
            if x[i] > 0.0:
                dx[i] = dy[i] * _SELU_SCALE
            else:
                dx[i] = dy[i] * (y[i] + _SELU_SCALE * _SELU_ALPHA)
    elif code == GELU:
        # d/dx x Phi(x) = Phi(x) + x phi(x).
        for i in range(i0, i1):
            v = float(x[i])
            cdf = 0.5 * math.erfc(-v * _INV_SQRT_2)
            pdf = _INV_SQRT_2PI * math.exp(-0.5 * v * v)
            dx[i] = dy[i] * (cdf + v * pdf)
    elif code == GELU_TANH:
        # f = x s(2u), u = c (x + k x^3): f' = s + 2 x s (1 - s) c (1 + 3 k x^2), s = s(2u).
        for i in range(i0, i1):
            v = float(x[i])
            u2 = 2.0 * _SQRT_2_OVER_PI * (v + _GELU_CUBIC * v * v * v)
            z = math.exp(-abs(u2))
            r = 1.0 / (1.0 + z)
            s = r if u2 >= 0.0 else z * r
            ds = z * r * r  # s (1 - s), without cancellation
            du = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_CUBIC * v * v)
            dx[i] = dy[i] * (s + 2.0 * v * ds * du)
    elif code == SILU:
        # f = x s(x): f' = s + x s (1 - s).
        for i in range(i0, i1):
            v = float(x[i])
            z = math.exp(-abs(v))
            r = 1.0 / (1.0 + z)
            s = r if v >= 0.0 else z * r
            dx[i] = dy[i] * (s + v * (z * r * r))
    elif code == SOFTPLUS:
        for i in range(i0, i1):
            v = float(x[i])
            z = math.exp(-abs(v))
            r = 1.0 / (1.0 + z)
            dx[i] = dy[i] * (r if v >= 0.0 else z * r)
    elif code == SOFTSIGN:
        for i in range(i0, i1):
            d = 1.0 + abs(float(x[i]))
            dx[i] = dy[i] / (d * d)
    elif code == HARD_SIGMOID:
        for i in range(i0, i1):
            dx[i] = dy[i] * (1.0 / 6.0) if -3.0 < x[i] < 3.0 else 0.0
    elif code == RELU6:
        for i in range(i0, i1):
            dx[i] = dy[i] if 0.0 < x[i] < 6.0 else 0.0
    elif code == EXPONENTIAL:
        for i in range(i0, i1):
            dx[i] = dy[i] * y[i]
    else:
        for i in range(i0, i1):
            dx[i] = dy[i]


def activation_backward(code, x, y, dy, alpha, dx_out):
    """dx_out = dy * act_code'(x) for the elementwise codes 0..14 (see ACTIVATIONS).

    x: (N,) float32/64, C-contiguous, IN (the forward input)
    y: (N,) same dtype, C-contiguous, IN (the forward output)
    dy: (N,) same dtype, C-contiguous, IN (may be the same buffer as dx_out)
    dx_out: (N,) same dtype, C-contiguous, OUT

    linear, relu, sigmoid and tanh run the vectorized Cython loop (fast_activation_backward),
    the others the Numba kernel; both give the same values.
    """
    if code in FAST_BACKWARD_CODES:
        fast_activation_backward(code, x, y, dy, alpha, dx_out, _config.threads_for(x.shape[0]))
    else:
        _activation_backward_numba(code, x, y, dy, alpha, dx_out)


@jit(parallel=True)
def _activation_backward_numba(code, x, y, dy, alpha, dx_out):
    """dx_out = dy * act_code'(x) for the elementwise codes 0..14 (see ACTIVATIONS).

    x: (N,) float32/64, C-contiguous, IN (the forward input)
    y: (N,) same dtype, C-contiguous, IN (the forward output)
    dy: (N,) same dtype, C-contiguous, IN (may be the same buffer as dx_out)
    dx_out: (N,) same dtype, C-contiguous, OUT

    alpha is leaky_relu's slope / elu's alpha. relu's derivative at exactly 0 is 0; leaky_relu's
    is alpha; relu6 and hard_sigmoid use 0 at their kinks.
    """
    n = x.shape[0]
    n_blocks = (n + _BLOCK - 1) // _BLOCK
    for b in _config.prange(n_blocks):
        i0 = b * _BLOCK
        i1 = min(i0 + _BLOCK, n)
        _backward_block(code, x, y, dy, alpha, dx_out, i0, i1)


@jit(parallel=True)
def softmax_backward(y_2d, dy_2d, dx_out):
    """dx_out[r] = y[r] * (dy[r] - sum(dy[r] * y[r])), row-wise over the last axis.

    y_2d: (R, C) float32/64, C-contiguous, IN (the softmax output)
    dy_2d: (R, C) same dtype, C-contiguous, IN (may be the same buffer as dx_out)
    dx_out: (R, C) same dtype, C-contiguous, OUT
    """
    r, c = y_2d.shape
    for i in _config.prange(r):
        s = 0.0
        for j in range(c):
            s += float(dy_2d[i, j]) * float(y_2d[i, j])
        for j in range(c):
            dx_out[i, j] = y_2d[i, j] * (dy_2d[i, j] - s)


@jit(parallel=True)
def log_softmax_backward(y_2d, dy_2d, dx_out):
    """dx_out[r] = dy[r] - exp(y[r]) * sum(dy[r]), row-wise over the last axis.

    y_2d: (R, C) float32/64, C-contiguous, IN (the log_softmax output)
    dy_2d: (R, C) same dtype, C-contiguous, IN (may be the same buffer as dx_out)
    dx_out: (R, C) same dtype, C-contiguous, OUT
    """
    r, c = y_2d.shape
    for i in _config.prange(r):
        s = 0.0
        for j in range(c):
            s += float(dy_2d[i, j])
        for j in range(c):
            dx_out[i, j] = dy_2d[i, j] - math.exp(float(y_2d[i, j])) * s


KERNELS = {
    "activation_forward": activation_forward,
    "activation_backward": activation_backward,
    "softmax_forward": softmax_forward,
    "softmax_backward": softmax_backward,
    "log_softmax_forward": log_softmax_forward,
    "log_softmax_backward": log_softmax_backward,
}

__all__ = [
    "ACTIVATIONS", "LINEAR", "RELU", "SIGMOID", "TANH", "LEAKY_RELU", "ELU", "SELU", "GELU",
    "GELU_TANH", "SILU", "SOFTPLUS", "SOFTSIGN", "HARD_SIGMOID", "RELU6", "EXPONENTIAL", "SOFTMAX",
    "LOG_SOFTMAX", "N_ELEMENTWISE", "KERNELS",
] + sorted(KERNELS)
