/* Vectorizable float32 exp, sigmoid and tanh (Cephes polynomials, about 2 ulp), the one copy the
 * kernels' C code uses (_elementwise's activation backward, _recurrent's gates, the batch-1 LSTM's
 * 16-lane forms below). The clamps keep NaN: x > c ? c : x is false for NaN. Plain inline
 * functions: a caller compiled for several ISAs (DL_CLONES) gets them vectorized for each. */
#ifndef DL_EXPF_H
#define DL_EXPF_H

#include <stdint.h>
#include <string.h>

/* The coefficients, shared by the scalar and the 16-lane forms. */
#define DL_EXPF_LOG2E 1.44269504088896341f
#define DL_EXPF_ROUND 12582912.0f /* 1.5 * 2^23: adding and subtracting it rounds to nearest */
#define DL_EXPF_LN2_HI 0.693359375f
#define DL_EXPF_LN2_LO 2.12194440e-4f
#define DL_EXPF_P0 1.9875691500E-4f
#define DL_EXPF_P1 1.3981999507E-3f
#define DL_EXPF_P2 8.3334519073E-3f
#define DL_EXPF_P3 4.1665795894E-2f
#define DL_EXPF_P4 1.6666665459E-1f
#define DL_EXPF_P5 5.0000001201E-1f
#define DL_TANHF_Q0 -5.70498872745E-3f
#define DL_TANHF_Q1 2.06390887954E-2f
#define DL_TANHF_Q2 -5.37397155531E-2f
#define DL_TANHF_Q3 1.33314422036E-1f
#define DL_TANHF_Q4 -3.33332819422E-1f

/* exp(x), x clamped to [-87, 88]. */
static inline float dl_expf(float x)
{
    float r, g, y, s;
    int32_t n;
    uint32_t bits;
    x = x > 88.0f ? 88.0f : x;
    x = x < -87.0f ? -87.0f : x;
    r = (x * DL_EXPF_LOG2E + DL_EXPF_ROUND) - DL_EXPF_ROUND; /* round to nearest */
    g = x - r * DL_EXPF_LN2_HI;
    g = g + r * DL_EXPF_LN2_LO;
    y = ((((DL_EXPF_P0 * g + DL_EXPF_P1) * g + DL_EXPF_P2) * g + DL_EXPF_P3) * g + DL_EXPF_P4) * g
        + DL_EXPF_P5;
    y = y * (g * g) + g + 1.0f;
    n = (int32_t)r;
    bits = ((uint32_t)(n + 127)) << 23;
    memcpy(&s, &bits, sizeof(s));
    return y * s;
}

static inline float dl_sigmoidf(float x)
{
    return 1.0f / (1.0f + dl_expf(-x));
}

/* tanh: the odd polynomial below 0.625, 1 - 2 / (e^{2|x|} + 1) above. */
static inline float dl_tanhf(float x)
{
    float ax = x < 0.0f ? -x : x;
    float z = x * x;
    float p = ((((DL_TANHF_Q0 * z + DL_TANHF_Q1) * z + DL_TANHF_Q2) * z + DL_TANHF_Q3) * z
               + DL_TANHF_Q4) * z * x + x;
    float e = dl_expf(2.0f * ax);
    float q = 1.0f - 2.0f / (e + 1.0f);
    q = x < 0.0f ? -q : q;
    return ax < 0.625f ? p : q;
}

/* The same three on 16 lanes (AVX-512, for callers that select it at run time). */
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define DL_EXPF_V16_AVAILABLE 1
#define DL_EXPF_V16 __attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma")))

/* dl_expf, dl_sigmoidf, dl_tanhf on 16 lanes: the same operations in the same order, with the
   FMAs GCC forms from that C under -ffp-contract=fast. min(88, x) keeps NaN as x > 88 ? 88 : x
   does (MINPS returns the second operand when one is NaN). */
DL_EXPF_V16 static inline __m512 dl_v16_expf(__m512 x)
{
    __m512 r, g, y, s;
    x = _mm512_min_ps(_mm512_set1_ps(88.0f), x);
    x = _mm512_max_ps(_mm512_set1_ps(-87.0f), x);
    r = _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(DL_EXPF_LOG2E),
                                      _mm512_set1_ps(DL_EXPF_ROUND)),
                      _mm512_set1_ps(DL_EXPF_ROUND));
    g = _mm512_fnmadd_ps(r, _mm512_set1_ps(DL_EXPF_LN2_HI), x);
    g = _mm512_fmadd_ps(r, _mm512_set1_ps(DL_EXPF_LN2_LO), g);
    y = _mm512_fmadd_ps(_mm512_set1_ps(DL_EXPF_P0), g, _mm512_set1_ps(DL_EXPF_P1));
    y = _mm512_fmadd_ps(y, g, _mm512_set1_ps(DL_EXPF_P2));
    y = _mm512_fmadd_ps(y, g, _mm512_set1_ps(DL_EXPF_P3));
    y = _mm512_fmadd_ps(y, g, _mm512_set1_ps(DL_EXPF_P4));
    y = _mm512_fmadd_ps(y, g, _mm512_set1_ps(DL_EXPF_P5));
    y = _mm512_add_ps(_mm512_fmadd_ps(y, _mm512_mul_ps(g, g), g), _mm512_set1_ps(1.0f));
    s = _mm512_castsi512_ps(_mm512_slli_epi32(
        _mm512_add_epi32(_mm512_cvttps_epi32(r), _mm512_set1_epi32(127)), 23));
    return _mm512_mul_ps(y, s);
}

DL_EXPF_V16 static inline __m512 dl_v16_sigmoidf(__m512 x)
{
    __m512 e = dl_v16_expf(_mm512_castsi512_ps(
        _mm512_xor_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u))));
    return _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

DL_EXPF_V16 static inline __m512 dl_v16_tanhf(__m512 x)
{
    __m512 ax = _mm512_abs_ps(x), z = _mm512_mul_ps(x, x), p, e, q;
    p = _mm512_fmadd_ps(_mm512_set1_ps(DL_TANHF_Q0), z, _mm512_set1_ps(DL_TANHF_Q1));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(DL_TANHF_Q2));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(DL_TANHF_Q3));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(DL_TANHF_Q4));
    p = _mm512_fmadd_ps(_mm512_mul_ps(p, z), x, x);
    e = dl_v16_expf(_mm512_add_ps(ax, ax));
    q = _mm512_sub_ps(_mm512_set1_ps(1.0f),
                      _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, _mm512_set1_ps(1.0f))));
    q = _mm512_mask_sub_ps(q, _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ),
                           _mm512_setzero_ps(), q);
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(ax, _mm512_set1_ps(0.625f), _CMP_LT_OQ), q, p);
}
#endif

#endif
