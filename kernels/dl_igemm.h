/* The kernels' int8 GEMM (row-major): C32 (m, n) = A (m, kp) int8 @ B (kp, n) int8, accumulated
 * exactly in int32, for int8 inference (_quantized.pyx).
 *
 * B is packed once (dl_igemm_pack) into panels of 16 columns, k in groups of 4:
 *     P[(panel * kq + g) * 64 + c * 4 + r] = B[4 g + r, 16 panel + c]     (kq = kp / 4)
 * zero-padded to whole panels and groups, the layout vpdpbusd reads (four bytes of one column per
 * 32-bit lane). A's rows are padded with zeros to kp (a multiple of 4) by the caller.
 *
 * Three paths, chosen once at run time (dl_igemm_set_isa for tests), all exact, so their int32
 * results are bit-identical:
 *   0 AVX512-VNNI: vpdpbusd multiplies unsigned by signed bytes, so A is shifted to u8 (a + 128,
 *     an xor with 0x80) and the shift's contribution, 128 x the column sums of B, starts each
 *     accumulator negated (csum from dl_igemm_pack): sum (a + 128) b - 128 sum b = sum a b.
 *   1 AVX2: vpmaddubsw on |a| and sign(b, a) (|a|, |b| <= 127, so a pair sums to at most
 *     2 x 127 x 127 < 32767: no int16 saturation), then vpmaddwd with ones to int32.
 *   2 the baseline: plain int32 loops over the same packed layout.
 * Tiles: VNNI 6 rows x 64 columns (24 zmm accumulators) where B has 4 panels or more, else 8 rows x 32
 * columns, on a copy of each row block already shifted to u8 (measured on Zen 4, 1 thread: 2048 x 288 x 64
 * 194 -> 216 GMAC/s, 2048 x 576 x 128 205 -> 217, K = 9 (a 1-channel 3x3 conv) 68 -> 99, against the
 * in-register shift of 8 x 32 tiles, which rows over 2048 bytes still take); AVX2 4 rows x 16 columns.
 * C32 has row stride ldc >= the padded width np = 16 * panels: whole vectors are stored.
 */
#ifndef DL_IGEMM_H
#define DL_IGEMM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dl_clones.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define DL_IG_X86 1
#else
#define DL_IG_X86 0
#endif

#define DL_IG_PANEL 16

/* Packs B (k, n) int8, row stride ldb, into P (panels * kq * 64 bytes) and writes the column
 * sums (panels * 16 int32, zero on the padding). */
static void dl_igemm_pack(ptrdiff_t k, ptrdiff_t n, const int8_t *B, ptrdiff_t ldb, int8_t *P, int32_t *csum)
{
    ptrdiff_t kq = (k + 3) / 4, panels = (n + DL_IG_PANEL - 1) / DL_IG_PANEL, p, g, c, r;
    for (p = 0; p < panels; p++)
        for (c = 0; c < DL_IG_PANEL; c++) {
            ptrdiff_t j = p * DL_IG_PANEL + c;
            int32_t s = 0;
            for (g = 0; g < kq; g++)
                for (r = 0; r < 4; r++) {
                    ptrdiff_t i = 4 * g + r;
                    int8_t v = (j < n && i < k) ? B[i * ldb + j] : 0;
                    P[(p * kq + g) * 64 + c * 4 + r] = v;
                    s += v;
                }
            csum[j] = s;
        }
}

/* The baseline path: C32[i, 16 p + c] for rows [0, m), panels [0, panels). */
static void dl_igemm_base(ptrdiff_t m, ptrdiff_t panels, ptrdiff_t kq, const int8_t *A, ptrdiff_t lda,
                          const int8_t *P, const int32_t *csum, int32_t *C, ptrdiff_t ldc)
{
    ptrdiff_t i, p, g, c, r;
    (void)csum;
    for (i = 0; i < m; i++)
        for (p = 0; p < panels; p++) {
            int32_t acc[DL_IG_PANEL] = {0};
            const int8_t *pp = P + p * kq * 64;
            for (g = 0; g < kq; g++)
                for (c = 0; c < DL_IG_PANEL; c++)
                    for (r = 0; r < 4; r++)
                        acc[c] += (int32_t)A[i * lda + 4 * g + r] * (int32_t)pp[g * 64 + c * 4 + r];
            memcpy(C + i * ldc + p * DL_IG_PANEL, acc, sizeof acc);
        }
}

