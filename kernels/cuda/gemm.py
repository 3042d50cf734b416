"""Matrix products on the GPU: the CUDA twins of kernels/gemm.py.

Design: one thread per output element, TILE x TILE blocks staging TILE x TILE tiles of op(a) and
op(b) in shared memory (one compiled kernel per dtype, since shared arrays have a fixed type);
each thread sums its dot product over k in a fixed order. dense_forward is the tiled product
followed by an epilogue launch (bias + elementwise activation per element, or softmax /
log_softmax per row).

Legend: out (m, n) = op(a) (m, k) @ op(b) (k, n); dense: x (N, K) @ w (K, M) + b (M,).
"""
import math

import numpy as np
from numba import config as numba_config
from numba import cuda, float32, float64

from ._launch import dummy_vector, grid_1d
from .elementwise import act_scalar, softmax_row

# 16 x 16 threads per block on a GPU; 4 x 4 under the simulator, which runs every thread as a
# Python thread (the same code, with more tiles per product: k = 19 spans five of them).
TILE = 4 if numba_config.ENABLE_CUDASIM else 16


def _make_matmul(nb_type):
    @cuda.jit
    def kernel(a, b, out, trans_a, trans_b, alpha, beta, k):
        sa = cuda.shared.array((TILE, TILE), nb_type)
        sb = cuda.shared.array((TILE, TILE), nb_type)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        col = cuda.blockIdx.x * TILE + tx
        row = cuda.blockIdx.y * TILE + ty
        m, n = out.shape
        acc = nb_type(0.0)
        for t in range((k + TILE - 1) // TILE):
            kk = t * TILE + tx
            if row < m and kk < k:
                sa[ty, tx] = a[kk, row] if trans_a else a[row, kk]
            else:
                sa[ty, tx] = 0.0
            kk = t * TILE + ty
            if col < n and kk < k:
                sb[ty, tx] = b[col, kk] if trans_b else b[kk, col]
            else:
                sb[ty, tx] = 0.0
            cuda.syncthreads()
            for p in range(TILE):
                acc += sa[ty, p] * sb[p, tx]
            cuda.syncthreads()
        if row < m and col < n:
            if beta == 0.0:
                out[row, col] = alpha * acc
            else:
                out[row, col] = alpha * acc + beta * out[row, col]

    return kernel


_MATMUL = {np.dtype(np.float32): _make_matmul(float32), np.dtype(np.float64): _make_matmul(float64)}


def matmul(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, n_threads=-1):
    """out = alpha * op(a) @ op(b) + beta * out, op(v) = v.T if trans_v else v.

    a: (m, k) or (k, m) if trans_a; b: (k, n) or (n, k) if trans_b; out: (m, n), IN/OUT (not
    read when beta == 0); float32/64 device arrays of one dtype, C-contiguous.
    """
    m, n = out.shape
    k = a.shape[0] if trans_a else a.shape[1]
    if m == 0 or n == 0:
        return
    grid = (math.ceil(n / TILE), math.ceil(m / TILE))
    _MATMUL[np.dtype(out.dtype)][grid, (TILE, TILE)](a, b, out, bool(trans_a), bool(trans_b),
                                                      float(alpha), float(beta), k)


@cuda.jit
def _bias_act(y_nm, b_m, has_bias, code, alpha):
    i, j = cuda.grid(2)
    if i < y_nm.shape[0] and j < y_nm.shape[1]:
        v = y_nm[i, j]
        if has_bias:
            v += b_m[j]
        y_nm[i, j] = act_scalar(code, v, alpha)


@cuda.jit
def _bias_softmax(y_nm, b_m, has_bias, log):
    i = cuda.grid(1)
    if i < y_nm.shape[0]:
        if has_bias:
            for j in range(y_nm.shape[1]):
                y_nm[i, j] += b_m[j]
        softmax_row(y_nm, i, log)


SOFTMAX, LOG_SOFTMAX = 15, 16


def dense_forward(x_nk, w_km, b_m, activation, alpha, y_nm, n_threads=1):
    """y_nm = act(x_nk @ w_km + b_m), the activation code from elementwise.ACTIVATIONS.

    x_nk: (N, K), w_km: (K, M), b_m: (M,) or None, y_nm: (N, M) OUT; device arrays of one dtype.
    softmax (15) and log_softmax (16) run row-wise over M.
    """
    n, m = y_nm.shape
    if n == 0 or m == 0:
        return
    matmul(x_nk, w_km, y_nm)
    has_bias = b_m is not None
    bias = b_m if has_bias else dummy_vector(y_nm.dtype)
    if activation in (SOFTMAX, LOG_SOFTMAX):
        _bias_softmax[grid_1d(n)](y_nm, bias, has_bias, activation == LOG_SOFTMAX)
    elif activation != 0 or has_bias:
        grid = (math.ceil(n / TILE), math.ceil(m / TILE))
        _bias_act[grid, (TILE, TILE)](y_nm, bias, has_bias, activation, float(alpha))


KERNELS = {"matmul": matmul, "dense_forward": dense_forward}
