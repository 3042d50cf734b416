/* Helpers of the float32 attention kernels (_attention.pyx) on score tiles stored keys x queries:
 * the scores products with the next pass in their tiles' epilogue (max, exp, dS), the column max,
 * exp-and-sum and score gradient p * (dp - D) (vertical vector ops), the row dot product
 * D = rowsum(dO * O), the row log-sum-exp, transposes and prefetch hints.
 *
 * exp: on AVX-512 CPUs 16 lanes: range reduction by ln 2 split in two parts, a degree-6
 * polynomial on [-ln2/2, ln2/2] (relative error 2e-9; about 1 ulp in all), 2^n applied with
 * scalef; inputs below -103.9 (masked scores, -inf, NaN) give exactly 0, from there to -87.3
 * the denormals. Else libm's expf, 0 below -87.3. libm's expf does not
 * vectorize under the project's flags (no -ffast-math), and the softmax of a 4096-token causal
 * attention calls it 3e7 times per head pass: the vector form is ~8x faster here.
 */
#ifndef DL_ATTENTION_H
#define DL_ATTENTION_H

#include <math.h>
#include <stddef.h>
#include "dl_sgemm.h"

#if DL_HAVE_AVX512_BUILD
/* One 16-lane exp, the polynomial of the header comment. */
DL_MAYBE_UNUSED DL_TARGET static inline __m512 dl_att_exp16_avx512(__m512 v)
{
    const __m512 lo = _mm512_set1_ps(-120.0f), hi = _mm512_set1_ps(88.37626f);
    const __m512 log2e = _mm512_set1_ps(1.44269504088896341f);
    const __m512 c1 = _mm512_set1_ps(0.693359375f), c2 = _mm512_set1_ps(-2.12194440e-4f);
    const __m512 p6 = _mm512_set1_ps(1.3843653724e-3f), p5 = _mm512_set1_ps(8.3741554990e-3f);
    const __m512 p4 = _mm512_set1_ps(4.1668001562e-2f), p3 = _mm512_set1_ps(1.6666431725e-1f);
    const __m512 p2 = _mm512_set1_ps(4.9999994040e-1f), one = _mm512_set1_ps(1.0f);
    v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);  /* NaN -> lo */
    __m512 fx = _mm512_roundscale_ps(_mm512_mul_ps(v, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm512_fnmadd_ps(fx, c1, v);
    v = _mm512_fnmadd_ps(fx, c2, v);
    __m512 y = _mm512_fmadd_ps(p6, v, p5);
    y = _mm512_fmadd_ps(y, v, p4);
    y = _mm512_fmadd_ps(y, v, p3);
    y = _mm512_fmadd_ps(y, v, p2);
    y = _mm512_fmadd_ps(y, v, one);
    y = _mm512_fmadd_ps(y, v, one);
    return _mm512_scalef_ps(y, fx);
}

/* Score tiles with the next pass fused into the epilogue (the values are those the separate
 * passes compute): C = A B (C not read), then with v = the tile's bias pointer (columns j..,
 * loaded into vb0, vb1) and unused arguments of DL_ZMM_TILE carrying the rest:
 *   max: v[j] = max(v[j], C[:, j]) (the forward's running max), C stored;
 *   exp: C = exp(C - v[j] - v[sag + j]) (P^T = exp(S^T - L), L as two floats), stored;
 *   ds:  C = beta * P * (C - v[j]) with P at c + sbg (dS^T from dP^T), stored.
 * maxc, expc: max, exp with C[i, j] = NEG first where i + sas > j (causal: row i is key j0 + i,
 * column j query i0 + j, and sas = j0 - i0). */
#define DL_ATT_CAUSAL(i)                                                                    \
    {                                                                                       \
        __m512i di = _mm512_set1_epi32((int)(sas + i));                                     \
        c##i##0 = _mm512_mask_mov_ps(c##i##0, _mm512_cmplt_epi32_mask(iota0, di), vneg);    \
        c##i##1 = _mm512_mask_mov_ps(c##i##1, _mm512_cmplt_epi32_mask(iota1, di), vneg);    \
    }
#define DL_ATT_IOTA                                                                         \
    const __m512i iota0 = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0); \
    const __m512i iota1 = _mm512_add_epi32(iota0, _mm512_set1_epi32(16));                   \
    const __m512 vneg = _mm512_set1_ps(-1e9f);