#if DL_IG_X86
#define DL_IG_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) static inline
#define DL_IG_AVX2 __attribute__((target("avx2"), always_inline)) static inline

/* ROWS rows x NP panels (NP 1, 2 or 4) of C with vpdpbusd. A holds u8 bytes (a + 128, see the header), or
 * with SHIFT int8 bytes shifted to u8 in registers (rows longer than a chunk of the shifted-block path). */
DL_IG_VNNI void dl_ig_tile_vnni(int ROWS, int NP, int SHIFT, ptrdiff_t kq, const int8_t *A, ptrdiff_t lda,
                                const int8_t *P, const int32_t *csum, int32_t *C, ptrdiff_t ldc)
{
    __m512i acc[8][4];
    ptrdiff_t g;
    int i, q;
    for (q = 0; q < NP; q++) {
        __m512i start = _mm512_sub_epi32(_mm512_setzero_si512(),
                                         _mm512_slli_epi32(_mm512_loadu_si512(csum + q * 16), 7));
        for (i = 0; i < ROWS; i++) acc[i][q] = start;
    }
    for (g = 0; g < kq; g++) {
        __m512i b[4];
        for (q = 0; q < NP; q++) b[q] = _mm512_loadu_si512(P + (q * kq + g) * 64);
        for (i = 0; i < ROWS; i++) {
            int32_t word;
            memcpy(&word, A + i * lda + 4 * g, 4);
            __m512i a = _mm512_set1_epi32(word);
            if (SHIFT) a = _mm512_xor_si512(a, _mm512_set1_epi8((char)0x80));
            for (q = 0; q < NP; q++) acc[i][q] = _mm512_dpbusd_epi32(acc[i][q], a, b[q]);
        }
    }
    for (i = 0; i < ROWS; i++)
        for (q = 0; q < NP; q++) _mm512_storeu_si512(C + i * ldc + q * 16, acc[i][q]);
}

#define DL_IG_VNNIX_ROWS(R)                                                                     \
    __attribute__((target("avx512f,avx512bw,avx512vnni"))) static void dl_ig_vnnix_##R(          \
        int np, ptrdiff_t kq, const int8_t *A, ptrdiff_t lda, const int8_t *P, const int32_t *csum, \
        int32_t *C, ptrdiff_t ldc)                                                             \
    {                                                                                          \
        if (np == 2) dl_ig_tile_vnni(R, 2, 1, kq, A, lda, P, csum, C, ldc);                        \
        else dl_ig_tile_vnni(R, 1, 1, kq, A, lda, P, csum, C, ldc);                                \
    }
DL_IG_VNNIX_ROWS(8)
DL_IG_VNNIX_ROWS(4)
DL_IG_VNNIX_ROWS(2)
DL_IG_VNNIX_ROWS(1)

static void dl_igemm_vnni_long(ptrdiff_t m, ptrdiff_t panels, ptrdiff_t kq, const int8_t *A, ptrdiff_t lda,
                          const int8_t *P, const int32_t *csum, int32_t *C, ptrdiff_t ldc)
{
    ptrdiff_t i = 0, p;
    while (i < m) {
        ptrdiff_t left = m - i;
        int rows = left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
        for (p = 0; p < panels; p += 2) {
            int np = panels - p >= 2 ? 2 : 1;
            const int8_t *a = A + i * lda;
            const int8_t *pp = P + p * kq * 64;
            int32_t *c = C + i * ldc + p * 16;
            if (rows == 8) dl_ig_vnnix_8(np, kq, a, lda, pp, csum + p * 16, c, ldc);
            else if (rows == 4) dl_ig_vnnix_4(np, kq, a, lda, pp, csum + p * 16, c, ldc);
            else if (rows == 2) dl_ig_vnnix_2(np, kq, a, lda, pp, csum + p * 16, c, ldc);
            else dl_ig_vnnix_1(np, kq, a, lda, pp, csum + p * 16, c, ldc);
        }
        i += rows;
    }
}

