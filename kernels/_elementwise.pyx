# Design: forward activations, Cython because inference needs them (predict never imports numba).
# The scalar math lives in _activations.pxd (inline, shared with dense_forward's epilogue).
# activation_forward works on flat 1-D views split into fixed blocks of BLOCK elements, one
# prange iteration per block; softmax/log_softmax run one row per prange iteration. Every output
# element is written by exactly one thread with the same arithmetic, so results are bit-identical
# for any n_threads. Backward kernels are Numba, in elementwise.py.
#
# Legend: N elements of a flat array; R rows, C columns (softmax runs over C, the last axis).
from cython.parallel cimport prange

from kernels._activations cimport (
    floating, act_row, softmax_row, log_softmax_row, ACT_N_ELEMENTWISE,
    ACT_LINEAR, ACT_RELU, ACT_SIGMOID, ACT_TANH, ACT_LEAKY_RELU, ACT_ELU, ACT_SELU, ACT_GELU,
    ACT_GELU_TANH, ACT_SILU, ACT_SOFTPLUS, ACT_SOFTSIGN, ACT_HARD_SIGMOID, ACT_RELU6,
    ACT_EXPONENTIAL, ACT_SOFTMAX, ACT_LOG_SOFTMAX,
)

LINEAR = ACT_LINEAR
RELU = ACT_RELU
SIGMOID = ACT_SIGMOID
TANH = ACT_TANH
LEAKY_RELU = ACT_LEAKY_RELU
ELU = ACT_ELU
SELU = ACT_SELU
GELU = ACT_GELU
GELU_TANH = ACT_GELU_TANH
SILU = ACT_SILU
SOFTPLUS = ACT_SOFTPLUS
SOFTSIGN = ACT_SOFTSIGN
HARD_SIGMOID = ACT_HARD_SIGMOID
RELU6 = ACT_RELU6
EXPONENTIAL = ACT_EXPONENTIAL
SOFTMAX = ACT_SOFTMAX
LOG_SOFTMAX = ACT_LOG_SOFTMAX
N_ELEMENTWISE = ACT_N_ELEMENTWISE

ACTIVATIONS = {
    "linear": LINEAR,
    "relu": RELU,
    "sigmoid": SIGMOID,
    "tanh": TANH,
    "leaky_relu": LEAKY_RELU,
    "elu": ELU,
    "selu": SELU,
    "gelu": GELU,
    "gelu_tanh": GELU_TANH,
    "silu": SILU,
    "softplus": SOFTPLUS,
    "softsign": SOFTSIGN,
    "hard_sigmoid": HARD_SIGMOID,
    "relu6": RELU6,
    "exponential": EXPONENTIAL,
    "softmax": SOFTMAX,
    "log_softmax": LOG_SOFTMAX,
}

# Elements per prange iteration of activation_forward (fixed, so the split never depends on
# the thread count).
cdef Py_ssize_t BLOCK = 4096


def activation_forward(int code, const floating[::1] x, double alpha, floating[::1] y_out,
                       int n_threads=1):
    """y_out[i] = act_code(x[i]) for the elementwise codes 0..14 (see ACTIVATIONS).

    x: (N,) float32/64, C-contiguous, IN (may be the same buffer as y_out)
    y_out: (N,) same dtype, C-contiguous, OUT

    alpha is leaky_relu's negative slope or elu's alpha (ignored by the other codes).
    Raises ValueError for softmax/log_softmax codes (use softmax_forward/log_softmax_forward).
    """
    if code < 0 or code >= ACT_N_ELEMENTWISE:
        raise ValueError(f"activation_forward takes elementwise codes 0..14, received {code}")
    cdef Py_ssize_t n = x.shape[0], n_blocks = (n + BLOCK - 1) // BLOCK, blk, i0, i1
    cdef floating a = <floating>alpha
    if n == 0:
        return
    if n_blocks == 1:
        act_row(code, &x[0], <const floating*>NULL, &y_out[0], n, a)
        return
    for blk in prange(n_blocks, nogil=True, num_threads=n_threads, schedule="static"):
        i0 = blk * BLOCK
        i1 = i0 + BLOCK
        if i1 > n:
            i1 = n
        act_row(code, &x[i0], <const floating*>NULL, &y_out[i0], i1 - i0, a)


