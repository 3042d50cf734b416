# Design: layer normalization and RMS normalization over the last axis of a (rows, features)
# view, each direction one fused kernel, all Cython.
#   - The op tier views any input with the normalized axes last as x_rc = (R, C); other axes
#     are moved last by the op tier first. OpenMP runs over rows: one row's statistics, its
#     normalization and the affine transform happen in one call on a row that stays in L1.
#   - Forward: per row, mean (layer norm only) and 1/sqrt(var + eps) (layer norm, biased
#     variance of the row, one pass of sums of x - x[0] and its square: shifting by a value of
#     the row keeps the variance free of cancellation when the mean is large, and saves the
#     separate mean pass) or 1/sqrt(mean(x^2) + eps) (RMS norm), then a second pass
#     y = ((x - x[0]) - mean(x - x[0])) * rstd * gamma + beta. The row statistics are written
#     to mean_out_r / rstd_out_r (float64) for the backward.
#   - Backward: per row, with xhat = (x - mean) * rstd and g = dy * gamma,
#     dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) (RMS: without the mean(g) term); in the
#     same pass dgamma += dy * xhat and dbeta += dy. The parameter sums are deterministic as
#     STYLE P10 asks: rows are split into fixed chunks of CHUNK_ROWS (independent of the thread
#     count), each prange iteration sums one chunk into its own row of a (n_chunks, C) float64
#     scratch, and the chunk rows are then added serially in chunk order.
#   - The row work is C (dl_rownorm.h): `omp simd` reductions vectorize the row sums, which
#     plain loops cannot without -ffast-math, and GCC target_clones build AVX-512 / AVX2 /
#     baseline versions picked at load. The forward statistics are float64 sums whatever the
#     dtype (float32 sums missed an ONNX LayerNormalization case by a few ulps of an output
#     near zero; the float64 sums' cost was within this shared machine's timing noise). The
#     backward's two row sums are in the row's dtype, its parameter-gradient chunk sums are
#     float64, and dx and those sums share one pass. Calling C per row also keeps prange from
#     turning the row accumulators into cross-thread reductions.
#   - Why Cython and not Numba: inference needs the forward (no numba import), and the backward
#     is the same streaming loop; compiled ahead of time it adds no JIT compile to a first step.
#
# Legend: R rows (all normalized-over axes flattened out), C features (the normalized axes).
#
# Design (batch normalization): batch normalization on a (rows, channels) view, all Cython.
#   - The op tier views any input with the normalized axis last as x_rc = (R, C): for NHWC,
#     R = N*H*W. Other axes are moved last by the op tier first.
#   - batch_norm_forward is the fused inference form y = x * scale + shift (scale and shift
#     precomputed per channel by the op tier from gamma, beta and the moving statistics); the
#     training forward is batch_norm_moments followed by the same kernel with scale/shift built
#     from the batch statistics. Forwards are Cython because inference needs them.
#   - Statistics and parameter gradients are sums over rows, made deterministic as STYLE P10
#     asks: rows are split into fixed chunks of BATCH_CHUNK_ROWS (independent of the thread count),
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

# Rows per chunk of the deterministic parameter-gradient sums (never depends on n_threads).
CHUNK_ROWS = 64
cdef Py_ssize_t _CHUNK = CHUNK_ROWS


cdef extern from "dl_rownorm.h" nogil:
    void dl_rownorm_forward_f32(const float* x, const float* gamma, const float* beta, float* y, Py_ssize_t n,
                                double eps, int rms, double* mean_out, double* rstd_out)
    void dl_rownorm_forward_f64(const double* x, const double* gamma, const double* beta, double* y,
                                Py_ssize_t n, double eps, int rms, double* mean_out, double* rstd_out)
    void dl_rownorm_backward_f32(const float* dy, const float* x, const float* gamma, float mean_hi,
                                 float mean_lo, float rstd, Py_ssize_t n, int rms, float* dx, double* dgamma_acc,
                                 double* dbeta_acc)
    void dl_rownorm_backward_f64(const double* dy, const double* x, const double* gamma, double mean_hi,
                                 double mean_lo, double rstd, Py_ssize_t n, int rms, double* dx,
                                 double* dgamma_acc, double* dbeta_acc)


cdef inline void _row_forward(const floating* xp, const floating* gp, const floating* bp, floating* yp,
                              Py_ssize_t n, double eps, bint rms, double* mean_out,
                              double* rstd_out) noexcept nogil:
    if floating is float:
        dl_rownorm_forward_f32(xp, gp, bp, yp, n, eps, rms, mean_out, rstd_out)
    else:
        dl_rownorm_forward_f64(xp, gp, bp, yp, n, eps, rms, mean_out, rstd_out)


cdef inline void _row_backward(const floating* dyp, const floating* xp, const floating* gp, double mean,
                               double rstd, Py_ssize_t n, bint rms, floating* dxp, double* dgamma_p,
                               double* dbeta_p) noexcept nogil:
    if floating is float:
        dl_rownorm_backward_f32(dyp, xp, gp, <float>mean, <float>(mean - <double><float>mean), <float>rstd, n, rms,
                                dxp, dgamma_p, dbeta_p)
    else:
        dl_rownorm_backward_f64(dyp, xp, gp, mean, 0.0, rstd, n, rms, dxp, dgamma_p, dbeta_p)


