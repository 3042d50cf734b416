# Design: batch normalization on a (rows, channels) view, all Cython.
#   - The op tier views any input with the normalized axis last as x_rc = (R, C): for NHWC,
#     R = N*H*W. Other axes are moved last by the op tier first.
#   - batch_norm_forward is the fused inference form y = x * scale + shift (scale and shift
#     precomputed per channel by the op tier from gamma, beta and the moving statistics); the
#     training forward is batch_norm_moments followed by the same kernel with scale/shift built
#     from the batch statistics. Forwards are Cython because inference needs them.
#   - Statistics and parameter gradients are sums over rows, made deterministic as STYLE P10
#     asks: rows are split into fixed chunks of CHUNK_ROWS (independent of the thread count),
#     each prange iteration sums one chunk in float64 into its own row of a (n_chunks, C)
#     scratch buffer, and the chunk rows are then added serially in chunk order. The scratch is
#     allocated once per call, outside the loops.
#   - Mean and variance are two passes (sum, then sum of squared deviations from the mean), in
#     float64: no cancellation, and the variance is the biased one (divide by R), as Keras's
#     moments and ONNX's training mode use.
#   - batch_norm_backward_params and batch_norm_backward_input are separate kernels (STYLE P3):
#     dgamma/dbeta are always needed by dx, but dx is skipped for a model's first layer. Backward
#     kernels are Cython as well: streaming loops the compiler vectorizes. Measured at
#     (65536, 64) float32, 2 threads: a Numba twin of batch_norm_backward_params ran in
#     1.3-3.2 ms against Cython's 2.7-3.2 ms (a noisy shared machine) and costs ~4 s of JIT
#     compile per dtype in the first training step; so Cython, compiled ahead of time.
#   - Per-channel statistics (mean_c, var_c, inv_std_c) are float64 arrays whatever x's dtype.
#
# Legend: R rows (all axes but the channel axis, flattened), C channels.
import numpy as np

from cython.parallel cimport prange

ctypedef fused floating:
    float
    double

# Rows per chunk of the deterministic reductions (fixed: the split never depends on n_threads).
CHUNK_ROWS = 256
cdef Py_ssize_t _CHUNK = CHUNK_ROWS


def batch_norm_forward(const floating[:, ::1] x_rc, const floating[::1] scale_c,
                       const floating[::1] shift_c, floating[:, ::1] y_out_rc, int n_threads=1):
    """y_out_rc[r, c] = x_rc[r, c] * scale_c[c] + shift_c[c].

    x_rc: (R, C) float32/64, C-contiguous, IN (may be the same buffer as y_out_rc)
    scale_c: (C,) same dtype, IN
    shift_c: (C,) same dtype, IN
    y_out_rc: (R, C) same dtype, C-contiguous, OUT
    """
    cdef Py_ssize_t r_ = x_rc.shape[0], c_ = x_rc.shape[1], r, c
    cdef const floating* xp
    cdef floating* yp
    if r_ == 0 or c_ == 0:
        return
    for r in prange(r_, nogil=True, num_threads=n_threads, schedule="static"):
        xp = &x_rc[r, 0]
        yp = &y_out_rc[r, 0]
        for c in range(c_):
            yp[c] = xp[c] * scale_c[c] + shift_c[c]


def batch_norm_moments(const floating[:, ::1] x_rc, double[::1] mean_out_c, double[::1] var_out_c,
                       int n_threads=1):
    """Per-channel mean and biased variance over the rows, in float64, deterministically.

    x_rc: (R, C) float32/64, C-contiguous, IN (R >= 1)
    mean_out_c: (C,) float64, OUT: sum_r x[r, c] / R
    var_out_c: (C,) float64, OUT: sum_r (x[r, c] - mean[c])**2 / R
    """
    cdef Py_ssize_t r_ = x_rc.shape[0], c_ = x_rc.shape[1], k, r, c, r0, r1
    cdef Py_ssize_t n_chunks = (r_ + _CHUNK - 1) // _CHUNK
    cdef double[:, ::1] part = np.zeros((max(n_chunks, 1), c_), dtype=np.float64)
    cdef double* pp
    cdef const floating* xp
    cdef double d, inv_r
    if c_ == 0:
        return
    if r_ == 0:
        mean_out_c[:] = np.nan
        var_out_c[:] = np.nan
        return
    inv_r = 1.0 / r_
    for k in prange(n_chunks, nogil=True, num_threads=n_threads, schedule="static"):
        pp = &part[k, 0]
        r0 = k * _CHUNK
        r1 = _min(r0 + _CHUNK, r_)
        for r in range(r0, r1):
            xp = &x_rc[r, 0]
            for c in range(c_):
                pp[c] += xp[c]
    _sum_chunks(part, n_chunks, inv_r, mean_out_c)
    part[:, :] = 0
    for k in prange(n_chunks, nogil=True, num_threads=n_threads, schedule="static"):
        pp = &part[k, 0]
        r0 = k * _CHUNK
        r1 = _min(r0 + _CHUNK, r_)
        for r in range(r0, r1):
            xp = &x_rc[r, 0]
            for c in range(c_):
                d = xp[c] - mean_out_c[c]
                pp[c] += d * d
    _sum_chunks(part, n_chunks, inv_r, var_out_c)


