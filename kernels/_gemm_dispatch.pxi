# The float32 path of matmul / dense_forward (and of conv's products, through choose_path):
# the own tiles at an ISA level (dl_sgemm.h, dl_sgemm_isa.h) or scipy's BLAS, and the thread
# count, chosen per (trans flags, shape class, threads) by _gemm_choice (measured at first use on
# this CPU and cached on disk; see there). A fixed choice gives fixed results: the own paths sum
# every element in one order whatever the row split, so 1 or n threads give the same bits.
#
# Own paths: "avx512" reads B in place (dl_sgemm_ep, rows split in OWN_ROWS_PER_TASK tasks) when
# the product is small, else packs B into 32-column strips once per call (shared by the
# threads, each thread taking one contiguous band of rows); "avx2" and "base" always pack.

PATH_NAMES = ("blas", "avx512", "avx2", "base")
cdef enum:
    PATH_BLAS = 0
    PATH_AVX512 = 1
    PATH_AVX2 = 2
    PATH_BASE = 3

# The CPU's ISA level (0 AVX-512, 1 AVX2 + FMA, 2 baseline) and the paths that run here.
CPU_ISA = dl_cpu_isa()
cdef int CPU_ISA_LEVEL = CPU_ISA
AVAILABLE_PATHS = tuple(name for i, name in enumerate(PATH_NAMES)
                        if i == PATH_BLAS or dl_own_isa_available(i - 1))

cdef int _FORCED = -1  # -1: chosen per shape; else the path code
cdef dict _CHOICES = {}  # shape key -> path + 8 * threads

# The AVX-512 path packs B when op(B) is transposed or k, n and m reach these (measured: see
# _gemm_choice's Design) and the product is past the team's range; _PACK512 0 never, 1 by this
# rule, 2 always (measurements, tests). In the team's range the packing is one more team job per
# product (its 4 chunks handed over and waited for) and B is small: batch-1 transformer
# products at 2 threads, B in place against packed, us: 128^3 24.5 / 29.5, 128x128 @ 128x384
# 70-72 / 89-91, 128x128 @ 128x512 94 / 113, 128x512 @ 512x128 90 / 110 (1 thread: even).
PACK_MIN_K = 128
PACK_MIN_N = 128
PACK_MIN_M = 64
cdef Py_ssize_t _PACK_MIN_K = PACK_MIN_K, _PACK_MIN_N = PACK_MIN_N, _PACK_MIN_M = PACK_MIN_M
cdef int _PACK512 = 1


def bind_blas_threads(size_t address):
    """Bind the process's BLAS state: function table and thread switch (kernels/_blas.py)."""
    dl_blas_bind(address)


_blas.bind_at_import(bind_blas_threads)  # before any kernel of this module can call BLAS


def _path_code(path):
    if path == "auto":
        return -1
    if path not in AVAILABLE_PATHS:
        raise ValueError(f"sgemm path: expected 'auto' or one of {AVAILABLE_PATHS} (this CPU's), "
                         f"received {path!r}")
    return PATH_NAMES.index(path)


def set_path(path):
    """Force the float32 product path ('auto': chosen per shape, the default; else a name of
    AVAILABLE_PATHS); returns the previous setting. For tests and measurements."""
    global _FORCED
    previous = "auto" if _FORCED < 0 else PATH_NAMES[_FORCED]
    _FORCED = _path_code(path)
    return previous


def set_pack(int mode):
    """The AVX-512 path's B packing: 0 never, 1 by the size rule (default), 2 always; returns
    the previous mode."""
    global _PACK512
    if mode not in (0, 1, 2):
        raise ValueError(f"set_pack: expected 0, 1 or 2, received {mode}")
    previous, _PACK512 = _PACK512, mode
    return previous


def clear_choices():
    """Forget this process's choices (the disk cache is _gemm_choice's)."""
    _CHOICES.clear()


def choices():
    """{(trans_a, trans_b, m class, n class, k class, threads): (path, threads)} made so far."""
    return {key: (PATH_NAMES[v & 7], v >> 3) for key, v in _CHOICES.items()}


cdef inline int _bucket(Py_ssize_t x) noexcept:
    """The shape class of one dimension: itself up to 16, then half octaves."""
    cdef int e = 0
    if x <= 16:
        return <int>x
    while (x >> (e + 1)) != 0:
        e += 1
    return 16 + 2 * e + (1 if 2 * (x - (1 << e)) >= (1 << e) else 0)


def shape_class(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k):
    """(m class, n class, k class) as the choice keys hold them."""
    return (_bucket(m), _bucket(n), _bucket(k))


