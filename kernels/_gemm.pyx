# Design: float32 products with more than one row and column run on the own AVX-512 GEMM of
# dl_sgemm.h where the CPU has it (OWN_SGEMM): 245-262 GFLOPS per core here against 104-126 for
# scipy's OpenBLAS, which this environment pins to its Haswell (AVX2) kernels; rows of C are
# split over OpenMP tasks of OWN_ROWS_PER_TASK (each row summed the same way: bit-identical for
# any thread count); a transposed B is copied to (k, n) once per call; bias + linear/relu are
# fused into the tile stores. Measured: MLP 784-512-256-10 training (batch 128) 40,500 ->
# 72,800 samples/s. Everything else (float64, other CPUs, single rows/columns) goes through
# BLAS (sgemm/dgemm of the OpenBLAS NumPy loaded, through dl_blas_threads.h's function table,
# or scipy.linalg.cython_blas's; its own threads). Row-major operands are passed as their
# column-major transposes: C = op(A) op(B) row-major is C^T = op(B)^T op(A)^T column-major, so
# BLAS gets (B, A) swapped, the trans flags unchanged, and leading dimensions = row lengths.
# Zero-sized dimensions never reach BLAS (k == 0 only scales out by beta).
# A product with one output row or column (batch-1 inference, bias-like gradients) goes to
# sgemv/dgemv: scipy's OpenBLAS 0.3.30 runs a (1,784)x(784,512) sgemm 3.7x slower than the
# same sgemv (140 vs 38 us, one thread, measured here), and its threaded sgemm far worse.
# dense_forward = one GEMM into y_nm, then a fused epilogue: bias + activation in one pass over
# each row (epilogue_row from _activations.pxd), rows disjoint, so results are
# bit-identical for any n_threads (the BLAS call is the same whatever n_threads is).
# Epilogue threading (measured, 2 cores): an OpenMP team started right after a threaded
# OpenBLAS call waits for OpenBLAS's spinning workers (about one scheduler tick, 4-8 ms), which
# is 30x the whole (64,784)x(784,512) product. So the epilogue runs on the calling thread unless
# its weighted work (elements x 1 for cheap activations, x 32 for exp/erf/tanh ones) reaches
# EPILOGUE_PARALLEL_MIN, where it costs several ms serially; n_threads is an upper bound.
#
# Legend: N batch rows, K inputs, M outputs; matmul: out (m, n) = op(a) (m, k) @ op(b) (k, n).
from cython.parallel cimport prange
from libc.stdlib cimport malloc, free

from . import _config, _gemm_choice
from ._team cimport team_run

# Products under this many multiply-adds with n_threads > 1 run on the thread team, larger ones
# on OpenMP (kernels/_config.py).
cdef Py_ssize_t _TEAM_MAX_MACS = _config.TEAM_MAX_MACS
cdef Py_ssize_t _PARALLEL_MIN_MACS = _config.PARALLEL_MIN_MACS  # BLAS: one thread below

cdef extern from "dl_sgemm.h" nogil:
    int dl_sgemm_available()
    void dl_transpose(const float* src, Py_ssize_t lds, Py_ssize_t rows, Py_ssize_t cols,
                      float* dst, Py_ssize_t ldd)
    void dl_sgemm_ep(int a_cols, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a,
                     Py_ssize_t lda, const float* b, Py_ssize_t ldb, float beta, float* c,
                     Py_ssize_t ldc, const float* bias, int relu)

OWN_SGEMM = bool(dl_sgemm_available())
# Rows of C per OpenMP task of the own GEMM (a multiple of its 14-row tiles).
OWN_ROWS_PER_TASK = 14 * 8
cdef Py_ssize_t _OWN_ROWS_PER_TASK = OWN_ROWS_PER_TASK


def set_own_sgemm(enabled):
    """True: force the own AVX-512 float32 GEMM where the CPU has it (else BLAS); False: force
    BLAS; a path name or 'auto' (see set_path). Returns the previous setting as set_path's name.
    For measurements and tests."""
    if isinstance(enabled, str):
        return set_path(enabled)
    return set_path("avx512" if enabled and OWN_SGEMM else "blas")


cdef struct _OwnJob:
    bint trans_a
    Py_ssize_t m, n, k, lda, ldb, ldc, rows, cols
    const float* a
    const float* b
    float beta
    float* c
    const float* bias
    int relu


