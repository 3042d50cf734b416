/* The float32 GEMM microkernel family: the register tiles that every float32 product of the
 * kernels runs on (row-major), with their options, and the ISA switch that picks them.
 *
 *     C tile (R rows, up to 32 or NP*NV*W columns) = epilogue(sum_p A(i, p) B(p, j) [+ C])
 *
 * Two instruction forms of the one FMA loop, each a macro instantiated per option set:
 *
 * - DL_ZMM_TILE (AVX-512 intrinsics, 1-14 rows x 32 columns in 2R zmm accumulators; masked
 *   loads and stores for the last columns): the blocked GEMM (dl_sgemm.h), the packed AVX-512
 *   level (dl_sgemm_isa.h: B is a 32-wide strip, ldb = 32) and the conv tiles (dl_conv_tiles.h).
 *   Options: how A is read (ROWS a[i*lda + p], COLS a[p*lda + i], GATHER a[aoff[i] + p]), the
 *   k loop (SEG 0: one run of kseg; 1: ns segments, A/B advancing by sas/sbs; 2: ng images
 *   (sag/sbg) x ns segments), the prefetch, and the epilogue (DL_ZEPI_STORE: + beta C, + bias,
 *   ReLU, store; DL_ZEPI_STORE0: C not read; the conv's 2x2 max-pooling epilogue).
 *
 * - DL_VEC_TILE (GCC vector extensions, one build per ISA: 16 lanes AVX-512, 8 AVX2+FMA, 4 the
 *   baseline): the fixed-chain recurrent products and the packed AVX2 / baseline levels.
 *   Options: A read (DL_VA_ROWS / DL_VA_COLS), B as NP panels of NV vectors (row stride ldb,
 *   panel stride ps: in place or packed), the loop order (A_FIRST: broadcast the MR values of A
 *   and stream B through one register, for wide tiles; else load the row of B first, for tall
 *   ones), where the chain starts (DL_INIT_ZERO / _BIAS / _C) and the store (DL_STORE_ADD: + C
 *   when beta != 0; _PLAIN; _NCOLS: _ADD on the first ncols columns; _EPI: + beta C, + bias,
 *   ReLU on the first ncols columns, scalar).
 *
 * Every element of C is one FMA chain over p in order, whatever the option: the options choose
 * addressing and the epilogue, never the arithmetic of the chain.
 * ISA: dl_cpu_isa() (0 AVX-512 F+VL, 1 AVX2+FMA, 2 the baseline) is the one switch; the tiles
 * are compiled per level with target attributes, so an extension runs on any x86-64.
 */
#ifndef DL_SGEMM_TILES_H
#define DL_SGEMM_TILES_H

#include <stddef.h>
#include <stdint.h>
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

/* The CPU's level for the ISA switch: 0 AVX-512 (F, VL), 1 AVX2 + FMA, 2 the baseline. */
DL_MAYBE_UNUSED static int dl_cpu_isa(void)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
        return 0;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return 1;
#endif
    return 2;
}

/* Whether the zmm tiles run here: AVX-512 with DQ. */
DL_MAYBE_UNUSED static int dl_sgemm_available(void)
{
#if DL_HAVE_AVX512_BUILD
    return dl_cpu_isa() == 0 && __builtin_cpu_supports("avx512dq");
#else
    return 0;
#endif
}

/* Edges, rows: the tile height for the rows left (14, then 8 + 4 + 2 + 1 for any remainder
 * < 14: no padding, no copies), and the call of the tile of that height. */
#define DL_TILE_HEIGHT(left) ((left) >= 14 ? 14 : (left) >= 8 ? 8 : (left) >= 4 ? 4 : (left) >= 2 ? 2 : 1)
#define DL_BY_HEIGHT(h, CALL)                                                               \
    switch (h) {                                                                            \
    case 14: CALL(14) break;                                                                \
    case 8: CALL(8) break;                                                                  \
    case 4: CALL(4) break;                                                                  \
    case 2: CALL(2) break;                                                                  \
    default: CALL(1) break;                                                                 \
    }

