/* The pooling kernels' row bodies (_pooling.pyx): 2x2 stride-2 unpadded rows, general windows,
 * global pooling, vectorized over C (contiguous in NHWC) and compiled per ISA (dl_clones.h);
 * the max backward row also with AVX-512 intrinsics. */
#ifndef DL_POOL_ROWS_H
#define DL_POOL_ROWS_H

#include <stddef.h>

#include "dl_clones.h"
#include <stdint.h>
#include <string.h>

/* y[j, c] = max of the window (x0[2j], x0[2j+1], x1[2j], x1[2j+1]) at channel c, compared in
   that order with `>` (the general kernel's order: ties and NaN resolve the same way);
   am[j, c] (unless NULL) = the offset 0..3 of the first maximum. x0, x1: input rows 2oh and
   2oh+1 ((W, C)); y, am: output row (OW, C). */
/* One 2x2 window over c channels: a, b (input row 2oh, columns 2ow, 2ow+1), d, e (row 2oh+1).
   Every pointer is a separate restrict parameter so GCC vectorizes without alias checks; the
   argmax select is a bit mask (a ternary on the index was left scalar: "control flow"). */
#define DLP_POOL2X2(T, S)                                                                        \
static inline void dlp_max2x2_win_##S(const T* restrict a, const T* restrict b,                  \
                                      const T* restrict d, const T* restrict e,                  \
                                      T* restrict y, ptrdiff_t c) {                              \
    ptrdiff_t k;                                                                                 \
    for (k = 0; k < c; k++) {                                                                    \
        T m = a[k], v;                                                                           \
        v = b[k]; m = v > m ? v : m;                                                             \
        v = d[k]; m = v > m ? v : m;                                                             \
        v = e[k]; m = v > m ? v : m;                                                             \
        y[k] = m;                                                                                \
    }                                                                                            \
}                                                                                                \
static inline void dlp_max2x2_win_arg_##S(const T* restrict a, const T* restrict b,              \
                                          const T* restrict d, const T* restrict e,              \
                                          T* restrict y, uint8_t* restrict am,                   \
                                          ptrdiff_t c) {                                         \
    ptrdiff_t k;                                                                                 \
    for (k = 0; k < c; k++) {                                                                    \
        T m = a[k], v; int32_t i = 0, t;                                                         \
        v = b[k]; t = -(int32_t)(v > m); i = (1 & t) | (i & ~t); m = v > m ? v : m;              \
        v = d[k]; t = -(int32_t)(v > m); i = (2 & t) | (i & ~t); m = v > m ? v : m;              \
        v = e[k]; t = -(int32_t)(v > m); i = (3 & t) | (i & ~t); m = v > m ? v : m;              \
        y[k] = m; am[k] = (uint8_t)i;                                                            \
    }                                                                                            \
}                                                                                                \
static inline void dlp_max2x2_win_back_##S(const T* restrict g, const uint8_t* restrict am,      \
                                           T* restrict a, T* restrict b, T* restrict d,          \
                                           T* restrict e, ptrdiff_t c) {                         \
    ptrdiff_t k;                                                                                 \
    for (k = 0; k < c; k++) {                                                                    \
        T v = g[k], z = 0; int32_t i = am[k];                                                    \
        a[k] = i == 0 ? v : z; b[k] = i == 1 ? v : z;                                            \
        d[k] = i == 2 ? v : z; e[k] = i == 3 ? v : z;                                            \
    }                                                                                            \
}                                                                                                \
static inline void dlp_avg2x2_win_##S(const T* restrict a, const T* restrict b,                  \
                                      const T* restrict d, const T* restrict e,                  \
                                      T* restrict y, ptrdiff_t c) {                              \
    ptrdiff_t k;                                                                                 \
    for (k = 0; k < c; k++) y[k] = (((a[k] + b[k]) + d[k]) + e[k]) * (T)0.25;                    \
}                                                                                                \
static inline void dlp_avg2x2_win_back_##S(const T* restrict g, T* restrict a,                   \
                                           T* restrict b, T* restrict d, T* restrict e,          \
                                           ptrdiff_t c) {                                        \
    ptrdiff_t k;                                                                                 \
    for (k = 0; k < c; k++) {                                                                    \
        T v = g[k] * (T)0.25;                                                                    \
        a[k] = v; b[k] = v; d[k] = v; e[k] = v;                                                  \
    }                                                                                            \
}                                                                                                \
/* Output row (OW, C) from input rows x0 = 2oh, x1 = 2oh+1 ((W, C)). max: the window's           \
   cells compared in row-major order with `>` (the general kernel's order, so ties and NaN       \
   resolve the same way); am (unless NULL) gets the offset 0..3 of the first maximum. */         \
