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