/* The rows of a tile of height R, for the per-row X-macros. */
#define DL_ROWS_1(X) X(0)
#define DL_ROWS_2(X) DL_ROWS_1(X) X(1)
#define DL_ROWS_3(X) DL_ROWS_2(X) X(2)
#define DL_ROWS_4(X) DL_ROWS_3(X) X(3)
#define DL_ROWS_5(X) DL_ROWS_4(X) X(4)
#define DL_ROWS_6(X) DL_ROWS_5(X) X(5)
#define DL_ROWS_7(X) DL_ROWS_6(X) X(6)
#define DL_ROWS_8(X) DL_ROWS_7(X) X(7)
#define DL_ROWS_9(X) DL_ROWS_8(X) X(8)
#define DL_ROWS_10(X) DL_ROWS_9(X) X(9)
#define DL_ROWS_11(X) DL_ROWS_10(X) X(10)
#define DL_ROWS_12(X) DL_ROWS_11(X) X(11)
#define DL_ROWS_13(X) DL_ROWS_12(X) X(12)
#define DL_ROWS_14(X) DL_ROWS_13(X) X(13)

#if DL_HAVE_AVX512_BUILD

#define DL_DECL(i) __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = _mm512_setzero_ps();

/* Row i's bias and ReLU (max(0, NaN) is NaN: vmaxps returns its second operand on NaN). */
#define DL_EPI(i)                                                                           \
    if (bias != NULL) {                                                                     \
        c##i##0 = _mm512_add_ps(c##i##0, vb0);                                              \
        c##i##1 = _mm512_add_ps(c##i##1, vb1);                                              \
    }                                                                                       \
    if (relu) {                                                                             \
        c##i##0 = _mm512_max_ps(_mm512_setzero_ps(), c##i##0);                              \
        c##i##1 = _mm512_max_ps(_mm512_setzero_ps(), c##i##1);                              \
    }

/* Row i of the tile: C = epilogue(acc + beta C) (C read if READ_C), columns masked by m0/m1. */
#define DL_STORE_C(i, READ_C)                                                               \
    {                                                                                       \
        float *cr = c + (ptrdiff_t)i * ldc;                                                 \
        if (READ_C) {                                                                       \
            c##i##0 = _mm512_fmadd_ps(vbeta, _mm512_maskz_loadu_ps(m0, cr), c##i##0);       \
            c##i##1 = _mm512_fmadd_ps(vbeta, _mm512_maskz_loadu_ps(m1, cr + 16), c##i##1);  \
        }                                                                                   \
        DL_EPI(i)                                                                           \
        _mm512_mask_storeu_ps(cr, m0, c##i##0);                                             \
        _mm512_mask_storeu_ps(cr + 16, m1, c##i##1);                                        \
    }
#define DL_STORE(i) DL_STORE_C(i, beta != 0.0f)
#define DL_STORE0(i) DL_STORE_C(i, 0)
#define DL_ZEPI_STORE(ROWS) ROWS(DL_STORE)
#define DL_ZEPI_STORE0(ROWS) ROWS(DL_STORE0)

/* The A options: element (row i, step p) of the segment's A (as). */
#define DL_ZFMA_WITH(i, A_IP)                                                               \
    { __m512 ai = _mm512_set1_ps(A_IP);                                                     \
      c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0); c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1); }
#define DL_ZFMA_ROWS(i) DL_ZFMA_WITH(i, as[(ptrdiff_t)i * lda + p])
#define DL_ZFMA_COLS(i) DL_ZFMA_WITH(i, ap[i])
#define DL_ZFMA_GATHER(i) DL_ZFMA_WITH(i, as[o##i + p])
#define DL_ZOFF_ROWS(i)
#define DL_ZOFF_COLS(i)
#define DL_ZOFF_GATHER(i) const ptrdiff_t o##i = aoff[i];

/* The prefetch options. ROWS: every 16 steps of k, each row's line 8 lines ahead (with short
 * rows that is the next row panel, which the hardware prefetchers miss: 14 interleaved
 * streams). 1x1 convolution (k = 64), 16 MB each way: 118 -> 147 GFLOPS (4 lines: 143). */
#define DL_PF_ROWS(i) _mm_prefetch((const char *)(as + (ptrdiff_t)i * lda + p + 128), _MM_HINT_T0);
#define DL_PF_ROWS_EVERY16(ROWS) if ((p & 15) == 0) { ROWS(DL_PF_ROWS) }
#define DL_PF_NONE(ROWS)

/* The zmm tile NAME: ROWS rows x nr <= 32 columns of c (row stride ldc). The k loop: images
 * g < ng (SEG 2) and segments s < ns (SEG 1, 2), each kseg steps of
 * A(i, p) (option MODE, from as = a + g*sag + s*sas) times B row p (bs + p*ldb, bs = b + g*sbg
 * + s*sbs); then EPILOGUE (DL_ZEPI_STORE(ROWS), or a caller's). */
