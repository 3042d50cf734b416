/* The own float32 GEMM on every ISA, with B packed into column strips (row-major):
 *
 *     C (m, n) = epilogue(op(A) (m, k) @ B (k, n) + beta * C)     (beta == 0: C is not read)
 *
 * op(A) as in dl_sgemm.h ("rows": A[i*lda + p]; "cols", A stored transposed: A[p*lda + i]); the
 * epilogue adds bias (n,) when not NULL, then max(., 0) when relu.
 *
 * Why packing: B read in place with a power-of-two row stride (1024 floats) maps every row of a
 * 32-column tile to the same few L1/L2 sets, so the B block that should stay in L2 is evicted;
 * 1024^3 ran at 62 GFLOPS on a Zen 4 core against OpenBLAS's 100. Packed, each strip of W
 * columns is k rows of W floats, contiguous (zeros past n): P[q*k*W + p*W + j]. Every strip
 * walks in order, whatever the block, and the packing is shared by the threads of one call.
 *
 * ISA levels (dl_cpu_isa()): 0 AVX-512 (the 14x32 zmm tiles of dl_sgemm.h on 32-wide strips),
 * 1 AVX2 + FMA (6x16 tiles, 12 ymm accumulators), 2 the baseline (4x8, SSE2 vectors). Each
 * element is one FMA chain over p = 0..k-1 taken in DL_KC blocks (a block's partial sum is
 * added to C): results do not depend on the row split between threads.
 */
#ifndef DL_SGEMM_ISA_H
#define DL_SGEMM_ISA_H

#include <stdlib.h>
#include "dl_sgemm.h"

/* The strip width of level isa's packing. */
static int dl_own_width(int isa)
{
    return isa == 0 ? 32 : isa == 1 ? 16 : 8;
}

/* Floats of the packed B for level isa. */
static ptrdiff_t dl_own_packed_size(int isa, ptrdiff_t k, ptrdiff_t n)
{
    ptrdiff_t w = dl_own_width(isa);
    return (n + w - 1) / w * w * (k > 0 ? k : 1);
}

/* Pack strips [q0, q1) of op(B) (k, n); trans_b: B stored (n, k). */
static void dl_own_pack(int isa, int trans_b, ptrdiff_t k, ptrdiff_t n, const float *b,
                        ptrdiff_t ldb, float *P, ptrdiff_t q0, ptrdiff_t q1)
{
    ptrdiff_t w = dl_own_width(isa), q, p, j, cols;
    for (q = q0; q < q1; q++) {
        float *dst = P + q * k * w;
        cols = n - q * w < w ? n - q * w : w;
        if (!trans_b) {
            for (p = 0; p < k; p++) {
                const float *src = b + p * ldb + q * w;
                for (j = 0; j < cols; j++) dst[p * w + j] = src[j];
                for (; j < w; j++) dst[p * w + j] = 0.0f;
            }
        } else {
            for (p = 0; p < k; p++)
                for (j = cols; j < w; j++) dst[p * w + j] = 0.0f;
            for (j = 0; j < cols; j++) {
                const float *src = b + (q * w + j) * ldb;
                for (p = 0; p < k; p++) dst[p * w + j] = src[p];
            }
        }
    }
}

#if DL_HAVE_AVX512_BUILD
/* The AVX2 (6x16) and baseline (4x8) tiles on a packed strip: the vector tiles of
 * dl_sgemm_tiles.h with the scalar epilogue on the first nr columns. */
