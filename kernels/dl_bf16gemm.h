/* The gemm family's bfloat16 path (row-major): C (m, n) = op(A) op(B) with A and B rounded to
 * bfloat16 (round to nearest even) and the products summed in float32, as the mixed_bfloat16 /
 * bfloat16 dtype policies compute a Dense or matmul.
 *
 *     C = bf16(op(A)) (m, k) @ bf16(op(B)) (k, n) + beta * C  (+ bias (n,), then max(., 0) if relu)
 *
 * Operands arrive as float32 arrays (dlcore holds bfloat16 tensors as float32 arrays of
 * bf16-exact values: see ARCHITECTURE.md, "Precision policies"). Both are packed once per call
 * into pairs of bf16 along k (uint32: low half element 2p, high half element 2p+1; an odd k ends
 * with a zero pair half): A as rows of k/2 pairs, padded with zero rows to a multiple of DL_BMR;
 * B as panels of DL_BNR columns, each panel (k/2, DL_BNR) contiguous, zero-padded on the right.
 * op() is applied while packing, so a transposed operand costs nothing extra.
 *
 * Two tile variants, chosen once at run time (dl_bgemm_isa, dl_bgemm_set_isa for tests):
 * 0. AVX512_BF16: an 8x32 tile of C in 16 zmm accumulators; per pair of k one VDPBF16PS per
 *    accumulator (_mm512_dpbf16_ps: acc += a_hi b_hi + a_lo b_lo, bf16 products exact in fp32).
 * 1. Portable C (DL_CLONES: AVX-512 / AVX2 / baseline code): the same sums, same order, with
 *    float32 multiply-adds (exact products, so it agrees with 0. except for subnormals, which
 *    VDPBF16PS flushes to zero).
 * One-row products (batch-1 inference) skip the packing (dl_bgemm_few_rows: same sums, same
 * order). Also here: dl_round_bf16 (the policies' rounding) and the float16 casts.
 * Legend: m rows of C, n columns, k the summed dimension, kp = ceil(k / 2) bf16 pairs.
 */
#ifndef DL_BF16GEMM_H
#define DL_BF16GEMM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dl_clones.h"
#include "dl_sgemm_tiles.h"

#define DL_BMR 8
#define DL_BNR 32

