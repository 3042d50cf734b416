/* The one switch that makes BLAS single-threaded while a kernel calls it from its own OpenMP
 * threads (conv, recurrent). A threaded OpenBLAS called from two OpenMP threads serializes its
 * level-3 calls and its spinning workers oversubscribe the cores (measured 7-20 GFLOPS against
 * 45-80 with single-threaded calls); a threaded call per time step of a recurrence puts a
 * barrier in every step. The state (the thread getters/setters of every OpenBLAS in the process,
 * the counts to restore, the nesting depth) is one struct for the whole process, allocated by
 * kernels/_blas.py and bound into each extension (dl_blas_bind), so nested and concurrent
 * kernels of every family share one count. Enter and exit are called with the GIL held, which
 * makes the count exact across Python threads. */
#ifndef DL_BLAS_THREADS_H
#define DL_BLAS_THREADS_H

#include <stddef.h>

#define DL_BLAS_MAX_HOOKS 8

typedef int (*dl_blas_get_t)(void);
typedef void (*dl_blas_set_t)(int);

/* Layout mirrored by kernels/_blas.py (ctypes). */
typedef struct {
    int n_hooks; /* OpenBLAS libraries found (0: none; kernels then run on one thread) */
    int depth;   /* kernels inside enter/exit */
    int saved[DL_BLAS_MAX_HOOKS];
    dl_blas_get_t get[DL_BLAS_MAX_HOOKS];
    dl_blas_set_t set[DL_BLAS_MAX_HOOKS];
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

#endif