DL_CLONES static void dlp_max2x2_row_##S(const T* x0, const T* x1, T* y, uint8_t* am,            \
                                          ptrdiff_t ow, ptrdiff_t c) {                           \
    ptrdiff_t j, o;                                                                              \
    for (j = 0; j < ow; j++) {                                                                   \
        o = 2 * j * c;                                                                           \
        if (am) dlp_max2x2_win_arg_##S(x0 + o, x0 + o + c, x1 + o, x1 + o + c, y + j * c,        \
                                       am + j * c, c);                                           \
        else dlp_max2x2_win_##S(x0 + o, x0 + o + c, x1 + o, x1 + o + c, y + j * c, c);           \
    }                                                                                            \
}                                                                                                \
/* dx rows 2oh (dx0) and 2oh+1 (dx1), columns 0..2OW-1, each cell written once: dy where         \
   am names the cell, 0 elsewhere. */                                                            \
DL_CLONES static void dlp_max2x2_back_row_##S(const T* dy, const uint8_t* am, T* dx0,            \
                                               T* dx1, ptrdiff_t ow, ptrdiff_t c) {              \
    ptrdiff_t j, o;                                                                              \
    for (j = 0; j < ow; j++) {                                                                   \
        o = 2 * j * c;                                                                           \
        dlp_max2x2_win_back_##S(dy + j * c, am + j * c, dx0 + o, dx0 + o + c, dx1 + o,           \
                                dx1 + o + c, c);                                                 \
    }                                                                                            \
}                                                                                                \
/* average: y = (((a + b) + d) + e) / 4 (the general kernel's order); backward dy / 4 to         \
   all four cells. */                                                                            \
DL_CLONES static void dlp_avg2x2_row_##S(const T* x0, const T* x1, T* y, ptrdiff_t ow,           \
                                          ptrdiff_t c) {                                         \
    ptrdiff_t j, o;                                                                              \
    for (j = 0; j < ow; j++) {                                                                   \
        o = 2 * j * c;                                                                           \
        dlp_avg2x2_win_##S(x0 + o, x0 + o + c, x1 + o, x1 + o + c, y + j * c, c);                \
    }                                                                                            \
}                                                                                                \
DL_CLONES static void dlp_avg2x2_back_row_##S(const T* dy, T* dx0, T* dx1, ptrdiff_t ow,         \
                                               ptrdiff_t c) {                                    \
    ptrdiff_t j, o;                                                                              \
    for (j = 0; j < ow; j++) {                                                                   \
        o = 2 * j * c;                                                                           \
        dlp_avg2x2_win_back_##S(dy + j * c, dx0 + o, dx0 + o + c, dx1 + o, dx1 + o + c, c);      \
    }                                                                                            \
}
DLP_POOL2X2(float, f32)
DLP_POOL2X2(double, f64)

/* The general kernels, one row per call (any window, stride, padding; see the Design block
   for the window of an output and the row gather of the backward). */
