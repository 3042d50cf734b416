/* Vectorizable float32 exp, sigmoid and tanh (Cephes polynomials, about 2 ulp), the one copy the
 * kernels' C code uses (_elementwise's activation backward, _recurrent's gates). The clamps keep
 * NaN: x > c ? c : x is false for NaN. Plain inline functions: a caller compiled for several
 * ISAs (DL_CLONES) gets them vectorized for each. */
#ifndef DL_EXPF_H
#define DL_EXPF_H

#include <stdint.h>
#include <string.h>

/* exp(x), x clamped to [-87, 88]. */
static inline float dl_expf(float x)
{
    float r, g, y, s;
    int32_t n;
    uint32_t bits;
    x = x > 88.0f ? 88.0f : x;
    x = x < -87.0f ? -87.0f : x;
    r = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
    g = x - r * 0.693359375f;
    g = g + r * 2.12194440e-4f;
    y = ((((1.9875691500E-4f * g + 1.3981999507E-3f) * g + 8.3334519073E-3f) * g
          + 4.1665795894E-2f) * g + 1.6666665459E-1f) * g + 5.0000001201E-1f;
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
    float p = ((((-5.70498872745E-3f * z + 2.06390887954E-2f) * z - 5.37397155531E-2f) * z
                + 1.33314422036E-1f) * z - 3.33332819422E-1f) * z * x + x;
    float e = dl_expf(2.0f * ax);
    float q = 1.0f - 2.0f / (e + 1.0f);
    q = x < 0.0f ? -q : q;
    return ax < 0.625f ? p : q;
}

#endif
