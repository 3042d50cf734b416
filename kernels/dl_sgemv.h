/* The batch-1 float32 product (GEMV) on the vector tiles of dl_sgemm_tiles.h:
 *
 *     y[j] = epilogue(sum_p x[p * incx] W[p, j])   for j in [j0, j1), W row-major (k, n), row stride ldw
 *
 * the epilogue + bias[j], then max(., 0) if relu (the own GEMM's: the chain starts at zero).
 * One row of the vector tile (A read as DL_VA_COLS with lda = incx: a strided x is a transposed
 * A's row) over 16, 8, 2 and 1 vectors of W, then the last < W columns with masked loads
 * (AVX-512, AVX2) or a zero-padded vector (baseline). Every y[j] is one FMA chain over p in
 * order, so a column range gives the same bits whatever the range's bounds: the thread team
 * splits columns (dl_team.h) and the result does not depend on the thread count. 8 vectors in
 * flight keep both FMA ports busy through the 4-cycle latency; 16 read each row of W in runs
 * of 1 KiB (AVX-512) instead of 512 bytes, half the passes over the rows: own / OpenBLAS sgemv,
 * 1 thread, medians of 4 alternated processes on a loaded Zen 4 host: 512x256 1.10-1.12 ->
 * 0.90-1.01, 784x512 1.05-1.12 -> 1.08, 256x10 0.98 either way (k-blocks of 64 KiB, W then
 * streaming in address order, measured 1.06-1.14 on 784x512: not kept). W is read in place,
 * never packed.
 * ISA levels as dl_cpu_isa(): 0 AVX-512, 1 AVX2 + FMA, 2 the baseline (SSE: mul + add). */
#ifndef DL_SGEMV_H
#define DL_SGEMV_H

#include "dl_sgemm_tiles.h"

#if defined(__GNUC__) && defined(__x86_64__)
#define DL_SGEMV_BUILT 1

typedef float dl_gv16 __attribute__((vector_size(64)));
typedef float dl_gv8 __attribute__((vector_size(32)));
typedef float dl_gv4 __attribute__((vector_size(16)));
#define DL_GV512_ATTR __attribute__((target("avx512f,avx512vl,avx2,fma")))
#define DL_GV256_ATTR __attribute__((target("avx2,fma")))

/* The scalar epilogue of the last nr columns (as DL_STORE_EPI's). */
#define DL_GV_TAIL_STORE(T)                                                                      \
    for (q = 0; q < nr; q++) {                                                                   \
        float v = (T)[q];                                                                        \
        if (bias != NULL) v += bias[q];                                                          \
        if (relu) v = v > 0.0f ? v : (v != v ? v : 0.0f);                                        \
        y[q] = v;                                                                                \
    }

DL_GV512_ATTR static void dl_gv_tail_avx512(ptrdiff_t k, const float *x, ptrdiff_t incx,
                                            const float *w, ptrdiff_t ldw, int nr,
                                            const float *bias, int relu, float *y)
{
    __mmask16 m = (__mmask16)((1u << nr) - 1u);
    __m512 acc = _mm512_setzero_ps();
    float t[16];
    ptrdiff_t p;
    int q;
    for (p = 0; p < k; p++)
        acc = _mm512_fmadd_ps(_mm512_set1_ps(x[p * incx]), _mm512_maskz_loadu_ps(m, w + p * ldw), acc);
    _mm512_storeu_ps(t, acc);
    DL_GV_TAIL_STORE(t)
}

DL_GV256_ATTR static void dl_gv_tail_avx2(ptrdiff_t k, const float *x, ptrdiff_t incx,
                                          const float *w, ptrdiff_t ldw, int nr,
                                          const float *bias, int relu, float *y)
{
    __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 acc = _mm256_setzero_ps();
    float t[8];
    ptrdiff_t p;
    int q;
    for (p = 0; p < k; p++)
        acc = _mm256_fmadd_ps(_mm256_set1_ps(x[p * incx]), _mm256_maskload_ps(w + p * ldw, m), acc);
    _mm256_storeu_ps(t, acc);
    DL_GV_TAIL_STORE(t)
}

static void dl_gv_tail_base(ptrdiff_t k, const float *x, ptrdiff_t incx, const float *w,
                            ptrdiff_t ldw, int nr, const float *bias, int relu, float *y)
{
    dl_gv4 acc = {0}, bv;
    float t[4];
    ptrdiff_t p;
    int q;
    for (p = 0; p < k; p++) {
        memset(t, 0, sizeof(t));
        memcpy(t, w + p * ldw, nr * sizeof(float));
        memcpy(&bv, t, sizeof(bv));
        acc += x[p * incx] * bv;
    }
    memcpy(t, &acc, sizeof(t));
    DL_GV_TAIL_STORE(t)
}

