/* The kernels' own single-threaded float32 GEMM (row-major): the drivers (blocking, tile choice,
 * edges) of two variant families chosen by the caller, both on the register tiles of the one
 * microkernel family, dl_sgemm_tiles.h (DL_ZMM_TILE, DL_VEC_TILE):
 *
 * 1. Blocked, AVX-512 only (dl_sgemm, dl_sgemm_ep; conv and dense):
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
 * Only for CPUs with AVX-512F/VL/DQ (dl_sgemm_available()); the callers use BLAS otherwise.
 * Compiled per function with target attributes, so the extension still runs on any x86-64.
 *
 * 2. Fixed-chain, every ISA (the recurrences' products, _recurrent.pyx): each element of C is
 * one FMA chain in the order p = 0..k-1, whatever the tile, the row count or the chunking, so
 * results do not depend on the batch size or the thread count. Options: B read in place with
 * the bias as the chain's start (dl_sgemm_chain), C = A^T B over column ranges
 * (dl_sgemm_chain_tn), B packed once into column panels for few-row steps
 * (dl_sgemm_chain_pack + dl_sgemm_chain_packed, bit-identical to dl_sgemm_chain). AVX-512,
 * AVX2+FMA or the baseline is chosen once at run time (dl_sgemm_set_isa for tests).
 */
#ifndef DL_SGEMM_H
#define DL_SGEMM_H

