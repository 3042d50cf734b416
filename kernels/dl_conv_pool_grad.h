/* The weight and bias gradients of the fused convolution + 2x2 max pooling (_conv_backward.pxi's
 * conv2d_pool2x2_backward_weight) straight from the pooled gradient and the pooling's argmax:
 *
 *   g[p, o] = dy[p, o] (times y[p, o] > 0 for relu), p a pooled pixel (i, j) of one image
 *   dw[t, o] += g[p, o] * x[2i + a + r, 2j + b + s, ci]      t = (r, s, ci), (a, b) = argmax[p, o]
 *   db[o] += g[p, o]
 *
 * The two kernels that ran before (unpool into the convolution's (2 PH, 2 PW) gradient, then
 * the im2col weight gradient on it) wrote and read back four times the pooled gradient, three
 * quarters of it zeros. Here the argmax selects, per output channel, which of the four
 * candidate inputs of a tap multiplies the gradient.
 *
 * x is one image already padded: rows of `rs` floats (2 PW + KW - 1 pixels of C channels),
 * 2 PH + KH - 1 rows. toff[t] = r * rs + s * C + ci, the tap's offset from the pixel's window
 * corner; the window's four corners are 0, C, rs, rs + C (argmax 0, 1, 2, 3: kh * 2 + kw). */
#ifndef DL_CONV_POOL_GRAD_H
#define DL_CONV_POOL_GRAD_H

#include <stddef.h>
#include <stdint.h>

#include "dl_clones.h"

/* Portable form (float64, CPUs without AVX-512): the gradient split by window corner, four
   multiply-adds per tap; vectorized over the output channels. g4: scratch of 4 * O. */
