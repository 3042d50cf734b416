/* the kernels' own single-threaded float32 GEMM for AVX-512 CPUs (row-major):
 *
 *     C (m, n) = op(A) (m, k) @ B (k, n) + beta * C      (beta == 0: C is not read)
 *
 * op(A) is A (m, k) with row stride lda ("rows": A[i*lda + p]) or A^T stored (k, m) with row
 * stride lda ("cols": A[p*lda + i]). B is always (k, n) with row stride ldb: a caller with a
 * transposed B transposes it once (dl_transpose) and reuses it across its calls.
 *
 * Why: scipy's OpenBLAS is the AVX2 (Haswell) build on machines that pin OPENBLAS_CORETYPE, and
 * even its AVX-512 kernels repack both operands on every call, which dominates the small
 * products of a convolution chunk. This kernel packs nothing: a tile of up to 14x32 of C lives
 * in 28 zmm registers, each step of k loads two vectors of B (one 32-float row) and broadcasts
 * 14 elements of A straight from memory into the FMAs. Rows of A and B are streamed in order,
 * so the hardware prefetchers keep them in L1/L2. Edges: columns with masked loads and stores;
 * the last rows of a panel (< 14) with 8-, 4-, 2- and 1-row tiles (no padding, no copies).
 *
 * Only for CPUs with AVX-512F/VL/DQ (dl_sgemm_available()); the callers use BLAS otherwise.
 * Compiled per function with target attributes, so the extension still runs on any x86-64.
 */
#ifndef DL_SGEMM_H
#define DL_SGEMM_H

#include <stddef.h>
#include <string.h>

#if defined(__GNUC__)
#define DL_MAYBE_UNUSED __attribute__((unused))
#else
#define DL_MAYBE_UNUSED
#endif

#define DL_MR 14
#define DL_NR 32
#define DL_KC 640
#define DL_NC 128

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define DL_HAVE_AVX512_BUILD 1
#define DL_TARGET __attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma")))
#else
#define DL_HAVE_AVX512_BUILD 0
#endif

static int dl_sgemm_available(void)
{
#if DL_HAVE_AVX512_BUILD
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512dq");
#else
    return 0;
#endif
}

/* dst (cols, rows) = src (rows, cols)^T, src row stride lds, dst row stride ldd. */
DL_MAYBE_UNUSED static void dl_transpose(const float *src, ptrdiff_t lds, ptrdiff_t rows, ptrdiff_t cols,
                         float *dst, ptrdiff_t ldd)
{
    ptrdiff_t i0, j0, i, j;
    for (i0 = 0; i0 < rows; i0 += 16)
        for (j0 = 0; j0 < cols; j0 += 16)
            for (i = i0; i < rows && i < i0 + 16; i++)
                for (j = j0; j < cols && j < j0 + 16; j++)
                    dst[j * ldd + i] = src[i * lds + j];
}

#if DL_HAVE_AVX512_BUILD

#define DL_ROWS_14(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13)
#define DL_ROWS_8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define DL_ROWS_4(X) X(0) X(1) X(2) X(3)
#define DL_ROWS_2(X) X(0) X(1)
#define DL_ROWS_1(X) X(0)

#define DL_DECL(i) __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = _mm512_setzero_ps();

/* Row i of the tile: C = epilogue(acc + beta C), columns masked by m0/m1. */
#define DL_STORE(i)                                                                         \
    {                                                                                       \
        float *cr = c + (ptrdiff_t)i * ldc;                                                 \
        if (beta != 0.0f) {                                                                 \
            c##i##0 = _mm512_fmadd_ps(vbeta, _mm512_maskz_loadu_ps(m0, cr), c##i##0);       \
            c##i##1 = _mm512_fmadd_ps(vbeta, _mm512_maskz_loadu_ps(m1, cr + 16), c##i##1);  \
        }                                                                                   \
        if (bias != NULL) {                                                                 \
            c##i##0 = _mm512_add_ps(c##i##0, vb0);                                          \
            c##i##1 = _mm512_add_ps(c##i##1, vb1);                                          \
        }                                                                                   \
        if (relu) { /* max(0, NaN) is NaN: vmaxps returns its second operand on NaN */      \
            c##i##0 = _mm512_max_ps(_mm512_setzero_ps(), c##i##0);                          \
            c##i##1 = _mm512_max_ps(_mm512_setzero_ps(), c##i##1);                          \
        }                                                                                   \
        _mm512_mask_storeu_ps(cr, m0, c##i##0);                                             \
        _mm512_mask_storeu_ps(cr + 16, m1, c##i##1);                                        \
    }

/* A in "rows" layout: element (i, p) at a[i*lda + p]. */
#define DL_FMA_ROWS(i)                                                                      \
    { __m512 ai = _mm512_set1_ps(a[(ptrdiff_t)i * lda + p]);                                \
      c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0); c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1); }

