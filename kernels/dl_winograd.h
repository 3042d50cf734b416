/* Winograd F(2x2, 3x3) convolution (Lavin & Gray 2015) for stride-1, dilation-1, one-group 3x3
 * convolutions on NHWC inputs, float32, on the kernels' own GEMM (dl_sgemm.h):
 *
 *     y (2x2 tile) = A^T [ (G g G^T) (.) (B^T d B) ] A      d: a 4x4 input patch, g: a 3x3 filter
 *
 * summed over the input channels, so each of the 16 transform positions p is one product
 *
 *     M[p] (T, O) = V[p] (T, C) @ U[p] (C, O)
 *
 * over a block of T tiles: 16 x 4 = 64 multiplies per 2x2 outputs instead of 36 x 4 (2.25x fewer).
 *
 * dl_wino_filter: U (16, C, O) from the HWIO kernel, or with `flip` U (16, O, C) from the kernel
 *   rotated by 180 degrees with its channels swapped (the input gradient: dx = conv(dy, flip(w))
 *   with paddings 2 - pad).
 * dl_wino_block: tiles [t0, t1) of the (N, TH, TW) tile grid (2x2 output pixels each): gather the
 *   4x4 patches (zero outside the input: the paddings are implicit), transform into V, 16 GEMMs,
 *   transform M back with the epilogue: bias, relu, and either the 2x2 pixels inside (OH, OW)
 *   stored, or (pool) their maximum and its argmax byte (a tile is one 2x2 pooling window:
 *   max_pool2d_2x2_forward's order and bytes).
 *
 * V and M are the caller's per-thread buffers (16 T C and 16 T O floats); T is chosen by the
 * caller so that they stay in L2. Each output is computed the same way whatever T, the block
 * split and the thread count (the GEMM's elements are single FMA chains over C in order).
 * Not bit-identical to the direct convolution: the transforms round differently (errors of the
 * order of float32's direct convolution, tests/kernels/test_conv.py).
 */
#ifndef DL_WINOGRAD_H
#define DL_WINOGRAD_H

#include <stdint.h>
#include <string.h>
#include "dl_sgemm.h"

#if DL_HAVE_AVX512_BUILD
#define DL_WINO_TARGET DL_TARGET
#else
#define DL_WINO_TARGET
#endif

/* U[p] p = 4 i + j, (G g G^T)[i][j] for every (c, o); g[a][b] = w[a][b][c][o], or with flip
 * w[2-a][2-b][o][c] (then U is (16, O, C) and the kernel's C, O are given as C, O). Every call
 * transforms its kernel: one (c, o) at a time, the 16 stores a plane apart, this took 93 us of
 * a 121 us batch-1 call of a 15x15x32 -> 64 layer and 370 of 385 us for 6x6x64 -> 128, most of
 * the serial part that kept two threads from gaining on Winograd; 16 o at a time with AVX-512
 * (scatters for the flipped U), the same operations: 35-40 and 45 us. */
#if DL_HAVE_AVX512_BUILD
#include <immintrin.h>