#define DL_ATT_STORE(i)                                                                     \
    _mm512_mask_storeu_ps(c + (ptrdiff_t)i * ldc, m0, c##i##0);                             \
    _mm512_mask_storeu_ps(c + (ptrdiff_t)i * ldc + 16, m1, c##i##1);
#define DL_ATT_MAX(i) vb0 = _mm512_max_ps(vb0, c##i##0); vb1 = _mm512_max_ps(vb1, c##i##1);
#define DL_ATT_EXP(i)                                                                       \
    c##i##0 = dl_att_exp16_avx512(_mm512_sub_ps(_mm512_sub_ps(c##i##0, vb0), vl0));         \
    c##i##1 = dl_att_exp16_avx512(_mm512_sub_ps(_mm512_sub_ps(c##i##1, vb1), vl1));
#define DL_ATT_DS(i)                                                                        \
    c##i##0 = _mm512_mul_ps(vbeta, _mm512_mul_ps(_mm512_maskz_loadu_ps(m0, c + sbg + (ptrdiff_t)i * ldc), \
                                                 _mm512_sub_ps(c##i##0, vb0)));             \
    c##i##1 = _mm512_mul_ps(vbeta, _mm512_mul_ps(_mm512_maskz_loadu_ps(m1, c + sbg + (ptrdiff_t)i * ldc + 16), \
                                                 _mm512_sub_ps(c##i##1, vb1)));
#define DL_ATT_EPI_max(ROWS)                                                                \
    ROWS(DL_ATT_STORE) ROWS(DL_ATT_MAX)                                                     \
    _mm512_mask_storeu_ps((float *)bias, m0, vb0);                                          \
    _mm512_mask_storeu_ps((float *)bias + 16, m1, vb1);
#define DL_ATT_EPI_maxc(ROWS) { DL_ATT_IOTA ROWS(DL_ATT_CAUSAL) } DL_ATT_EPI_max(ROWS)
#define DL_ATT_EPI_exp(ROWS)                                                                \
    { __m512 vl0 = _mm512_maskz_loadu_ps(m0, bias + sag), vl1 = _mm512_maskz_loadu_ps(m1, bias + sag + 16); \
      ROWS(DL_ATT_EXP) ROWS(DL_ATT_STORE) }
#define DL_ATT_EPI_expc(ROWS) { DL_ATT_IOTA ROWS(DL_ATT_CAUSAL) } DL_ATT_EPI_exp(ROWS)
#define DL_ATT_EPI_ds(ROWS) ROWS(DL_ATT_DS) ROWS(DL_ATT_STORE)
#define DL_ATT_TILES(E)                                                                     \
DL_ZMM_TILE(dl_att_tile_##E##_14, DL_ROWS_14, ROWS, 0, DL_PF_NONE, DL_ATT_EPI_##E(DL_ROWS_14)) \
DL_ZMM_TILE(dl_att_tile_##E##_8, DL_ROWS_8, ROWS, 0, DL_PF_NONE, DL_ATT_EPI_##E(DL_ROWS_8)) \
DL_ZMM_TILE(dl_att_tile_##E##_4, DL_ROWS_4, ROWS, 0, DL_PF_NONE, DL_ATT_EPI_##E(DL_ROWS_4)) \
DL_ZMM_TILE(dl_att_tile_##E##_2, DL_ROWS_2, ROWS, 0, DL_PF_NONE, DL_ATT_EPI_##E(DL_ROWS_2)) \
DL_ZMM_TILE(dl_att_tile_##E##_1, DL_ROWS_1, ROWS, 0, DL_PF_NONE, DL_ATT_EPI_##E(DL_ROWS_1)) \
/* C (m, n) = A (m, k) @ B (k, n) (row strides lda, ldb, ldc), then the E epilogue above     \
   (maxc, expc: row i masked against column j where i + d > j). */                          \
DL_MAYBE_UNUSED DL_TARGET static void dl_att_sgemm_##E(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, \
                                                     ptrdiff_t lda, const float *b, ptrdiff_t ldb, float *c, \
                                                     ptrdiff_t ldc, const float *v, ptrdiff_t voff, \
                                                     ptrdiff_t poff, float s, ptrdiff_t d)  \
{                                                                                           \
    ptrdiff_t i = 0, j;                                                                     \
    int h, nr;                                                                              \
    while (i < m) {                                                                         \
        h = DL_TILE_HEIGHT(m - i);                                                          \
        for (j = 0; j < n; j += DL_NR) {                                                    \
            nr = n - j < DL_NR ? (int)(n - j) : DL_NR;                                      \
            DL_BY_HEIGHT(h, DL_ATT_CALL_##E)                                                \
        }                                                                                   \
        i += h;                                                                             \
    }                                                                                       \
}
#define DL_ATT_CALL(E, H)                                                                   \
    dl_att_tile_##E##_##H(1, 1, k, a + i * lda, NULL, voff, d + i - j, lda, b + j, poff, 0, ldb, s, \
                          c + i * ldc + j, ldc, nr, v + j, 0);
#define DL_ATT_CALL_max(H) DL_ATT_CALL(max, H)
#define DL_ATT_CALL_exp(H) DL_ATT_CALL(exp, H)
#define DL_ATT_CALL_maxc(H) DL_ATT_CALL(maxc, H)
#define DL_ATT_CALL_expc(H) DL_ATT_CALL(expc, H)
#define DL_ATT_CALL_ds(H) DL_ATT_CALL(ds, H)
DL_ATT_TILES(max)
DL_ATT_TILES(maxc)
DL_ATT_TILES(exp)
DL_ATT_TILES(expc)
DL_ATT_TILES(ds)

/* dst (cols, ldd) = scale * src (rows, cols)^T (src row stride lds), in 16 x 16 blocks transposed
 * in registers (unpacks and 128-bit lane shuffles; masked loads and stores at the edges). */
DL_MAYBE_UNUSED DL_TARGET static void dl_att_transpose_avx512(float *dst, ptrdiff_t ldd, const float *src,
                                                            ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t lds,
                                                            float scale)
{
    ptrdiff_t i0, j0, q;
    const __m512 vs = _mm512_set1_ps(scale);
    __m512 r[16], t[16];
    for (i0 = 0; i0 < rows; i0 += 16) {
        ptrdiff_t nr = rows - i0 < 16 ? rows - i0 : 16;
        __mmask16 mi = nr == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1u);
        for (j0 = 0; j0 < cols; j0 += 16) {
            ptrdiff_t nc = cols - j0 < 16 ? cols - j0 : 16;
            __mmask16 mj = nc == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nc) - 1u);
            for (q = 0; q < 16; q++)
                r[q] = q < nr ? _mm512_maskz_loadu_ps(mj, src + (i0 + q) * lds + j0) : _mm512_setzero_ps();
            for (q = 0; q < 16; q += 2) {
                t[q] = _mm512_unpacklo_ps(r[q], r[q + 1]);
                t[q + 1] = _mm512_unpackhi_ps(r[q], r[q + 1]);
            }
            for (q = 0; q < 16; q += 4) {
                r[q] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[q]), _mm512_castps_pd(t[q + 2])));
                r[q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[q]), _mm512_castps_pd(t[q + 2])));
                r[q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[q + 1]), _mm512_castps_pd(t[q + 3])));
                r[q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[q + 1]), _mm512_castps_pd(t[q + 3])));
            }
            /* r[4g + c]: lane L holds column 4L' + c of rows 4g .. 4g + 3 (per 128-bit lane) */
            for (q = 0; q < 4; q++) {
                t[q] = _mm512_shuffle_f32x4(r[q], r[q + 4], 0x88);
                t[q + 4] = _mm512_shuffle_f32x4(r[q], r[q + 4], 0xDD);
                t[q + 8] = _mm512_shuffle_f32x4(r[q + 8], r[q + 12], 0x88);
                t[q + 12] = _mm512_shuffle_f32x4(r[q + 8], r[q + 12], 0xDD);
            }
            for (q = 0; q < 8; q++) {
                r[q] = _mm512_shuffle_f32x4(t[q], t[q + 8], 0x88);
                r[q + 8] = _mm512_shuffle_f32x4(t[q], t[q + 8], 0xDD);
            }
            for (q = 0; q < nc; q++)
                _mm512_mask_storeu_ps(dst + (j0 + q) * ldd + i0, mi, _mm512_mul_ps(vs, r[q]));
        }
    }
}