cdef void _own_chunk(void* arg, Py_ssize_t t) noexcept nogil:
    """Team chunk t of _own_gemm: a band of `rows` rows, or (rows == 0) a strip of `cols` columns."""
    cdef _OwnJob* j = <_OwnJob*>arg
    cdef Py_ssize_t r0, c0
    if j.rows > 0:
        r0 = t * j.rows
        dl_sgemm_ep(j.trans_a, min(j.rows, j.m - r0), j.n, j.k, j.a + (r0 if j.trans_a else r0 * j.lda),
                    j.lda, j.b, j.ldb, j.beta, j.c + r0 * j.ldc, j.ldc, j.bias, j.relu)
    else:
        c0 = t * j.cols
        dl_sgemm_ep(j.trans_a, j.m, min(j.cols, j.n - c0), j.k, j.a, j.lda, j.b + c0, j.ldb, j.beta,
                    j.c + c0, j.ldc, NULL if j.bias == NULL else j.bias + c0, j.relu)


cdef void _own_whole(void* arg) noexcept nogil:
    """_own_gemm's job in one call (the load guard's serial form)."""
    cdef _OwnJob* j = <_OwnJob*>arg
    dl_sgemm_ep(j.trans_a, j.m, j.n, j.k, j.a, j.lda, j.b, j.ldb, j.beta, j.c, j.ldc, j.bias, j.relu)