def layer_norm_forward(const floating[:, ::1] x_rc, const floating[::1] gamma_c, const floating[::1] beta_c,
                       double epsilon, bint rms, floating[:, ::1] y_out_rc, double[::1] mean_out_r,
                       double[::1] rstd_out_r, int n_threads=1):
    """Per row r: y = (x - mean_r) * rstd_r * gamma + beta.

    Layer norm (rms=False): mean_r = mean(x[r]), rstd_r = 1 / sqrt(var(x[r]) + epsilon) (biased).
    RMS norm (rms=True): mean_r = 0, rstd_r = 1 / sqrt(mean(x[r]^2) + epsilon).

    x_rc: (R, C) float32/64, C-contiguous, IN
    gamma_c, beta_c: (C,) same dtype, IN (ones / zeros when the op has none)
    epsilon: IN; rms: IN
    y_out_rc: (R, C) same dtype, C-contiguous, OUT (may not alias x_rc)
    mean_out_r, rstd_out_r: (R,) float64, OUT (the statistics the backward needs)
    """
    cdef Py_ssize_t r_ = x_rc.shape[0], c_ = x_rc.shape[1], r
    if r_ == 0 or c_ == 0:
        return
    for r in prange(r_, nogil=True, num_threads=n_threads, schedule="static"):
        _row_forward(&x_rc[r, 0], &gamma_c[0], &beta_c[0], &y_out_rc[r, 0], c_, epsilon, rms,
                     &mean_out_r[r], &rstd_out_r[r])


def layer_norm_backward(const floating[:, ::1] dy_rc, const floating[:, ::1] x_rc, const double[::1] mean_r,
                        const double[::1] rstd_r, const floating[::1] gamma_c, bint rms,
                        floating[:, ::1] dx_out_rc, floating[::1] dgamma_out_c, floating[::1] dbeta_out_c,
                        bint need_dx=True, bint need_params=True, int n_threads=1):
    """Gradients of layer_norm_forward: dx (when need_dx), dgamma = sum_r dy * xhat and
    dbeta = sum_r dy (when need_params, deterministic for any n_threads).

    dy_rc, x_rc: (R, C) float32/64, C-contiguous, IN
    mean_r, rstd_r: (R,) float64, IN (from layer_norm_forward)
    gamma_c: (C,) same dtype, IN (ones when the op has none); rms: IN (as in the forward)
    dx_out_rc: (R, C) same dtype, OUT (untouched unless need_dx)
    dgamma_out_c, dbeta_out_c: (C,) same dtype, OUT (untouched unless need_params)
    """
    cdef Py_ssize_t r_ = x_rc.shape[0], c_ = x_rc.shape[1], k, r, c, r0, r1
    cdef Py_ssize_t n_chunks = (r_ + _CHUNK - 1) // _CHUNK if need_params else 0
    cdef double[:, ::1] part = np.zeros((2 * max(n_chunks, 1), c_), dtype=np.float64)
    cdef double sg, sb
    if r_ == 0 or c_ == 0:
        if need_params:
            for c in range(c_):
                dgamma_out_c[c] = 0
                dbeta_out_c[c] = 0
        return
    if not need_params:
        for r in prange(r_, nogil=True, num_threads=n_threads, schedule="static"):
            _row_backward(&dy_rc[r, 0], &x_rc[r, 0], &gamma_c[0], mean_r[r], rstd_r[r], c_, rms,
                          &dx_out_rc[r, 0], NULL, NULL)
        return
    for k in prange(n_chunks, nogil=True, num_threads=n_threads, schedule="static"):
        r0 = k * _CHUNK
        r1 = r0 + _CHUNK if r0 + _CHUNK < r_ else r_
        for r in range(r0, r1):
            _row_backward(&dy_rc[r, 0], &x_rc[r, 0], &gamma_c[0], mean_r[r], rstd_r[r], c_, rms,
                          &dx_out_rc[r, 0] if need_dx else NULL, &part[2 * k, 0], &part[2 * k + 1, 0])
    for c in range(c_):
        sg = 0.0
        sb = 0.0
        for k in range(n_chunks):
            sg = sg + part[2 * k, c]
            sb = sb + part[2 * k + 1, c]
        dgamma_out_c[c] = <floating>sg
        dbeta_out_c[c] = <floating>sb


# ---- batch normalization: per-channel statistics over the rows ------------------------------
# Rows per chunk of the deterministic reductions (fixed: the split never depends on n_threads).
BATCH_CHUNK_ROWS = 256
cdef Py_ssize_t _BATCH_CHUNK = BATCH_CHUNK_ROWS


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
    cdef Py_ssize_t n_chunks = (r_ + _BATCH_CHUNK - 1) // _BATCH_CHUNK
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
        r0 = k * _BATCH_CHUNK
        r1 = _min(r0 + _BATCH_CHUNK, r_)
        for r in range(r0, r1):
            xp = &x_rc[r, 0]
            for c in range(c_):
                pp[c] += xp[c]
    _sum_chunks(part, n_chunks, inv_r, mean_out_c)
    part[:, :] = 0
    for k in prange(n_chunks, nogil=True, num_threads=n_threads, schedule="static"):
        pp = &part[k, 0]
        r0 = k * _BATCH_CHUNK
        r1 = _min(r0 + _BATCH_CHUNK, r_)
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
    cdef Py_ssize_t n_chunks = (r_ + _BATCH_CHUNK - 1) // _BATCH_CHUNK
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
        r0 = k * _BATCH_CHUNK
        r1 = _min(r0 + _BATCH_CHUNK, r_)
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