#define DL_IG_VNNI_ROWS(R)                                                                     \
    __attribute__((target("avx512f,avx512bw,avx512vnni"))) static void dl_ig_vnni_##R(          \
        int np, ptrdiff_t kq, const int8_t *A, ptrdiff_t lda, const int8_t *P, const int32_t *csum, \
        int32_t *C, ptrdiff_t ldc)                                                             \
    {                                                                                          \
        if (np == 4 && R <= 6) dl_ig_tile_vnni(R, 4, 0, kq, A, lda, P, csum, C, ldc);              \
        else if (np >= 2) dl_ig_tile_vnni(R, 2, 0, kq, A, lda, P, csum, C, ldc);                   \
        else dl_ig_tile_vnni(R, 1, 0, kq, A, lda, P, csum, C, ldc);                             \
    }
DL_IG_VNNI_ROWS(8)
DL_IG_VNNI_ROWS(6)
DL_IG_VNNI_ROWS(4)
DL_IG_VNNI_ROWS(2)
DL_IG_VNNI_ROWS(1)

/* rows x 4 kq bytes of A, from row stride lda, into dst (row stride 4 kq) as u8: a + 128 (xor 0x80). */
__attribute__((target("avx512f,avx512bw"))) static void dl_ig_flip_rows(int rows, ptrdiff_t kq, const int8_t *A,
                                                                         ptrdiff_t lda, int8_t *dst)
{
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    ptrdiff_t n = 4 * kq, j;
    int i;
    for (i = 0; i < rows; i++) {
        const int8_t *src = A + i * lda;
        int8_t *d = dst + i * n;
        for (j = 0; j + 64 <= n; j += 64)
            _mm512_storeu_si512(d + j, _mm512_xor_si512(_mm512_loadu_si512(src + j), flip));
        if (j < n) {
            __mmask64 k = ((__mmask64)1 << (n - j)) - 1;
            _mm512_mask_storeu_epi8(d + j, k, _mm512_xor_si512(_mm512_maskz_loadu_epi8(k, src + j), flip));
        }
    }
}

/* Row blocks of 6 rows when a row has 4 panels or more (6 x 4 zmm accumulators), else of 8 (8 x 2); each
 * block's A rows are first shifted to u8 into a stack buffer (one xor per 64 bytes, not one per 4 bytes and
 * panel pair). Rows longer than DL_IG_KCHUNK groups of 4 take the in-register shift (dl_igemm_vnni_long). */
#define DL_IG_KCHUNK 512
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void dl_igemm_vnni(
    ptrdiff_t m, ptrdiff_t panels, ptrdiff_t kq, const int8_t *A, ptrdiff_t lda, const int8_t *P,
    const int32_t *csum, int32_t *C, ptrdiff_t ldc)
{
    int8_t buf[8 * 4 * DL_IG_KCHUNK];
    ptrdiff_t i = 0, p;
    int block = panels >= 4 ? 6 : 8;
    if (kq > DL_IG_KCHUNK) {  /* long rows (K > 2048): the in-register shift of the generic tiles */
        dl_igemm_vnni_long(m, panels, kq, A, lda, P, csum, C, ldc);
        return;
    }
    while (i < m) {
        ptrdiff_t left = m - i;
        int rows = left >= block ? block : left >= 4 ? 4 : left >= 2 ? 2 : 1;
        dl_ig_flip_rows(rows, kq, A + i * lda, lda, buf);
        for (p = 0; p < panels;) {
            int np = panels - p >= 4 && rows <= 6 ? 4 : panels - p >= 2 ? 2 : 1;
            const int8_t *pp = P + p * kq * 64;
            int32_t *c = C + i * ldc + p * 16;
            if (rows == 8) dl_ig_vnni_8(np, kq, buf, 4 * kq, pp, csum + p * 16, c, ldc);
            else if (rows == 6) dl_ig_vnni_6(np, kq, buf, 4 * kq, pp, csum + p * 16, c, ldc);
            else if (rows == 4) dl_ig_vnni_4(np, kq, buf, 4 * kq, pp, csum + p * 16, c, ldc);
            else if (rows == 2) dl_ig_vnni_2(np, kq, buf, 4 * kq, pp, csum + p * 16, c, ldc);
            else dl_ig_vnni_1(np, kq, buf, 4 * kq, pp, csum + p * 16, c, ldc);
            p += np;
        }
        i += rows;
    }
}

