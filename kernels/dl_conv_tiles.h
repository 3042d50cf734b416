/* Implicit-GEMM forward and weight gradient of a stride-1, dilation-1, one-group 2-D convolution on NHWC/HWIO
 * float32 data with the zmm tiles of dl_sgemm_tiles.h (DL_ZMM_TILE options GATHER and COLS x segments,
 * AVX-512 only; dl_sgemm_available()).
 *
 * For output pixel (oh, ow) the taps of kernel row kh are the KW*C consecutive floats at
 * x + ((oh + kh)*W + ow)*C: for each kh the column matrix is a "rows" operand over the input
 * itself, with no im2col copy. A gather tile takes up to 14 consecutive output pixels (possibly
 * across output rows), each reading its taps at its own offset, and loops over the KH segments
 * of KW*C taps; a run of pixels is split into tiles of equal heights (1-14), so no pixel is
 * computed and dropped. (Numbering the pixels "wide", oh*W + ow, makes one row stride serve the
 * whole tile but computes and drops KW-1 pixels per output row: 14% of conv 15x15 -> 13x13, 27%
 * of 6x6 -> 4x4; the gather tile measured 60 against 70 us on the former, batch 1.)
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

/* dl_gather_tile_<R>, R = 1..14: rows i < R of c (nr <= 32 columns, row stride ldc) =
 * epilogue(sum over segments s < ns and p < kseg of a[aoff[i] + s*sas + p] * b[s*sbs + p*ldb]). */