#include "dl_sgemm_tiles.h"

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
        dl_zmm_panel(a_cols, m, n, k, a, lda, b, ldb, 1, beta, c, ldc, bias, relu);
        return;
    }
    for (j0 = 0; j0 < n; j0 += DL_NC) {
        nb = n - j0 < DL_NC ? n - j0 : DL_NC;
        for (p0 = 0; p0 < k || p0 == 0; p0 += DL_KC) {
            kb = k - p0 < DL_KC ? k - p0 : DL_KC;
            int last = p0 + DL_KC >= k;
            dl_zmm_panel(a_cols, m, nb, kb, a_cols ? a + p0 * lda : a + p0, lda,
                         b + p0 * ldb + j0, ldb, 1, p0 == 0 ? beta : 1.0f, c + j0, ldc,
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
/* ---- 2. fixed-chain variants -------------------------------------------------------------- */

/* Row-major float32 C (m, n) = A (m, k) @ B (k, n) + beta C (beta 0 or 1), for the per-step
   products of the recurrences. B (the recurrent kernel) is read in place, never packed: a
   register tile of MR rows x NV vectors accumulates over k with one FMA chain per output
   element in the order p = 0..k-1, so every element's value is independent of m, of the
   tile it falls in and of how the rows are split into chunks (remainder rows use a wider
   1-row tile, remainder columns 1-vector tiles and a scalar tail, with the same chain).
   Rows go in blocks of DL_CH_ROW_BLOCK, so their A rows stay in L1 while B streams from L2.
   AVX-512 (16 lanes, 4x4 tile), AVX2+FMA (8 lanes, 4x2) and the baseline (4 lanes, 4x2) are
   chosen once at run time. */
#define DL_CH_MR 4

/* Tile (i, j) of dl_sgemm_chain: the vector tile FN on A row i, B and C column j. */
#define DL_CH_AT(FN, i, j)                                                                       \
    FN(k, A + (i) * lda, lda, B + (j), ldb, 0, beta, bias ? bias + (j) : bias,                   \
       C + (i) * ldc + (j), ldc, 0, 0)

#define DL_CH_ROW_BLOCK 16  /* rows whose A block stays in L1 while B's panels stream */

#define DL_CH_GEMM(NAME, ATTR, VT, W, NV)                                                        \
DL_VEC_TILE(NAME##_mn, ATTR, VT, W, NV, 1, DL_CH_MR, DL_VA_ROWS, 0, DL_INIT_BIAS, DL_STORE_ADD)  \
DL_VEC_TILE(NAME##_m1, ATTR, VT, W, 1, 1, DL_CH_MR, DL_VA_ROWS, 0, DL_INIT_BIAS, DL_STORE_ADD)   \
DL_VEC_TILE(NAME##_1w, ATTR, VT, W, 4 * NV, 1, 1, DL_VA_ROWS, 0, DL_INIT_BIAS, DL_STORE_ADD)     \
DL_VEC_TILE(NAME##_11, ATTR, VT, W, 1, 1, 1, DL_VA_ROWS, 0, DL_INIT_BIAS, DL_STORE_ADD)          \
DL_VEC_TILE(NAME##_r1, ATTR, VT, W, NV, 1, 1, DL_VA_ROWS, 0, DL_INIT_BIAS, DL_STORE_ADD)         \
DL_VEC_TILE(NAME##_r2, ATTR, VT, W, NV, 1, 2, DL_VA_ROWS, 0, DL_INIT_BIAS, DL_STORE_ADD)         \
DL_VEC_TILE(NAME##_r3, ATTR, VT, W, NV, 1, 3, DL_VA_ROWS, 0, DL_INIT_BIAS, DL_STORE_ADD)         \
/* The last n - j < W columns, one zero-padded vector per row: the same vector FMA chain as      \
   the full tiles' lanes (a scalar loop would be vectorized in order as mul + add). */           \
ATTR static void NAME##_tail(ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t j, int n, int k,              \
                             const float* A, ptrdiff_t lda, const float* B, ptrdiff_t ldb,       \
                             float beta, const float* bias, float* C, ptrdiff_t ldc) {           \
    ptrdiff_t i, q, w = n - j;                                                                   \
    int p;                                                                                       \
    VT acc, bv;                                                                                  \
    float t[W];                                                                                  \
    if (w <= 0) return;                                                                          \
    for (i = i0; i < i1; i++) {                                                                  \
        memset(t, 0, sizeof(t));                                                                 \
        if (bias) memcpy(t, bias + j, w * sizeof(float));                                        \
        memcpy(&acc, t, sizeof(VT));                                                             \
        for (p = 0; p < k; p++) {                                                                \
            memcpy(t, B + (ptrdiff_t)p * ldb + j, w * sizeof(float));                            \
            memcpy(&bv, t, sizeof(VT));                                                          \
            acc += A[i * lda + p] * bv;                                                          \
        }                                                                                        \
        memcpy(t, &acc, sizeof(VT));                                                             \
        for (q = 0; q < w; q++)                                                                  \
            C[i * ldc + j + q] = beta != 0.0f ? t[q] + C[i * ldc + j + q] : t[q];                \
    }                                                                                            \
}                                                                                                \
ATTR static void NAME(int m, int n, int k, const float* A, ptrdiff_t lda, const float* B,        \
                      ptrdiff_t ldb, float beta, const float* bias, float* C, ptrdiff_t ldc) {   \
    ptrdiff_t i0, i1, i, j, jp = n - n % (NV * W);                                               \
    ptrdiff_t m4 = m - m % DL_CH_MR;                                                             \
    /* rows past the last DL_CH_MR-row tile join the last row block, 1-3 rows per panel tile,    \
       while its panel of B is in L1 (in-process A/B, the 50 x 32 x 512 input projection:        \
       10.6 -> 10.3 us against 1-row tiles over all of B) */                                     \
    ptrdiff_t rem = m4 > 0 ? m - m4 : 0;                                                         \
    for (i0 = 0; i0 < m4; i0 += DL_CH_ROW_BLOCK) {                                               \
        i1 = i0 + DL_CH_ROW_BLOCK < m4 ? i0 + DL_CH_ROW_BLOCK : m4;                              \
        for (j = 0; j < jp; j += NV * W) {                                                       \
            for (i = i0; i < i1; i += DL_CH_MR) DL_CH_AT(NAME##_mn, i, j);                       \
            if (i1 == m4 && rem == 3) DL_CH_AT(NAME##_r3, m4, j);                                \
            else if (i1 == m4 && rem == 2) DL_CH_AT(NAME##_r2, m4, j);                           \
            else if (i1 == m4 && rem == 1) DL_CH_AT(NAME##_r1, m4, j);                           \
        }                                                                                        \
        for (; j + W <= n; j += W)                                                               \
            for (i = i0; i < i1; i += DL_CH_MR) DL_CH_AT(NAME##_m1, i, j);                       \
        NAME##_tail(i0, i1, j, n, k, A, lda, B, ldb, beta, bias, C, ldc);                        \
    }                                                                                            \
    for (i = m4; i < m; i++) {                                                                   \
        j = rem ? jp : 0;                                                                        \
        for (; j + 4 * NV * W <= n; j += 4 * NV * W)                                             \
            DL_CH_AT(NAME##_1w, i, j);                                                           \
        for (; j + W <= n; j += W) DL_CH_AT(NAME##_11, i, j);                                    \
        NAME##_tail(i, i + 1, j, n, k, A, lda, B, ldb, beta, bias, C, ldc);                      \
    }                                                                                            \
}

/* Row-major float32 C (k, n)[:, j0:j1] = A^T B for A (m, k), B (m, n): the weight gradients
   (hprev^T dz, x^T dz). Tiles of MR rows of C x NV vectors, the sum over the m rows of A and
   B in blocks of DL_CH_TN_PB (each block of a column panel of B packed once, so the power-of-two
   row stride of dz does not thrash L1 across the row tiles), each element one FMA chain
   p = 0..m-1 carried across the blocks through C: results independent of the blocking and
   of how [j0, j1) ranges split the columns between threads.
   The _parts form runs several products on the same B in one pass over it (each block of B
   packed once for all of them): part q is C_q (k_q, n) = A_q^T B with A_q (m, k_q), row stride
   lda_q; lda_q = 0 with A_q pointing at a 1.0f gives B's column sums (each an FMA chain of
   1 * b, which is b exactly: the plain sum in row order). */
#define DL_CH_TN_PB 128

typedef struct {
    const float* a;  /* A_q (m, k) */
    ptrdiff_t lda;
    ptrdiff_t k;
    float* c;        /* C_q (k, n) */
    ptrdiff_t ldc;
} dl_tn_part;

/* Tile (i, j) of dl_sgemm_chain_tn over rows [p0, p1) of A and of B (row stride LDB): the
   chain continues from C unless first. */
#define DL_TN_AT(FN, i, j, AP, BP, LDB)                                                          \
    FN(p1 - p0, (AP) + (i), lda, BP, LDB, 0, first ? 0.0f : 1.0f, NULL, C + (i) * ldc + (j),     \
       ldc, 0, 0)

#define DL_CH_TN(NAME, ATTR, VT, W, NV)                                                          \
DL_VEC_TILE(NAME##_mn, ATTR, VT, W, NV, 1, DL_CH_MR, DL_VA_COLS, 0, DL_INIT_C, DL_STORE_PLAIN)   \
DL_VEC_TILE(NAME##_1n, ATTR, VT, W, NV, 1, 1, DL_VA_COLS, 0, DL_INIT_C, DL_STORE_PLAIN)          \
DL_VEC_TILE(NAME##_m1, ATTR, VT, W, 1, 1, DL_CH_MR, DL_VA_COLS, 0, DL_INIT_C, DL_STORE_PLAIN)    \
DL_VEC_TILE(NAME##_11, ATTR, VT, W, 1, 1, 1, DL_VA_COLS, 0, DL_INIT_C, DL_STORE_PLAIN)           \
ATTR static void NAME##_parts(ptrdiff_t m, int nparts, const dl_tn_part* parts, ptrdiff_t j0,    \
                              ptrdiff_t j1, const float* B, ptrdiff_t ldb) {                     \
    ptrdiff_t p0, p1, i, j, jr, p, k, lda, ldc;                                                  \
    int first, q;                                                                                \
    const float* A;                                                                              \
    float* C;                                                                                    \
    float bp[DL_CH_TN_PB * NV * W];  /* one block of a column panel of B, packed */              \
    for (p0 = 0; p0 < m; p0 += DL_CH_TN_PB) {                                                    \
        p1 = p0 + DL_CH_TN_PB < m ? p0 + DL_CH_TN_PB : m;                                        \
        first = p0 == 0;                                                                         \
        for (j = j0; j + NV * W <= j1; j += NV * W) {                                            \
            for (p = p0; p < p1; p++)                                                            \
                memcpy(bp + (p - p0) * NV * W, B + p * ldb + j, NV * W * sizeof(float));         \
            for (q = 0; q < nparts; q++) {                                                       \
                A = parts[q].a; lda = parts[q].lda; k = parts[q].k;                              \
                C = parts[q].c; ldc = parts[q].ldc;                                              \
                for (i = 0; i + DL_CH_MR <= k; i += DL_CH_MR)                                    \
                    DL_TN_AT(NAME##_mn, i, j, A + p0 * lda, bp, NV * W);                         \
                for (; i < k; i++)                                                               \
                    DL_TN_AT(NAME##_1n, i, j, A + p0 * lda, bp, NV * W);                         \
            }                                                                                    \
        }                                                                                        \
        for (q = 0; q < nparts; q++) {                                                           \
            A = parts[q].a; lda = parts[q].lda; k = parts[q].k;                                  \
            C = parts[q].c; ldc = parts[q].ldc;                                                  \
            for (jr = j; jr + W <= j1; jr += W) {                                                \
                for (i = 0; i + DL_CH_MR <= k; i += DL_CH_MR)                                    \
                    DL_TN_AT(NAME##_m1, i, jr, A + p0 * lda, B + p0 * ldb + jr, ldb);            \
                for (; i < k; i++)                                                               \
                    DL_TN_AT(NAME##_11, i, jr, A + p0 * lda, B + p0 * ldb + jr, ldb);            \
            }                                                                                    \
            for (; jr < j1; jr++)                                                                \
                for (i = 0; i < k; i++) {                                                        \
                    float acc = first ? 0.0f : C[i * ldc + jr];                                  \
                    for (p = p0; p < p1; p++) acc += A[p * lda + i] * B[p * ldb + jr];           \
                    C[i * ldc + jr] = acc;                                                       \
                }                                                                                \
        }                                                                                        \
    }                                                                                            \
}                                                                                                \
ATTR static void NAME(ptrdiff_t m, ptrdiff_t k, ptrdiff_t j0, ptrdiff_t j1,                      \
                      const float* A, ptrdiff_t lda, const float* B, ptrdiff_t ldb,              \
                      float* C, ptrdiff_t ldc) {                                                 \
    dl_tn_part part;                                                                             \
    part.a = A; part.lda = lda; part.k = k; part.c = C; part.ldc = ldc;                          \
    NAME##_parts(m, 1, &part, j0, j1, B, ldb);                                                   \
}

/* Few-row steps (batch-1 inference) on a panel-packed B (dl_sgemm_chain_pack): B's n columns in
   panels of PW = NV * W columns, panel q at P + q * k * PW holding k rows of PW floats
   contiguously (zeros past n), so a step streams B once, in the order the FMAs consume it.
   Tiles: DL_CH_MR rows x 1 panel, 1 row x 4 panels (16 AVX-512 accumulators), 1 row x 1
   panel; panels outermost, so a panel stays in L1 for all the DL_CH_MR-row tiles. Each
   element is the same FMA chain as in DL_CH_GEMM (0, then p = 0..k-1, then + beta C), so
   results are bit-identical to dl_sgemm_chain's. */
/* Tile (row i, panel q) of dl_sgemm_chain_packed. */
#define DL_CP_AT(FN, i, q)                                                                       \
    FN(k, A + (i) * lda, lda, P + (q) * ps, pw, ps, beta, NULL, C + (i) * ldc + (q) * pw, ldc,   \
       n - (q) * pw, 0)

#define DL_CH_PGEMM(NAME, ATTR, VT, W, NV)                                                       \
DL_VEC_TILE(NAME##_41, ATTR, VT, W, NV, 1, DL_CH_MR, DL_VA_ROWS, 1, DL_INIT_ZERO, DL_STORE_NCOLS) \
DL_VEC_TILE(NAME##_14, ATTR, VT, W, NV, 4, 1, DL_VA_ROWS, 1, DL_INIT_ZERO, DL_STORE_NCOLS)       \
DL_VEC_TILE(NAME##_11, ATTR, VT, W, NV, 1, 1, DL_VA_ROWS, 1, DL_INIT_ZERO, DL_STORE_NCOLS)       \
ATTR static void NAME(int m, int n, int k, const float* A, ptrdiff_t lda, const float* P,        \
                      float beta, float* C, ptrdiff_t ldc) {                                     \
    const ptrdiff_t pw = NV * W, ps = (ptrdiff_t)k * (NV * W);                                   \
    ptrdiff_t np = (n + pw - 1) / pw, m4 = m - m % DL_CH_MR, i, q;                               \
    for (q = 0; q < np; q++)                                                                     \
        for (i = 0; i < m4; i += DL_CH_MR)                                                       \
            DL_CP_AT(NAME##_41, i, q);                                                           \
    for (i = m4; i < m; i++) {                                                                   \
        for (q = 0; q + 4 <= np; q += 4)                                                         \
            DL_CP_AT(NAME##_14, i, q);                                                           \
        for (; q < np; q++)                                                                      \
            DL_CP_AT(NAME##_11, i, q);                                                           \
    }                                                                                            \
}                                                                                                \
/* Packs B; returns 1 when all of B is finite (then a zero row times B is exactly zero). */      \
ATTR static int NAME##_pack(int k, int n, const float* B, ptrdiff_t ldb, float* P) {             \
    const ptrdiff_t pw = NV * W;                                                                 \
    ptrdiff_t q, p, w, j;                                                                        \
    uint32_t bits, bad = 0;                                                                      \
    for (q = 0; q * pw < n; q++) {                                                               \
        w = n - q * pw < pw ? n - q * pw : pw;                                                   \
        for (p = 0; p < k; p++) {                                                                \
            float* dst = P + (q * k + p) * pw;                                                   \
            const float* src = B + p * ldb + q * pw;                                             \
            for (j = 0; j < w; j++) {                                                            \
                memcpy(&bits, src + j, sizeof(bits));                                            \
                bad |= (bits & 0x7f800000u) == 0x7f800000u;                                      \
                dst[j] = src[j];                                                                 \
            }                                                                                    \
            for (; j < pw; j++) dst[j] = 0.0f;                                                   \
        }                                                                                        \
    }                                                                                            \
    return !bad;                                                                                 \
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
typedef float dl_v16 __attribute__((vector_size(64)));
typedef float dl_v8 __attribute__((vector_size(32)));
typedef float dl_v4 __attribute__((vector_size(16)));
DL_CH_GEMM(dl_chain_avx512, __attribute__((target("avx512f,avx512vl,avx2,fma"))), dl_v16, 16, 4)
DL_CH_GEMM(dl_chain_avx2, __attribute__((target("avx2,fma"))), dl_v8, 8, 2)
DL_CH_GEMM(dl_chain_base, , dl_v4, 4, 2)
DL_CH_TN(dl_chain_tn_avx512, __attribute__((target("avx512f,avx512vl,avx2,fma"))), dl_v16, 16, 4)
DL_CH_TN(dl_chain_tn_avx2, __attribute__((target("avx2,fma"))), dl_v8, 8, 2)
DL_CH_TN(dl_chain_tn_base, , dl_v4, 4, 2)
DL_CH_PGEMM(dl_chain_p_avx512, __attribute__((target("avx512f,avx512vl,avx2,fma"))), dl_v16, 16, 4)
DL_CH_PGEMM(dl_chain_p_avx2, __attribute__((target("avx2,fma"))), dl_v8, 8, 2)
DL_CH_PGEMM(dl_chain_p_base, , dl_v4, 4, 2)
typedef void (*dl_chain_fn)(int, int, int, const float*, ptrdiff_t, const float*, ptrdiff_t,
                             float, const float*, float*, ptrdiff_t);
static dl_chain_fn dl_chain_impl = 0;
static void dl_sgemm_chain(int m, int n, int k, const float* A, ptrdiff_t lda, const float* B,
                      ptrdiff_t ldb, float beta, const float* bias, float* C, ptrdiff_t ldc) {
    dl_chain_fn fn = dl_chain_impl;
    if (fn == 0) {  /* chosen once; a race only stores the same pointer twice */
        int isa = dl_cpu_isa();
        fn = isa == 0 ? dl_chain_avx512 : isa == 1 ? dl_chain_avx2 : dl_chain_base;
        dl_chain_impl = fn;
    }
    fn(m, n, k, A, lda, B, ldb, beta, bias, C, ldc);
}
static void dl_sgemm_chain_tn(ptrdiff_t m, ptrdiff_t k, ptrdiff_t j0, ptrdiff_t j1,
                         const float* A, ptrdiff_t lda, const float* B, ptrdiff_t ldb,
                         float* C, ptrdiff_t ldc) {
    if (dl_chain_impl == 0) dl_sgemm_chain(0, 0, 0, A, lda, B, ldb, 0.0f, 0, C, ldc);  /* pick the ISA */
    if (dl_chain_impl == dl_chain_avx512)
        dl_chain_tn_avx512(m, k, j0, j1, A, lda, B, ldb, C, ldc);
    else if (dl_chain_impl == dl_chain_avx2)
        dl_chain_tn_avx2(m, k, j0, j1, A, lda, B, ldb, C, ldc);
    else
        dl_chain_tn_base(m, k, j0, j1, A, lda, B, ldb, C, ldc);
}
static void dl_sgemm_chain_tn_parts(ptrdiff_t m, int nparts, const dl_tn_part* parts,
                                    ptrdiff_t j0, ptrdiff_t j1, const float* B, ptrdiff_t ldb) {
    if (dl_chain_impl == 0) dl_sgemm_chain(0, 0, 0, 0, 0, 0, 0, 0.0f, 0, 0, 0);  /* pick the ISA */
    if (dl_chain_impl == dl_chain_avx512)
        dl_chain_tn_avx512_parts(m, nparts, parts, j0, j1, B, ldb);
    else if (dl_chain_impl == dl_chain_avx2)
        dl_chain_tn_avx2_parts(m, nparts, parts, j0, j1, B, ldb);
    else
        dl_chain_tn_base_parts(m, nparts, parts, j0, j1, B, ldb);
}
/* The panel width of dl_sgemm_chain_pack's layout for the chosen ISA (0: no packed path). */
static int dl_sgemm_chain_pack_width(void) {
    if (dl_chain_impl == 0) dl_sgemm_chain(0, 0, 0, 0, 0, 0, 0, 0.0f, 0, 0, 0);  /* pick the ISA */
    return dl_chain_impl == dl_chain_avx512 ? 64 : dl_chain_impl == dl_chain_avx2 ? 16 : 8;
}
static int dl_sgemm_chain_pack(int k, int n, const float* B, ptrdiff_t ldb, float* P) {
    int pw = dl_sgemm_chain_pack_width();
    if (pw == 64) return dl_chain_p_avx512_pack(k, n, B, ldb, P);
    if (pw == 16) return dl_chain_p_avx2_pack(k, n, B, ldb, P);
    return dl_chain_p_base_pack(k, n, B, ldb, P);
}
static void dl_sgemm_chain_packed(int m, int n, int k, const float* A, ptrdiff_t lda,
                             const float* P, float beta, float* C, ptrdiff_t ldc) {
    if (dl_chain_impl == dl_chain_avx512)
        dl_chain_p_avx512(m, n, k, A, lda, P, beta, C, ldc);
    else if (dl_chain_impl == dl_chain_avx2)
        dl_chain_p_avx2(m, n, k, A, lda, P, beta, C, ldc);
    else
        dl_chain_p_base(m, n, k, A, lda, P, beta, C, ldc);
}
/* Tests: select the product kernels' ISA (0 AVX-512, 1 AVX2, 2 baseline) where the CPU has
   it; returns the previous one, or -1 (unchanged) where it does not. */
static int dl_sgemm_set_isa(int isa) {
    int old;
    if (dl_chain_impl == 0) dl_sgemm_chain(0, 0, 0, 0, 0, 0, 0, 0.0f, 0, 0, 0);
    old = dl_chain_impl == dl_chain_avx512 ? 0 : dl_chain_impl == dl_chain_avx2 ? 1 : 2;
    if (isa < dl_cpu_isa())  /* the CPU lacks it */
        return -1;
    dl_chain_impl = isa == 0 ? dl_chain_avx512 : isa == 1 ? dl_chain_avx2 : dl_chain_base;
    return old;
}
#elif defined(__GNUC__)
typedef float dl_v4 __attribute__((vector_size(16)));
DL_CH_GEMM(dl_sgemm_chain, , dl_v4, 4, 2)
DL_CH_TN(dl_sgemm_chain_tn, , dl_v4, 4, 2)
DL_CH_PGEMM(dl_sgemm_chain_packed, , dl_v4, 4, 2)
static int dl_sgemm_chain_pack_width(void) { return 8; }
static int dl_sgemm_set_isa(int isa) { return -1; }
static int dl_sgemm_chain_pack(int k, int n, const float* B, ptrdiff_t ldb, float* P) {
    return dl_sgemm_chain_packed_pack(k, n, B, ldb, P);
}
#else
static void dl_sgemm_chain(int m, int n, int k, const float* A, ptrdiff_t lda, const float* B,
                      ptrdiff_t ldb, float beta, const float* bias, float* C, ptrdiff_t ldc) {
    ptrdiff_t i, j;
    int p;
    for (i = 0; i < m; i++)
        for (j = 0; j < n; j++) {
            float acc = bias ? bias[j] : 0.0f;
            for (p = 0; p < k; p++) acc += A[i * lda + p] * B[(ptrdiff_t)p * ldb + j];
            C[i * ldc + j] = beta != 0.0f ? acc + C[i * ldc + j] : acc;
        }
}
static void dl_sgemm_chain_tn(ptrdiff_t m, ptrdiff_t k, ptrdiff_t j0, ptrdiff_t j1,
                         const float* A, ptrdiff_t lda, const float* B, ptrdiff_t ldb,
                         float* C, ptrdiff_t ldc) {
    ptrdiff_t i, j, p;
    for (i = 0; i < k; i++)
        for (j = j0; j < j1; j++) {
            float acc = 0.0f;
            for (p = 0; p < m; p++) acc += A[p * lda + i] * B[p * ldb + j];
            C[i * ldc + j] = acc;
        }
}
static void dl_sgemm_chain_tn_parts(ptrdiff_t m, int nparts, const dl_tn_part* parts,
                                    ptrdiff_t j0, ptrdiff_t j1, const float* B, ptrdiff_t ldb) {
    int q;
    for (q = 0; q < nparts; q++)
        dl_sgemm_chain_tn(m, parts[q].k, j0, j1, parts[q].a, parts[q].lda, B, ldb, parts[q].c,
                          parts[q].ldc);
}
static int dl_sgemm_chain_pack_width(void) { return 0; }
static int dl_sgemm_set_isa(int isa) { return -1; }
static int dl_sgemm_chain_pack(int k, int n, const float* B, ptrdiff_t ldb, float* P) { return 0; }
static void dl_sgemm_chain_packed(int m, int n, int k, const float* A, ptrdiff_t lda,
                             const float* P, float beta, float* C, ptrdiff_t ldc) {}
#endif

#endif