#define DL_ZMM_TILE(NAME, ROWS, MODE, SEG, PF, EPILOGUE)                                    \
DL_TARGET static void NAME(ptrdiff_t ng, ptrdiff_t ns, ptrdiff_t kseg, const float *a,      \
                           const ptrdiff_t *aoff, ptrdiff_t sag, ptrdiff_t sas, ptrdiff_t lda, \
                           const float *b, ptrdiff_t sbg, ptrdiff_t sbs, ptrdiff_t ldb,     \
                           float beta, float *c, ptrdiff_t ldc, int nr, const float *bias,  \
                           int relu)                                                        \
{                                                                                           \
    __mmask16 m0 = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1u);                        \
    __mmask16 m1 = nr >= 32 ? 0xFFFF : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1u); \
    __m512 vbeta = _mm512_set1_ps(beta);                                                    \
    __m512 vb0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();              \
    __m512 vb1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();         \
    ptrdiff_t g, s, p;                                                                      \
    ROWS(DL_DECL)                                                                           \
    ROWS(DL_ZOFF_##MODE)                                                                    \
    (void)aoff; (void)vbeta; (void)relu; (void)ng; (void)ns; (void)sag; (void)sas;          \
    (void)sbg; (void)sbs; (void)lda;                                                        \
    for (g = 0; g < (SEG == 2 ? ng : 1); g++)                                               \
        for (s = 0; s < (SEG ? ns : 1); s++) {                                              \
            const float *as = SEG == 2 ? a + g * sag + s * sas : SEG ? a + s * sas : a;     \
            const float *bs = SEG == 2 ? b + g * sbg + s * sbs : SEG ? b + s * sbs : b;     \
            for (p = 0; p < kseg; p++) {                                                    \
                const float *ap = as + p * lda; /* COLS: row p of A */ (void)ap;            \
                __m512 b0 = _mm512_maskz_loadu_ps(m0, bs + p * ldb);                        \
                __m512 b1 = _mm512_maskz_loadu_ps(m1, bs + p * ldb + 16);                   \
                PF(ROWS)                                                                    \
                ROWS(DL_ZFMA_##MODE)                                                        \
            }                                                                               \
        }                                                                                   \
    EPILOGUE                                                                                \
}

/* The plain zmm tiles of the blocked and packed AVX-512 paths, heights 14, 8, 4, 2, 1:
 * dl_tile_rows_<R> (prefetching) and dl_tile_cols_<R>. */
#define DL_ZMM_PLAIN(R)                                                                     \
DL_ZMM_TILE(dl_tile_rows_##R, DL_ROWS_##R, ROWS, 0, DL_PF_ROWS_EVERY16, DL_ZEPI_STORE(DL_ROWS_##R)) \
DL_ZMM_TILE(dl_tile_cols_##R, DL_ROWS_##R, COLS, 0, DL_PF_NONE, DL_ZEPI_STORE(DL_ROWS_##R))
DL_ZMM_PLAIN(14)
DL_ZMM_PLAIN(8)
DL_ZMM_PLAIN(4)
DL_ZMM_PLAIN(2)
DL_ZMM_PLAIN(1)

/* Rows [0, rows) x columns [0, n) of C with the plain zmm tiles (heights by DL_TILE_HEIGHT,
 * 32-column steps): B column j at b + j*bstep (1 in place; packed 32-wide strips: b strides
 * by sq per strip, passed as bstep = sq / 32 with ldb = 32). */
DL_TARGET static void dl_zmm_panel(int a_cols, ptrdiff_t rows, ptrdiff_t n, ptrdiff_t k,
                                   const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb,
                                   ptrdiff_t bstep, float beta, float *c, ptrdiff_t ldc,
                                   const float *bias, int relu)
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
            if (a_cols) dl_tile_cols_##H(1, 1, k, ai, NULL, 0, 0, lda, b + j * bstep, 0, 0, ldb, \
                                         beta, cij, ldc, nr, bj, relu);                     \
            else dl_tile_rows_##H(1, 1, k, ai, NULL, 0, 0, lda, b + j * bstep, 0, 0, ldb,   \
                                  beta, cij, ldc, nr, bj, relu);
            DL_BY_HEIGHT(h, DL_CALL)
#undef DL_CALL
        }
        i += h;
    }
}

#endif  /* DL_HAVE_AVX512_BUILD */

#if defined(__GNUC__)
/* The vector tile's options (see the top of the file). */
#define DL_VA_ROWS(r) a[(ptrdiff_t)(r) * lda + p]
#define DL_VA_COLS(r) a[p * lda + (r)]
#define DL_INIT_ZERO 0
#define DL_INIT_BIAS 1  /* the chain starts at bias[u*W...] (bias may be NULL: zero) */
#define DL_INIT_C 2     /* the chain continues from C when beta != 0 (else zero) */
#define DL_STORE_ADD 0
#define DL_STORE_PLAIN 1
#define DL_STORE_NCOLS 2
#define DL_STORE_EPI 3

