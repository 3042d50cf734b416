"""Activations: Cython forward and elementwise backward kernels (see _elementwise.pyx), Numba
softmax/log_softmax backward kernels.

Design: forwards are Cython because inference needs them. activation_backward is Cython too
(C loops compiled for AVX-512/AVX2/baseline, float32 with a vectorized exp), since it measured
faster than the Numba kernel it replaced, which also cost a JIT compile per dtype in the first
training step; see _elementwise.pyx for the numbers. It splits the flat arrays into fixed blocks,
one prange iteration per block, and dispatches on the activation code once per block, so each
inner loop is a tight loop over one formula. Derivatives use whichever of x (the forward input)
and y (the forward output) is cheaper and stable: y for sigmoid, tanh, elu, selu and exponential
(as TF does), x for the rest; sigmoids of x use exp(-|x|) so no formula overflows. The softmax
backwards (Numba, compiled on first call through ``_config.jit``; this module never imports
numba itself) run one row per prange iteration, each row sum in float64 in a fixed order: every
output element is written by one thread with the same arithmetic, so results do not depend on
the thread count.

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
    activation_forward,
    add_forward,
    fill,
    log_softmax_forward,
    softmax_forward,
)
from ._elementwise import activation_backward as _activation_backward


def activation_backward(code, x, y, dy, alpha, dx_out, n_threads=None):
    """dx_out = dy * act_code'(x) for the elementwise codes 0..14 (see ACTIVATIONS).

    x: (N,) float32/64, C-contiguous, IN (the forward input)
    y: (N,) same dtype, C-contiguous, IN (the forward output)
    dy: (N,) same dtype, C-contiguous, IN (may be the same buffer as dx_out)
    dx_out: (N,) same dtype, C-contiguous, OUT

    The Cython kernel (_elementwise.activation_backward) with n_threads = threads_for(N) unless
    given. alpha is leaky_relu's slope / elu's alpha. relu's derivative at exactly 0 is 0;
    leaky_relu's is alpha; relu6 and hard_sigmoid use 0 at their kinks.
    """
    _activation_backward(code, x, y, dy, alpha, dx_out,
                         _config.threads_for(x.shape[0]) if n_threads is None else n_threads)


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
    "add_forward": add_forward,
    "fill": fill,
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
