# The process's BLAS (function table and thread switch) shared by the extensions that call BLAS
# (_gemm, _conv, _recurrent): declarations of dl_blas_threads.h, where the design is. Each such
# extension defines `def bind_blas_threads(size_t address): dl_blas_bind(address)` and calls
# `_blas.bind_at_import(bind_blas_threads)` at its import, before any kernel can call BLAS.
# sgemm, dgemm, sgemv, dgemv have scipy.linalg.cython_blas's signatures.
cdef extern from "dl_blas_threads.h" nogil:
    void dl_blas_bind(size_t address)
    int dl_blas_bound()
    int dl_blas_serial_enter(int n_threads)
    void dl_blas_serial_exit()
    void sgemm "dl_blas_sgemm"(char *transa, char *transb, int *m, int *n, int *k, float *alpha,
                               float *a, int *lda, float *b, int *ldb, float *beta, float *c,
                               int *ldc)
    void dgemm "dl_blas_dgemm"(char *transa, char *transb, int *m, int *n, int *k, double *alpha,
                               double *a, int *lda, double *b, int *ldb, double *beta, double *c,
                               int *ldc)
    void sgemv "dl_blas_sgemv"(char *trans, int *m, int *n, float *alpha, float *a, int *lda,
                               float *x, int *incx, float *beta, float *y, int *incy)
    void dgemv "dl_blas_dgemv"(char *trans, int *m, int *n, double *alpha, double *a, int *lda,
                               double *x, int *incx, double *beta, double *y, int *incy)