/* The vector tile NAME: MR rows x NP panels of NV vectors of W floats; a, b, bias and c point at
 * the tile's first row and column; B vector (s, v) of step p at b + p*ldb + s*ps + v*W. */
#define DL_VEC_TILE(NAME, ATTR, VT, W, NV, NP, MR, AREAD, A_FIRST, INIT, STORE)                 \
ATTR static inline void NAME(ptrdiff_t k, const float *a, ptrdiff_t lda, const float *b,        \
                             ptrdiff_t ldb, ptrdiff_t ps, float beta, const float *bias,         \
                             float *c, ptrdiff_t ldc, ptrdiff_t ncols, int relu)                 \
{                                                                                                \
    VT acc[MR][NP * NV], bv[NP * NV], old;                                                       \
    float ar[MR];                                                                                \
    float out[NP * NV * W];                                                                      \
    ptrdiff_t p, j;                                                                              \
    int r, s, v, u;                                                                              \
    for (r = 0; r < MR; r++)                                                                     \
        for (u = 0; u < NP * NV; u++) {                                                          \
            VT in_ = (VT){0};                                                                    \
            if (INIT == DL_INIT_BIAS && bias) memcpy(&in_, bias + u * W, sizeof(VT));            \
            if (INIT == DL_INIT_C && beta != 0.0f) memcpy(&in_, c + r * ldc + u * W, sizeof(VT)); \
            acc[r][u] = in_;                                                                     \
        }                                                                                        \
    for (p = 0; p < k; p++) {                                                                    \
        const float *bp = b + p * ldb;                                                           \
        if (A_FIRST) {                                                                           \
            for (r = 0; r < MR; r++) ar[r] = AREAD(r);                                           \
            for (s = 0; s < NP; s++)                                                             \
                for (v = 0; v < NV; v++) {                                                       \
                    VT in_;                                                                      \
                    memcpy(&in_, bp + s * ps + v * W, sizeof(VT));                               \
                    for (r = 0; r < MR; r++) acc[r][s * NV + v] += ar[r] * in_;                  \
                }                                                                                \
        } else {                                                                                 \
            for (s = 0; s < NP; s++)                                                             \
                for (v = 0; v < NV; v++) {                                                       \
                    VT in_;                                                                      \
                    memcpy(&in_, bp + s * ps + v * W, sizeof(VT));                               \
                    bv[s * NV + v] = in_;                                                        \
                }                                                                                \
            for (r = 0; r < MR; r++) {                                                           \
                float a_ = AREAD(r);                                                             \
                for (u = 0; u < NP * NV; u++) acc[r][u] += a_ * bv[u];                           \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    for (r = 0; r < MR; r++) {                                                                   \
        float *cr = c + r * ldc;                                                                 \
        if (STORE == DL_STORE_EPI || (STORE == DL_STORE_NCOLS && ncols < NP * NV * W)) {         \
            for (u = 0; u < NP * NV; u++) {                                                      \
                VT out_ = acc[r][u];                                                             \
                memcpy(out + u * W, &out_, sizeof(VT));                                          \
            }                                                                                    \
            for (j = 0; j < ncols; j++) {                                                        \
                float t = out[j];                                                                \
                if (STORE == DL_STORE_NCOLS) {                                                   \
                    cr[j] = beta != 0.0f ? t + cr[j] : t;                                        \
                    continue;                                                                    \
                }                                                                                \
                if (beta != 0.0f) t += beta * cr[j];                                             \
                if (bias != NULL) t += bias[j];                                                  \
                if (relu) t = t > 0.0f ? t : (t != t ? t : 0.0f);                                \
                cr[j] = t;                                                                       \
            }                                                                                    \
            continue;                                                                            \
        }                                                                                        \
        for (u = 0; u < NP * NV; u++) {                                                          \
            if (STORE != DL_STORE_PLAIN && beta != 0.0f) {                                       \
                memcpy(&old, cr + u * W, sizeof(VT));                                            \
                acc[r][u] += old;                                                                \
            }                                                                                    \
            { VT out_ = acc[r][u]; memcpy(cr + u * W, &out_, sizeof(VT)); }                      \
        }                                                                                        \
    }                                                                                            \
}
#endif  /* __GNUC__ */

#endif