/* Rows layout: every 16 steps of k, each row's line 8 lines ahead is prefetched (with short
 * rows that is the next row panel, which the hardware prefetchers miss: 14 interleaved
 * streams). 1x1 convolution (k = 64), 16 MB each way: 118 -> 147 GFLOPS (4 lines: 143). */
#define DL_PF_ROWS(i) _mm_prefetch((const char *)(a + (ptrdiff_t)i * lda + p + 128), _MM_HINT_T0);
#define DL_PF_ROWS_EVERY16(ROWS) if ((p & 15) == 0) { ROWS(DL_PF_ROWS) }
#define DL_PF_NONE(ROWS)

/* A in "cols" layout: element (i, p) at a[p*lda + i]. */
#define DL_FMA_COLS(i)                                                                      \
    { __m512 ai = _mm512_set1_ps(a[p * lda + i]);                                           \
      c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0); c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1); }

/* dl_tile_<layout>_<R>: the C tile (R rows, nr <= 32 columns) = epilogue(sum_p A(i, p) B(p, j)
 * + beta C), with the accumulators in 2R zmm registers. */
#define DL_DEFINE_TILE(NAME, ROWS, FMA, PF)                                                 \
DL_TARGET static void NAME(ptrdiff_t k, const float *a, ptrdiff_t lda, const float *b,      \
                           ptrdiff_t ldb, float beta, float *c, ptrdiff_t ldc, int nr,      \
                           const float *bias, int relu)                                     \
{                                                                                           \
    __mmask16 m0 = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1u);                        \
    __mmask16 m1 = nr >= 32 ? 0xFFFF : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1u); \
    __m512 vbeta = _mm512_set1_ps(beta);                                                    \
    __m512 vb0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();              \
    __m512 vb1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();         \
    ptrdiff_t p;                                                                            \
    ROWS(DL_DECL)                                                                           \
    for (p = 0; p < k; p++) {                                                               \
        __m512 b0 = _mm512_maskz_loadu_ps(m0, b + p * ldb);                                 \
        __m512 b1 = _mm512_maskz_loadu_ps(m1, b + p * ldb + 16);                            \
        PF(ROWS)                                                                            \
        ROWS(FMA)                                                                           \
    }                                                                                       \
    ROWS(DL_STORE)                                                                          \
}

DL_DEFINE_TILE(dl_tile_rows_14, DL_ROWS_14, DL_FMA_ROWS, DL_PF_ROWS_EVERY16)
DL_DEFINE_TILE(dl_tile_rows_8, DL_ROWS_8, DL_FMA_ROWS, DL_PF_ROWS_EVERY16)
DL_DEFINE_TILE(dl_tile_rows_4, DL_ROWS_4, DL_FMA_ROWS, DL_PF_ROWS_EVERY16)
DL_DEFINE_TILE(dl_tile_rows_2, DL_ROWS_2, DL_FMA_ROWS, DL_PF_ROWS_EVERY16)
DL_DEFINE_TILE(dl_tile_rows_1, DL_ROWS_1, DL_FMA_ROWS, DL_PF_ROWS_EVERY16)
DL_DEFINE_TILE(dl_tile_cols_14, DL_ROWS_14, DL_FMA_COLS, DL_PF_NONE)
DL_DEFINE_TILE(dl_tile_cols_8, DL_ROWS_8, DL_FMA_COLS, DL_PF_NONE)
DL_DEFINE_TILE(dl_tile_cols_4, DL_ROWS_4, DL_FMA_COLS, DL_PF_NONE)
DL_DEFINE_TILE(dl_tile_cols_2, DL_ROWS_2, DL_FMA_COLS, DL_PF_NONE)
DL_DEFINE_TILE(dl_tile_cols_1, DL_ROWS_1, DL_FMA_COLS, DL_PF_NONE)

/* The tile height for the rows left (14, then 8 + 4 + 2 + 1 for any remainder < 14), and the
 * call of the tile of that height. */
#define DL_TILE_HEIGHT(left) ((left) >= 14 ? 14 : (left) >= 8 ? 8 : (left) >= 4 ? 4 : (left) >= 2 ? 2 : 1)
#define DL_BY_HEIGHT(h, CALL)                                                               \
    switch (h) {                                                                            \
    case 14: CALL(14) break;                                                                \
    case 8: CALL(8) break;                                                                  \
    case 4: CALL(4) break;                                                                  \
    case 2: CALL(2) break;                                                                  \
    default: CALL(1) break;                                                                 \
    }