/* ROWS rows x one panel (two ymm halves of 8 columns) with vpmaddubsw / vpmaddwd. */
DL_IG_AVX2 void dl_ig_tile_avx2(int ROWS, ptrdiff_t kq, const int8_t *A, ptrdiff_t lda, const int8_t *P,
                                int32_t *C, ptrdiff_t ldc)
{
    __m256i acc[4][2];
    const __m256i ones = _mm256_set1_epi16(1);
    ptrdiff_t g;
    int i, h;
    for (i = 0; i < ROWS; i++) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
    for (g = 0; g < kq; g++) {
        __m256i b0 = _mm256_loadu_si256((const __m256i *)(P + g * 64));
        __m256i b1 = _mm256_loadu_si256((const __m256i *)(P + g * 64 + 32));
        for (i = 0; i < ROWS; i++) {
            int32_t word;
            memcpy(&word, A + i * lda + 4 * g, 4);
            __m256i a = _mm256_set1_epi32(word), ua = _mm256_abs_epi8(a);
            for (h = 0; h < 2; h++) {
                __m256i s = _mm256_sign_epi8(h ? b1 : b0, a);
                __m256i pairs = _mm256_maddubs_epi16(ua, s);
                acc[i][h] = _mm256_add_epi32(acc[i][h], _mm256_madd_epi16(pairs, ones));
            }
        }
    }
    for (i = 0; i < ROWS; i++)
        for (h = 0; h < 2; h++) _mm256_storeu_si256((__m256i *)(C + i * ldc + h * 8), acc[i][h]);
}

#define DL_IG_AVX2_ROWS(R)                                                                      \
    __attribute__((target("avx2"))) static void dl_ig_avx2_##R(ptrdiff_t kq, const int8_t *A,    \
                                                               ptrdiff_t lda, const int8_t *P,  \
                                                               int32_t *C, ptrdiff_t ldc)      \
    {                                                                                           \
        dl_ig_tile_avx2(R, kq, A, lda, P, C, ldc);                                              \
    }
DL_IG_AVX2_ROWS(4)
DL_IG_AVX2_ROWS(1)

static void dl_igemm_avx2(ptrdiff_t m, ptrdiff_t panels, ptrdiff_t kq, const int8_t *A, ptrdiff_t lda,
                          const int8_t *P, const int32_t *csum, int32_t *C, ptrdiff_t ldc)
{
    ptrdiff_t i = 0, p;
    (void)csum;
    while (i < m) {
        int rows = m - i >= 4 ? 4 : 1;
        for (p = 0; p < panels; p++) {
            if (rows == 4) dl_ig_avx2_4(kq, A + i * lda, lda, P + p * kq * 64, C + i * ldc + p * 16, ldc);
            else dl_ig_avx2_1(kq, A + i * lda, lda, P + p * kq * 64, C + i * ldc + p * 16, ldc);
        }
        i += rows;
    }
}
#endif

typedef void (*dl_igemm_fn)(ptrdiff_t, ptrdiff_t, ptrdiff_t, const int8_t *, ptrdiff_t, const int8_t *,
                            const int32_t *, int32_t *, ptrdiff_t);
static dl_igemm_fn dl_igemm_impl = 0;

/* The best level this CPU runs: 0 AVX512-VNNI (+BW), 1 AVX2, 2 the baseline. */
static int dl_igemm_cpu_isa(void)
{
#if DL_IG_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512vnni"))
        return 0;
    if (__builtin_cpu_supports("avx2"))
        return 1;
#endif
    return 2;
}

static dl_igemm_fn dl_igemm_for(int isa)
{
#if DL_IG_X86
    if (isa == 0) return dl_igemm_vnni;
    if (isa == 1) return dl_igemm_avx2;
#endif
    (void)isa;
    return dl_igemm_base;
}