typedef float dl_pk8 __attribute__((vector_size(32)));
typedef float dl_pk4 __attribute__((vector_size(16)));
#define DL_AVX2_ATTR __attribute__((target("avx2,fma")))
#define DL_PK_TILES(ISA, ATTR, VT, W, MR)                                                        \
DL_VEC_TILE(dl_pk_##ISA##_rows_##MR, ATTR, VT, W, 2, 1, MR, DL_VA_ROWS, 0, DL_INIT_ZERO, DL_STORE_EPI) \
DL_VEC_TILE(dl_pk_##ISA##_rows_1, ATTR, VT, W, 2, 1, 1, DL_VA_ROWS, 0, DL_INIT_ZERO, DL_STORE_EPI) \
DL_VEC_TILE(dl_pk_##ISA##_cols_##MR, ATTR, VT, W, 2, 1, MR, DL_VA_COLS, 0, DL_INIT_ZERO, DL_STORE_EPI) \
DL_VEC_TILE(dl_pk_##ISA##_cols_1, ATTR, VT, W, 2, 1, 1, DL_VA_COLS, 0, DL_INIT_ZERO, DL_STORE_EPI)
DL_PK_TILES(avx2, DL_AVX2_ATTR, dl_pk8, 8, 6)
DL_PK_TILES(base, , dl_pk4, 4, 4)

/* One k block of rows [0, m) on packed strips [q0, q1) (strip q at P + q*k*W + p0*W). */
DL_TARGET static void dl_own_block512(int a_cols, ptrdiff_t m, ptrdiff_t n, ptrdiff_t kb,
                                      const float *a, ptrdiff_t lda, const float *P, ptrdiff_t sq,
                                      ptrdiff_t q0, ptrdiff_t q1, float beta, float *c,
                                      ptrdiff_t ldc, const float *bias, int relu)
{
    ptrdiff_t n1 = q1 * 32 < n ? q1 * 32 : n;
    dl_zmm_panel(a_cols, m, n1 - q0 * 32, kb, a, lda, P + q0 * sq, 32, sq / 32, beta,
                 c + q0 * 32, ldc, bias ? bias + q0 * 32 : NULL, relu);
}
#endif

typedef void (*dl_pk_tile_fn)(ptrdiff_t, const float *, ptrdiff_t, const float *, ptrdiff_t,
                              ptrdiff_t, float, const float *, float *, ptrdiff_t, ptrdiff_t, int);

static void dl_own_block_generic(int isa, int a_cols, ptrdiff_t m, ptrdiff_t n, ptrdiff_t kb,
                                 const float *a, ptrdiff_t lda, const float *P, ptrdiff_t sq,
                                 ptrdiff_t q0, ptrdiff_t q1, float beta, float *c, ptrdiff_t ldc,
                                 const float *bias, int relu)
{
#if DL_HAVE_AVX512_BUILD
    int mr = isa == 1 ? 6 : 4, w = isa == 1 ? 16 : 8, nr;
    dl_pk_tile_fn full, one;
    ptrdiff_t i, q;
    if (isa == 1) {
        full = a_cols ? dl_pk_avx2_cols_6 : dl_pk_avx2_rows_6;
        one = a_cols ? dl_pk_avx2_cols_1 : dl_pk_avx2_rows_1;
    } else {
        full = a_cols ? dl_pk_base_cols_4 : dl_pk_base_rows_4;
        one = a_cols ? dl_pk_base_cols_1 : dl_pk_base_rows_1;
    }
    for (q = q0; q < q1; q++) {  /* a strip stays in L1/L2 while every row panel passes */
        nr = n - q * w < w ? (int)(n - q * w) : w;
        for (i = 0; i < m; ) {
            const float *ai = a_cols ? a + i : a + i * lda;
            const float *bj = bias ? bias + q * w : NULL;
            if (m - i >= mr) {
                full(kb, ai, lda, P + q * sq, w, 0, beta, bj, c + i * ldc + q * w, ldc, nr, relu);
                i += mr;
            } else {
                one(kb, ai, lda, P + q * sq, w, 0, beta, bj, c + i * ldc + q * w, ldc, nr, relu);
                i += 1;
            }
        }
    }
#else
    (void)isa; (void)a_cols; (void)m; (void)n; (void)kb; (void)a; (void)lda; (void)P; (void)sq;
    (void)q0; (void)q1; (void)beta; (void)c; (void)ldc; (void)bias; (void)relu;
#endif
}

/* Strips per column block (the block of B held in L2 while the rows pass): DL_NC columns. */
#define DL_OWN_NC 128

/* C rows [0, m) from the packed B of op(B) (k, n) (dl_own_pack over all strips), level isa. */
static void dl_own_packed(int isa, int a_cols, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                          const float *a, ptrdiff_t lda, const float *P, float beta, float *c,
                          ptrdiff_t ldc, const float *bias, int relu)
{
    ptrdiff_t w = dl_own_width(isa), nq = (n + w - 1) / w, per = DL_OWN_NC / w;
    ptrdiff_t q0, q1, p0, kb;
    for (q0 = 0; q0 < nq; q0 += per) {
        q1 = q0 + per < nq ? q0 + per : nq;
        for (p0 = 0; p0 < k; p0 += DL_KC) {
            kb = k - p0 < DL_KC ? k - p0 : DL_KC;
            int last = p0 + DL_KC >= k;
            const float *ap = a_cols ? a + p0 * lda : a + p0;
            const float *bb = last && bias ? bias : NULL;
#if DL_HAVE_AVX512_BUILD
            if (isa == 0) {
                dl_own_block512(a_cols, m, n, kb, ap, lda, P + p0 * w, k * w, q0, q1,
                                p0 == 0 ? beta : 1.0f, c, ldc, bb, last && relu);
                continue;
            }
#endif
            dl_own_block_generic(isa, a_cols, m, n, kb, ap, lda, P + p0 * w, k * w, q0, q1,
                                 p0 == 0 ? beta : 1.0f, c, ldc, bb, last && relu);
        }
    }
}

/* Whether level isa runs on this CPU and build. */
static int dl_own_isa_available(int isa)
{
#if DL_HAVE_AVX512_BUILD
    if (isa == 0) return dl_sgemm_available();
    return isa >= dl_cpu_isa() && isa <= 2;
#else
    (void)isa;
    return 0;
#endif
}

/* One-thread own GEMM at level isa for callers inside their own threads (conv): AVX-512 reads B
 * in place (dl_sgemm_ep); the other levels pack B into a scratch buffer. Returns -1 when out of
 * memory (nothing written). */
DL_MAYBE_UNUSED static int dl_own_sgemm(int isa, int a_cols, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                        const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb, float beta,
                        float *c, ptrdiff_t ldc, const float *bias, int relu)
{
    float *P;
    ptrdiff_t w = dl_own_width(isa);
    if (isa == 0) {
        dl_sgemm_ep(a_cols, m, n, k, a, lda, b, ldb, beta, c, ldc, bias, relu);
        return 0;
    }
    P = (float *)malloc(dl_own_packed_size(isa, k, n) * sizeof(float));
    if (P == NULL)
        return -1;
    dl_own_pack(isa, 0, k, n, b, ldb, P, 0, (n + w - 1) / w);
    dl_own_packed(isa, a_cols, m, n, k, a, lda, P, beta, c, ldc, bias, relu);
    free(P);
    return 0;
}

/* The physical float32 FMA peak, for the benchmark report: iters steps of 12 independent FMA
 * chains on registers (no memory traffic), in the widest vectors of level isa; returns a sum
 * of the chains (so the loop is kept). Flops done: iters * 12 * 2 * width. */
#if DL_HAVE_AVX512_BUILD
#define DL_FMA12(V, FMA, SET1, ADD, REDUCE)                                                      \
    V x0 = SET1(1.0f), x1 = SET1(1.1f), x2 = SET1(1.2f), x3 = SET1(1.3f), x4 = SET1(1.4f),       \
      x5 = SET1(1.5f), x6 = SET1(1.6f), x7 = SET1(1.7f), x8 = SET1(1.8f), x9 = SET1(1.9f),       \
      x10 = SET1(2.0f), x11 = SET1(2.1f), m = SET1(0.999999f), a = SET1(1e-7f);                  \
    long i;                                                                                      \
    for (i = 0; i < iters; i++) {                                                                \
        x0 = FMA(x0, m, a); x1 = FMA(x1, m, a); x2 = FMA(x2, m, a); x3 = FMA(x3, m, a);          \
        x4 = FMA(x4, m, a); x5 = FMA(x5, m, a); x6 = FMA(x6, m, a); x7 = FMA(x7, m, a);          \
        x8 = FMA(x8, m, a); x9 = FMA(x9, m, a); x10 = FMA(x10, m, a); x11 = FMA(x11, m, a);      \
    }                                                                                            \
    x0 = ADD(ADD(ADD(x0, x1), ADD(x2, x3)), ADD(ADD(x4, x5), ADD(x6, x7)));                      \
    x0 = ADD(x0, ADD(ADD(x8, x9), ADD(x10, x11)));                                               \
    return REDUCE(x0);

DL_TARGET static float dl_fma_loop_512(long iters)
{
    DL_FMA12(__m512, _mm512_fmadd_ps, _mm512_set1_ps, _mm512_add_ps, _mm512_reduce_add_ps)
}

static inline float dl_sum8(__m256 v) __attribute__((target("avx2,fma")));
static inline float dl_sum8(__m256 v)
{
    float t[8];
    _mm256_storeu_ps(t, v);
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

__attribute__((target("avx2,fma"))) static float dl_fma_loop_256(long iters)
{
    DL_FMA12(__m256, _mm256_fmadd_ps, _mm256_set1_ps, _mm256_add_ps, dl_sum8)
}
#endif

/* (flops per step, sum) of the FMA loop at level isa (0 AVX-512, 1 AVX2; else 0 flops). */
DL_MAYBE_UNUSED static float dl_fma_loop(int isa, long iters, long *flops)
{
#if DL_HAVE_AVX512_BUILD
    if (isa == 0 && dl_own_isa_available(0)) {
        *flops = iters * 12 * 2 * 16;
        return dl_fma_loop_512(iters);
    }
    if (isa <= 1 && dl_own_isa_available(1)) {
        *flops = iters * 12 * 2 * 8;
        return dl_fma_loop_256(iters);
    }
#endif
    (void)isa; (void)iters;
    *flops = 0;
    return 0.0f;
}

#endif