static inline __mmask16 dl_wino_mask(ptrdiff_t left)
{
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

/* dl_wino_filter's operations, in its order, on 16 (c, o) at a time: g[k] the 16 values of tap
 * k (k = 3 a + b), the results stored through STORE(p, value) */
#define DL_WINO_FILTER16(g, STORE)                                                                 \
    do {                                                                                           \
        const __m512 h = _mm512_set1_ps(0.5f);                                                     \
        __m512 t0[3], t1[3], t2[3], t3[3];                                                         \
        int j_;                                                                                    \
        for (j_ = 0; j_ < 3; j_++) {                                                               \
            t0[j_] = g[j_];                                                                        \
            t1[j_] = _mm512_mul_ps(h, _mm512_add_ps(_mm512_add_ps(g[j_], g[3 + j_]), g[6 + j_]));   \
            t2[j_] = _mm512_mul_ps(h, _mm512_add_ps(_mm512_sub_ps(g[j_], g[3 + j_]), g[6 + j_]));   \
            t3[j_] = g[6 + j_];                                                                    \
        }                                                                                          \
        {                                                                                          \
            __m512 *rows_[4] = {t0, t1, t2, t3};                                                   \
            for (j_ = 0; j_ < 4; j_++) {                                                           \
                const __m512 *t_ = rows_[j_];                                                      \
                STORE(4 * j_ + 0, t_[0]);                                                          \
                STORE(4 * j_ + 1, _mm512_mul_ps(h, _mm512_add_ps(_mm512_add_ps(t_[0], t_[1]), t_[2]))); \
                STORE(4 * j_ + 2, _mm512_mul_ps(h, _mm512_add_ps(_mm512_sub_ps(t_[0], t_[1]), t_[2]))); \
                STORE(4 * j_ + 3, t_[2]);                                                          \
            }                                                                                      \
        }                                                                                          \
    } while (0)

DL_TARGET static void dl_wino_filter512(const float *w, ptrdiff_t C, ptrdiff_t O, int flip, float *U)
{
    const ptrdiff_t S = C * O, plane = C * O;
    const __m512i lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    ptrdiff_t c, o;
    int k;
    for (c = 0; c < C; c++)
        for (o = 0; o < O; o += 16) {
            const __mmask16 m = dl_wino_mask(O - o);
            __m512 g[9];
            if (!flip) {
                float *u = U + c * O + o;
                for (k = 0; k < 9; k++)
                    g[k] = _mm512_maskz_loadu_ps(m, w + k * S + c * O + o);
#define DL_WINO_STORE_ROW(p, v) _mm512_mask_storeu_ps(u + (p) * plane, m, (v))
                DL_WINO_FILTER16(g, DL_WINO_STORE_ROW);
#undef DL_WINO_STORE_ROW
            } else {  /* U (16, O, C): the 16 values of o .. o + 15 lie C apart */
                const __m512i at = _mm512_mullo_epi32(lanes, _mm512_set1_epi32((int)C));
                float *u = U + o * C + c;
                for (k = 0; k < 9; k++)
                    g[k] = _mm512_maskz_loadu_ps(m, w + (8 - k) * S + c * O + o);
#define DL_WINO_SCATTER(p, v) _mm512_mask_i32scatter_ps(u + (p) * plane, m, at, (v), 4)
                DL_WINO_FILTER16(g, DL_WINO_SCATTER);
#undef DL_WINO_SCATTER
            }
        }
}
#endif

DL_MAYBE_UNUSED DL_WINO_TARGET static void dl_wino_filter(const float *w, ptrdiff_t C, ptrdiff_t O,
                                                          int flip, float *U)
{
#if DL_HAVE_AVX512_BUILD
    dl_wino_filter512(w, C, O, flip, U);
#else
    ptrdiff_t c, o, i, j, a, rows = flip ? O : C, cols = flip ? C : O;
    float g[3][3], t[4][3], u[4][4];
    for (c = 0; c < C; c++)
        for (o = 0; o < O; o++) {
            for (a = 0; a < 3; a++)
                for (i = 0; i < 3; i++)
                    g[a][i] = flip ? w[((2 - a) * 3 + (2 - i)) * C * O + c * O + o]
                                   : w[(a * 3 + i) * C * O + c * O + o];
            for (j = 0; j < 3; j++) {
                t[0][j] = g[0][j];
                t[1][j] = 0.5f * (g[0][j] + g[1][j] + g[2][j]);
                t[2][j] = 0.5f * (g[0][j] - g[1][j] + g[2][j]);
                t[3][j] = g[2][j];
            }
            for (i = 0; i < 4; i++) {
                u[i][0] = t[i][0];
                u[i][1] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
                u[i][2] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
                u[i][3] = t[i][2];
            }
            for (i = 0; i < 16; i++)
                U[i * rows * cols + (flip ? o * C + c : c * O + o)] = u[i / 4][i % 4];
        }
#endif
}

#if DL_HAVE_AVX512_BUILD
/* dl_wino_filter_grad 16 o at a time (its scalar form read dU 16 planes apart for each (c, o)), the
 * same operations: t[0] = u0 + 0.5 (u1 + u2) stays a multiply and an add, as the scalar form
 * compiles it */
DL_TARGET static void dl_wino_filter_grad512(const float *dU, ptrdiff_t C, ptrdiff_t O, float *dw)
{
    const ptrdiff_t plane = C * O;
    const __m512 h = _mm512_set1_ps(0.5f);
    ptrdiff_t c, o;
    int a, j;
    for (c = 0; c < C; c++)
        for (o = 0; o < O; o += 16) {
            const __mmask16 m = dl_wino_mask(O - o);
            const float *src = dU + c * O + o;
            float *dst = dw + c * O + o;
            __m512 u[4][4], t[3][4];
            for (j = 0; j < 16; j++)
                u[j / 4][j % 4] = _mm512_maskz_loadu_ps(m, src + j * plane);
            for (j = 0; j < 4; j++) {
                t[0][j] = _mm512_add_ps(u[0][j], _mm512_mul_ps(h, _mm512_add_ps(u[1][j], u[2][j])));
                t[1][j] = _mm512_mul_ps(h, _mm512_sub_ps(u[1][j], u[2][j]));
                t[2][j] = _mm512_add_ps(_mm512_mul_ps(h, _mm512_add_ps(u[1][j], u[2][j])), u[3][j]);
            }
            for (a = 0; a < 3; a++) {
                _mm512_mask_storeu_ps(dst + (a * 3 + 0) * plane, m,
                                      _mm512_add_ps(t[a][0], _mm512_mul_ps(h, _mm512_add_ps(t[a][1], t[a][2]))));
                _mm512_mask_storeu_ps(dst + (a * 3 + 1) * plane, m, _mm512_mul_ps(h, _mm512_sub_ps(t[a][1], t[a][2])));
                _mm512_mask_storeu_ps(dst + (a * 3 + 2) * plane, m,
                                      _mm512_add_ps(_mm512_mul_ps(h, _mm512_add_ps(t[a][1], t[a][2])), t[a][3]));
            }
        }
}
#endif

/* The weight gradient's last step, the adjoint of dl_wino_filter: dw[a][b][c][o] = (G^T dU G)[a][b]
 * of dU (16, C, O) (the sum over tiles of V^T dM per transform position). */
DL_MAYBE_UNUSED DL_WINO_TARGET static void dl_wino_filter_grad(const float *dU, ptrdiff_t C, ptrdiff_t O,
                                                               float *dw)
{
#if DL_HAVE_AVX512_BUILD
    dl_wino_filter_grad512(dU, C, O, dw);
#else
    ptrdiff_t c, o;
    int a, j;
    for (c = 0; c < C; c++)
        for (o = 0; o < O; o++) {
            float u[4][4], t[3][4];
            for (j = 0; j < 16; j++)
                u[j / 4][j % 4] = dU[j * C * O + c * O + o];
            for (j = 0; j < 4; j++) {
                t[0][j] = u[0][j] + 0.5f * (u[1][j] + u[2][j]);
                t[1][j] = 0.5f * (u[1][j] - u[2][j]);
                t[2][j] = 0.5f * (u[1][j] + u[2][j]) + u[3][j];
            }
            for (a = 0; a < 3; a++) {
                dw[(a * 3 + 0) * C * O + c * O + o] = t[a][0] + 0.5f * (t[a][1] + t[a][2]);
                dw[(a * 3 + 1) * C * O + c * O + o] = 0.5f * (t[a][1] - t[a][2]);
                dw[(a * 3 + 2) * C * O + c * O + o] = 0.5f * (t[a][1] + t[a][2]) + t[a][3];
            }
        }
#endif
}

#if DL_HAVE_AVX512_BUILD

/* V[p] (row t, C floats at v + p pstride) = (B^T d B)[p] of the 4x4 patch whose 16 pixels'
 * C channels are at r[0..15], 16 channels at a time. */
DL_TARGET static inline void dl_wino_input_tile(const float *const r[16], ptrdiff_t C, float *v,
                                                ptrdiff_t pstride)
{
    ptrdiff_t c;
    int i;
    for (c = 0; c < C; c += 16) {
        __mmask16 k = dl_wino_mask(C - c);
        __m512 d[16], s[16];
        for (i = 0; i < 16; i++)
            d[i] = _mm512_maskz_loadu_ps(k, r[i] + c);
        for (i = 0; i < 4; i++) {  /* B^T d: rows */
            s[i] = _mm512_sub_ps(d[i], d[8 + i]);
            s[4 + i] = _mm512_add_ps(d[4 + i], d[8 + i]);
            s[8 + i] = _mm512_sub_ps(d[8 + i], d[4 + i]);
            s[12 + i] = _mm512_sub_ps(d[4 + i], d[12 + i]);
        }
        for (i = 0; i < 4; i++) {  /* (B^T d) B: columns */
            _mm512_mask_storeu_ps(v + (4 * i + 0) * pstride + c, k, _mm512_sub_ps(s[4 * i], s[4 * i + 2]));
            _mm512_mask_storeu_ps(v + (4 * i + 1) * pstride + c, k, _mm512_add_ps(s[4 * i + 1], s[4 * i + 2]));
            _mm512_mask_storeu_ps(v + (4 * i + 2) * pstride + c, k, _mm512_sub_ps(s[4 * i + 2], s[4 * i + 1]));
            _mm512_mask_storeu_ps(v + (4 * i + 3) * pstride + c, k, _mm512_sub_ps(s[4 * i + 1], s[4 * i + 3]));
        }
    }
}

/* One tile's outputs from M (row t at m, position p at m + p pstride), 16 channels at a time:
 * the 2x2 pixels (A^T m A) + bias, relu, stored at out[0..3] (NULL: outside the output), or with
 * pool their maximum at out[0] and its argmax byte at am (unless NULL), in
 * max_pool2d_2x2_forward's order (the first maximum; NaN never replaces). */
DL_TARGET static inline void dl_wino_output_tile(const float *m, ptrdiff_t pstride, ptrdiff_t O,
                                                 const float *bias, int relu, int pool,
                                                 float *const out[4], uint8_t *am)
{
    ptrdiff_t o;
    int i;
    for (o = 0; o < O; o += 16) {
        __mmask16 k = dl_wino_mask(O - o);
        __m512 q[16], s[8], y[4];
        __m512 b = bias ? _mm512_maskz_loadu_ps(k, bias + o) : _mm512_setzero_ps();
        for (i = 0; i < 16; i++)
            q[i] = _mm512_maskz_loadu_ps(k, m + i * pstride + o);
        for (i = 0; i < 4; i++) {  /* A^T m: rows */
            s[i] = _mm512_add_ps(_mm512_add_ps(q[i], q[4 + i]), q[8 + i]);
            s[4 + i] = _mm512_sub_ps(_mm512_sub_ps(q[4 + i], q[8 + i]), q[12 + i]);
        }
        for (i = 0; i < 2; i++) {
            y[2 * i] = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s[4 * i], s[4 * i + 1]), s[4 * i + 2]), b);
            y[2 * i + 1] = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s[4 * i + 1], s[4 * i + 2]), s[4 * i + 3]), b);
        }
        if (relu)
            for (i = 0; i < 4; i++)
                y[i] = _mm512_max_ps(y[i], _mm512_setzero_ps());
        if (pool) {
            __m512 best = y[0];
            __m512i arg = _mm512_setzero_si512();
            for (i = 1; i < 4; i++) {
                __mmask16 gt = _mm512_cmp_ps_mask(y[i], best, _CMP_GT_OQ);
                best = _mm512_mask_mov_ps(best, gt, y[i]);
                arg = _mm512_mask_mov_epi32(arg, gt, _mm512_set1_epi32(i));
            }
            _mm512_mask_storeu_ps(out[0] + o, k, best);
            if (am)
                _mm512_mask_cvtepi32_storeu_epi8(am + o, k, arg);
        } else {
            for (i = 0; i < 4; i++)
                if (out[i])
                    _mm512_mask_storeu_ps(out[i] + o, k, y[i]);
        }
    }
}

