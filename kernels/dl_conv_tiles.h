/* Implicit-GEMM forward and weight gradient of a stride-1, dilation-1, one-group 2-D convolution on NHWC/HWIO
 * float32 data with the register tiles of dl_sgemm.h (AVX-512 only; dl_sgemm_available()).
 *
 * Number the output pixels of one image "wide", q = oh*W + ow with ow in [0, W) although only
 * ow < OW exist. Then the taps of kernel row kh for pixel q are the KW*C consecutive floats at
 * x + (q + kh*W)*C, and pixel q+1's start C floats later: for each kh the column matrix is a
 * "rows" operand with row stride C over the input itself, with no im2col copy. A tile of 14
 * wide pixels loops over the KH segments of KW*C taps; the wide pixels past OW are computed
 * and dropped at the store (each tile row is stored through its own pointer, NULL = dropped).
 * Each output is one FMA chain in (kh, kw, c) order, as in the im2col path.
 *
 * The weight gradient reads the same overlapping rows the other way round ("cols" layout): a
 * tile holds 14 consecutive taps (kw, c) of one kernel row kh for 32 output channels and sums
 * x[oh + kh, ow + kw, c] * dy[oh, ow, o] over the pixels of a group of images, so no column
 * matrix is written or read.
 */
#ifndef DL_CONV_TILES_H
#define DL_CONV_TILES_H

#include "dl_sgemm.h"

#if DL_HAVE_AVX512_BUILD

#define DL_FMA_SEG(i)                                                                       \
    { __m512 ai = _mm512_set1_ps(as[(ptrdiff_t)i * lda + p]);                               \
      c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0); c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1); }

#define DL_STORE_PTR(i)                                                                     \
    if (crow[i] != NULL) {                                                                  \
        float *cr = crow[i] + col0;                                                         \
        if (bias != NULL) {                                                                 \
            c##i##0 = _mm512_add_ps(c##i##0, vb0);                                          \
            c##i##1 = _mm512_add_ps(c##i##1, vb1);                                          \
        }                                                                                   \
        if (relu) {                                                                         \
            c##i##0 = _mm512_max_ps(_mm512_setzero_ps(), c##i##0);                          \
            c##i##1 = _mm512_max_ps(_mm512_setzero_ps(), c##i##1);                          \
        }                                                                                   \
        _mm512_mask_storeu_ps(cr, m0, c##i##0);                                             \
        _mm512_mask_storeu_ps(cr + 16, m1, c##i##1);                                        \
    }

/* dl_seg_tile_<R>: rows i < R of C (columns col0 + [0, nr)) = epilogue(sum over segments s <
 * nseg and p < kseg of a[s*sa + i*lda + p] * b[(s*kseg + p)*ldb + j]), stored at crow[i]. */
#define DL_DEFINE_SEG_TILE(NAME, ROWS)                                                      \
DL_TARGET static void NAME(ptrdiff_t nseg, ptrdiff_t kseg, const float *a, ptrdiff_t sa,    \
                           ptrdiff_t lda, const float *b, ptrdiff_t ldb, float *const *crow, \
                           ptrdiff_t col0, int nr, const float *bias, int relu)             \
{                                                                                           \
    __mmask16 m0 = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1u);                        \
    __mmask16 m1 = nr >= 32 ? 0xFFFF : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1u); \
    __m512 vb0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();              \
    __m512 vb1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();         \
    ptrdiff_t s, p;                                                                         \
    ROWS(DL_DECL)                                                                           \
    for (s = 0; s < nseg; s++) {                                                            \
        const float *as = a + s * sa;                                                       \
        const float *bs = b + s * kseg * ldb;                                               \
        for (p = 0; p < kseg; p++) {                                                        \
            __m512 b0 = _mm512_maskz_loadu_ps(m0, bs + p * ldb);                            \
            __m512 b1 = _mm512_maskz_loadu_ps(m1, bs + p * ldb + 16);                       \
            ROWS(DL_FMA_SEG)                                                                \
        }                                                                                   \
    }                                                                                       \
    ROWS(DL_STORE_PTR)                                                                      \
}