cdef int _choose(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                 int n_threads) except -1:
    """path + 8 * threads for this product (n_threads: the most it may use)."""
    if n_threads < 1:
        n_threads = 1
    if _FORCED >= 0:
        return _FORCED + 8 * n_threads
    key = (trans_a, trans_b, _bucket(m), _bucket(n), _bucket(k), n_threads)
    found = _CHOICES.get(key)
    if found is None:
        path, threads = _gemm_choice.choose(key, m, n, k, trans_a, trans_b, n_threads,
                                            AVAILABLE_PATHS, run_path)
        found = PATH_NAMES.index(path) + 8 * threads
        _CHOICES[key] = found
    if found & 7 != PATH_BLAS and n_threads > 1 and m * n * k < _TEAM_MAX_MACS:
        # an own path in the team's range takes every thread: the team's load guard measures,
        # per kind of product, whether sharing pays now (a tuning run on a loaded host would
        # have fixed one thread for good)
        found = (found & 7) + 8 * n_threads
    return found


def choose_path(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, bint trans_a=False,
                bint trans_b=False, int n_threads=1):
    """The (path, threads) the products of this shape take (tuning it now if it is new)."""
    cdef int v = _choose(trans_a, trans_b, m, n, k, n_threads)
    return PATH_NAMES[v & 7], v >> 3


cdef inline int _own_mr(int isa) noexcept nogil:
    return 14 if isa == 0 else 6 if isa == 1 else 4


cdef struct _PackedJob:
    int isa, relu
    bint trans_a, trans_b, packing
    Py_ssize_t m, n, k, lda, ldb, ldc, step, strips
    const float* a
    const float* b
    float* P
    float beta
    float* c
    const float* bias


cdef void _packed_chunk(void* arg, Py_ssize_t t) noexcept nogil:
    """Team chunk t of _own_packed_gemm: `strips` strips of B packed, or a band of `step` rows."""
    cdef _PackedJob* j = <_PackedJob*>arg
    cdef Py_ssize_t nq = (j.n + dl_own_width(j.isa) - 1) // dl_own_width(j.isa), r0 = t * j.step
    if j.packing:
        dl_own_pack(j.isa, j.trans_b, j.k, j.n, j.b, j.ldb, j.P, t * j.strips, min((t + 1) * j.strips, nq))
    else:
        dl_own_packed(j.isa, j.trans_a, min(j.step, j.m - r0), j.n, j.k,
                      j.a + (r0 if j.trans_a else r0 * j.lda), j.lda, j.P, j.beta, j.c + r0 * j.ldc,
                      j.ldc, j.bias, j.relu)