typedef struct { ptrdiff_t h, w, c, oh, ow, ph, pw, sh, sw, pt, pl; } dlp_geom;
static inline ptrdiff_t dlp_imax(ptrdiff_t a, ptrdiff_t b) { return a > b ? a : b; }
static inline ptrdiff_t dlp_imin(ptrdiff_t a, ptrdiff_t b) { return a < b ? a : b; }
/* The first output index whose window [o*stride - pad, o*stride - pad + pool) holds i. */
static inline ptrdiff_t dlp_first_cover(ptrdiff_t i, ptrdiff_t pad, ptrdiff_t pool,
                                         ptrdiff_t stride) {
    ptrdiff_t num = i + pad - pool + 1;
    return num <= 0 ? 0 : (num + stride - 1) / stride;
}
#define DLP_GENERAL(T, S)                                                                        \
static inline void dlp_copy_##S(T* restrict y, const T* restrict x, ptrdiff_t c) {               \
    ptrdiff_t k;                                                                                 \
    for (k = 0; k < c; k++) y[k] = x[k];                                                         \
}                                                                                                \
static inline void dlp_max_in_##S(T* restrict y, const T* restrict x, ptrdiff_t c) {             \
    ptrdiff_t k;                                                                                 \
    for (k = 0; k < c; k++) { T v = x[k], m = y[k]; y[k] = v > m ? v : m; }                      \
}                                                                                                \
static inline void dlp_arg_in_##S(T* restrict y, int32_t* restrict a, const T* restrict x,       \
                                  int32_t kk, ptrdiff_t c) {                                     \
    ptrdiff_t k;                                                                                 \
    for (k = 0; k < c; k++) {                                                                    \
        T v = x[k], m = y[k]; int32_t t = -(int32_t)(v > m);                                     \
        y[k] = v > m ? v : m; a[k] = (kk & t) | (a[k] & ~t);                                     \
    }                                                                                            \
}                                                                                                \
static inline void dlp_add_where_##S(T* restrict dx, const T* restrict dy,                       \
                                     const int32_t* restrict a, int32_t kk, ptrdiff_t c) {       \
    ptrdiff_t k; const T zero = 0;                                                               \
    for (k = 0; k < c; k++) { T g = dy[k]; dx[k] += a[k] == kk ? g : zero; }                     \
}                                                                                                \
static inline void dlp_add_in_##S(T* restrict y, const T* restrict x, ptrdiff_t c) {             \
    ptrdiff_t k;                                                                                 \
    for (k = 0; k < c; k++) y[k] += x[k];                                                        \
}                                                                                                \
static inline void dlp_add_scaled_##S(T* restrict y, const T* restrict x, T s,                   \
                                      ptrdiff_t c) {                                             \
    ptrdiff_t k;                                                                                 \
    for (k = 0; k < c; k++) y[k] += x[k] * s;                                                    \
}                                                                                                \
/* Output row oh of one sample: x (H, W, C), y (OW, C), am (OW, C) or NULL. max: starts at       \
   the window's first real cell and takes v > y in row-major order (ties keep the first);        \
   am gets kh * PW + kw of the winner. */                                                        \