/* C32 (m, 16 panels) = A (m, 4 kq) @ packed B; kq = kp / 4, panels from dl_igemm_pack. */
static void dl_igemm(ptrdiff_t m, ptrdiff_t panels, ptrdiff_t kq, const int8_t *A, ptrdiff_t lda,
                     const int8_t *P, const int32_t *csum, int32_t *C, ptrdiff_t ldc)
{
    dl_igemm_fn fn = dl_igemm_impl;
    if (fn == 0) {  /* chosen once; a race only stores the same pointer twice */
        fn = dl_igemm_for(dl_igemm_cpu_isa());
        dl_igemm_impl = fn;
    }
    fn(m, panels, kq, A, lda, P, csum, C, ldc);
}

/* Tests: select the path (0 VNNI, 1 AVX2, 2 baseline) where the CPU has it; returns the previous
 * one, or -1 (unchanged) where it does not. */
static int dl_igemm_set_isa(int isa)
{
    int old;
    if (dl_igemm_impl == 0) dl_igemm_impl = dl_igemm_for(dl_igemm_cpu_isa());
#if DL_IG_X86
    old = dl_igemm_impl == dl_igemm_vnni ? 0 : dl_igemm_impl == dl_igemm_avx2 ? 1 : 2;
#else
    old = 2;
#endif
    if (isa < dl_igemm_cpu_isa() || isa > 2)
        return -1;
    dl_igemm_impl = dl_igemm_for(isa);
    return old;
}

/* Dynamic per-row quantization, Keras's abs-max rule: scale = 127 / (max |x| + 1e-7),
 * q = clip(round_half_even(x * scale), -127, 127); q's row is zero-padded from k to kp. */
DL_CLONES static void dl_quantize_row(ptrdiff_t k, ptrdiff_t kp, const float *x, int8_t *q, float *scale)
{
    float amax = 0.0f, s;
    int nan = 0;
    ptrdiff_t j;
    for (j = 0; j < k; j++) {
        float v = x[j] < 0 ? -x[j] : x[j];
        amax = v > amax ? v : amax;
        nan |= x[j] != x[j];
    }
    /* a NaN makes the row's scale NaN, so its outputs are NaN (as with Keras) */
    s = nan ? __builtin_nanf("") : 127.0f / (amax + 1e-7f);
    for (j = 0; j < k; j++) {
        float v = x[j] * s;
        /* round half to even (the default rounding mode) of the float32 product, as Keras: not the
         * 1.5 * 2^23 trick, which -ffp-contract=fast fuses with the product into an FMA */
        float r = __builtin_rintf(v);
        r = r > 127.0f ? 127.0f : r < -127.0f ? -127.0f : r;
        q[j] = r == r ? (int8_t)r : 0;  /* NaN (from NaN or inf inputs): 0 */
    }
    for (; j < kp; j++) q[j] = 0;
    *scale = s;
}

/* Static (per-tensor) quantization and requantization: q = clip(round_half_even(v), -127, 127)
 * of an already scaled v; NaN (from NaN or inf inputs) gives 0, as dl_quantize_row's values. */
static inline int8_t dl_round_q(float v)
{
    /* half to even (the default rounding mode); not the 1.5 * 2^23 trick, which contraction would
     * fuse with the scaling product into one FMA, rounding the exact product instead */
    float r = __builtin_rintf(v);
    r = r > 127.0f ? 127.0f : r;
    r = r < -127.0f ? -127.0f : r;
    r = r == r ? r : 0.0f;  /* selects only (NaN kept until here), so the loops calling it vectorize */
    return (int8_t)(int32_t)r;
}

/* q[j] = dl_round_q(x[j] * scale) for j < k. */
DL_CLONES static void dl_quantize_static(ptrdiff_t k, const float *x, float scale, int8_t *q)
{
    ptrdiff_t j;
    for (j = 0; j < k; j++) q[j] = dl_round_q(x[j] * scale);
}

/* The int8 convolutions' epilogue, one output pixel: y = acc / (ws * s) (+ bias) (then ReLU, NaN kept),
 * the dense epilogue's float32 operations in its order. */