/* Rows [i, i + rows) of one block, rows <= 14: the tallest tile that fits, then smaller ones
 * for the rest (8 + 4 + 2 + 1 covers any remainder without padding or copying). */
DL_TARGET static void dl_row_panel(int a_cols, ptrdiff_t rows, ptrdiff_t n, ptrdiff_t k,
                                   const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb,
                                   float beta, float *c, ptrdiff_t ldc, const float *bias,
                                   int relu)
{
    ptrdiff_t i = 0, j;
    int h, nr;
    while (i < rows) {
        h = DL_TILE_HEIGHT(rows - i);
        const float *ai = a_cols ? a + i : a + i * lda;
        for (j = 0; j < n; j += DL_NR) {
            nr = n - j < DL_NR ? (int)(n - j) : DL_NR;
            const float *bj = bias ? bias + j : NULL;
            float *cij = c + i * ldc + j;
#define DL_CALL(H)                                                                          \
            if (a_cols) dl_tile_cols_##H(k, ai, lda, b + j, ldb, beta, cij, ldc, nr, bj, relu); \
            else dl_tile_rows_##H(k, ai, lda, b + j, ldb, beta, cij, ldc, nr, bj, relu);
            DL_BY_HEIGHT(h, DL_CALL)
#undef DL_CALL
        }
        i += h;
    }
}

/* One block: k <= DL_KC, n <= DL_NC. */
DL_TARGET static void dl_sgemm_block(int a_cols, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                                     const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb,
                                     float beta, float *c, ptrdiff_t ldc, const float *bias,
                                     int relu)
{
    ptrdiff_t i, rows;
    for (i = 0; i < m; i += DL_MR) {
        rows = m - i < DL_MR ? m - i : DL_MR;
        dl_row_panel(a_cols, rows, n, k, a_cols ? a + i : a + i * lda, lda, b, ldb, beta,
                     c + i * ldc, ldc, bias, relu);
    }
}

/* C (m, n) = epilogue(op(A) @ B + beta C); a_cols: A stored transposed (see the top of the
 * file); the epilogue adds bias (n,) when not NULL, then max(., 0) when relu. B is taken in
 * blocks of at most DL_KC rows and DL_NC columns (about 256 KB, held in L2 while every row panel
 * of A passes over it). */
DL_TARGET static void dl_sgemm_ep(int a_cols, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                                  const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb,
                                  float beta, float *c, ptrdiff_t ldc, const float *bias, int relu)
{
    ptrdiff_t p0, j0, kb, nb;
    if (k <= DL_KC && n <= DL_NC) {
        dl_sgemm_block(a_cols, m, n, k, a, lda, b, ldb, beta, c, ldc, bias, relu);
        return;
    }
    for (j0 = 0; j0 < n; j0 += DL_NC) {
        nb = n - j0 < DL_NC ? n - j0 : DL_NC;
        for (p0 = 0; p0 < k || p0 == 0; p0 += DL_KC) {
            kb = k - p0 < DL_KC ? k - p0 : DL_KC;
            int last = p0 + DL_KC >= k;
            dl_sgemm_block(a_cols, m, nb, kb, a_cols ? a + p0 * lda : a + p0, lda,
                           b + p0 * ldb + j0, ldb, p0 == 0 ? beta : 1.0f, c + j0, ldc,
                           last && bias ? bias + j0 : NULL, last && relu);
            if (k == 0)
                break;
        }
    }
}

/* C (m, n) = op(A) @ B + beta C. */
DL_MAYBE_UNUSED DL_TARGET static void dl_sgemm(int a_cols, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                               const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb,
                               float beta, float *c, ptrdiff_t ldc)
{
    dl_sgemm_ep(a_cols, m, n, k, a, lda, b, ldb, beta, c, ldc, NULL, 0);
}

#else  /* no AVX-512 build: never called (dl_sgemm_available() is 0) */

static void dl_sgemm_ep(int a_cols, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a,
                        ptrdiff_t lda, const float *b, ptrdiff_t ldb, float beta, float *c,
                        ptrdiff_t ldc, const float *bias, int relu)
{
    (void)a_cols; (void)m; (void)n; (void)k; (void)a; (void)lda; (void)b; (void)ldb;
    (void)beta; (void)c; (void)ldc; (void)bias; (void)relu;
}

static void dl_sgemm(int a_cols, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a,
                     ptrdiff_t lda, const float *b, ptrdiff_t ldb, float beta, float *c,
                     ptrdiff_t ldc)
{
    dl_sgemm_ep(a_cols, m, n, k, a, lda, b, ldb, beta, c, ldc, NULL, 0);
}

#endif
#endif