def softmax_forward(const floating[:, ::1] x_rc, floating[:, ::1] y_out, int n_threads=1):
    """y_out[r] = softmax(x_rc[r]) over the last axis, with the row max subtracted first.

    x_rc: (R, C) float32/64, C-contiguous, IN (may be the same buffer as y_out)
    y_out: (R, C) same dtype, C-contiguous, OUT
    """
    cdef Py_ssize_t r = x_rc.shape[0], c = x_rc.shape[1], i
    if r == 0 or c == 0:
        return
    for i in prange(r, nogil=True, num_threads=n_threads, schedule="static"):
        softmax_row(&x_rc[i, 0], <const floating*>NULL, &y_out[i, 0], c)


def log_softmax_forward(const floating[:, ::1] x_rc, floating[:, ::1] y_out, int n_threads=1):
    """y_out[r] = x_rc[r] - max - log(sum(exp(x_rc[r] - max))) over the last axis.

    x_rc: (R, C) float32/64, C-contiguous, IN (may be the same buffer as y_out)
    y_out: (R, C) same dtype, C-contiguous, OUT
    """
    cdef Py_ssize_t r = x_rc.shape[0], c = x_rc.shape[1], i
    if r == 0 or c == 0:
        return
    for i in prange(r, nogil=True, num_threads=n_threads, schedule="static"):
        log_softmax_row(&x_rc[i, 0], <const floating*>NULL, &y_out[i, 0], c)


# Backward of the piecewise-linear and y-expressible activations, the ones between every conv
# and dense layer in training. Cython: branch-free loops the compiler vectorizes (measured on
# (64,30,30,32) float32 relu: 0.5 ms against 2.6 ms for the Numba loop); the other codes keep
# the Numba kernel (elementwise.activation_backward picks).
FAST_BACKWARD_CODES = (ACT_LINEAR, ACT_RELU, ACT_SIGMOID, ACT_TANH)
cdef Py_ssize_t _BW_BLOCK = 1 << 14


cdef void _fast_backward_block(int code, const floating* x, const floating* y, const floating* dy,
                               floating* dx, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating one = 1, zero = 0, v
    # Both operands are loaded before the select, so the compiler emits a branch-free vector
    # blend (a conditional load would become a mispredicted branch on random signs: 10x slower).
    if code == ACT_RELU:
        for i in range(n):
            v = dy[i]
            dx[i] = v if x[i] > zero else zero
    elif code == ACT_SIGMOID:
        for i in range(n):
            dx[i] = dy[i] * (y[i] * (one - y[i]))
    elif code == ACT_TANH:
        for i in range(n):
            dx[i] = dy[i] * (one - y[i] * y[i])
    else:
        for i in range(n):
            dx[i] = dy[i]


def fast_activation_backward(int code, const floating[::1] x, const floating[::1] y,
                             const floating[::1] dy, double alpha, floating[::1] dx_out,
                             int n_threads=1):
    """dx_out = dy * act_code'(x) for code in FAST_BACKWARD_CODES (linear, relu, sigmoid, tanh);
    relu's derivative at 0 is 0. alpha is unused (kept for the common backward signature).

    x: (N,) float32/64, C-contiguous, IN (the forward input)
    y: (N,) same dtype, C-contiguous, IN (the forward output)
    dy: (N,) same dtype, C-contiguous, IN
    dx_out: (N,) same dtype, C-contiguous, OUT
    """
    cdef Py_ssize_t n = x.shape[0], b, i0, n_blocks = (x.shape[0] + _BW_BLOCK - 1) // _BW_BLOCK
    if n == 0:
        return
    for b in prange(n_blocks, nogil=True, num_threads=n_threads, schedule="static"):
        i0 = b * _BW_BLOCK
        _fast_backward_block(code, &x[i0], &y[i0], &dy[i0], &dx_out[i0],
                             _BW_BLOCK if i0 + _BW_BLOCK <= n else n - i0)