DL_CLONES static void dl_iconv_scale_row_c(ptrdiff_t m, const int32_t *__restrict acc, const float *__restrict ws,
                                           float s, const float *__restrict bias, int relu, float *__restrict y)
{
    ptrdiff_t j;
    for (j = 0; j < m; j++) y[j] = (float)acc[j] / (ws[j] * s);
    if (bias)
        for (j = 0; j < m; j++) y[j] = y[j] + bias[j];
    if (relu)
        for (j = 0; j < m; j++) y[j] = y[j] < 0.0f ? 0.0f : y[j];
}

static void dl_requantize_row(ptrdiff_t m, const float *__restrict y, float scale, int8_t *__restrict q);

#if DL_IG_X86
/* Rows [r0, r0 + rows) of the epilogue 16 lanes at a time (masked tail), written as float32 (q NULL) or
 * requantized in registers to int8: q = dl_round_q(y * out_scale). */
__attribute__((target("avx512f"))) static void dl_iconv_epilogue_512(
    ptrdiff_t r0, ptrdiff_t rows, ptrdiff_t pix, ptrdiff_t m, const int32_t *acc, ptrdiff_t lda, const float *ws,
    const float *xs, const float *bias, int relu, float *y, float out_scale, int8_t *q)
{
    const __m512 zero = _mm512_setzero_ps(), vo = _mm512_set1_ps(out_scale);
    const __m512 hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-127.0f);
    ptrdiff_t i, j, b = r0 / pix, e = r0 % pix;
    for (i = 0; i < rows; i++) {
        const __m512 vs = _mm512_set1_ps(xs[b]);
        const int32_t *ar = acc + i * lda;
        for (j = 0; j < m; j += 16) {
            __mmask16 k = m - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (m - j)) - 1);
            __m512 v = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(k, ar + j));
            v = _mm512_div_ps(v, _mm512_mul_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(1.0f), k, ws + j), vs));
            if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, bias + j));
            if (relu) v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), v, zero);
            if (q) {
                v = _mm512_roundscale_ps(_mm512_mul_ps(v, vo), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q),
                                        _mm512_max_ps(_mm512_min_ps(v, hi), lo));
                __m128i b8 = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v));  /* in a register: the masked
                                                                         * store form is slow on Zen 4 */
                if (k == (__mmask16)0xFFFF) {
                    _mm_storeu_si128((__m128i *)(q + i * m + j), b8);
                } else {
                    int8_t tail[16];
                    _mm_storeu_si128((__m128i *)tail, b8);
                    memcpy(q + i * m + j, tail, (size_t)(m - j));
                }
            } else {
                _mm512_mask_storeu_ps(y + i * m + j, k, v);
            }
        }
        if (++e == pix) { e = 0; b++; }
    }
}
#endif

/* Rows [r0, r0 + rows) of the int8 convolutions' epilogue, act linear or ReLU: y (rows, m) float32, or with
 * q (rows, m) int8 the requantized values (``scratch``: rows * m floats for the paths without AVX-512).
 * The AVX-512 rows run where the int8 GEMM runs its VNNI path (so dl_igemm_set_isa tests both). */
static void dl_iconv_epilogue(ptrdiff_t r0, ptrdiff_t rows, ptrdiff_t pix, ptrdiff_t m, const int32_t *acc,
                              ptrdiff_t lda, const float *ws, const float *xs, const float *bias, int relu, float *y,
                              float out_scale, int8_t *q, float *scratch)
{
    ptrdiff_t i, b = r0 / pix, e = r0 % pix;
#if DL_IG_X86
    if (dl_igemm_impl == dl_igemm_vnni) {
        dl_iconv_epilogue_512(r0, rows, pix, m, acc, lda, ws, xs, bias, relu, y, out_scale, q);
        return;
    }
#endif
    if (q) y = scratch;
    for (i = 0; i < rows; i++) {
        dl_iconv_scale_row_c(m, acc + i * lda, ws, xs[b], bias, relu, y + i * m);
        if (++e == pix) { e = 0; b++; }
    }
    if (q) dl_requantize_row(rows * m, y, out_scale, q);
}