/* r[16]: the pixels of x (N, H, W, C) under the 4x4 input tile of tile tt of the (N, TH, TW) grid,
 * zeros where the tile reaches into the padding. */
static inline void dl_wino_tile_pixels(const float *x, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C,
                                       ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t TH, ptrdiff_t TW,
                                       ptrdiff_t tt, const float *zeros, const float *r[16])
{
    ptrdiff_t n = tt / (TH * TW), th = (tt / TW) % TH, tw = tt % TW, i, j;
    for (i = 0; i < 4; i++) {
        ptrdiff_t hi = 2 * th - ph + i;
        for (j = 0; j < 4; j++) {
            ptrdiff_t wj = 2 * tw - pw + j;
            r[4 * i + j] = (hi >= 0 && hi < H && wj >= 0 && wj < W) ? x + ((n * H + hi) * W + wj) * C : zeros;
        }
    }
}

/* Tiles [t0, t1) (t = (n TH + th) TW + tw; tile (th, tw) covers output rows 2 th, 2 th + 1 and
 * columns 2 tw, 2 tw + 1) of y = conv(x, w) + bias (relu): x (N, H, W, C), input pixel
 * (2 th - ph + i, 2 tw - pw + j) for patch row i, column j (zero outside); y (N, OH, OW, O);
 * with pool, y is (N, TH, TW, O) = the tiles' 2x2 maxima (OH = 2 TH, OW = 2 TW) and am (unless
 * NULL) their argmax bytes. zeros: C zero floats. V (16, T, C), M (16, T, O), T >= t1 - t0. */