/* lse[i] = m[i] + log(l[i]) in float64 for l[i] > 0, 8 lanes: l = f 2^e with f in [sqrt(1/2),
 * sqrt(2)], log f = 2 atanh(s) = 2 s (1 + s^2/3 + ... + s^20/21), s = (f - 1)/(f + 1), |s| < 0.172
 * (truncation below 2^-54 relative); about 1 ulp. */
DL_MAYBE_UNUSED DL_TARGET static void dl_att_lse_avx512(double *lse, const float *m, const float *l, ptrdiff_t n)
{
    ptrdiff_t i;
    int q;
    const __m512d one = _mm512_set1_pd(1.0), two = _mm512_set1_pd(2.0), half = _mm512_set1_pd(0.5);
    const __m512d ln2 = _mm512_set1_pd(0.6931471805599453094), rt2 = _mm512_set1_pd(1.4142135623730951);
    for (i = 0; i < n; i += 8) {
        __mmask8 k = (n - i >= 8) ? (__mmask8)0xFF : (__mmask8)((1u << (n - i)) - 1u);
        __m512d x = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(k, l + i));
        __m512d e = _mm512_getexp_pd(x), f = _mm512_getmant_pd(x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_src);
        __mmask8 big = _mm512_cmp_pd_mask(f, rt2, _CMP_GT_OQ);
        f = _mm512_mask_mul_pd(f, big, f, half);
        e = _mm512_mask_add_pd(e, big, e, one);
        __m512d s = _mm512_div_pd(_mm512_sub_pd(f, one), _mm512_add_pd(f, one)), z = _mm512_mul_pd(s, s);
        __m512d y = _mm512_set1_pd(1.0 / 21.0);
        for (q = 19; q >= 1; q -= 2)
            y = _mm512_fmadd_pd(y, z, _mm512_set1_pd(1.0 / q));
        y = _mm512_fmadd_pd(e, ln2, _mm512_mul_pd(_mm512_mul_pd(two, s), y));
        y = _mm512_add_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(k, m + i)), y);
        _mm512_mask_storeu_pd(lse + i, k, y);
    }
}