DL_CLONES static void dlp_max_row_##S(const T* x, T* y, int32_t* am, ptrdiff_t oh,               \
                                       dlp_geom g) {                                             \
    ptrdiff_t j, ih, iw, c = g.c;                                                                \
    ptrdiff_t h0 = oh * g.sh - g.pt, hs = dlp_imax(h0, 0), he = dlp_imin(h0 + g.ph, g.h);        \
    for (j = 0; j < g.ow; j++) {                                                                 \
        ptrdiff_t w0 = j * g.sw - g.pl, ws = dlp_imax(w0, 0), we = dlp_imin(w0 + g.pw, g.w);     \
        T* yp = y + j * c;                                                                       \
        dlp_copy_##S(yp, x + (hs * g.w + ws) * c, c);                                            \
        if (am) {                                                                                \
            int32_t* ap = am + j * c; ptrdiff_t k;                                               \
            int32_t k0 = (int32_t)((hs - h0) * g.pw + (ws - w0));                                \
            for (k = 0; k < c; k++) ap[k] = k0;                                                  \
            for (ih = hs; ih < he; ih++)                                                         \
                for (iw = ws; iw < we; iw++)                                                     \
                    dlp_arg_in_##S(yp, ap, x + (ih * g.w + iw) * c,                              \
                                   (int32_t)((ih - h0) * g.pw + (iw - w0)), c);                  \
        } else {                                                                                 \
            for (ih = hs; ih < he; ih++)                                                         \
                for (iw = ws; iw < we; iw++) dlp_max_in_##S(yp, x + (ih * g.w + iw) * c, c);     \
        }                                                                                        \
    }                                                                                            \
}                                                                                                \
/* Input row ih of one sample: dx (W, C) = the sum of dy (OH, OW, C) over the windows            \
   holding each cell whose argmax (OH, OW, C) names it, in increasing (oh, ow). */               \
DL_CLONES static void dlp_max_back_row_##S(const T* dy, const int32_t* am, T* dx,                \
                                            ptrdiff_t ih, dlp_geom g) {                          \
    ptrdiff_t oh, j, iw, c = g.c;                                                                \
    ptrdiff_t oh0 = dlp_first_cover(ih, g.pt, g.ph, g.sh);                                       \
    ptrdiff_t oh1 = dlp_imin((ih + g.pt) / g.sh + 1, g.oh);                                      \
    memset(dx, 0, g.w * c * sizeof(T));                                                          \
    for (oh = oh0; oh < oh1; oh++) {                                                             \
        ptrdiff_t kh = ih - (oh * g.sh - g.pt);                                                  \
        for (j = 0; j < g.ow; j++) {                                                             \
            ptrdiff_t w0 = j * g.sw - g.pl;                                                      \
            ptrdiff_t ws = dlp_imax(w0, 0), we = dlp_imin(w0 + g.pw, g.w);                       \
            const T* dyp = dy + (oh * g.ow + j) * c;                                             \
            const int32_t* ap = am + (oh * g.ow + j) * c;                                        \
            for (iw = ws; iw < we; iw++)                                                         \
                dlp_add_where_##S(dx + iw * c, dyp, ap, (int32_t)(kh * g.pw + (iw - w0)), c);    \
        }                                                                                        \
    }                                                                                            \
}                                                                                                \
/* Output row oh: y = the sum of the window's real cells in row-major order, times               \
   1 / count. */                                                                                 \