cdef int _own_packed_gemm(int isa, bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n,
                          Py_ssize_t k, const float* a, Py_ssize_t lda, const float* b,
                          Py_ssize_t ldb, float beta, float* c, Py_ssize_t ldc,
                          const float* bias, int relu, int n_threads) noexcept nogil:
    """The own GEMM at ISA level isa on B packed once (strips packed in parallel, then one band
    of rows per thread). Returns -1 when out of memory (nothing written)."""
    cdef Py_ssize_t w = dl_own_width(isa), nq = (n + w - 1) // w, mr = _own_mr(isa)
    cdef Py_ssize_t q, t, r0, step, tasks
    cdef _PackedJob job
    cdef float* P = <float*>malloc(dl_own_packed_size(isa, k, n) * sizeof(float) + 64)
    if P == NULL:
        return -1
    if n_threads > 1 and m >= 2 * mr and m * n * k < _TEAM_MAX_MACS:  # the thread team
        job.isa, job.trans_a, job.trans_b, job.m, job.n, job.k = isa, trans_a, trans_b, m, n, k
        job.a, job.lda, job.b, job.ldb, job.P, job.beta = a, lda, b, ldb, P, beta
        job.c, job.ldc, job.bias, job.relu = c, ldc, bias, relu
        # about 4 bands of whole tiles per thread, claimed in turn (as _own_gemm: 128 rows in
        # 42-row bands left one thread 84 rows and the other 44)
        job.step = max(1, (m + mr - 1) // mr // (4 * n_threads)) * mr
        job.strips = (nq + 2 * n_threads - 1) // (2 * n_threads)
        job.packing = True
        team_run(_packed_chunk, &job, (nq + job.strips - 1) // job.strips, n_threads, 2 * m * n * k + 1)
        job.packing = False
        team_run(_packed_chunk, &job, (m + job.step - 1) // job.step, n_threads, 2 * m * n * k)
    elif n_threads <= 1 or m < 2 * mr:
        dl_own_pack(isa, trans_b, k, n, b, ldb, P, 0, nq)
        dl_own_packed(isa, trans_a, m, n, k, a, lda, P, beta, c, ldc, bias, relu)
    else:
        for q in prange(nq, num_threads=n_threads, schedule="static"):
            dl_own_pack(isa, trans_b, k, n, b, ldb, P, q, q + 1)
        step = ((m + n_threads - 1) // n_threads + mr - 1) // mr * mr
        tasks = (m + step - 1) // step
        for t in prange(tasks, num_threads=n_threads, schedule="static"):
            r0 = t * step
            dl_own_packed(isa, trans_a, min(step, m - r0), n, k, a + (r0 if trans_a else r0 * lda),
                          lda, P, beta, c + r0 * ldc, ldc, bias, relu)
    free(P)
    return 0


cdef int _own_path(int path, bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n,
                   Py_ssize_t k, const float* a, Py_ssize_t lda, const float* b, Py_ssize_t ldb,
                   float beta, float* c, Py_ssize_t ldc, const float* bias, int relu,
                   int n_threads) noexcept nogil:
    """c = epilogue(op(a) op(b) + beta c) on own path `path` (not PATH_BLAS), k > 0."""
    if path == PATH_AVX512 and not (trans_b or _PACK512 == 2 or (
            _PACK512 == 1 and k >= _PACK_MIN_K and n >= _PACK_MIN_N and m >= _PACK_MIN_M
            and m * n * k >= _TEAM_MAX_MACS)):
        return _own_gemm(trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc, bias, relu,
                         n_threads)
    return _own_packed_gemm(path - 1, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc,
                            bias, relu, n_threads)


cdef int _blas_gemm_f(bint trans_a, bint trans_b, int m, int n, int k, const float* a, int lda,
                      const float* b, int ldb, float beta, float* c, int ldc,
                      int n_threads) except -1:
    """BLAS sgemm with BLAS on n_threads (1: made single-threaded for the call, else BLAS's
    setting, which set_num_threads keeps equal to the kernels')."""
    cdef bint serial = n_threads <= 1 or <Py_ssize_t>m * n * k < _PARALLEL_MIN_MACS  # no BLAS team for small ones
    if serial:
        dl_blas_serial_enter(1)
    try:
        with nogil:
            _gemm(trans_a, trans_b, m, n, k, 1.0, a, lda, b, ldb, beta, c, ldc)
    finally:
        if serial:
            dl_blas_serial_exit()
    return 0


def run_path(path, int n_threads, const float[:, ::1] a, const float[:, ::1] b,
             float[:, ::1] out, bint trans_a=False, bint trans_b=False, double beta=0.0):
    """out = op(a) @ op(b) + beta * out on the named path with n_threads (the tuner's and the
    tests' entry; shapes as in matmul, every dimension > 0)."""
    cdef int code = _path_code(path)
    cdef Py_ssize_t m = out.shape[0], n = out.shape[1]
    cdef Py_ssize_t k = a.shape[0] if trans_a else a.shape[1]
    cdef int status = 0
    if code < 0:
        raise ValueError("run_path needs a named path, received 'auto'")
    if m == 0 or n == 0 or k == 0:
        raise ValueError(f"run_path needs non-empty products, received m={m}, n={n}, k={k}")
    if code == PATH_BLAS:
        _blas_gemm_f(trans_a, trans_b, <int>m, <int>n, <int>k, &a[0, 0], <int>a.shape[1],
                     &b[0, 0], <int>b.shape[1], <float>beta, &out[0, 0], <int>n, n_threads)
        return
    with nogil:
        status = _own_path(code, trans_a, trans_b, m, n, k, &a[0, 0], a.shape[1], &b[0, 0],
                           b.shape[1], <float>beta, &out[0, 0], n, NULL, 0, n_threads)
    if status != 0:
        raise MemoryError()


def fma_peak(int isa, long iters, int n_threads=1):
    """(flops, seconds) of a register-only FMA loop (12 independent chains of level isa's widest
    vectors: 0 AVX-512, 1 AVX2) run by n_threads threads at once: the physical float32 peak is
    flops / seconds. flops is 0 where the CPU lacks the level."""
    import time
    cdef long total = 0, t
    cdef float sink = 0
    cdef long done[64]
    cdef int i
    n_threads = max(1, min(n_threads, 64))
    start = time.perf_counter()
    with nogil:
        for i in prange(n_threads, num_threads=n_threads, schedule="static"):
            sink += dl_fma_loop(isa, iters, &done[i])
    seconds = time.perf_counter() - start
    for i in range(n_threads):
        total += done[i]
    return (total if sink == sink or sink != sink else 0), seconds


# $DLCORE_SGEMM forces a path for the process (see _gemm_choice).
try:
    _FORCED = _path_code(_gemm_choice.forced_path())
except ValueError as error:
    raise ValueError(f"{_gemm_choice.ENV_PATH}={_gemm_choice.forced_path()!r}: {error}") from None
