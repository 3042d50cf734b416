/* Row kernels of layer and RMS normalization (used by _normalization.pyx), float and double.
 *
 * One call handles one row of n features, which stays in L1: the statistics, the
 * normalization and the affine transform (forward), or the two row sums and dx plus the
 * parameter-gradient accumulation (backward). Row sums use `omp simd` reductions (vectorized
 * partial sums; plain C loops would stay serial without -ffast-math). Each function is compiled
 * for AVX-512, AVX2+FMA and baseline x86-64 (GCC target_clones, chosen once at load by the CPU),
 * so the extension still runs on any x86-64; other compilers build the portable version.
 * The forward's row statistics are float64 sums; the backward's row sums are in the row's type T;
 * the float64 parameter-gradient partial sums (dgamma_acc, dbeta_acc, one (C,) row per chunk)
 * are owned by the caller.
 */
#ifndef DL_ROWNORM_H
#define DL_ROWNORM_H

#include <math.h>
#include <stddef.h>

#include "dl_clones.h"

#define DL_ROWNORM_DEFINE(T, SUFFIX)                                                                      \
/* y = (x - mean) * rstd * gamma + beta; rms: mean = 0, rstd from mean(x^2). */                           \
DL_CLONES static void dl_rownorm_forward_##SUFFIX(                                                \
        const T* x, const T* gamma, const T* beta, T* y, ptrdiff_t n, double eps, int rms,                \
        double* mean_out, double* rstd_out) {                                                             \
    /* one pass: sums of d = x - shift and d^2 with shift = x[0] (layer norm; 0 for RMS), so     \
       that var = mean(d^2) - mean(d)^2 cancels no more than the row's own spread allows */       \
    T shift = rms ? (T)0 : x[0], mean, rstd;                                                              \
    double s1 = 0, s2 = 0, mean_d, var;                                                                   \
    ptrdiff_t c;                                                                                          \
    _Pragma("omp simd reduction(+:s1, s2)")                                                               \
    for (c = 0; c < n; c++) { double d = (double)(x[c] - shift); s1 += d; s2 += d * d; }                  \
    mean_d = rms ? 0.0 : s1 / (double)n; /* the mean of x - shift: x - shift - mean stays exact-ish */    \
    var = s2 / (double)n - mean_d * mean_d;                                                               \
    if (var < 0) var = 0;                                                                                 \
    mean = (T)mean_d;                                                                                     \
    rstd = (T)(1.0 / sqrt(var + eps));                                                                    \
    _Pragma("omp simd")                                                                                   \
    for (c = 0; c < n; c++) y[c] = ((x[c] - shift) - mean) * rstd * gamma[c] + beta[c];                   \
    *mean_out = (double)shift + mean_d;                                                                   \
    *rstd_out = (double)rstd;                                                                             \
}                                                                                                         \
                                                                                                          \
/* dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma (rms: no mean(g) term), when       \
   dx is not NULL; dgamma_acc += dy * xhat and dbeta_acc += dy when they are not NULL. The mean       \
   comes as mean_hi + mean_lo (T's rounding of the float64 mean and the rest), x - mean as            \
   (x - mean_hi) - mean_lo: float32 rows with |mean| >> std keep their precision. */                   \
DL_CLONES static void dl_rownorm_backward_##SUFFIX(                                               \
        const T* dy, const T* x, const T* gamma, T mean_hi, T mean_lo, T rstd, ptrdiff_t n, int rms,      \
        T* dx, double* dgamma_acc, double* dbeta_acc) {                                                   \
    ptrdiff_t c;                                                                                          \
    T sum_g = 0, sum_gx = 0, xc;                                                                          \
    if (dx == NULL) {                                                                                     \
        if (dgamma_acc == NULL) return;                                                                   \
        _Pragma("omp simd")                                                                               \
        for (c = 0; c < n; c++) {                                                                         \
            dgamma_acc[c] += (double)(dy[c] * (((x[c] - mean_hi) - mean_lo) * rstd));                     \
            dbeta_acc[c] += (double)dy[c];                                                                \
        }                                                                                                 \
        return;                                                                                           \
    }                                                                                                     \
    _Pragma("omp simd reduction(+:sum_g, sum_gx)")                                                        \
    for (c = 0; c < n; c++) {                                                                             \
        T g = dy[c] * gamma[c];                                                                           \
        sum_g += g;                                                                                       \
        sum_gx += g * ((x[c] - mean_hi) - mean_lo);                                                       \
    }                                                                                                     \
    sum_gx *= rstd / (T)n;                                                                                \
    sum_g = rms ? (T)0 : sum_g / (T)n;                                                                    \
    if (dgamma_acc == NULL) {                                                                             \
        _Pragma("omp simd")                                                                               \
        for (c = 0; c < n; c++)                                                                           \
            dx[c] = rstd * (dy[c] * gamma[c] - sum_g - ((x[c] - mean_hi) - mean_lo) * rstd * sum_gx);     \
        return;                                                                                           \
    }                                                                                                     \
    _Pragma("omp simd private(xc)") /* dx and the parameter sums in one pass */                           \
    for (c = 0; c < n; c++) {                                                                             \
        xc = ((x[c] - mean_hi) - mean_lo) * rstd;                                                         \
        dgamma_acc[c] += (double)(dy[c] * xc);                                                            \
        dbeta_acc[c] += (double)dy[c];                                                                    \
        dx[c] = rstd * (dy[c] * gamma[c] - sum_g - xc * sum_gx);                                          \
    }                                                                                                     \
}

DL_ROWNORM_DEFINE(float, f32)
DL_ROWNORM_DEFINE(double, f64)

#endif