DL_CLONES static void dlp_avg_row_##S(const T* x, T* y, ptrdiff_t oh, dlp_geom g) {              \
    ptrdiff_t j, ih, iw, k, c = g.c;                                                             \
    ptrdiff_t h0 = oh * g.sh - g.pt, hs = dlp_imax(h0, 0), he = dlp_imin(h0 + g.ph, g.h);        \
    for (j = 0; j < g.ow; j++) {                                                                 \
        ptrdiff_t w0 = j * g.sw - g.pl, ws = dlp_imax(w0, 0), we = dlp_imin(w0 + g.pw, g.w);     \
        T* yp = y + j * c;                                                                       \
        T inv = (T)(1.0 / (double)((he - hs) * (we - ws)));                                      \
        memset(yp, 0, c * sizeof(T));                                                            \
        for (ih = hs; ih < he; ih++)                                                             \
            for (iw = ws; iw < we; iw++) dlp_add_in_##S(yp, x + (ih * g.w + iw) * c, c);         \
        for (k = 0; k < c; k++) yp[k] *= inv;                                                    \
    }                                                                                            \
}                                                                                                \
/* Input row ih: dx (W, C) = the sum of dy / count over the windows holding each cell. */        \
DL_CLONES static void dlp_avg_back_row_##S(const T* dy, T* dx, ptrdiff_t ih, dlp_geom g) {       \
    ptrdiff_t oh, j, iw, c = g.c;                                                                \
    ptrdiff_t oh0 = dlp_first_cover(ih, g.pt, g.ph, g.sh);                                       \
    ptrdiff_t oh1 = dlp_imin((ih + g.pt) / g.sh + 1, g.oh);                                      \
    memset(dx, 0, g.w * c * sizeof(T));                                                          \
    for (oh = oh0; oh < oh1; oh++) {                                                             \
        ptrdiff_t h0 = oh * g.sh - g.pt;                                                         \
        ptrdiff_t hn = dlp_imin(h0 + g.ph, g.h) - dlp_imax(h0, 0);                               \
        for (j = 0; j < g.ow; j++) {                                                             \
            ptrdiff_t w0 = j * g.sw - g.pl;                                                      \
            ptrdiff_t ws = dlp_imax(w0, 0), we = dlp_imin(w0 + g.pw, g.w);                       \
            T inv = (T)(1.0 / (double)(hn * (we - ws)));                                         \
            const T* dyp = dy + (oh * g.ow + j) * c;                                             \
            for (iw = ws; iw < we; iw++) dlp_add_scaled_##S(dx + iw * c, dyp, inv, c);           \
        }                                                                                        \
    }                                                                                            \
}
DLP_GENERAL(float, f32)
DLP_GENERAL(double, f64)

/* Global pooling of one sample: x (L, C) rows, y (C,). */
#define DLP_GLOBAL(T, S)                                                                         \
static inline void dlp_gadd_row_##S(T* restrict y, const T* restrict x, ptrdiff_t c) {           \
    ptrdiff_t k;                                                                                 \
    for (k = 0; k < c; k++) y[k] += x[k];                                                        \
}                                                                                                \
static inline void dlp_gmax_row_##S(T* restrict y, const T* restrict x, ptrdiff_t c) {           \
    ptrdiff_t k;                                                                                 \
    for (k = 0; k < c; k++) { T v = x[k], m = y[k]; y[k] = (v > m || v != v) ? v : m; }          \
}                                                                                                \
static inline void dlp_count_row_##S(T* restrict n, const T* restrict x,                         \
                                     const T* restrict y, ptrdiff_t c) {                         \
    ptrdiff_t k; const T one = 1, zero = 0;                                                      \
    for (k = 0; k < c; k++) n[k] += x[k] == y[k] ? one : zero;                                   \
}                                                                                                \
static inline void dlp_share_row_##S(T* restrict dx, const T* restrict x,                        \
                                     const T* restrict y, const T* restrict s,                   \
                                     const T* restrict dy, ptrdiff_t c) {                        \
    ptrdiff_t k; const T one = 1, zero = 0;                                                      \
    for (k = 0; k < c; k++) dx[k] = ((x[k] == y[k] ? one : zero) * s[k]) * dy[k];                \
}                                                                                                \
/* y = the mean over the L rows, summed in row order. */                                         \
DL_CLONES static void dlp_global_avg_##S(const T* x, T* y, ptrdiff_t l, ptrdiff_t c) {           \
    ptrdiff_t i, k; T inv = (T)(1.0 / (double)l);                                                \
    memset(y, 0, c * sizeof(T));                                                                 \
    for (i = 0; i < l; i++) dlp_gadd_row_##S(y, x + i * c, c);                                   \
    for (k = 0; k < c; k++) y[k] *= inv;                                                         \
}                                                                                                \
/* dx rows = dy / L. */                                                                          \
DL_CLONES static void dlp_global_avg_back_##S(const T* dy, T* dx, ptrdiff_t l,                   \
                                               ptrdiff_t c) {                                    \
    ptrdiff_t i, k; T cnt = (T)l;                                                                \
    for (k = 0; k < c; k++) dx[k] = dy[k] / cnt;                                                 \
    for (i = 1; i < l; i++) memcpy(dx + i * c, dx, c * sizeof(T));                               \
}                                                                                                \
/* y = the max over the L rows; NaN wins, as numpy.max. */                                       \
DL_CLONES static void dlp_global_max_##S(const T* x, T* y, ptrdiff_t l, ptrdiff_t c) {           \
    ptrdiff_t i;                                                                                 \
    memcpy(y, x, c * sizeof(T));                                                                 \
    for (i = 1; i < l; i++) dlp_gmax_row_##S(y, x + i * c, c);                                   \
}                                                                                                \
/* dx = dy split evenly among the rows equal to the max (TensorFlow's reduce_max gradient;       \
   no row equal, as for a NaN max: NaN). dx's row 0 holds the tie counts, then their             \
   inverses, until it is written last. */                                                        \