cdef int _own_gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                   const float* a, Py_ssize_t lda, const float* b, Py_ssize_t ldb, float beta,
                   float* c, Py_ssize_t ldc, const float* bias, int relu, int n_threads) noexcept nogil:
    """c = epilogue(op(a) op(b) + beta c) with the own GEMM, rows split over n_threads (each row
    is summed the same way whatever the split). A transposed b is copied to (k, n) first.
    Products under TEAM_MAX_MACS run on the thread team (dl_team.h): row bands of 14-row
    tiles, or 32-column strips when there are too few rows (every element's chain is the same
    whatever the band or strip). Returns -1 when out of memory (nothing written)."""
    cdef float* bt = NULL
    cdef Py_ssize_t task, tasks, r0, rows = _OWN_ROWS_PER_TASK
    cdef _OwnJob job
    if trans_b:
        bt = <float*>malloc(k * n * sizeof(float) + 64)
        if bt == NULL:
            return -1
        dl_transpose(b, ldb, n, k, bt, n)
        b, ldb = bt, n
    tasks = (m + rows - 1) // rows
    if n_threads > 1 and m * n * k < _TEAM_MAX_MACS:
        job.trans_a, job.m, job.n, job.k, job.lda, job.ldb, job.ldc = trans_a, m, n, k, lda, ldb, ldc
        job.a, job.b, job.beta, job.c, job.bias, job.relu = a, b, beta, c, bias, relu
        # about 4 bands per thread, claimed in turn: 128 rows in 42-row bands left one thread
        # 84 rows and the other 44 (2 threads 37-43 us against 46 on one); in 14-row bands, 70/58
        job.rows = max(1, (m + 13) // 14 // (4 * n_threads)) * 14
        job.cols = 0
        tasks = (m + job.rows - 1) // job.rows
        if tasks < 2 * n_threads and n >= 64:  # few rows: 32-column strips
            job.rows = 0
            job.cols = max(32, ((n + 2 * n_threads - 1) // (2 * n_threads) + 31) // 32 * 32)
            tasks = (n + job.cols - 1) // job.cols
        team_run(_own_chunk, &job, tasks, n_threads, m * n * k, _own_whole)
    elif n_threads <= 1 or tasks <= 1:
        dl_sgemm_ep(trans_a, m, n, k, a, lda, b, ldb, beta, c, ldc, bias, relu)
    else:
        for task in prange(tasks, num_threads=n_threads, schedule="static"):
            r0 = task * rows
            dl_sgemm_ep(trans_a, min(rows, m - r0), n, k, a + (r0 if trans_a else r0 * lda), lda,
                        b, ldb, beta, c + r0 * ldc, ldc, bias, relu)
    free(bt)
    return 0

cdef extern from "dl_sgemm_isa.h" nogil:
    int dl_cpu_isa()
    int dl_own_width(int isa)
    int dl_own_isa_available(int isa)
    Py_ssize_t dl_own_packed_size(int isa, Py_ssize_t k, Py_ssize_t n)
    void dl_own_pack(int isa, int trans_b, Py_ssize_t k, Py_ssize_t n, const float* b,
                     Py_ssize_t ldb, float* P, Py_ssize_t q0, Py_ssize_t q1)
    void dl_own_packed(int isa, int a_cols, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                       const float* a, Py_ssize_t lda, const float* P, float beta, float* c,
                       Py_ssize_t ldc, const float* bias, int relu)
    float dl_fma_loop(int isa, long iters, long* flops)

from kernels._blas_threads cimport (
    dl_blas_bind, dl_blas_serial_enter, dl_blas_serial_exit, sgemm, dgemm, sgemv, dgemv,
)

from . import _blas

from kernels._activations cimport (
    floating, epilogue_row, ACT_LINEAR, ACT_RELU, ACT_LEAKY_RELU, ACT_RELU6, ACT_HARD_SIGMOID,
    ACT_SOFTSIGN,
)


cdef extern from "dl_sgemv.h" nogil:
    void dl_sgemv_cols(int isa, Py_ssize_t k, const float* x, Py_ssize_t incx, const float* w,
                       Py_ssize_t ldw, Py_ssize_t j0, Py_ssize_t j1, const float* bias, int relu,
                       float* y)
    int dl_sgemv_width(int isa)
    int DL_SGEMV_BUILT

# The batch-1 float32 product (one row of op(a), b not transposed) runs on the own GEMV
# (dl_sgemv.h) at the ISA level of the forced path (set_path), else the CPU's; 'blas' forced
# sends it to BLAS's sgemv (measurements). Measured here, 1 thread, us (own / OpenBLAS sgemv):
# see kernels/README.md's gemv entry.
cdef struct _GemvJob:
    int isa, relu
    Py_ssize_t k, incx, ldw, n, cols
    const float* x
    const float* w
    const float* bias
    float* y


cdef void _gemv_chunk(void* arg, Py_ssize_t t) noexcept nogil:
    cdef _GemvJob* g = <_GemvJob*>arg
    dl_sgemv_cols(g.isa, g.k, g.x, g.incx, g.w, g.ldw, t * g.cols, min((t + 1) * g.cols, g.n),
                  g.bias, g.relu, g.y)


cdef void _gemv_whole(void* arg) noexcept nogil:
    """The GEMV over all its columns in one call (widest tiles): the load guard's serial form."""
    cdef _GemvJob* g = <_GemvJob*>arg
    dl_sgemv_cols(g.isa, g.k, g.x, g.incx, g.w, g.ldw, 0, g.n, g.bias, g.relu, g.y)


cdef inline int _gemv_isa() noexcept nogil:
    """The GEMV's ISA level, or -1 for BLAS (forced, or no GEMV in this build)."""
    if not DL_SGEMV_BUILT or _FORCED == PATH_BLAS:
        return -1
    return CPU_ISA_LEVEL if _FORCED < 0 else _FORCED - 1


cdef void _own_gemv(int isa, Py_ssize_t n, Py_ssize_t k, const float* x, Py_ssize_t incx,
                    const float* w, Py_ssize_t ldw, const float* bias, int relu, float* y,
                    int n_threads) noexcept nogil:
    """y (n) = epilogue(x (k, stride incx) @ w (k, n, row stride ldw)), columns split over the
    thread team in strips of 8 vectors (2 per thread): the same bits for any n_threads."""
    cdef _GemvJob g
    cdef Py_ssize_t vec = dl_sgemv_width(isa) * 8, chunks
    g.isa, g.relu, g.k, g.incx, g.ldw, g.n = isa, relu, k, incx, ldw, n
    g.x, g.w, g.bias, g.y = x, w, bias, y
    g.cols = n
    if n_threads > 1:
        g.cols = max(vec, ((n + 2 * n_threads - 1) // (2 * n_threads) + vec - 1) // vec * vec)
    chunks = (n + g.cols - 1) // g.cols
    if chunks <= 1:
        dl_sgemv_cols(isa, k, x, incx, w, ldw, 0, n, bias, relu, y)
    else:
        team_run(_gemv_chunk, &g, chunks, n_threads, n * k, _gemv_whole)


def gemv(const float[::1] x, const float[:, ::1] w, const float[::1] bias, bint relu,
         float[::1] y, int n_threads=1, isa=None):
    """y = x @ w (+ bias, then max(., 0) if relu) on the own GEMV (tests and measurements).

    x: (k,) float32, C-contiguous, IN
    w: (k, n) float32, C-contiguous, IN
    bias: (n,) float32, C-contiguous, IN, or None
    y: (n,) float32, C-contiguous, OUT

    isa: "avx512", "avx2" or "base" (None: the CPU's); ValueError where the CPU lacks it.
    """
    cdef Py_ssize_t k = w.shape[0], n = w.shape[1]
    cdef int level = CPU_ISA_LEVEL
    cdef const float* b = NULL
    if x.shape[0] != k or y.shape[0] != n or (bias is not None and bias.shape[0] != n):
        raise ValueError(f"gemv: expected x ({k},), y ({n},), bias ({n},); received x {x.shape[0]}, "
                         f"y {y.shape[0]}, bias {None if bias is None else bias.shape[0]}")
    if isa is not None:
        if isa not in AVAILABLE_PATHS or isa == "blas":
            raise ValueError(f"gemv: isa expected one of {AVAILABLE_PATHS[1:]} (this CPU's), received {isa!r}")
        level = PATH_NAMES.index(isa) - 1
    if not DL_SGEMV_BUILT:
        raise RuntimeError("gemv: this build has no own GEMV (needs GCC on x86-64)")
    if n == 0:
        return
    if k == 0:
        y[:] = 0
        if bias is not None:
            y[:] = bias
        if relu:
            for j in range(n):
                y[j] = y[j] if y[j] > 0 or y[j] != y[j] else 0
        return
    if bias is not None:
        b = &bias[0]
    with nogil:
        _own_gemv(level, n, k, &x[0], 1, &w[0, 0], n, b, relu, &y[0], n_threads)


cdef void _gemm(bint trans_a, bint trans_b, int m, int n, int k, double alpha,
                const floating* a, int lda, const floating* b, int ldb, double beta,
                floating* c, int ldc) noexcept nogil:
    """Row-major c (m, n) = alpha op(a) op(b) + beta c, all dims > 0."""
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef float alpha_f = <float>alpha, beta_f = <float>beta
    cdef int one = 1, rows, cols, inc
    cdef char tv
    if m == 1 or n == 1:
        # Column-major view: c^T (n, m) = op(b)^T op(a)^T. One row of c (m == 1): c^T is the
        # vector op(b)^T a_row, b seen column-major as (n, k) with ld ldb (or (k, n) if trans_b).
        if m == 1:
            tv = b'T' if trans_b else b'N'
            rows, cols = (k, n) if trans_b else (n, k)
            inc = lda if trans_a else 1  # the row of op(a) in memory
            if floating is float:
                sgemv(&tv, &rows, &cols, &alpha_f, <float*>b, &ldb, <float*>a, &inc, &beta_f, c, &one)
            else:
                dgemv(&tv, &rows, &cols, &alpha, <double*>b, &ldb, <double*>a, &inc, &beta, c, &one)
            return
        # One column of c (n == 1): c = op(a) b_col, a seen column-major as (k, m) (or (m, k)).
        tv = b'N' if trans_a else b'T'
        rows, cols = (m, k) if trans_a else (k, m)
        inc = 1 if trans_b else ldb
        if floating is float:
            sgemv(&tv, &rows, &cols, &alpha_f, <float*>a, &lda, <float*>b, &inc, &beta_f, c, &ldc)
        else:
            dgemv(&tv, &rows, &cols, &alpha, <double*>a, &lda, <double*>b, &inc, &beta, c, &ldc)
        return
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha_f, <float*>b, &ldb, <float*>a, &lda,
              &beta_f, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*>b, &ldb, <double*>a, &lda,
              &beta, c, &ldc)


cdef void _scale(floating* c, Py_ssize_t size, double beta) noexcept nogil:
    """c *= beta; beta == 0 writes zeros (c is not read, as in BLAS)."""
    cdef Py_ssize_t i
    cdef floating bt = <floating>beta
    if beta == 0:
        for i in range(size):
            c[i] = 0
    elif beta != 1:
        for i in range(size):
            c[i] = c[i] * bt


# Weighted epilogue work (see Design) from which dense_forward's epilogue uses n_threads.
EPILOGUE_PARALLEL_MIN = 1 << 24
cdef Py_ssize_t _EPILOGUE_PARALLEL_MIN = EPILOGUE_PARALLEL_MIN


cdef inline Py_ssize_t _epilogue_work(int code, Py_ssize_t n, Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t weight = 32
    if (code == ACT_LINEAR or code == ACT_RELU or code == ACT_LEAKY_RELU or code == ACT_RELU6
            or code == ACT_HARD_SIGMOID or code == ACT_SOFTSIGN):
        weight = 1
    return n * m * weight


def matmul(const floating[:, ::1] a, const floating[:, ::1] b, floating[:, ::1] out,
           bint trans_a=False, bint trans_b=False, double alpha=1.0, double beta=0.0,
           int n_threads=-1):
    """out = alpha * op(a) @ op(b) + beta * out, op(v) = v.T if trans_v else v.

    a: (m, k) or (k, m) if trans_a, float32/64, C-contiguous, IN
    b: (k, n) or (n, k) if trans_b, same dtype, C-contiguous, IN
    out: (m, n) same dtype, C-contiguous, IN/OUT (not read when beta == 0)

    n_threads: threads of the own float32 GEMM and GEMV (-1: _config.team_threads_for_macs(m*n*k));
    BLAS products use BLAS's thread setting.
    """
    cdef int m = <int>out.shape[0], n = <int>out.shape[1]
    cdef int k = <int>(a.shape[0] if trans_a else a.shape[1])
    cdef int status = 0, choice, path
    if m == 0 or n == 0:
        return
    if floating is float:
        if n_threads < 0:
            n_threads = _config.team_threads_for_macs(<Py_ssize_t>m * n * k)
        if m == 1 and k > 0 and not trans_b and alpha == 1.0 and beta == 0.0 and _gemv_isa() >= 0:
            with nogil:
                _own_gemv(_gemv_isa(), n, k, &a[0, 0], a.shape[1] if trans_a else 1, &b[0, 0],
                          b.shape[1], NULL, 0, &out[0, 0], n_threads)
            return
        if m > 1 and n > 1 and k > 0 and alpha == 1.0:
            choice = _choose(trans_a, trans_b, m, n, k, n_threads)
            path = choice & 7
            if path == PATH_BLAS:
                _blas_gemm_f(trans_a, trans_b, m, n, k, &a[0, 0], <int>a.shape[1], &b[0, 0],
                             <int>b.shape[1], <float>beta, &out[0, 0], n, choice >> 3)
                return
            with nogil:
                status = _own_path(path, trans_a, trans_b, m, n, k, &a[0, 0], a.shape[1],
                                   &b[0, 0], b.shape[1], <float>beta, &out[0, 0], n, NULL, 0,
                                   choice >> 3)
            if status != 0:
                raise MemoryError()
            return
    with nogil:
        if k == 0:
            _scale(&out[0, 0], <Py_ssize_t>m * n, beta)
        else:
            _gemm(trans_a, trans_b, m, n, k, alpha, &a[0, 0], <int>a.shape[1],
                  &b[0, 0], <int>b.shape[1], beta, &out[0, 0], n)


def dense_forward(const floating[:, ::1] x_nk, const floating[:, ::1] w_km,
                  const floating[::1] b_m, int activation, double alpha,
                  floating[:, ::1] y_nm, int n_threads=1):
    """y_nm = act(x_nk @ w_km + b_m), the activation code from elementwise.ACTIVATIONS.

    x_nk: (N, K) float32/64, C-contiguous, IN
    w_km: (K, M) same dtype, C-contiguous, IN
    b_m: (M,) same dtype, C-contiguous, IN, or None (no bias)
    y_nm: (N, M) same dtype, C-contiguous, OUT

    alpha is leaky_relu's slope / elu's alpha. softmax (15) and log_softmax (16) run row-wise
    over M.
    """
    cdef int n = <int>y_nm.shape[0], m = <int>y_nm.shape[1], k = <int>x_nk.shape[1]
    cdef Py_ssize_t i
    cdef const floating* bias = NULL
    cdef floating a = <floating>alpha
    cdef bint fused, serial, own = False
    cdef int status = 0, choice = 0, path
    if n == 0 or m == 0:
        return
    if b_m is not None:
        bias = &b_m[0]
    if floating is float:
        if n == 1 and k > 0 and _gemv_isa() >= 0:
            # batch 1: the own GEMV, bias + linear/relu fused, never BLAS (no thread switch)
            fused = activation == ACT_LINEAR or activation == ACT_RELU
            with nogil:
                _own_gemv(_gemv_isa(), m, k, &x_nk[0, 0], 1, &w_km[0, 0], m, bias if fused else NULL,
                          activation == ACT_RELU, &y_nm[0, 0], n_threads)
            if fused:
                return
            own = True
        elif n > 1 and m > 1 and k > 0:
            choice = _choose(False, False, n, m, k, n_threads)
            path = choice & 7
            own = path != PATH_BLAS
            if own:
                # bias + linear/relu in the tile stores; other activations in the row epilogue
                fused = activation == ACT_LINEAR or activation == ACT_RELU
                with nogil:
                    status = _own_path(path, False, False, n, m, k, &x_nk[0, 0], k, &w_km[0, 0],
                                       m, 0.0, &y_nm[0, 0], m, bias if fused else NULL,
                                       activation == ACT_RELU, choice >> 3)
                if status != 0:
                    raise MemoryError()
                if fused:
                    return
            else:
                _blas_gemm_f(False, False, n, m, k, &x_nk[0, 0], k, &w_km[0, 0], m, 0.0,
                             &y_nm[0, 0], m, choice >> 3)
                own = True  # the product is done
    if not own:
        serial = n_threads <= 1  # BLAS on the caller's thread count (batch 1: a gemv)
        if serial:
            dl_blas_serial_enter(1)
        try:
            with nogil:
                if k == 0:
                    _scale(&y_nm[0, 0], <Py_ssize_t>n * m, 0.0)
                else:
                    _gemm(False, False, n, m, k, 1.0, &x_nk[0, 0], k, &w_km[0, 0], m, 0.0,
                          &y_nm[0, 0], m)
        finally:
            if serial:
                dl_blas_serial_exit()
    if activation == 0 and bias == NULL:
        return
    if _epilogue_work(activation, n, m) < _EPILOGUE_PARALLEL_MIN:
        n_threads = 1
    if n_threads <= 1:
        with nogil:
            for i in range(n):
                epilogue_row(activation, &y_nm[i, 0], bias, m, a)
    else:
        for i in prange(n, nogil=True, num_threads=n_threads, schedule="static"):
            epilogue_row(activation, &y_nm[i, 0], bias, m, a)


def own_sgemm(const float[:, ::1] a, const float[:, ::1] b, float[:, ::1] out,
              bint trans_a=False, double beta=0.0, const float[::1] bias=None, bint relu=False):
    """out = op(a) @ b + beta * out (+ bias, then max(., 0) if relu) with the kernels' own AVX-512
    float32 GEMM (dl_sgemm.h), one thread; OWN_SGEMM tells whether this CPU runs it (otherwise
    this raises RuntimeError).

    a: (m, k) or (k, m) if trans_a, float32, C-contiguous, IN
    b: (k, n) float32, C-contiguous, IN
    out: (m, n) float32, C-contiguous, IN/OUT (not read when beta == 0)
    """
    if not OWN_SGEMM:
        raise RuntimeError("the kernels' own sgemm needs a CPU with AVX-512F/VL/DQ")
    cdef Py_ssize_t m = out.shape[0], n = out.shape[1]
    cdef Py_ssize_t k = a.shape[0] if trans_a else a.shape[1]
    cdef const float* bias_p = NULL
    if bias is not None:
        bias_p = &bias[0]
    if m == 0 or n == 0:
        return
    with nogil:
        dl_sgemm_ep(trans_a, m, n, k, &a[0, 0] if a.shape[0] * a.shape[1] > 0 else NULL,
                    a.shape[1], &b[0, 0] if b.shape[0] * b.shape[1] > 0 else NULL, n,
                    <float>beta, &out[0, 0], n, bias_p, relu)


include "_gemm_dispatch.pxi"

# bfloat16 path (dl_bf16gemm.h) ---------------------------------------------------------------
# The mixed_bfloat16 / bfloat16 dtype policies' products: operands rounded to bfloat16 and packed
# in pairs along k once per call, then VDPBF16PS tiles (AVX512_BF16) or the portable C tiles,
# float32 accumulation. Rows of C are split over OpenMP tasks of BF16_ROWS_PER_TASK (each element
# summed the same way whatever the split: bit-identical for any thread count).
from libc.stdint cimport uint32_t

import numpy as np

cdef extern from "dl_bf16gemm.h" nogil:
    int dl_bgemm_isa()
    int dl_bgemm_set_isa(int isa)
    Py_ssize_t dl_bgemm_rows(Py_ssize_t m)
    Py_ssize_t dl_bgemm_cols(Py_ssize_t n)
    void dl_round_bf16(const float* x, float* y, Py_ssize_t size)
    int dl_have_float16()
    void dl_cast_f16(const float* x, unsigned short* y, Py_ssize_t size)
    void dl_widen_f16(const unsigned short* x, float* y, Py_ssize_t size)
    void dl_bgemm_pack_a(int trans_a, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t m, Py_ssize_t k,
                         const float* a, Py_ssize_t lda, uint32_t* ap)
    void dl_bgemm_pack_b(int trans_b, Py_ssize_t q0, Py_ssize_t q1, Py_ssize_t k, Py_ssize_t n,
                         const float* b, Py_ssize_t ldb, uint32_t* bp)
    void dl_bgemm_few_rows(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a, Py_ssize_t lda,
                           const float* b, Py_ssize_t ldb, float* c, Py_ssize_t ldc, const float* bias, int relu)
    void dl_bgemm_packed(Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t n, Py_ssize_t k, const uint32_t* ap,
                         const uint32_t* bp, float beta, float* c, Py_ssize_t ldc, const float* bias,
                         int relu)

BF16_ISAS = ("avx512_bf16", "portable")
BF16_ROWS_PER_TASK = 64  # a multiple of the 8-row tiles
cdef Py_ssize_t _BF16_ROWS = BF16_ROWS_PER_TASK
# Products with at most this many rows (op(a) not transposed, b not transposed, beta == 0) are
# summed straight from a and b (dl_bgemm_few_rows): packing b costs more than the product there.
BF16_FEW_ROWS = 1
cdef Py_ssize_t _BF16_FEW_ROWS = BF16_FEW_ROWS


def bf16_isa():
    """The bfloat16 tile variant this process runs: "avx512_bf16" or "portable"."""
    return BF16_ISAS[dl_bgemm_isa()]


def set_bf16_few_rows(rows):
    """Sum products of at most ``rows`` rows without packing (0: always pack; tests and
    measurements); returns the previous setting."""
    global _BF16_FEW_ROWS
    previous = _BF16_FEW_ROWS
    _BF16_FEW_ROWS = int(rows)
    return previous


def set_bf16_isa(isa):
    """Run the bfloat16 products with ``isa`` ("avx512_bf16" or "portable"; tests and
    measurements); returns the previous one. ValueError if this CPU lacks ``isa``."""
    if isa not in BF16_ISAS:
        raise ValueError(f"set_bf16_isa: expected one of {BF16_ISAS}, received {isa!r}")
    previous = dl_bgemm_set_isa(BF16_ISAS.index(isa))
    if previous < 0:
        raise ValueError(f"set_bf16_isa: this CPU has no {isa} (no AVX512_BF16)")
    return BF16_ISAS[previous]


cdef int _bgemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                const float* a, Py_ssize_t lda, const float* b, Py_ssize_t ldb, float beta,
                float* c, Py_ssize_t ldc, const float* bias, int relu, int n_threads) noexcept nogil:
    """c = epilogue(bf16(op(a)) bf16(op(b)) + beta c); -1 when out of memory (nothing written)."""
    cdef Py_ssize_t kp = (k + 1) // 2, mp = dl_bgemm_rows(m), npad = dl_bgemm_cols(n)
    cdef Py_ssize_t tasks = (m + _BF16_ROWS - 1) // _BF16_ROWS, panels = npad // 32, t, r0
    cdef uint32_t* ap
    cdef uint32_t* bp
    if m <= _BF16_FEW_ROWS and not trans_a and not trans_b and beta == 0:
        dl_bgemm_few_rows(m, n, k, a, lda, b, ldb, c, ldc, bias, relu)
        return 0
    ap = <uint32_t*>malloc(mp * kp * sizeof(uint32_t) + 64)
    bp = <uint32_t*>malloc(npad * kp * sizeof(uint32_t) + 64)
    if ap == NULL or bp == NULL:
        free(ap)
        free(bp)
        return -1
    if n_threads <= 1 or tasks <= 1:
        dl_bgemm_pack_a(trans_a, 0, mp, m, k, a, lda, ap)
        dl_bgemm_pack_b(trans_b, 0, panels, k, n, b, ldb, bp)
        dl_bgemm_packed(0, m, n, k, ap, bp, beta, c, ldc, bias, relu)
    else:
        for t in prange(panels, num_threads=n_threads, schedule="static"):
            dl_bgemm_pack_b(trans_b, t, t + 1, k, n, b, ldb, bp)
        for t in prange(tasks, num_threads=n_threads, schedule="static"):
            r0 = t * _BF16_ROWS
            dl_bgemm_pack_a(trans_a, r0, min(r0 + _BF16_ROWS, mp), m, k, a, lda, ap)
            dl_bgemm_packed(r0, min(r0 + _BF16_ROWS, m), n, k, ap, bp, beta, c, ldc, bias, relu)
    free(ap)
    free(bp)
    return 0


def matmul_bf16(const float[:, ::1] a, const float[:, ::1] b, float[:, ::1] out,
                bint trans_a=False, bint trans_b=False, double beta=0.0, int n_threads=-1):
    """out = bf16(op(a)) @ bf16(op(b)) + beta * out, float32 accumulation (bf16 = round to
    nearest even), op(v) = v.T if trans_v else v.

    a: (m, k) or (k, m) if trans_a, float32, C-contiguous, IN
    b: (k, n) or (n, k) if trans_b, float32, C-contiguous, IN
    out: (m, n) float32, C-contiguous, IN/OUT (not read when beta == 0)

    n_threads: -1 for _config.threads_for(m*n*k).
    """
    cdef Py_ssize_t m = out.shape[0], n = out.shape[1]
    cdef Py_ssize_t k = a.shape[0] if trans_a else a.shape[1]
    cdef int status
    if m == 0 or n == 0:
        return
    if n_threads < 0:
        n_threads = _config.threads_for(m * n * k)
    with nogil:
        status = _bgemm(trans_a, trans_b, m, n, k, &a[0, 0] if a.shape[0] * a.shape[1] > 0 else NULL,
                        a.shape[1], &b[0, 0] if b.shape[0] * b.shape[1] > 0 else NULL, b.shape[1],
                        <float>beta, &out[0, 0], n, NULL, 0, n_threads)
    if status != 0:
        raise MemoryError()


def dense_forward_bf16(const float[:, ::1] x_nk, const float[:, ::1] w_km, const float[::1] b_m,
                       int activation, double alpha, float[:, ::1] y_nm, int n_threads=1):
    """y_nm = act(bf16(x_nk) @ bf16(w_km) + b_m), float32 accumulation, the bias added in float32.

    x_nk: (N, K) float32, C-contiguous, IN
    w_km: (K, M) float32, C-contiguous, IN
    b_m: (M,) float32, C-contiguous, IN, or None (no bias)
    y_nm: (N, M) float32, C-contiguous, OUT

    The activation code and alpha as dense_forward's.
    """
    cdef Py_ssize_t n = y_nm.shape[0], m = y_nm.shape[1], k = x_nk.shape[1], i
    cdef const float* bias = NULL
    cdef bint fused = activation == ACT_LINEAR or activation == ACT_RELU
    cdef int status
    cdef float a = <float>alpha
    if n == 0 or m == 0:
        return
    if b_m is not None:
        bias = &b_m[0]
    with nogil:
        status = _bgemm(False, False, n, m, k, &x_nk[0, 0] if n * k > 0 else NULL, k,
                        &w_km[0, 0] if k * m > 0 else NULL, m, 0.0, &y_nm[0, 0], m,
                        bias if fused else NULL, activation == ACT_RELU, n_threads)
    if status != 0:
        raise MemoryError()
    if fused:
        return
    with nogil:
        for i in range(n):
            epilogue_row(activation, &y_nm[i, 0], bias, m, a)


def round_bfloat16(const float[::1] x, float[::1] out):
    """out = x rounded to the nearest bfloat16 (ties to even; NaN and inf kept), as float32.

    x: (size,) float32, C-contiguous, IN
    out: (size,) float32, C-contiguous, OUT (may be x's buffer)
    """
    if x.shape[0] != out.shape[0]:
        raise ValueError(f"round_bfloat16: x has {x.shape[0]} elements, out {out.shape[0]}")
    if x.shape[0] == 0:
        return
    with nogil:
        dl_round_bf16(&x[0], &out[0], x.shape[0])


# Whether cast_float16 / widen_float16 run vectorized C here (the compiler had _Float16); else
# they use NumPy's casts, about 7x slower (scalar loops).
FLOAT16_CASTS = bool(dl_have_float16())


def cast_float16(const float[::1] x, unsigned short[::1] out):
    """out = x rounded to float16 (ties to even; overflow to inf, NaN kept), as float16 bits.

    x: (size,) float32, C-contiguous, IN
    out: (size,) float16 viewed as uint16, C-contiguous, OUT
    """
    if x.shape[0] != out.shape[0]:
        raise ValueError(f"cast_float16: x has {x.shape[0]} elements, out {out.shape[0]}")
    if x.shape[0] == 0:
        return
    if not FLOAT16_CASTS:
        np.asarray(out).view(np.float16)[...] = np.asarray(x)
        return
    with nogil:
        dl_cast_f16(&x[0], &out[0], x.shape[0])


def widen_float16(const unsigned short[::1] x, float[::1] out):
    """out = x (float16 bits) as float32, exactly.

    x: (size,) float16 viewed as uint16, C-contiguous, IN
    out: (size,) float32, C-contiguous, OUT
    """
    if x.shape[0] != out.shape[0]:
        raise ValueError(f"widen_float16: x has {x.shape[0]} elements, out {out.shape[0]}")
    if x.shape[0] == 0:
        return
    if not FLOAT16_CASTS:
        np.asarray(out)[...] = np.asarray(x).view(np.float16)
        return
    with nogil:
        dl_widen_f16(&x[0], &out[0], x.shape[0])