/* sum of a[i] * b[i] over n floats (16-lane partial sums, then the lanes). */
DL_MAYBE_UNUSED DL_TARGET static float dl_att_dot_avx512(const float *a, const float *b, ptrdiff_t n)
{
    ptrdiff_t i;
    __m512 acc = _mm512_setzero_ps();
    for (i = 0; i < n; i += 16) {
        __mmask16 m = (n - i >= 16) ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

/* Column max of st (rows, cols), row stride ld: mx[c] = max(mx[c], st[0:rows, c]), a 16-column
 * strip at a time down the rows (vertical: no lane reductions). */
DL_MAYBE_UNUSED DL_TARGET static void dl_att_col_max_avx512(const float *st, ptrdiff_t rows, ptrdiff_t cols,
                                                          ptrdiff_t ld, float *mx)
{
    ptrdiff_t c0, r;
    for (c0 = 0; c0 < cols; c0 += 16) {
        __mmask16 m = (cols - c0 >= 16) ? (__mmask16)0xFFFF : (__mmask16)((1u << (cols - c0)) - 1u);
        __m512 a = _mm512_maskz_loadu_ps(m, mx + c0), b = a;
        for (r = 0; r + 1 < rows; r += 2) {
            a = _mm512_max_ps(a, _mm512_maskz_loadu_ps(m, st + r * ld + c0));
            b = _mm512_max_ps(b, _mm512_maskz_loadu_ps(m, st + (r + 1) * ld + c0));
        }
        if (r < rows)
            a = _mm512_max_ps(a, _mm512_maskz_loadu_ps(m, st + r * ld + c0));
        _mm512_mask_storeu_ps(mx + c0, m, _mm512_max_ps(a, b));
    }
}

/* st = exp(st - hi[c] - lo[c]) in place (lo may be NULL), sum[c] = the column's sum (sum may be
 * NULL); a 16-column strip at a time down the rows. */
DL_MAYBE_UNUSED DL_TARGET static void dl_att_col_exp_sum_avx512(float *st, ptrdiff_t rows, ptrdiff_t cols,
                                                              ptrdiff_t ld, const float *hi, const float *lo,
                                                              float *sum)
{
    ptrdiff_t c0, r;
    for (c0 = 0; c0 < cols; c0 += 16) {
        __mmask16 m = (cols - c0 >= 16) ? (__mmask16)0xFFFF : (__mmask16)((1u << (cols - c0)) - 1u);
        __m512 h = _mm512_maskz_loadu_ps(m, hi + c0), a = _mm512_setzero_ps();
        float *x = st + c0;
        if (lo) {
            __m512 l = _mm512_maskz_loadu_ps(m, lo + c0);
            for (r = 0; r < rows; r++, x += ld) {
                __m512 v = dl_att_exp16_avx512(_mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x), h), l));
                _mm512_mask_storeu_ps(x, m, v);
                a = _mm512_add_ps(a, v);
            }
        } else {
            for (r = 0; r < rows; r++, x += ld) {
                __m512 v = dl_att_exp16_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x), h));
                _mm512_mask_storeu_ps(x, m, v);
                a = _mm512_add_ps(a, v);
            }
        }
        if (sum)  /* lanes past cols summed exp(0): not stored */
            _mm512_mask_storeu_ps(sum + c0, m, a);
    }
}