DL_MAYBE_UNUSED DL_WINO_TARGET static void dl_wino_block(
    const float *x, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, ptrdiff_t ph, ptrdiff_t pw,
    ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t TH, ptrdiff_t TW, ptrdiff_t t0, ptrdiff_t t1,
    const float *U, ptrdiff_t O, const float *zeros, float *V, float *M, float *y,
    const float *bias, int relu, int pool, uint8_t *am)
{
    ptrdiff_t T = t1 - t0, t, p;
    const float *r[16];
    for (t = 0; t < T; t++) {
        dl_wino_tile_pixels(x, H, W, C, ph, pw, TH, TW, t0 + t, zeros, r);
        dl_wino_input_tile(r, C, V + t * C, T * C);
    }
    for (p = 0; p < 16; p++)
        dl_sgemm(0, T, O, C, V + p * T * C, C, U + p * C * O, O, 0.0f, M + p * T * O, O);
    for (t = 0; t < T; t++) {
        ptrdiff_t tt = t0 + t, n = tt / (TH * TW), th = (tt / TW) % TH, tw = tt % TW, k;
        float *out[4];
        if (pool) {
            out[0] = y + tt * O;
            out[1] = out[2] = out[3] = NULL;
        } else
            for (k = 0; k < 4; k++) {
                ptrdiff_t oh = 2 * th + k / 2, ow = 2 * tw + k % 2;
                out[k] = oh < OH && ow < OW ? y + ((n * OH + oh) * OW + ow) * O : NULL;
            }
        dl_wino_output_tile(M + t * O, T * O, O, bias, relu, pool, out, pool && am ? am + tt * O : NULL);
    }
}