DL_CLONES static void dlp_global_max_back_##S(const T* x, const T* y, const T* dy, T* dx,        \
                                               ptrdiff_t l, ptrdiff_t c) {                       \
    ptrdiff_t i, k; const T one = 1, zero = 0;                                                   \
    memset(dx, 0, c * sizeof(T));                                                                \
    for (i = 0; i < l; i++) dlp_count_row_##S(dx, x + i * c, y, c);                              \
    for (k = 0; k < c; k++) dx[k] = one / dx[k];                                                 \
    for (i = 1; i < l; i++) dlp_share_row_##S(dx + i * c, x + i * c, y, dx, dy, c);              \
    _Pragma("GCC ivdep")                                                                         \
    for (k = 0; k < c; k++) dx[k] = ((x[k] == y[k] ? one : zero) * dx[k]) * dy[k];               \
}
DLP_GLOBAL(float, f32)
DLP_GLOBAL(double, f64)

/* The max backward row with AVX-512 intrinsics: GCC vectorizes the loop above by its byte
   lanes (64 per zmm), so C = 32 fell to the scalar tail with mispredicted branches (2.9 ms
   against 0.06 ms at C = 64); here a byte compare gives the lane mask of 16 floats (8
   doubles) directly. With `stream`, dx is written with non-temporal 16-byte stores (the
   rows must be 16-byte aligned, C a multiple of 16 bytes): a large dx then skips the read
   for ownership of lines that the cache would evict anyway. */
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define DLP_HAVE_AVX512 1
#define DLP_AVX512_BACK_ROW(T, S, LANES, VEC, LOAD_AM, MASKZ, STOREU, STREAM, LOADU, MASK_T)     \
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))                                    \
static void dlp_max2x2_back_row_##S##_avx512(const T* dy, const uint8_t* am, T* dx0,             \
                                             T* dx1, ptrdiff_t ow, ptrdiff_t c,                  \
                                             int stream) {                                       \
    ptrdiff_t j, k, o;                                                                           \
    const __m128i k0 = _mm_setzero_si128(), k1 = _mm_set1_epi8(1);                               \
    const __m128i k2 = _mm_set1_epi8(2), k3 = _mm_set1_epi8(3);                                  \
    for (j = 0; j < ow; j++) {                                                                   \
        const T* g = dy + j * c; const uint8_t* ai = am + j * c;                                 \
        o = 2 * j * c;                                                                           \
        T* a = dx0 + o; T* b = a + c; T* d = dx1 + o; T* e = d + c;                              \
        for (k = 0; k + LANES <= c; k += LANES) {                                                \
            VEC v = LOADU(g + k);                                                                \
            __m128i i8 = LOAD_AM(ai + k);                                                        \
            VEC va = MASKZ((MASK_T)_mm_cmpeq_epi8_mask(i8, k0), v);                              \
            VEC vb = MASKZ((MASK_T)_mm_cmpeq_epi8_mask(i8, k1), v);                              \
            VEC vd = MASKZ((MASK_T)_mm_cmpeq_epi8_mask(i8, k2), v);                              \
            VEC ve = MASKZ((MASK_T)_mm_cmpeq_epi8_mask(i8, k3), v);                              \
            if (stream) {                                                                        \
                STREAM(a + k, va); STREAM(b + k, vb); STREAM(d + k, vd); STREAM(e + k, ve);      \
            } else {                                                                             \
                STOREU(a + k, va); STOREU(b + k, vb); STOREU(d + k, vd); STOREU(e + k, ve);      \
            }                                                                                    \
        }                                                                                        \
        if (k < c)                                                                               \
            dlp_max2x2_win_back_##S(g + k, ai + k, a + k, b + k, d + k, e + k, c - k);           \
    }                                                                                            \
    if (stream) _mm_sfence();                                                                    \
}
#define DLP_LOAD16(p) _mm_loadu_si128((const __m128i*)(p))
#define DLP_LOAD8(p) _mm_loadl_epi64((const __m128i*)(p))
#define DLP_STREAM_PS(p, v) do {                                                                 \
    _mm_stream_ps((p), _mm512_extractf32x4_ps((v), 0));                                          \
    _mm_stream_ps((p) + 4, _mm512_extractf32x4_ps((v), 1));                                      \
    _mm_stream_ps((p) + 8, _mm512_extractf32x4_ps((v), 2));                                      \
    _mm_stream_ps((p) + 12, _mm512_extractf32x4_ps((v), 3)); } while (0)
