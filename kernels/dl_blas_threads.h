/* The process's BLAS: its function table, and the one switch that makes it single-threaded while
 * a kernel calls it from its own OpenMP threads (conv, recurrent). A threaded OpenBLAS called from two OpenMP threads serializes its
 * level-3 calls and its spinning workers oversubscribe the cores (measured 7-20 GFLOPS against
 * 45-80 with single-threaded calls); a threaded call per time step of a recurrence puts a
 * barrier in every step. The state (the thread getters/setters of every OpenBLAS in the process,
 * the counts to restore, the nesting depth) is one struct for the whole process, allocated by
 * kernels/_blas.py and bound into each extension (dl_blas_bind), so nested and concurrent
 * kernels of every family share one count. Enter and exit are called with the GIL held, which
 * makes the count exact across Python threads.
 *
 * The function table: sgemm/dgemm/sgemv/dgemv of the BLAS that NumPy already loaded (found by
 * kernels/_blas.py through ctypes: ILP64 builds such as NumPy's own OpenBLAS take 64-bit integer
 * arguments, converted here), or scipy.linalg.cython_blas's where NumPy's is not one we know.
 * Calling NumPy's BLAS keeps SciPy (about 11 modules, a second OpenBLAS, 15-30 ms and 4 MB) off
 * the cold start of a deployment. The kernels call dl_blas_sgemm & co. with the Fortran BLAS
 * signature of scipy's cython_blas (int arguments), so the call sites do not know which BLAS runs.
 * Every extension binds the state at its own import, before any of its kernels can run. */
#ifndef DL_BLAS_THREADS_H
#define DL_BLAS_THREADS_H

#include <stddef.h>
#include <stdint.h>

#define DL_BLAS_MAX_HOOKS 8

enum { DL_BLAS_SGEMM, DL_BLAS_DGEMM, DL_BLAS_SGEMV, DL_BLAS_DGEMV, DL_BLAS_N_FUNCTIONS };

typedef int (*dl_blas_get_t)(void);
typedef void (*dl_blas_set_t)(int);

/* Layout mirrored by kernels/_blas.py (ctypes). */
typedef struct {
    int n_hooks; /* OpenBLAS libraries found (0: none; kernels then run on one thread) */
    int depth;   /* kernels inside enter/exit */
    int saved[DL_BLAS_MAX_HOOKS];
    dl_blas_get_t get[DL_BLAS_MAX_HOOKS];
    dl_blas_set_t set[DL_BLAS_MAX_HOOKS];
    int int64;   /* the table's functions take 64-bit integers (ILP64) */
    void *fn[DL_BLAS_N_FUNCTIONS]; /* Fortran-interface sgemm, dgemm, sgemv, dgemv */
} dl_blas_threads;

static dl_blas_threads *dl_blas_state = NULL;

static void dl_blas_bind(size_t address)
{
    dl_blas_state = (dl_blas_threads *)address;
}

/* Whether a BLAS thread setter is bound. */
static int dl_blas_bound(void)
{
    return dl_blas_state != NULL && dl_blas_state->n_hooks > 0;
}

/* Make BLAS single-threaded; returns the OpenMP thread count the kernel may use (n_threads,
 * or 1 where no setter is bound: then the BLAS parallelizes each call itself). */
static int dl_blas_serial_enter(int n_threads)
{
    dl_blas_threads *s = dl_blas_state;
    int i;
    if (s == NULL || s->n_hooks <= 0)
        return 1;
    if (s->depth == 0)
        for (i = 0; i < s->n_hooks; i++) {
            s->saved[i] = s->get[i]();
            if (s->saved[i] != 1)
                s->set[i](1);
        }
    s->depth++;
    return n_threads > 1 ? n_threads : 1;
}

static void dl_blas_serial_exit(void)
{
    dl_blas_threads *s = dl_blas_state;
    int i;
    if (s == NULL || s->n_hooks <= 0)
        return;
    s->depth--;
    if (s->depth == 0)
        for (i = 0; i < s->n_hooks; i++)
            if (s->saved[i] != 1)
                s->set[i](s->saved[i]);
}

/* Fortran BLAS signatures with the scalar type erased (one type for s and d). */
typedef void (*dl_gemm32_t)(const char *, const char *, const int *, const int *, const int *,
                            const void *, const void *, const int *, const void *, const int *,
                            const void *, void *, const int *);
typedef void (*dl_gemm64_t)(const char *, const char *, const int64_t *, const int64_t *,
                            const int64_t *, const void *, const void *, const int64_t *,
                            const void *, const int64_t *, const void *, void *, const int64_t *);
typedef void (*dl_gemv32_t)(const char *, const int *, const int *, const void *, const void *,
                            const int *, const void *, const int *, const void *, void *,
                            const int *);
typedef void (*dl_gemv64_t)(const char *, const int64_t *, const int64_t *, const void *,
                            const void *, const int64_t *, const void *, const int64_t *,
                            const void *, void *, const int64_t *);

static void dl_blas_gemm(int which, const char *ta, const char *tb, const int *m, const int *n,
                         const int *k, const void *alpha, const void *a, const int *lda,
                         const void *b, const int *ldb, const void *beta, void *c, const int *ldc)
{
    void *fn = dl_blas_state->fn[which];
    if (dl_blas_state->int64) {
        int64_t m64 = *m, n64 = *n, k64 = *k, lda64 = *lda, ldb64 = *ldb, ldc64 = *ldc;
        ((dl_gemm64_t)fn)(ta, tb, &m64, &n64, &k64, alpha, a, &lda64, b, &ldb64, beta, c, &ldc64);
    } else {
        ((dl_gemm32_t)fn)(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
}

static void dl_blas_gemv(int which, const char *t, const int *m, const int *n, const void *alpha,
                         const void *a, const int *lda, const void *x, const int *incx,
                         const void *beta, void *y, const int *incy)
{
    void *fn = dl_blas_state->fn[which];
    if (dl_blas_state->int64) {
        int64_t m64 = *m, n64 = *n, lda64 = *lda, incx64 = *incx, incy64 = *incy;
        ((dl_gemv64_t)fn)(t, &m64, &n64, alpha, a, &lda64, x, &incx64, beta, y, &incy64);
    } else {
        ((dl_gemv32_t)fn)(t, m, n, alpha, a, lda, x, incx, beta, y, incy);
    }
}

static void dl_blas_sgemm(char *ta, char *tb, int *m, int *n, int *k, float *alpha, float *a,
                          int *lda, float *b, int *ldb, float *beta, float *c, int *ldc)
{
    dl_blas_gemm(DL_BLAS_SGEMM, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

static void dl_blas_dgemm(char *ta, char *tb, int *m, int *n, int *k, double *alpha, double *a,
                          int *lda, double *b, int *ldb, double *beta, double *c, int *ldc)
{
    dl_blas_gemm(DL_BLAS_DGEMM, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

static void dl_blas_sgemv(char *t, int *m, int *n, float *alpha, float *a, int *lda, float *x,
                          int *incx, float *beta, float *y, int *incy)
{
    dl_blas_gemv(DL_BLAS_SGEMV, t, m, n, alpha, a, lda, x, incx, beta, y, incy);
}

static void dl_blas_dgemv(char *t, int *m, int *n, double *alpha, double *a, int *lda, double *x,
                          int *incx, double *beta, double *y, int *incy)
{
    dl_blas_gemv(DL_BLAS_DGEMV, t, m, n, alpha, a, lda, x, incx, beta, y, incy);
}

#endif