static inline float dl_bf16_to_f32(uint32_t bits16)
{
    uint32_t u = bits16 << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* y[i] = x[i] rounded to the nearest bfloat16 (ties to even), as float32; y may be x. */
DL_CLONES static void dl_round_bf16(const float *x, float *y, ptrdiff_t size)
{
    ptrdiff_t i;
    for (i = 0; i < size; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        if ((u & 0x7fffffffu) > 0x7f800000u)
            u |= 0x00400000u;  /* NaN: quiet, kept */
        else
            u += 0x7fffu + ((u >> 16) & 1u);
        u &= 0xffff0000u;
        memcpy(&y[i], &u, 4);
    }
}

/* The bits of float32 u rounded to bfloat16 (nearest even), low 16 bits cleared; NaN kept. */
static inline uint32_t dl_bf16_bits(uint32_t u)
{
    uint32_t r = u + 0x7fffu + ((u >> 16) & 1u);
    r = (u & 0x7fffffffu) > 0x7f800000u ? (u | 0x00400000u) : r;
    return r & 0xffff0000u;
}

/* dst[p] = bf16 pair (row[2p], row[2p+1]) for p < ceil(k / 2) (an odd k pairs the last with 0),
 * written with stride `stride`. Branch-free, so the loop vectorizes. */
DL_CLONES static void dl_bpack_pairs(const float *row, ptrdiff_t k, uint32_t *dst, ptrdiff_t stride)
{
    const uint32_t *u = (const uint32_t *)row;
    ptrdiff_t p;
    for (p = 0; p < k / 2; p++)
        dst[p * stride] = (dl_bf16_bits(u[2 * p]) >> 16) | dl_bf16_bits(u[2 * p + 1]);
    if (k & 1)
        dst[(k / 2) * stride] = dl_bf16_bits(u[k - 1]) >> 16;
}

/* dst[j * stride] = bf16 pair (lo[j], hi[j]) for j < cols; hi NULL pairs with 0. */
DL_CLONES static void dl_bpack_rows(const float *lo, const float *hi, ptrdiff_t cols, uint32_t *dst,
                                    ptrdiff_t stride)
{
    const uint32_t *ul = (const uint32_t *)lo, *uh = (const uint32_t *)hi;
    ptrdiff_t j;
    if (hi)
        for (j = 0; j < cols; j++)
            dst[j * stride] = (dl_bf16_bits(ul[j]) >> 16) | dl_bf16_bits(uh[j]);
    else
        for (j = 0; j < cols; j++)
            dst[j * stride] = dl_bf16_bits(ul[j]) >> 16;
}

/* Rows of the packed A: m rounded up to DL_BMR. */
static inline ptrdiff_t dl_bgemm_rows(ptrdiff_t m) { return (m + DL_BMR - 1) / DL_BMR * DL_BMR; }
/* Columns of the packed B: n rounded up to DL_BNR. */
static inline ptrdiff_t dl_bgemm_cols(ptrdiff_t n) { return (n + DL_BNR - 1) / DL_BNR * DL_BNR; }

/* ap (dl_bgemm_rows(m), kp) = bf16 pairs of op(A) (m, k); A is (m, k) with row stride lda, or
 * stored (k, m) when trans_a. Rows from r0 to r1 only (r1 <= dl_bgemm_rows(m)), so callers can
 * split the packing over threads. */
static void dl_bgemm_pack_a(int trans_a, ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t m, ptrdiff_t k,
                            const float *a, ptrdiff_t lda, uint32_t *ap)
{
    ptrdiff_t kp = (k + 1) / 2, i, p, valid = r1 < m ? r1 : m;
    for (i = valid > r0 ? valid : r0; i < r1; i++)
        memset(ap + i * kp, 0, (size_t)kp * sizeof(uint32_t));
    if (valid <= r0)
        return;
    if (!trans_a) {
        for (i = r0; i < valid; i++)
            dl_bpack_pairs(a + i * lda, k, ap + i * kp, 1);
        return;
    }
    for (p = 0; p < kp; p++)  /* rows 2p and 2p+1 of the stored (k, m) are contiguous in i */
        dl_bpack_rows(a + 2 * p * lda + r0, 2 * p + 1 < k ? a + (2 * p + 1) * lda + r0 : NULL,
                      valid - r0, ap + r0 * kp + p, kp);
}

/* bp = panels of op(B) (k, n): panel q holds columns [q*DL_BNR, (q+1)*DL_BNR) as (kp, DL_BNR)
 * pairs; B is (k, n) with row stride ldb, or stored (n, k) when trans_b. Panels q0..q1 only. */
static void dl_bgemm_pack_b(int trans_b, ptrdiff_t q0, ptrdiff_t q1, ptrdiff_t k, ptrdiff_t n,
                            const float *b, ptrdiff_t ldb, uint32_t *bp)
{
    ptrdiff_t kp = (k + 1) / 2, q, p, jj;
    for (q = q0; q < q1; q++) {
        uint32_t *panel = bp + q * kp * DL_BNR;
        ptrdiff_t j0 = q * DL_BNR, cols = n - j0 < DL_BNR ? n - j0 : DL_BNR;
        if (cols < DL_BNR)
            memset(panel, 0, (size_t)kp * DL_BNR * sizeof(uint32_t));
        if (trans_b) {
            for (jj = 0; jj < cols; jj++)
                dl_bpack_pairs(b + (j0 + jj) * ldb, k, panel + jj, DL_BNR);
        } else {
            for (p = 0; p < kp; p++)
                dl_bpack_rows(b + 2 * p * ldb + j0, 2 * p + 1 < k ? b + (2 * p + 1) * ldb + j0 : NULL,
                              cols, panel + p * DL_BNR, 1);
        }
    }
}

/* The store of one tile: C rows [0, rows) and columns [0, cols) of acc (DL_BMR, DL_BNR). */
static inline void dl_bgemm_store(const float *acc, ptrdiff_t rows, ptrdiff_t cols, float beta,
                                  float *c, ptrdiff_t ldc, const float *bias, int relu)
{
    ptrdiff_t r, jj;
    for (r = 0; r < rows; r++) {
        for (jj = 0; jj < cols; jj++) {
            float v = acc[r * DL_BNR + jj];
            if (beta != 0.0f)
                v += beta * c[r * ldc + jj];
            if (bias)
                v += bias[jj];
            if (relu && !(v > 0.0f))
                v = v != v ? v : 0.0f;
            c[r * ldc + jj] = v;
        }
    }
}

typedef void (*dl_btile_fn)(ptrdiff_t kp, const uint32_t *ap, const uint32_t *bp, ptrdiff_t rows,
                            ptrdiff_t cols, float beta, float *c, ptrdiff_t ldc, const float *bias,
                            int relu);

/* 1. Portable tile: acc += a_hi b_hi, then += a_lo b_lo, per pair (VDPBF16PS's order). */
DL_CLONES static void dl_btile_base(ptrdiff_t kp, const uint32_t *ap, const uint32_t *bp,
                                    ptrdiff_t rows, ptrdiff_t cols, float beta, float *c,
                                    ptrdiff_t ldc, const float *bias, int relu)
{
    float acc[DL_BMR * DL_BNR];
    float blo[DL_BNR], bhi[DL_BNR];
    ptrdiff_t p, r, jj;
    memset(acc, 0, sizeof(acc));
    for (p = 0; p < kp; p++) {
        for (jj = 0; jj < DL_BNR; jj++) {
            blo[jj] = dl_bf16_to_f32(bp[p * DL_BNR + jj] & 0xffffu);
            bhi[jj] = dl_bf16_to_f32(bp[p * DL_BNR + jj] >> 16);
        }
        for (r = 0; r < DL_BMR; r++) {
            float alo = dl_bf16_to_f32(ap[r * kp + p] & 0xffffu);
            float ahi = dl_bf16_to_f32(ap[r * kp + p] >> 16);
            for (jj = 0; jj < DL_BNR; jj++) {
                float t = acc[r * DL_BNR + jj] + ahi * bhi[jj];
                acc[r * DL_BNR + jj] = t + alo * blo[jj];
            }
        }
    }
    dl_bgemm_store(acc, rows, cols, beta, c, ldc, bias, relu);
}

#if defined(__GNUC__) && defined(__x86_64__) && (__GNUC__ >= 10 || defined(__clang__))
#include <immintrin.h>
#define DL_HAVE_BF16_BUILD 1
#define DL_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

/* 0. AVX512_BF16 tile: 8 rows x 32 columns of C in 16 zmm registers. */
DL_BF16_TARGET static void dl_btile_avx512bf16(ptrdiff_t kp, const uint32_t *ap, const uint32_t *bp,
                                               ptrdiff_t rows, ptrdiff_t cols, float beta, float *c,
                                               ptrdiff_t ldc, const float *bias, int relu)
{
    ptrdiff_t p;
    DL_ROWS_8(DL_DECL)
    for (p = 0; p < kp; p++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512((const void *)(bp + p * DL_BNR));
        __m512bh b1 = (__m512bh)_mm512_loadu_si512((const void *)(bp + p * DL_BNR + 16));
        __m512bh a;
#define DL_BROW(i)                                                                  \
        a = (__m512bh)_mm512_set1_epi32((int)ap[(i) * kp + p]);                     \
        c##i##0 = _mm512_dpbf16_ps(c##i##0, a, b0);                                 \
        c##i##1 = _mm512_dpbf16_ps(c##i##1, a, b1);
        DL_ROWS_8(DL_BROW)
#undef DL_BROW
    }
    if (rows == DL_BMR && cols == DL_BNR && beta == 0.0f) {
        /* the float32 tiles' epilogue (DL_EPI: NaN kept by the ReLU, as in dl_bgemm_store) */
        __m512 vb0 = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
        __m512 vb1 = bias ? _mm512_loadu_ps(bias + 16) : _mm512_setzero_ps();
#define DL_BSTORE(i)                                                                \
        DL_EPI(i)                                                                   \
        _mm512_storeu_ps(c + (i) * ldc, c##i##0);                                   \
        _mm512_storeu_ps(c + (i) * ldc + 16, c##i##1);
        DL_ROWS_8(DL_BSTORE)
#undef DL_BSTORE
        return;
    }
    {
        float acc[DL_BMR * DL_BNR];
#define DL_BSPILL(i)                                                                \
        _mm512_storeu_ps(acc + (i) * DL_BNR, c##i##0);                              \
        _mm512_storeu_ps(acc + (i) * DL_BNR + 16, c##i##1);
        DL_ROWS_8(DL_BSPILL)
#undef DL_BSPILL
        dl_bgemm_store(acc, rows, cols, beta, c, ldc, bias, relu);
    }
}
#else
#define DL_HAVE_BF16_BUILD 0
#endif

/* Few rows of C, B (k, n) not transposed, beta == 0 (batch-1 inference): each row of C summed
 * straight from A and B, rounding as it reads, pairs in the tiles' order (acc += a_hi b_hi, then
 * += a_lo b_lo), so the result is the tiles' (bit for bit for normal numbers) without packing B,
 * which costs more than the product when C has one row. */
DL_CLONES static void dl_bgemm_few_rows(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda,
                                        const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc,
                                        const float *bias, int relu)
{
    ptrdiff_t i, p, j;
    for (i = 0; i < m; i++) {
        const uint32_t *ai = (const uint32_t *)(a + i * lda);
        float *ci = c + i * ldc;
        for (j = 0; j < n; j++)
            ci[j] = 0.0f;
        for (p = 0; p < k; p += 2) {
            const uint32_t *lo = (const uint32_t *)(b + p * ldb);
            uint32_t alo_bits = dl_bf16_bits(ai[p]), ahi_bits = p + 1 < k ? dl_bf16_bits(ai[p + 1]) : 0u;
            float alo, ahi;
            memcpy(&alo, &alo_bits, 4);
            memcpy(&ahi, &ahi_bits, 4);
            if (p + 1 < k) {
                const uint32_t *hi = (const uint32_t *)(b + (p + 1) * ldb);
                for (j = 0; j < n; j++) {
                    uint32_t bl = dl_bf16_bits(lo[j]), bh = dl_bf16_bits(hi[j]);
                    float fl, fh;
                    memcpy(&fl, &bl, 4);
                    memcpy(&fh, &bh, 4);
                    float t = ci[j] + ahi * fh;
                    ci[j] = t + alo * fl;
                }
            } else {
                for (j = 0; j < n; j++) {
                    uint32_t bl = dl_bf16_bits(lo[j]);
                    float fl;
                    memcpy(&fl, &bl, 4);
                    ci[j] = (ci[j] + ahi * 0.0f) + alo * fl;
                }
            }
        }
        for (j = 0; j < n; j++) {
            float v = ci[j] + (bias ? bias[j] : 0.0f);
            if (relu && !(v > 0.0f))
                v = v != v ? v : 0.0f;
            ci[j] = v;
        }
    }
}

/* float32 <-> float16 conversions (round to nearest even), for the float16 policies' casts:
 * vectorized F16C / AVX-512 code through DL_CLONES where the compiler has _Float16 (GCC >= 12,
 * clang >= 15 on x86-64); dl_have_float16() == 0 otherwise (callers then use NumPy's casts). */
#if defined(__FLT16_MAX__)
#define DL_HAVE_FLOAT16 1
DL_CLONES static void dl_cast_f16(const float *x, uint16_t *y, ptrdiff_t size)
{
    _Float16 *h = (_Float16 *)y;
    ptrdiff_t i;
    for (i = 0; i < size; i++)
        h[i] = (_Float16)x[i];
}

DL_CLONES static void dl_widen_f16(const uint16_t *x, float *y, ptrdiff_t size)
{
    const _Float16 *h = (const _Float16 *)x;
    ptrdiff_t i;
    for (i = 0; i < size; i++)
        y[i] = (float)h[i];
}
#else
#define DL_HAVE_FLOAT16 0
static void dl_cast_f16(const float *x, uint16_t *y, ptrdiff_t size) { (void)x; (void)y; (void)size; }
static void dl_widen_f16(const uint16_t *x, float *y, ptrdiff_t size) { (void)x; (void)y; (void)size; }
#endif

static int dl_have_float16(void) { return DL_HAVE_FLOAT16; }

static int dl_bgemm_isa_chosen = -1;

/* The tile variant this CPU runs: 0 AVX512_BF16, 1 portable. */
static int dl_bgemm_isa(void)
{
    if (dl_bgemm_isa_chosen < 0) {
        int isa = 1;
#if DL_HAVE_BF16_BUILD
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
                && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16"))
            isa = 0;
#endif
        dl_bgemm_isa_chosen = isa;
    }
    return dl_bgemm_isa_chosen;
}

/* Tests: run variant isa (0 AVX512_BF16 where the CPU has it, 1 portable); returns the previous
 * one, or -1 (nothing changed) when the CPU lacks isa. */
static int dl_bgemm_set_isa(int isa)
{
    int old = dl_bgemm_isa();
    if (isa == 0) {
        dl_bgemm_isa_chosen = -1;
        if (dl_bgemm_isa() != 0) {
            dl_bgemm_isa_chosen = old;
            return -1;
        }
        return old;
    }
    dl_bgemm_isa_chosen = 1;
    return old;
}

/* C rows [r0, r1) (r0 a multiple of DL_BMR) of the packed product, every column. */
static void dl_bgemm_packed(ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t n, ptrdiff_t k, const uint32_t *ap,
                            const uint32_t *bp, float beta, float *c, ptrdiff_t ldc,
                            const float *bias, int relu)
{
    ptrdiff_t kp = (k + 1) / 2, i0, q, panels = (n + DL_BNR - 1) / DL_BNR;
    dl_btile_fn tile = dl_btile_base;
#if DL_HAVE_BF16_BUILD
    if (dl_bgemm_isa() == 0)
        tile = dl_btile_avx512bf16;
#endif
    for (q = 0; q < panels; q++) {
        ptrdiff_t j0 = q * DL_BNR, cols = n - j0 < DL_BNR ? n - j0 : DL_BNR;
        for (i0 = r0; i0 < r1; i0 += DL_BMR) {
            ptrdiff_t rows = r1 - i0 < DL_BMR ? r1 - i0 : DL_BMR;
            tile(kp, ap + i0 * kp, bp + q * kp * DL_BNR, rows, cols, beta, c + i0 * ldc + j0, ldc,
                 bias ? bias + j0 : NULL, relu);
        }
    }
}

#endif