/* dM[p] (row t at m + p pstride, O floats) = (A dY A^T)[p] of the 2x2 dy tile whose pixels are at
 * d[0..3] (NULL: outside dy, zero); db += the tile's pixels (unless NULL). */
DL_TARGET static inline void dl_wino_dy_tile(const float *const d[4], ptrdiff_t O, float *m,
                                             ptrdiff_t pstride, float *db)
{
    ptrdiff_t o;
    int i;
    for (o = 0; o < O; o += 16) {
        __mmask16 k = dl_wino_mask(O - o);
        __m512 y[4], r[8], z = _mm512_setzero_ps();
        for (i = 0; i < 4; i++)
            y[i] = d[i] ? _mm512_maskz_loadu_ps(k, d[i] + o) : z;
        if (db)
            _mm512_mask_storeu_ps(db + o, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, db + o),
                                  _mm512_add_ps(_mm512_add_ps(y[0], y[1]), _mm512_add_ps(y[2], y[3]))));
        for (i = 0; i < 2; i++) {  /* A dY: rows (r[4 row + column]) */
            r[i] = y[i];
            r[2 + i] = _mm512_add_ps(y[i], y[2 + i]);
            r[4 + i] = _mm512_sub_ps(y[i], y[2 + i]);
            r[6 + i] = _mm512_sub_ps(z, y[2 + i]);
        }
        for (i = 0; i < 4; i++) {  /* (A dY) A^T: columns */
            _mm512_mask_storeu_ps(m + (4 * i + 0) * pstride + o, k, r[2 * i]);
            _mm512_mask_storeu_ps(m + (4 * i + 1) * pstride + o, k, _mm512_add_ps(r[2 * i], r[2 * i + 1]));
            _mm512_mask_storeu_ps(m + (4 * i + 2) * pstride + o, k, _mm512_sub_ps(r[2 * i], r[2 * i + 1]));
            _mm512_mask_storeu_ps(m + (4 * i + 3) * pstride + o, k, _mm512_sub_ps(z, r[2 * i + 1]));
        }
    }
}