/* dpt = scale * pt * (dpt - dd[c]) over (rows, cols) tiles, row stride ld. */
DL_MAYBE_UNUSED DL_TARGET static void dl_att_col_dscore_avx512(float *dpt, const float *pt, ptrdiff_t rows,
                                                             ptrdiff_t cols, ptrdiff_t ld, const float *dd,
                                                             float scale)
{
    ptrdiff_t c0, r;
    const __m512 vs = _mm512_set1_ps(scale);
    for (c0 = 0; c0 < cols; c0 += 16) {
        __mmask16 m = (cols - c0 >= 16) ? (__mmask16)0xFFFF : (__mmask16)((1u << (cols - c0)) - 1u);
        __m512 d = _mm512_maskz_loadu_ps(m, dd + c0);
        for (r = 0; r < rows; r++) {
            __m512 v = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, dpt + r * ld + c0), d);
            v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, pt + r * ld + c0), v);
            _mm512_mask_storeu_ps(dpt + r * ld + c0, m, _mm512_mul_ps(vs, v));
        }
    }
}
#endif

#if !DL_HAVE_AVX512_BUILD
/* Never called (the caller checks dl_sgemm_available()). */
#define DL_ATT_STUB(E)                                                                      \
static void dl_att_sgemm_##E(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda, \
                             const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, const float *v, \
                             ptrdiff_t voff, ptrdiff_t poff, float s, ptrdiff_t d)  \
{                                                                                           \
    (void)m; (void)n; (void)k; (void)a; (void)lda; (void)b; (void)ldb; (void)c; (void)ldc;  \
    (void)v; (void)voff; (void)poff; (void)s; (void)d;                                      \
}
DL_ATT_STUB(max)
DL_ATT_STUB(maxc)
DL_ATT_STUB(exp)
DL_ATT_STUB(expc)
DL_ATT_STUB(ds)
#endif

/* dst (cols, ldd) = scale * src (rows, cols)^T, src row stride lds. */
static void dl_att_transpose_f(float *dst, ptrdiff_t ldd, const float *src, ptrdiff_t rows, ptrdiff_t cols,
                               ptrdiff_t lds, float scale, int vector)
{
    ptrdiff_t i, j;
#if DL_HAVE_AVX512_BUILD
    if (vector) {
        dl_att_transpose_avx512(dst, ldd, src, rows, cols, lds, scale);
        return;
    }
#endif
    (void)vector;
    for (i = 0; i < rows; i++)
        for (j = 0; j < cols; j++)
            dst[j * ldd + i] = scale * src[i * lds + j];
}