#define DLC_POOL_WGRAD_IMAGE(T, S)                                                              \
DL_CLONES static void dlc_pool_wgrad_image_##S(const T* x, ptrdiff_t rs, ptrdiff_t c,            \
        const T* dy, const T* y, const uint8_t* am, ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t o,     \
        const ptrdiff_t* toff, ptrdiff_t taps, int relu, T* restrict dw, T* restrict db,         \
        T* restrict g4) {                                                                        \
    ptrdiff_t i, j, t, k;                                                                        \
    T* restrict g0 = g4; T* restrict g1 = g4 + o;                                                \
    T* restrict g2 = g4 + 2 * o; T* restrict g3 = g4 + 3 * o;                                    \
    for (i = 0; i < ph; i++) {                                                                   \
        for (j = 0; j < pw; j++) {                                                               \
            const ptrdiff_t p = (i * pw + j) * o;                                                \
            const T* corner = x + 2 * i * rs + 2 * j * c;                                        \
            for (k = 0; k < o; k++) {                                                            \
                T v = dy[p + k], z = 0; int32_t a = am[p + k];                                   \
                if (relu) v = y[p + k] > 0 ? v : z;                                              \
                g0[k] = a == 0 ? v : z; g1[k] = a == 1 ? v : z;                                  \
                g2[k] = a == 2 ? v : z; g3[k] = a == 3 ? v : z;                                  \
                db[k] += v;                                                                      \
            }                                                                                    \
            for (t = 0; t < taps; t++) {                                                         \
                const T* q = corner + toff[t];                                                   \
                const T x0 = q[0], x1 = q[c], x2 = q[rs], x3 = q[rs + c];                        \
                T* restrict d = dw + t * o;                                                      \
                for (k = 0; k < o; k++)                                                          \
                    d[k] += g0[k] * x0 + g1[k] * x1 + g2[k] * x2 + g3[k] * x3;                   \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
}
DLC_POOL_WGRAD_IMAGE(float, f32)
DLC_POOL_WGRAD_IMAGE(double, f64)

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define DLC_HAVE_AVX512 1
/* AVX-512, float32: 16 output channels at a time, a group of up to DLC_TAPS taps held in
   registers over every pixel of the image; per tap the argmax masks blend the four corner
   inputs into one vector and one multiply-add takes it (the portable form's four). */
#define DLC_TAPS 12
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
static void dlc_pool_wgrad_image_f32_avx512(const float* x, ptrdiff_t rs, ptrdiff_t c,
        const float* dy, const float* y, const uint8_t* am, ptrdiff_t ph, ptrdiff_t pw,
        ptrdiff_t o, const ptrdiff_t* toff, ptrdiff_t taps, int relu, float* dw, float* db) {
    const __m128i k1 = _mm_set1_epi8(1), k2 = _mm_set1_epi8(2), k3 = _mm_set1_epi8(3);
    const __m512 zero = _mm512_setzero_ps();
    ptrdiff_t ob, t0, i, j, u;
    for (ob = 0; ob < o; ob += 16) {
        const __mmask16 lanes = o - ob >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (o - ob)) - 1);
        for (t0 = 0; t0 < taps; t0 += DLC_TAPS) {
            const ptrdiff_t nt = taps - t0 < DLC_TAPS ? taps - t0 : DLC_TAPS;
            __m512 acc[DLC_TAPS], sum = zero;
            for (u = 0; u < DLC_TAPS; u++) acc[u] = zero;
            for (i = 0; i < ph; i++) {
                for (j = 0; j < pw; j++) {
                    const ptrdiff_t p = (i * pw + j) * o + ob;
                    const float* corner = x + 2 * i * rs + 2 * j * c;
                    __m512 g = _mm512_maskz_loadu_ps(lanes, dy + p);
                    const __m128i a8 = _mm_maskz_loadu_epi8(lanes, am + p);
                    const __mmask16 m1 = _mm_cmpeq_epi8_mask(a8, k1);
                    const __mmask16 m2 = _mm_cmpeq_epi8_mask(a8, k2);
                    const __mmask16 m3 = _mm_cmpeq_epi8_mask(a8, k3);
                    if (relu)
                        g = _mm512_maskz_mov_ps(
                            _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(lanes, y + p), zero, _CMP_GT_OQ), g);
                    sum = _mm512_add_ps(sum, g);
#pragma GCC unroll 12
                    for (u = 0; u < DLC_TAPS; u++) {
                        if (u < nt) {
                            const float* q = corner + toff[t0 + u];
                            __m512 v = _mm512_set1_ps(q[0]);
                            v = _mm512_mask_mov_ps(v, m1, _mm512_set1_ps(q[c]));
                            v = _mm512_mask_mov_ps(v, m2, _mm512_set1_ps(q[rs]));
                            v = _mm512_mask_mov_ps(v, m3, _mm512_set1_ps(q[rs + c]));
                            acc[u] = _mm512_fmadd_ps(g, v, acc[u]);
                        }
                    }
                }
            }
            for (u = 0; u < nt; u++) {
                float* d = dw + (t0 + u) * o + ob;
                _mm512_mask_storeu_ps(d, lanes, _mm512_add_ps(_mm512_maskz_loadu_ps(lanes, d), acc[u]));
            }
            if (t0 == 0)
                _mm512_mask_storeu_ps(db + ob, lanes, _mm512_add_ps(_mm512_maskz_loadu_ps(lanes, db + ob), sum));
        }
    }
}
#else
#define DLC_HAVE_AVX512 0
#endif
static int dlc_intrinsics_allowed = 1;  /* 0: the portable form (tests exercise both) */

/* One image's sums added into dw (taps, O) and db (O). g4: scratch of 4 * O for the portable form. */
static void dlc_pool_wgrad_image_f32_any(const float* x, ptrdiff_t rs, ptrdiff_t c, const float* dy,
        const float* y, const uint8_t* am, ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t o,
        const ptrdiff_t* toff, ptrdiff_t taps, int relu, float* dw, float* db, float* g4) {
#if DLC_HAVE_AVX512
    if (dlc_intrinsics_allowed && dl_cpu_avx512()) {
        dlc_pool_wgrad_image_f32_avx512(x, rs, c, dy, y, am, ph, pw, o, toff, taps, relu, dw, db);
        return;
    }
#endif
    dlc_pool_wgrad_image_f32(x, rs, c, dy, y, am, ph, pw, o, toff, taps, relu, dw, db, g4);
}

#endif