DL_DEFINE_SEG_TILE(dl_seg_tile_14, DL_ROWS_14)
DL_DEFINE_SEG_TILE(dl_seg_tile_8, DL_ROWS_8)
DL_DEFINE_SEG_TILE(dl_seg_tile_4, DL_ROWS_4)
DL_DEFINE_SEG_TILE(dl_seg_tile_2, DL_ROWS_2)
DL_DEFINE_SEG_TILE(dl_seg_tile_1, DL_ROWS_1)

/* y = epilogue(valid conv(x, w)) for the wide pixels q in [q0, q1) of one image, q1 <=
 * (OH-1)*W + OW (the last wide pixels would read past the image).
 * x: (H, W, C); w: (KH, KW, C, O); y: (OH, OW, O); bias: (O,) or NULL. */
DL_TARGET static void dl_conv_valid_rows(ptrdiff_t q0, ptrdiff_t q1, const float *x, ptrdiff_t W,
                                         ptrdiff_t C, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t OW,
                                         const float *w, ptrdiff_t O, float *y,
                                         const float *bias, int relu)
{
    float *crow[DL_MR];
    ptrdiff_t q, j, qq, ow;
    int h, i, nr, any;
    for (q = q0; q < q1; q += h) {
        h = DL_TILE_HEIGHT(q1 - q);
        any = 0;
        for (i = 0; i < h; i++) {
            qq = q + i;
            ow = qq % W;
            crow[i] = ow < OW ? y + ((qq / W) * OW + ow) * O : NULL;
            any |= crow[i] != NULL;
        }
        if (!any)
            continue;
        for (j = 0; j < O; j += DL_NR) {
            nr = O - j < DL_NR ? (int)(O - j) : DL_NR;
            const float *bj = bias ? bias + j : NULL;
#define DL_CALL(H) dl_seg_tile_##H(KH, KW * C, x + q * C, W * C, C, w + j, O, crow, j, nr, bj, relu);
            DL_BY_HEIGHT(h, DL_CALL)
#undef DL_CALL
        }
    }
}

/* A in "cols" layout over segmented pixels: element (i, pixel) at
 * a[img*sai + s*sas + p*lda + i] for images img < nimg, rows s < nseg, columns p < kseg. */
#define DL_FMA_SEGCOLS(i)                                                                   \
    { __m512 ai = _mm512_set1_ps(ap[i]);                                                    \
      c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0); c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1); }

/* dl_wgrad_tile_<R>: C (R rows, nr <= 32 columns) = sum over the pixels of
 * A(i, pixel) B(pixel, j) + beta C, B(pixel) = b[img*sbi + s*sbs + p*ldb]. */
#define DL_DEFINE_WGRAD_TILE(NAME, ROWS)                                                    \
DL_TARGET static void NAME(ptrdiff_t nimg, ptrdiff_t nseg, ptrdiff_t kseg, const float *a,  \
                           ptrdiff_t sai, ptrdiff_t sas, ptrdiff_t lda, const float *b,     \
                           ptrdiff_t sbi, ptrdiff_t sbs, ptrdiff_t ldb, float beta,         \
                           float *c, ptrdiff_t ldc, int nr)                                 \
{                                                                                           \
    __mmask16 m0 = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1u);                        \
    __mmask16 m1 = nr >= 32 ? 0xFFFF : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1u); \
    __m512 vbeta = _mm512_set1_ps(beta);                                                    \
    const float *bias = NULL;                                                               \
    const int relu = 0;                                                                     \
    __m512 vb0 = _mm512_setzero_ps(), vb1 = _mm512_setzero_ps();                            \
    ptrdiff_t g, s, p;                                                                      \
    ROWS(DL_DECL)                                                                           \
    for (g = 0; g < nimg; g++)                                                              \
        for (s = 0; s < nseg; s++) {                                                        \
            const float *as = a + g * sai + s * sas;                                        \
            const float *bs = b + g * sbi + s * sbs;                                        \
            for (p = 0; p < kseg; p++) {                                                    \
                const float *ap = as + p * lda;                                             \
                __m512 b0 = _mm512_maskz_loadu_ps(m0, bs + p * ldb);                        \
                __m512 b1 = _mm512_maskz_loadu_ps(m1, bs + p * ldb + 16);                   \
                ROWS(DL_FMA_SEGCOLS)                                                        \
            }                                                                               \
        }                                                                                   \
    (void)vb0; (void)vb1;                                                                   \
    ROWS(DL_STORE)                                                                          \
}