/* The weight gradient of tiles [t0, t1) of dy's (N, TH, TW) tile grid (dy (N, OH, OW, O), pixels
 * beyond OH, OW zero): dU[p] (C, O) += V[p]^T dM[p] (the GEMM's FMA chains run over the tiles in
 * order), db (O) += dy's pixels (unless NULL). x, ph, pw, zeros, V as dl_wino_block; dM (16, T, O). */
DL_MAYBE_UNUSED DL_TARGET static void dl_wino_wgrad_block(
    const float *x, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, ptrdiff_t ph, ptrdiff_t pw,
    const float *dy, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t TH, ptrdiff_t TW, ptrdiff_t t0,
    ptrdiff_t t1, ptrdiff_t O, const float *zeros, float *V, float *dM, float *dU, float *db)
{
    ptrdiff_t T = t1 - t0, t, p;
    const float *r[16], *d[4];
    for (t = 0; t < T; t++) {
        ptrdiff_t tt = t0 + t, n = tt / (TH * TW), th = (tt / TW) % TH, tw = tt % TW, i;
        dl_wino_tile_pixels(x, H, W, C, ph, pw, TH, TW, tt, zeros, r);
        dl_wino_input_tile(r, C, V + t * C, T * C);
        for (i = 0; i < 4; i++) {
            ptrdiff_t oh = 2 * th + i / 2, ow = 2 * tw + i % 2;
            d[i] = oh < OH && ow < OW ? dy + ((n * OH + oh) * OW + ow) * O : NULL;
        }
        dl_wino_dy_tile(d, O, dM + t * O, T * O, db);
    }
    for (p = 0; p < 16; p++)
        dl_sgemm(1, C, O, T, V + p * T * C, C, dM + p * T * O, O, 1.0f, dU + p * C * O, O);
}

#else

static void dl_wino_block(const float *x, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, ptrdiff_t ph,
                          ptrdiff_t pw, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t TH, ptrdiff_t TW,
                          ptrdiff_t t0, ptrdiff_t t1, const float *U, ptrdiff_t O, const float *zeros,
                          float *V, float *M, float *y, const float *bias, int relu, int pool, uint8_t *am)
{
    (void)x; (void)H; (void)W; (void)C; (void)ph; (void)pw; (void)OH; (void)OW; (void)TH; (void)TW;
    (void)t0; (void)t1; (void)U; (void)O; (void)zeros; (void)V; (void)M; (void)y; (void)bias;
    (void)relu; (void)pool; (void)am;
}

static void dl_wino_wgrad_block(const float *x, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, ptrdiff_t ph,
                                ptrdiff_t pw, const float *dy, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t TH,
                                ptrdiff_t TW, ptrdiff_t t0, ptrdiff_t t1, ptrdiff_t O, const float *zeros,
                                float *V, float *dM, float *dU, float *db)
{
    (void)x; (void)H; (void)W; (void)C; (void)ph; (void)pw; (void)dy; (void)OH; (void)OW; (void)TH;
    (void)TW; (void)t0; (void)t1; (void)O; (void)zeros; (void)V; (void)dM; (void)dU; (void)db;
}

#endif
#endif