/* lse[i] = m[i] + log(l[i]) in float64 (the forward's row log-sum-exp). */
static void dl_att_lse_f(double *lse, const float *m, const float *l, ptrdiff_t n, int vector)
{
    ptrdiff_t i;
#if DL_HAVE_AVX512_BUILD
    if (vector) {
        dl_att_lse_avx512(lse, m, l, n);
        return;
    }
#endif
    (void)vector;
    for (i = 0; i < n; i++)
        lse[i] = (double)m[i] + log((double)l[i]);
}

/* sum of a[i] * b[i] (the backward's D = rowsum(dO * O)). */
static float dl_att_dot_f(const float *a, const float *b, ptrdiff_t n, int vector)
{
    ptrdiff_t i;
    float t = 0.0f;
#if DL_HAVE_AVX512_BUILD
    if (vector)
        return dl_att_dot_avx512(a, b, n);
#endif
    (void)vector;
    for (i = 0; i < n; i++)
        t += a[i] * b[i];
    return t;
}

/* Column max of st (rows, cols), row stride ld, into the running mx[cols]. */
static void dl_att_col_max_f(const float *st, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld, float *mx, int vector)
{
    ptrdiff_t r, c;
#if DL_HAVE_AVX512_BUILD
    if (vector) {
        dl_att_col_max_avx512(st, rows, cols, ld, mx);
        return;
    }
#endif
    (void)vector;
    for (r = 0; r < rows; r++)
        for (c = 0; c < cols; c++)
            if (st[r * ld + c] > mx[c])
                mx[c] = st[r * ld + c];
}

/* st = exp(st - hi[c] - lo[c]) in place (lo may be NULL: the shift is one float), sum[c] = the
 * column sums (sum may be NULL). */
static void dl_att_col_exp_sum_f(float *st, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld, const float *hi,
                                 const float *lo, float *sum, int vector)
{
    ptrdiff_t r, c;
#if DL_HAVE_AVX512_BUILD
    if (vector) {
        dl_att_col_exp_sum_avx512(st, rows, cols, ld, hi, lo, sum);
        return;
    }
#endif
    (void)vector;
    if (sum)
        for (c = 0; c < cols; c++)
            sum[c] = 0.0f;
    for (r = 0; r < rows; r++)
        for (c = 0; c < cols; c++) {
            float x = st[r * ld + c] - hi[c];
            if (lo)
                x = x - lo[c];
            x = x < -87.33654f ? 0.0f : expf(x);
            st[r * ld + c] = x;
            if (sum)
                sum[c] += x;
        }
}

/* dpt = scale * pt * (dpt - dd[c]) over (rows, cols) tiles, row stride ld. */
static void dl_att_col_dscore_f(float *dpt, const float *pt, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld,
                                const float *dd, float scale, int vector)
{
    ptrdiff_t r, c;
#if DL_HAVE_AVX512_BUILD
    if (vector) {
        dl_att_col_dscore_avx512(dpt, pt, rows, cols, ld, dd, scale);
        return;
    }
#endif
    (void)vector;
    for (r = 0; r < rows; r++)
        for (c = 0; c < cols; c++)
            dpt[r * ld + c] = scale * (pt[r * ld + c] * (dpt[r * ld + c] - dd[c]));
}

/* Hints the rows [0, rows) of bytes bytes, stride bytes apart, into the cache (the next tiles'
 * operands while this tile computes). */
static inline void dl_att_prefetch(const void *p, ptrdiff_t rows, ptrdiff_t bytes, ptrdiff_t stride)
{
#if defined(__GNUC__)
    ptrdiff_t r, o;
    for (r = 0; r < rows; r++)
        for (o = 0; o < bytes; o += 64)
            __builtin_prefetch((const char *)p + r * stride + o, 0, 3);
#else
    (void)p; (void)rows; (void)bytes; (void)stride;
#endif
}

#endif