DL_DEFINE_WGRAD_TILE(dl_wgrad_tile_14, DL_ROWS_14)
DL_DEFINE_WGRAD_TILE(dl_wgrad_tile_8, DL_ROWS_8)
DL_DEFINE_WGRAD_TILE(dl_wgrad_tile_4, DL_ROWS_4)
DL_DEFINE_WGRAD_TILE(dl_wgrad_tile_2, DL_ROWS_2)
DL_DEFINE_WGRAD_TILE(dl_wgrad_tile_1, DL_ROWS_1)

/* dw (KH*KW*C, O) = beta dw + sum over images g < nimg of the valid stride-1 correlation
 * x_g (Hx, Wx, C) * dy_g (OH, OW, O): dw[(kh*KW + kw)*C + c, o] = sum_{oh, ow}
 * x_g[oh + kh, ow + kw, c] dy_g[oh, ow, o]. Images are sx and sy floats apart. */
DL_TARGET static void dl_conv_wgrad(ptrdiff_t nimg, const float *x, ptrdiff_t sx, ptrdiff_t Wx,
                                    ptrdiff_t C, ptrdiff_t KH, ptrdiff_t KW, const float *dy,
                                    ptrdiff_t sy, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t O,
                                    float beta, float *dw)
{
    ptrdiff_t kh, t0, j, taps = KW * C;
    int h, nr;
    for (kh = 0; kh < KH; kh++)
        for (t0 = 0; t0 < taps; t0 += h) {
            h = DL_TILE_HEIGHT(taps - t0);
            const float *a = x + kh * Wx * C + t0;
            float *c = dw + (kh * taps + t0) * O;
            for (j = 0; j < O; j += DL_NR) {
                nr = O - j < DL_NR ? (int)(O - j) : DL_NR;
#define DL_CALL(H) dl_wgrad_tile_##H(nimg, OH, OW, a, sx, Wx * C, C, dy + j, sy, OW * O, O, beta, c + j, O, nr);
                DL_BY_HEIGHT(h, DL_CALL)
#undef DL_CALL
            }
        }
}

/* dst[0:n] += src[0:n] (col2im's scatter-add of one run of taps). */
DL_TARGET static void dl_add_to(float *dst, const float *src, ptrdiff_t n)
{
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_add_ps(_mm512_loadu_ps(dst + i), _mm512_loadu_ps(src + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(dst + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst + i),
                                                         _mm512_maskz_loadu_ps(m, src + i)));
    }
}

#else

static void dl_conv_valid_rows(ptrdiff_t q0, ptrdiff_t q1, const float *x, ptrdiff_t W,
                               ptrdiff_t C, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t OW,
                               const float *w, ptrdiff_t O, float *y, const float *bias, int relu)
{
    (void)q0; (void)q1; (void)x; (void)W; (void)C; (void)KH; (void)KW; (void)OW; (void)w;
    (void)O; (void)y; (void)bias; (void)relu;
}

static void dl_add_to(float *dst, const float *src, ptrdiff_t n)
{
    ptrdiff_t i;
    for (i = 0; i < n; i++)
        dst[i] += src[i];
}

static void dl_conv_wgrad(ptrdiff_t nimg, const float *x, ptrdiff_t sx, ptrdiff_t Wx,
                          ptrdiff_t C, ptrdiff_t KH, ptrdiff_t KW, const float *dy,
                          ptrdiff_t sy, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t O,
                          float beta, float *dw)
{
    (void)nimg; (void)x; (void)sx; (void)Wx; (void)C; (void)KH; (void)KW; (void)dy; (void)sy;
    (void)OH; (void)OW; (void)O; (void)beta; (void)dw;
}

#endif
#endif