#define DL_GATHER_TILE(R) DL_ZMM_TILE(dl_gather_tile_##R, DL_ROWS_##R, GATHER, 1, DL_PF_NONE, \
                                      DL_ZEPI_STORE0(DL_ROWS_##R))
DL_GATHER_TILE(14) DL_GATHER_TILE(13) DL_GATHER_TILE(12) DL_GATHER_TILE(11) DL_GATHER_TILE(10)
DL_GATHER_TILE(9) DL_GATHER_TILE(8) DL_GATHER_TILE(7) DL_GATHER_TILE(6) DL_GATHER_TILE(5)
DL_GATHER_TILE(4) DL_GATHER_TILE(3) DL_GATHER_TILE(2) DL_GATHER_TILE(1)

/* The gather and pool tiles' arguments in the drivers: segments = kernel rows (KH), KW*C taps
 * each, A = the image x at the tile rows' offsets aoff, B = w from column j, C = c from column j. */
#define DL_GATHER_ARGS                                                                      \
    1, KH, KW * C, x, aoff, 0, W * C, 0, w + j, 0, KW * C * O, O, 0.0f, c + j, O, nr, bj, relu

/* y = epilogue(valid conv(x, w)) for the output pixels p = oh*OW + ow in [p0, p1) of one
 * image, in tiles of at most 14 pixels of equal heights (a tile may span output rows: each
 * tile row reads its taps at its own offset, so no pixel is computed and dropped).
 * x: (H, W, C); w: (KH, KW, C, O); y: (OH, OW, O); bias: (O,) or NULL. */
DL_TARGET static void dl_conv_valid_pixels(ptrdiff_t p0, ptrdiff_t p1, const float *x,
                                           ptrdiff_t W, ptrdiff_t C, ptrdiff_t KH,
                                           ptrdiff_t KW, ptrdiff_t OW, const float *w,
                                           ptrdiff_t O, float *y, const float *bias, int relu)
{
    ptrdiff_t aoff[DL_MR];
    ptrdiff_t n = p1 - p0, tiles = (n + DL_MR - 1) / DL_MR, t, i, j, done = 0;
    ptrdiff_t oh = p0 / OW, ow = p0 - (p0 / OW) * OW;
    int h, nr;
    for (t = 0; t < tiles; t++) {
        h = (int)(n * (t + 1) / tiles - n * t / tiles);
        for (i = 0; i < h; i++) {
            aoff[i] = (oh * W + ow) * C;
            if (++ow == OW) {
                ow = 0;
                oh++;
            }
        }
        float *c = y + (p0 + done) * O;
        for (j = 0; j < O; j += DL_NR) {
            nr = O - j < DL_NR ? (int)(O - j) : DL_NR;
            const float *bj = bias ? bias + j : NULL;
#define DL_CALL(H) case H: dl_gather_tile_##H(DL_GATHER_ARGS); break;
            switch (h) {
            DL_CALL(14) DL_CALL(13) DL_CALL(12) DL_CALL(11) DL_CALL(10) DL_CALL(9) DL_CALL(8)
            DL_CALL(7) DL_CALL(6) DL_CALL(5) DL_CALL(4) DL_CALL(3) DL_CALL(2) default: DL_CALL(1)
            }
#undef DL_CALL
        }
        done += h;
    }
}

/* Fused 2x2 stride-2 max pooling: a tile holds 1-3 pooling windows, its rows 4w..4w+3 the
 * window's pixels (2ph, 2pw), (2ph, 2pw+1), (2ph+1, 2pw), (2ph+1, 2pw+1); each pixel gets the
 * conv epilogue, then the window's maximum m = a; m = b > m ? b : m; ... (vmaxps(v, m) returns m
 * on NaN: the order and comparisons of max_pool2d_2x2_forward, so the result is bit-identical
 * to the conv followed by the pooling) is stored, and the full conv output is never written. */
/* The window's maximum, and with `am` its argmax: the offset 0..3 of the first maximum (`>` in
 * the window's order, ordered compares: max_pool2d_2x2_forward's bytes), stored as uint8. */
#define DL_POOL_ARG(k, src, v, idx, sel)                                                    \
    k = _mm512_cmp_ps_mask(src, v, _CMP_GT_OQ);                                             \
    idx = _mm512_mask_mov_epi32(idx, k, sel);
#define DL_POOL_WIN(w, a, b, d, e)                                                          \
    { __m512 v0 = c##a##0, v1 = c##a##1;                                                    \
      if (am != NULL) {                                                                     \
          __m512i i0 = _mm512_setzero_si512(), i1 = _mm512_setzero_si512();                 \
          __mmask16 k0, k1;                                                                 \
          DL_POOL_ARG(k0, c##b##0, v0, i0, _mm512_set1_epi32(1))                            \
          DL_POOL_ARG(k1, c##b##1, v1, i1, _mm512_set1_epi32(1))                            \
          v0 = _mm512_max_ps(c##b##0, v0); v1 = _mm512_max_ps(c##b##1, v1);                 \
          DL_POOL_ARG(k0, c##d##0, v0, i0, _mm512_set1_epi32(2))                            \
          DL_POOL_ARG(k1, c##d##1, v1, i1, _mm512_set1_epi32(2))                            \
          v0 = _mm512_max_ps(c##d##0, v0); v1 = _mm512_max_ps(c##d##1, v1);                 \
          DL_POOL_ARG(k0, c##e##0, v0, i0, _mm512_set1_epi32(3))                            \
          DL_POOL_ARG(k1, c##e##1, v1, i1, _mm512_set1_epi32(3))                            \
          v0 = _mm512_max_ps(c##e##0, v0); v1 = _mm512_max_ps(c##e##1, v1);                 \
          _mm512_mask_cvtepi32_storeu_epi8(am + (ptrdiff_t)w * ldc, m0, i0);                \
          _mm512_mask_cvtepi32_storeu_epi8(am + (ptrdiff_t)w * ldc + 16, m1, i1);           \
      } else {                                                                              \
          v0 = _mm512_max_ps(c##b##0, v0); v1 = _mm512_max_ps(c##b##1, v1);                 \
          v0 = _mm512_max_ps(c##d##0, v0); v1 = _mm512_max_ps(c##d##1, v1);                 \
          v0 = _mm512_max_ps(c##e##0, v0); v1 = _mm512_max_ps(c##e##1, v1);                 \
      }                                                                                     \
      _mm512_mask_storeu_ps(c + (ptrdiff_t)w * ldc, m0, v0);                                \
      _mm512_mask_storeu_ps(c + (ptrdiff_t)w * ldc + 16, m1, v1); }
#define DL_POOL_WINS_4 DL_POOL_WIN(0, 0, 1, 2, 3)
#define DL_POOL_WINS_8 DL_POOL_WINS_4 DL_POOL_WIN(1, 4, 5, 6, 7)
#define DL_POOL_WINS_12 DL_POOL_WINS_8 DL_POOL_WIN(2, 8, 9, 10, 11)

/* dl_pool_tile_<R>: the gather tile's loop (the family's row macros) with the pooling epilogue,
 * R/4 windows of pooled output rows c + w*ldc (nr <= 32 columns); its own function rather than a
 * DL_ZMM_TILE instance because it also writes the argmax bytes through `am`. */
#define DL_DEFINE_POOL_TILE(NAME, ROWS, WINS)                                               \
DL_TARGET static void NAME(ptrdiff_t nseg, ptrdiff_t kseg, const float *a,                  \
                           const ptrdiff_t *aoff, ptrdiff_t sa, const float *b,             \
                           ptrdiff_t ldb, float *c, ptrdiff_t ldc, int nr,                  \
                           const float *bias, int relu, uint8_t *am)                       \
{                                                                                           \
    __mmask16 m0 = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1u);                        \
    __mmask16 m1 = nr >= 32 ? 0xFFFF : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1u); \
    __m512 vb0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();              \
    __m512 vb1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();         \
    ptrdiff_t s, p;                                                                         \
    ROWS(DL_DECL)                                                                           \
    ROWS(DL_ZOFF_GATHER)                                                                    \
    for (s = 0; s < nseg; s++) {                                                            \
        const float *as = a + s * sa;                                                       \
        const float *bs = b + s * kseg * ldb;                                               \
        for (p = 0; p < kseg; p++) {                                                        \
            __m512 b0 = _mm512_maskz_loadu_ps(m0, bs + p * ldb);                            \
            __m512 b1 = _mm512_maskz_loadu_ps(m1, bs + p * ldb + 16);                       \
            ROWS(DL_ZFMA_GATHER)                                                            \
        }                                                                                   \
    }                                                                                       \
    ROWS(DL_EPI)                                                                            \
    WINS                                                                                    \
}

DL_DEFINE_POOL_TILE(dl_pool_tile_12, DL_ROWS_12, DL_POOL_WINS_12)
DL_DEFINE_POOL_TILE(dl_pool_tile_8, DL_ROWS_8, DL_POOL_WINS_8)
DL_DEFINE_POOL_TILE(dl_pool_tile_4, DL_ROWS_4, DL_POOL_WINS_4)

/* y = maxpool2x2(epilogue(valid conv(x, w))) for the pooled pixels q = ph*PW + pw in [q0, q1)
 * of one image, in tiles of 1-3 windows of equal sizes; am (unless NULL): the argmax bytes.
 * Its own driver rather than an option of dl_conv_valid_pixels: one driver for both measured 2%
 * slower (37.0 -> 37.8 us, the MNIST-sized 8x28x28x1 -> 32 layer).
 * x: (H, W, C) with H >= 2*PH + KH - 1, W >= 2*PW + KW - 1; w: (KH, KW, C, O); y, am: (PH, PW, O). */
DL_TARGET static void dl_conv_valid_pool2x2(ptrdiff_t q0, ptrdiff_t q1, const float *x,
                                            ptrdiff_t W, ptrdiff_t C, ptrdiff_t KH,
                                            ptrdiff_t KW, ptrdiff_t PW, const float *w,
                                            ptrdiff_t O, float *y, const float *bias, int relu,
                                            uint8_t *am)
{
    ptrdiff_t aoff[12];
    ptrdiff_t n = q1 - q0, tiles = (n + 2) / 3, t, i, j, done = 0, base;
    ptrdiff_t ph = q0 / PW, pw = q0 - (q0 / PW) * PW;
    int h, nr;
    for (t = 0; t < tiles; t++) {
        h = (int)(n * (t + 1) / tiles - n * t / tiles);
        for (i = 0; i < h; i++) {
            base = (2 * ph * W + 2 * pw) * C;
            aoff[4 * i] = base;
            aoff[4 * i + 1] = base + C;
            aoff[4 * i + 2] = base + W * C;
            aoff[4 * i + 3] = base + W * C + C;
            if (++pw == PW) {
                pw = 0;
                ph++;
            }
        }
        float *c = y + (q0 + done) * O;
        for (j = 0; j < O; j += DL_NR) {
            nr = O - j < DL_NR ? (int)(O - j) : DL_NR;
            const float *bj = bias ? bias + j : NULL;
            uint8_t *aj = am ? am + (q0 + done) * O + j : NULL;
#define DL_CALL(H) dl_pool_tile_##H(KH, KW * C, x, aoff, W * C, w + j, O, c + j, O, nr, bj, relu, aj)
            if (h == 3)
                DL_CALL(12);
            else if (h == 2)
                DL_CALL(8);
            else
                DL_CALL(4);
#undef DL_CALL
        }
        done += h;
    }
}

/* dl_wgrad_tile_<R>: C (R rows, nr <= 32 columns) = sum over the pixels of A(i, pixel)
 * B(pixel, j) + beta C: the "cols" zmm tile over images x segments (rows of pixels). */
#define DL_WGRAD_TILE(R) DL_ZMM_TILE(dl_wgrad_tile_##R, DL_ROWS_##R, COLS, 2, DL_PF_NONE,     \
                                     DL_ZEPI_STORE(DL_ROWS_##R))
DL_WGRAD_TILE(14) DL_WGRAD_TILE(8) DL_WGRAD_TILE(4) DL_WGRAD_TILE(2) DL_WGRAD_TILE(1)

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
#define DL_CALL(H) dl_wgrad_tile_##H(nimg, OH, OW, a, NULL, sx, Wx * C, C, dy + j, sy, OW * O, O, \
                                    beta, c + j, O, nr, NULL, 0);
                DL_BY_HEIGHT(h, DL_CALL)
#undef DL_CALL
            }
        }
}

/* acc[0:width] = (first ? 0 : acc) + rows[0, :] + rows[1, :] + ... (n_rows rows of `width`
 * floats, row stride `width`), each column summed in row order: bit-identical to the scalar
 * loop (the bias gradient of a convolution). 64 columns per pass over the rows. */
#define DL_SUM_MASK(v) (left > 16 * (v) + 15 ? (__mmask16)0xFFFF : left <= 16 * (v) ? (__mmask16)0 \
                        : (__mmask16)((1u << (left - 16 * (v))) - 1u))
DL_TARGET static void dl_sum_rows_avx512(float *acc, const float *rows, ptrdiff_t n_rows,
                                         ptrdiff_t width, int first)
{
    ptrdiff_t j0, p, left;
    for (j0 = 0; j0 < width; j0 += 64) {
        left = width - j0;
        const __mmask16 m0 = DL_SUM_MASK(0), m1 = DL_SUM_MASK(1), m2 = DL_SUM_MASK(2),
                        m3 = DL_SUM_MASK(3);
        float *a = acc + j0;
        __m512 s0 = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m0, a);
        __m512 s1 = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m1, a + 16);
        __m512 s2 = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m2, a + 32);
        __m512 s3 = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m3, a + 48);
        const float *r = rows + j0;
        for (p = 0; p < n_rows; p++, r += width) {
            s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(m0, r));
            s1 = _mm512_add_ps(s1, _mm512_maskz_loadu_ps(m1, r + 16));
            s2 = _mm512_add_ps(s2, _mm512_maskz_loadu_ps(m2, r + 32));
            s3 = _mm512_add_ps(s3, _mm512_maskz_loadu_ps(m3, r + 48));
        }
        _mm512_mask_storeu_ps(a, m0, s0);
        _mm512_mask_storeu_ps(a + 16, m1, s1);
        _mm512_mask_storeu_ps(a + 32, m2, s2);
        _mm512_mask_storeu_ps(a + 48, m3, s3);
    }
}
#undef DL_SUM_MASK

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

static void dl_conv_valid_pixels(ptrdiff_t p0, ptrdiff_t p1, const float *x, ptrdiff_t W,
                                 ptrdiff_t C, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t OW,
                                 const float *w, ptrdiff_t O, float *y, const float *bias, int relu)
{
    (void)p0; (void)p1; (void)x; (void)W; (void)C; (void)KH; (void)KW; (void)OW; (void)w;
    (void)O; (void)y; (void)bias; (void)relu;
}

static void dl_conv_valid_pool2x2(ptrdiff_t q0, ptrdiff_t q1, const float *x, ptrdiff_t W,
                                  ptrdiff_t C, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t PW,
                                  const float *w, ptrdiff_t O, float *y, const float *bias, int relu,
                                  uint8_t *am)
{
    (void)q0; (void)q1; (void)x; (void)W; (void)C; (void)KH; (void)KW; (void)PW; (void)w;
    (void)O; (void)y; (void)bias; (void)relu; (void)am;
}

static void dl_add_to(float *dst, const float *src, ptrdiff_t n)
{
    ptrdiff_t i;
    for (i = 0; i < n; i++)
        dst[i] += src[i];
}

static void dl_sum_rows_avx512(float *acc, const float *rows, ptrdiff_t n_rows, ptrdiff_t width,
                               int first)
{
    (void)acc; (void)rows; (void)n_rows; (void)width; (void)first;
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