/* NAME(k, x, incx, w, ldw, j0, j1, bias, relu, y): columns [j0, j1) at one ISA level (bias and
 * y indexed by column from their starts). */
#define DL_SGEMV_LEVEL(NAME, ATTR, VT, W, TAIL)                                                  \
DL_VEC_TILE(NAME##_16, ATTR, VT, W, 16, 1, 1, DL_VA_COLS, 1, DL_INIT_ZERO, DL_STORE_EPI)        \
DL_VEC_TILE(NAME##_8, ATTR, VT, W, 8, 1, 1, DL_VA_COLS, 1, DL_INIT_ZERO, DL_STORE_EPI)          \
DL_VEC_TILE(NAME##_2, ATTR, VT, W, 2, 1, 1, DL_VA_COLS, 1, DL_INIT_ZERO, DL_STORE_EPI)          \
DL_VEC_TILE(NAME##_1, ATTR, VT, W, 1, 1, 1, DL_VA_COLS, 1, DL_INIT_ZERO, DL_STORE_EPI)          \
ATTR static void NAME(ptrdiff_t k, const float *x, ptrdiff_t incx, const float *w,               \
                      ptrdiff_t ldw, ptrdiff_t j0, ptrdiff_t j1, const float *bias, int relu,    \
                      float *y)                                                                  \
{                                                                                                \
    ptrdiff_t j = j0;                                                                            \
    for (; j + 16 * W <= j1; j += 16 * W)                                                        \
        NAME##_16(k, x, incx, w + j, ldw, 0, 0.0f, bias ? bias + j : NULL, y + j, 0, 16 * W, relu); \
    for (; j + 8 * W <= j1; j += 8 * W)                                                          \
        NAME##_8(k, x, incx, w + j, ldw, 0, 0.0f, bias ? bias + j : NULL, y + j, 0, 8 * W, relu); \
    for (; j + 2 * W <= j1; j += 2 * W)                                                          \
        NAME##_2(k, x, incx, w + j, ldw, 0, 0.0f, bias ? bias + j : NULL, y + j, 0, 2 * W, relu); \
    for (; j + W <= j1; j += W)                                                                  \
        NAME##_1(k, x, incx, w + j, ldw, 0, 0.0f, bias ? bias + j : NULL, y + j, 0, W, relu);    \
    if (j < j1)                                                                                  \
        TAIL(k, x, incx, w + j, ldw, (int)(j1 - j), bias ? bias + j : NULL, relu, y + j);        \
}

DL_SGEMV_LEVEL(dl_sgemv_avx512, DL_GV512_ATTR, dl_gv16, 16, dl_gv_tail_avx512)
DL_SGEMV_LEVEL(dl_sgemv_avx2, DL_GV256_ATTR, dl_gv8, 8, dl_gv_tail_avx2)
DL_SGEMV_LEVEL(dl_sgemv_base, , dl_gv4, 4, dl_gv_tail_base)

/* Columns [j0, j1) of y at ISA level isa (0 AVX-512, 1 AVX2 + FMA, 2 baseline; the caller
 * checks that the CPU has it: dl_own_isa_available). */
static void dl_sgemv_cols(int isa, ptrdiff_t k, const float *x, ptrdiff_t incx, const float *w,
                          ptrdiff_t ldw, ptrdiff_t j0, ptrdiff_t j1, const float *bias, int relu,
                          float *y)
{
    if (isa == 0)
        dl_sgemv_avx512(k, x, incx, w, ldw, j0, j1, bias, relu, y);
    else if (isa == 1)
        dl_sgemv_avx2(k, x, incx, w, ldw, j0, j1, bias, relu, y);
    else
        dl_sgemv_base(k, x, incx, w, ldw, j0, j1, bias, relu, y);
}

/* The columns per vector of level isa (chunk widths are multiples of it). */
static int dl_sgemv_width(int isa)
{
    return isa == 0 ? 16 : isa == 1 ? 8 : 4;
}
#else
#define DL_SGEMV_BUILT 0
static void dl_sgemv_cols(int isa, ptrdiff_t k, const float *x, ptrdiff_t incx, const float *w,
                          ptrdiff_t ldw, ptrdiff_t j0, ptrdiff_t j1, const float *bias, int relu,
                          float *y)
{
    ptrdiff_t j, p;
    (void)isa;
    for (j = j0; j < j1; j++) {
        float acc = 0.0f;
        for (p = 0; p < k; p++) acc += x[p * incx] * w[p * ldw + j];
        if (bias != NULL) acc += bias[j];
        if (relu) acc = acc > 0.0f ? acc : (acc != acc ? acc : 0.0f);
        y[j] = acc;
    }
}
static int dl_sgemv_width(int isa) { (void)isa; return 4; }
#endif

#endif