#define DLP_STREAM_PD(p, v) do {                                                                 \
    _mm_stream_pd((p), _mm512_extractf64x2_pd((v), 0));                                          \
    _mm_stream_pd((p) + 2, _mm512_extractf64x2_pd((v), 1));                                      \
    _mm_stream_pd((p) + 4, _mm512_extractf64x2_pd((v), 2));                                      \
    _mm_stream_pd((p) + 6, _mm512_extractf64x2_pd((v), 3)); } while (0)
DLP_AVX512_BACK_ROW(float, f32, 16, __m512, DLP_LOAD16, _mm512_maskz_mov_ps, _mm512_storeu_ps,
                    DLP_STREAM_PS, _mm512_loadu_ps, __mmask16)
DLP_AVX512_BACK_ROW(double, f64, 8, __m512d, DLP_LOAD8, _mm512_maskz_mov_pd, _mm512_storeu_pd,
                    DLP_STREAM_PD, _mm512_loadu_pd, __mmask8)
#else
#define DLP_HAVE_AVX512 0
#endif
static int dlp_intrinsics_allowed = 1;  /* 0: the portable rows (tests exercise them) */

/* stream: non-temporal stores where the AVX-512 row runs and dx0, dx1 and C allow them. */
#define DLP_BACK_ANY(T, S)                                                                       \
static void dlp_max2x2_back_row_##S##_any(const T* dy, const uint8_t* am, T* dx0, T* dx1,        \
                                          ptrdiff_t ow, ptrdiff_t c, int stream) {               \
    DLP_BACK_AVX512(S)                                                                           \
    dlp_max2x2_back_row_##S(dy, am, dx0, dx1, ow, c);                                            \
}
#if DLP_HAVE_AVX512
#define DLP_BACK_AVX512(S)                                                                       \
    if (dlp_intrinsics_allowed && dl_cpu_avx512()) {                                                \
        stream = stream && ((uintptr_t)dx0 % 16 == 0) && ((uintptr_t)dx1 % 16 == 0)              \
                 && (c * sizeof(*dx0)) % 16 == 0;                                                \
        dlp_max2x2_back_row_##S##_avx512(dy, am, dx0, dx1, ow, c, stream);                       \
        return;                                                                                  \
    }
#else
#define DLP_BACK_AVX512(S) (void)stream;
#endif
DLP_BACK_ANY(float, f32)
DLP_BACK_ANY(double, f64)

#endif