def batch_norm_backward_params(const floating[:, ::1] dy_rc, const floating[:, ::1] x_rc,
                               const double[::1] mean_c, const double[::1] inv_std_c,
                               floating[::1] dgamma_out_c, floating[::1] dbeta_out_c, int n_threads=1):
    """dbeta = sum_r dy; dgamma = sum_r dy * (x - mean) * inv_std, per channel, deterministically.

    dy_rc: (R, C) float32/64, C-contiguous, IN
    x_rc: (R, C) same dtype, C-contiguous, IN (the forward's input)
    mean_c: (C,) float64, IN (the mean the forward normalized with)
    inv_std_c: (C,) float64, IN: 1 / sqrt(var + epsilon)
    dgamma_out_c: (C,) same dtype as dy, OUT
    dbeta_out_c: (C,) same dtype as dy, OUT
    """
    cdef Py_ssize_t r_ = x_rc.shape[0], c_ = x_rc.shape[1], k, r, c, r0, r1
    cdef Py_ssize_t n_chunks = (r_ + _CHUNK - 1) // _CHUNK
    cdef double[:, ::1] part_dy = np.zeros((max(n_chunks, 1), c_), dtype=np.float64)
    cdef double[:, ::1] part_dyx = np.zeros((max(n_chunks, 1), c_), dtype=np.float64)
    cdef double[::1] sum_dy = np.empty(c_, dtype=np.float64)
    cdef double[::1] sum_dyx = np.empty(c_, dtype=np.float64)
    cdef double* p1
    cdef double* p2
    cdef const floating* xp
    cdef const floating* gp
    cdef double g
    if c_ == 0:
        return
    for k in prange(n_chunks, nogil=True, num_threads=n_threads, schedule="static"):
        p1 = &part_dy[k, 0]
        p2 = &part_dyx[k, 0]
        r0 = k * _CHUNK
        r1 = _min(r0 + _CHUNK, r_)
        for r in range(r0, r1):
            xp = &x_rc[r, 0]
            gp = &dy_rc[r, 0]
            for c in range(c_):
                g = gp[c]
                p1[c] += g
                p2[c] += g * (xp[c] - mean_c[c])
    _sum_chunks(part_dy, n_chunks, 1.0, sum_dy)
    _sum_chunks(part_dyx, n_chunks, 1.0, sum_dyx)
    for c in range(c_):
        dbeta_out_c[c] = <floating>sum_dy[c]
        dgamma_out_c[c] = <floating>(sum_dyx[c] * inv_std_c[c])


def batch_norm_backward_input(const floating[:, ::1] dy_rc, const floating[:, ::1] x_rc,
                              const floating[::1] mean_c, const floating[::1] a_c,
                              const floating[::1] k_c, const floating[::1] b_c,
                              floating[:, ::1] dx_out_rc, int n_threads=1):
    """dx_out_rc[r, c] = a_c[c] * dy[r, c] - k_c[c] * (x[r, c] - mean_c[c]) - b_c[c].

    With a = gamma * inv_std, k = a * inv_std * dgamma / R and b = a * dbeta / R this is the
    input gradient of training-mode batch normalization (the op tier builds a, k, b per channel);
    with k = b = 0 it is the inference form's dx = dy * scale.

    dy_rc: (R, C) float32/64, C-contiguous, IN
    x_rc: (R, C) same dtype, C-contiguous, IN (the forward's input)
    mean_c, a_c, k_c, b_c: (C,) same dtype, IN
    dx_out_rc: (R, C) same dtype, C-contiguous, OUT
    """
    cdef Py_ssize_t r_ = x_rc.shape[0], c_ = x_rc.shape[1], r, c
    cdef const floating* xp
    cdef const floating* gp
    cdef floating* dp
    if r_ == 0 or c_ == 0:
        return
    for r in prange(r_, nogil=True, num_threads=n_threads, schedule="static"):
        xp = &x_rc[r, 0]
        gp = &dy_rc[r, 0]
        dp = &dx_out_rc[r, 0]
        for c in range(c_):
            dp[c] = a_c[c] * gp[c] - k_c[c] * (xp[c] - mean_c[c]) - b_c[c]


cdef inline Py_ssize_t _min(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a if a < b else b


cdef void _sum_chunks(double[:, ::1] part, Py_ssize_t n_chunks, double factor, double[::1] out) noexcept nogil:
    """out[c] = factor * sum_k part[k, c], chunks added in order (one thread)."""
    cdef Py_ssize_t k, c, c_ = part.shape[1]
    for c in range(c_):
        out[c] = 0
    for k in range(n_chunks):
        for c in range(c_):
            out[c] += part[k, c]
    for c in range(c_):
        out[c] *= factor