/* Requantization of one float32 row with a static scale: q = dl_round_q(y * scale). */
DL_CLONES static void dl_requantize_row(ptrdiff_t m, const float *__restrict y, float scale, int8_t *__restrict q)
{
    ptrdiff_t j;
    for (j = 0; j < m; j++) q[j] = dl_round_q(y[j] * scale);
}

/* dst[0, n) = src[0, n): constant-size copies (inlined moves) for the short runs of small-channel
 * convolutions, memcpy above. */
static inline void dl_copy_run(int8_t *dst, const int8_t *src, ptrdiff_t n)
{
    switch (n) {
#define DL_RUN(N) case N: memcpy(dst, src, N); return;
    DL_RUN(1) DL_RUN(2) DL_RUN(3) DL_RUN(4) DL_RUN(5) DL_RUN(6) DL_RUN(7) DL_RUN(8)
    DL_RUN(9) DL_RUN(10) DL_RUN(11) DL_RUN(12) DL_RUN(16) DL_RUN(24) DL_RUN(32) DL_RUN(48) DL_RUN(64)
    DL_RUN(96) DL_RUN(128) DL_RUN(192) DL_RUN(256) DL_RUN(384)
#undef DL_RUN
    default: memcpy(dst, src, (size_t)n);
    }
}

/* im2col of output pixels [r0, r0 + rows) of an NHWC int8 input (n, h, w, c) into rows of kp bytes:
 * (kh, kw, c) patches, zeros outside the input and on the padding k = kh kw c .. kp. A kernel row
 * inside the input with dilation 1 is one run of kw c contiguous bytes. */
static void dl_iconv_im2col(ptrdiff_t r0, ptrdiff_t rows, const int8_t *x, ptrdiff_t h, ptrdiff_t w, ptrdiff_t c,
                            ptrdiff_t oh, ptrdiff_t ow, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,
                            ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t kp, int8_t *cols)
{
    ptrdiff_t b = r0 / (oh * ow), e = r0 % (oh * ow), oy = e / ow, ox = e % ow, t, a, j;
    ptrdiff_t run = kw * c;
    for (t = 0; t < rows; t++) {
        int8_t *dst = cols + t * kp;
        ptrdiff_t iw0 = ox * sw - pw;
        int inside = dw == 1 && iw0 >= 0 && iw0 + kw <= w;
        for (a = 0; a < kh; a++) {
            ptrdiff_t ih = oy * sh - ph + a * dh;
            const int8_t *src = x + ((b * h + ih) * w + iw0) * c;
            if (ih < 0 || ih >= h) {
                memset(dst, 0, (size_t)run);
            } else if (inside) {
                dl_copy_run(dst, src, run);
            } else {
                for (j = 0; j < kw; j++) {
                    ptrdiff_t iw = iw0 + j * dw;
                    if (iw >= 0 && iw < w) dl_copy_run(dst + j * c, src + j * dw * c, c);
                    else memset(dst + j * c, 0, (size_t)c);
                }
            }
            dst += run;
        }
        if (kp > kh * run) memset(dst, 0, (size_t)(kp - kh * run));
        if (++ox == ow) {
            ox = 0;
            if (++oy == oh) { oy = 0; b++; }
        }
    }
}

/* One output row of int8 "valid" max pooling: y (ow, c) = max over the (ph, pw) windows of the input rows
 * starting at x (input row stride w * c), the windows moved by sw pixels. */
DL_CLONES static void dl_i8_max_pool_row(ptrdiff_t ow, ptrdiff_t c, ptrdiff_t w, ptrdiff_t ph, ptrdiff_t pw,
                                         ptrdiff_t sw, const int8_t *__restrict x, int8_t *__restrict y)
{
    ptrdiff_t j, a, e, q;
    for (j = 0; j < ow; j++) {
        int8_t *__restrict d = y + j * c;
        const int8_t *s0 = x + j * sw * c;
        for (q = 0; q < c; q++) d[q] = s0[q];
        for (a = 0; a < ph; a++)
            for (e = 0; e < pw; e++) {
                const int8_t *__restrict s = s0 + (a * w + e) * c;
                for (q = 0; q < c; q++) d[q] = s[q] > d[q] ? s[q] : d[q];
            }
    }
}

#endif
