# Included by _recurrent.pyx: the products around the recurrence (rows_matmul, rows_matmul_tn)
# and the hooks tests and benchmarks call (set_isa, fast_activation, step_matmul).

def set_isa(int isa):
    """Select the float32 product kernels' ISA: 0 AVX-512, 1 AVX2, 2 baseline (for tests; the
    default is the best the CPU has). Returns the previous selection, or -1 (nothing changed)
    where the CPU or the build lacks it."""
    return dl_sgemm_set_isa(isa)


def fast_activation(int code, const float[::1] x_n, float[::1] y_n):
    """y_n = act(x_n) with the float32 kernels the recurrence uses (for tests).

    x_n, y_n: (N,) float32, C-contiguous, IN / OUT
    """
    with nogil:
        _act(code, <float>0, &x_n[0], &y_n[0], x_n.shape[0])


def step_matmul(const floating[:, ::1] a, const floating[:, ::1] b, floating[:, ::1] c,
                double beta=0.0, bint packed=False):
    """c = a @ b + beta * c through the recurrences' per-step product (for tests and benchmarks);
    packed (float32): through the panel-packed product the few-row forward steps use.

    a: (M, K) float32/64, C-contiguous, IN; b: (K, N) same dtype, C-contiguous, IN;
    c: (M, N) same dtype, C-contiguous, IN/OUT (beta 0 or 1)
    """
    cdef int m = <int>c.shape[0], n = <int>c.shape[1], k = <int>a.shape[1]
    cdef floating* pk = NULL
    if m == 0 or n == 0:
        return
    with nogil:
        if packed and k > 0:
            pk = _pack_columns(&b[0, 0], n, k, 0, n)
        if floating is float and pk != NULL:
            dl_sgemm_chain_packed(m, n, k, &a[0, 0], k, pk, <float>beta, &c[0, 0], n)
            _free_pack(pk)
        else:
            _mm(m, n, k, &a[0, 0] if k else NULL, k, &b[0, 0] if k else NULL, n, <floating>beta,
                &c[0, 0], n)



# ---- the GEMMs around the recurrence, on the same threads ----------------------------------------
# The input projection (z = x W + b for all steps), the input gradient (dx = dz W^T) and the
# weight gradients (dW = x^T dz, dR = hprev^T dz, db = sum dz) run here rather than through
# threaded BLAS: an OpenMP team that has just run a recurrence keeps spinning for a while, and a
# threaded BLAS call right after it waits for a scheduler tick (measured: backward 2x slower than
# single-threaded on 2 cores). So each runs in row chunks on OpenMP threads with single-threaded
# calls. rows_matmul's float32 path is dl_sgemm_chain (per-element results independent of the
# chunking); rows_matmul_tn sums fixed blocks of rows (TN_BLOCKS at most, never depending on the
# thread count) in block order, so results are identical for any n_threads.
TN_BLOCKS = 16
cdef Py_ssize_t _TN_BLOCKS = TN_BLOCKS
cdef Py_ssize_t _TN_MIN_ROWS = 64
cdef Py_ssize_t _ROWS_CHUNK = 256
# Output columns per task of rows_matmul_tn (float32): each task reads all of a once.
cdef Py_ssize_t _TN_COLUMNS = 128


def rows_matmul(a_mk, b_kn, bias_n, c_mn, bint trans_b=False, int n_threads=1):
    """c_mn = a_mk @ op(b) + bias_n, rows in parallel chunks; op(b) = b_kn, or b^T with b (N, K).

    a_mk: (M, K) float32/64, C-contiguous, IN
    b_kn: (K, N) (or (N, K) with trans_b) same dtype, C-contiguous, IN
    bias_n: (N,) same dtype, C-contiguous, IN, or None
    c_mn: (M, N) same dtype, C-contiguous, OUT
    """
    if not trans_b and _rows_matmul_small(a_mk, b_kn, bias_n, c_mn):
        return
    _rows_matmul(a_mk, b_kn, bias_n, c_mn, trans_b, n_threads)


cdef bint _rows_matmul_small(object a_mk, object b_kn, object bias_n, object c_mn) except -1:
    """float32, fewer than _ROWS_CHUNK rows (one chunk, B read in place: the batch-1 input
    projection): the product without typed memoryviews (_f32, _recurrent_b1.pxi); False when
    the arrays do not fit (nothing done)."""
    cdef const float* a = _f32(a_mk, 2, False)
    cdef const float* b = _f32(b_kn, 2, False)
    cdef float* c = _f32(c_mn, 2, True)
    cdef const float* bias = NULL
    cdef Py_ssize_t M, N, K
    if a == NULL or b == NULL or c == NULL:
        return False
    M, K = cnp.PyArray_DIMS(<cnp.ndarray>a_mk)[0], cnp.PyArray_DIMS(<cnp.ndarray>a_mk)[1]
    N = cnp.PyArray_DIMS(<cnp.ndarray>c_mn)[1]
    if (M == 0 or N == 0 or K == 0 or M >= _ROWS_CHUNK or cnp.PyArray_DIMS(<cnp.ndarray>c_mn)[0] != M
            or cnp.PyArray_DIMS(<cnp.ndarray>b_kn)[0] != K or cnp.PyArray_DIMS(<cnp.ndarray>b_kn)[1] != N):
        return False
    if bias_n is not None:
        bias = _f32(bias_n, 1, False)
        if bias == NULL or cnp.PyArray_DIMS(<cnp.ndarray>bias_n)[0] != N:
            return False
    with nogil:
        _rows_mm(a, K, b, N, bias, c, N, 0, M)
    return True


def _rows_matmul(const floating[:, ::1] a_mk, const floating[:, ::1] b_kn, const floating[::1] bias_n,
                floating[:, ::1] c_mn, bint trans_b=False, int n_threads=1):
    """rows_matmul on typed arrays (the general path; see rows_matmul)."""
    cdef Py_ssize_t M = c_mn.shape[0], N = c_mn.shape[1], K = a_mk.shape[1], i, j
    cdef int chunks, ch
    cdef Py_ssize_t ldb
    cdef const floating* a
    cdef const floating* bias = NULL if bias_n is None else &bias_n[0]
    cdef floating* c
    cdef floating* bp
    if M == 0 or N == 0:
        return
    c = &c_mn[0, 0]
    if K == 0:
        for i in range(M):
            for j in range(N):
                c[i * N + j] = bias[j] if bias != NULL else 0
        return
    a = &a_mk[0, 0]
    chunks = <int>(M // _ROWS_CHUNK)  # dynamic chunks, more than threads (see _n_chunks)
    if chunks < 1 or n_threads <= 1 or floating is double:  # float64: BLAS, one chunk
        chunks = 1
    dl_blas_serial_enter(n_threads)
    with nogil:
        if trans_b or M >= _ROWS_CHUNK:  # transposed, or enough rows to pay for a padded copy
            bp = _padded(&b_kn[0, 0], N if trans_b else K, K if trans_b else N, trans_b)
            ldb = _pad_ld(N)
        else:
            bp = NULL
            ldb = N
        if chunks == 1:
            _rows_mm(a, K, &b_kn[0, 0] if bp == NULL else bp, ldb, bias, c, N, 0, M)
        else:
            for ch in prange(chunks, num_threads=_team(chunks, n_threads), schedule="dynamic"):
                _rows_mm(a, K, bp, ldb, bias, c, N, ch * M // chunks, (ch + 1) * M // chunks)
        free(bp)
    dl_blas_serial_exit()


cdef void _rows_mm(const floating* a, Py_ssize_t K, const floating* b, Py_ssize_t ldb,
                   const floating* bias, floating* c, Py_ssize_t N, Py_ssize_t i0,
                   Py_ssize_t i1) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef Py_ssize_t step = 256  # rows per call: the A block stays in L2
    cdef Py_ssize_t r0, r1
    r0 = i0
    while r0 < i1:
        r1 = r0 + step if r0 + step < i1 else i1
        if floating is float:  # the bias starts each element's sum: one pass over c
            dl_sgemm_chain(<int>(r1 - r0), <int>N, <int>K, a + r0 * K, K, b, ldb, 0, bias, c + r0 * N, N)
        else:
            if bias != NULL:
                for i in range(r0, r1):
                    memcpy(c + i * N, bias, N * sizeof(floating))
            _mm(<int>(r1 - r0), <int>N, <int>K, a + r0 * K, <int>K, b, <int>ldb,
                1 if bias != NULL else 0, c + r0 * N, <int>N)
        r0 = r1


def rows_matmul_tn(const floating[:, ::1] a_mk, const floating[:, ::1] b_mn, floating[:, ::1] c_kn,
                   floating[::1] colsum_n, int n_threads=1, const floating[:, ::1] a2_mj=None,
                   floating[:, ::1] c2_jn=None):
    """c_kn = a_mk^T @ b_mn (a sum over the M rows), colsum_n = column sums of b_mn, and
    c2_jn = a2_mj^T @ b_mn: the LSTM's dW, db and dR from one pass over dz.

    float32: dl_sgemm_chain_tn_parts, each thread owning a range of output columns (one FMA chain
    per element over the rows in order; the column sums are chains of 1 * b, the plain sums),
    every block of b packed once for the three results. float64: fixed blocks of rows (at most
    TN_BLOCKS, independent of n_threads), one BLAS partial product per block, added in block
    order; c2_jn by a second such call.
    a_mk: (M, K) float32/64, C-contiguous, IN
    b_mn: (M, N) same dtype, C-contiguous, IN
    c_kn: (K, N) same dtype, C-contiguous, OUT
    colsum_n: (N,) same dtype, C-contiguous, OUT, or None
    a2_mj: (M, J) same dtype, C-contiguous, IN, or None
    c2_jn: (J, N) same dtype, C-contiguous, OUT (with a2_mj), or None
    """
    cdef Py_ssize_t M = b_mn.shape[0], N = b_mn.shape[1], K = a_mk.shape[1]
    cdef Py_ssize_t J = 0
    cdef const floating* a2 = NULL
    cdef floating* c2 = NULL
    if (a2_mj is None) != (c2_jn is None):
        raise ValueError("rows_matmul_tn: a2_mj and c2_jn go together, received one of them")
    if a2_mj is not None:
        J = a2_mj.shape[1]
        if a2_mj.shape[0] != M or c2_jn.shape[0] != J or c2_jn.shape[1] != N:
            raise ValueError(f"rows_matmul_tn: expected a2_mj ({M}, J) and c2_jn (J, {N}), received "
                             f"{(a2_mj.shape[0], a2_mj.shape[1])} and {(c2_jn.shape[0], c2_jn.shape[1])}")
        if floating is double or K == 0 or N == 0 or M == 0 or J == 0:
            rows_matmul_tn(a2_mj, b_mn, c2_jn, None, n_threads)
        else:
            a2 = &a2_mj[0, 0]
            c2 = &c2_jn[0, 0]
    cdef Py_ssize_t blocks, blk, i, j, r0, r1, size
    cdef int threads
    cdef floating* parts
    cdef floating* sums = NULL
    cdef floating* c
    cdef floating acc
    cdef const floating* a
    cdef const floating* b
    if N == 0:
        return
    if K == 0:  # no product: only the column sums, in row order
        if colsum_n is not None:
            for j in range(N):
                acc = 0
                for i in range(M):
                    acc = acc + b_mn[i, j]
                colsum_n[j] = acc
        return
    c = &c_kn[0, 0]
    if M == 0:
        memset(c, 0, K * N * sizeof(floating))
        if colsum_n is not None:
            memset(&colsum_n[0], 0, N * sizeof(floating))
        return
    a = &a_mk[0, 0]
    b = &b_mn[0, 0]
    blocks = M // _TN_MIN_ROWS
    if blocks > _TN_BLOCKS:
        blocks = _TN_BLOCKS
    if blocks < 1:
        blocks = 1
    threads = n_threads if n_threads < blocks else <int>blocks
    if threads < 1 or not dl_blas_bound():
        threads = 1
    size = K * N
    if floating is float:
        # ranges of 64 output columns over all rows, handed out dynamically: no partial sums
        blocks = (N + _TN_COLUMNS - 1) // _TN_COLUMNS
        sums = NULL if colsum_n is None else &colsum_n[0]
        with nogil:
            if n_threads <= 1 or blocks == 1:
                _tn_columns(a, b, c, sums, a2, c2, J, M, K, N, 0, N)
            else:
                for blk in prange(blocks, num_threads=_team(<int>blocks, n_threads), schedule="dynamic"):
                    _tn_columns(a, b, c, sums, a2, c2, J, M, K, N, blk * _TN_COLUMNS,
                                N if blk == blocks - 1 else (blk + 1) * _TN_COLUMNS)
        return
    dl_blas_serial_enter(n_threads)
    with nogil:
        parts = c if blocks == 1 else <floating*>malloc((blocks * size + 1) * sizeof(floating))
        if colsum_n is not None:
            sums = <floating*>malloc((blocks * N + 1) * sizeof(floating))
        if threads == 1:
            for blk in range(blocks):
                _tn_block(a, b, K, N, blk * M // blocks, (blk + 1) * M // blocks, parts + blk * size,
                          NULL if sums == NULL else sums + blk * N)
        else:
            for blk in prange(blocks, num_threads=threads, schedule="static"):
                _tn_block(a, b, K, N, blk * M // blocks, (blk + 1) * M // blocks, parts + blk * size,
                          NULL if sums == NULL else sums + blk * N)
        if blocks > 1:
            for i in range(size):
                acc = parts[i]
                for blk in range(1, blocks):
                    acc = acc + parts[blk * size + i]
                c[i] = acc
            free(parts)
        if sums != NULL:
            for j in range(N):
                acc = sums[j]
                for blk in range(1, blocks):
                    acc = acc + sums[blk * N + j]
                colsum_n[j] = acc
            free(sums)
    dl_blas_serial_exit()


cdef float _ONE = 1.0


cdef void _tn_columns(const float* a, const float* b, float* c, float* sums, const float* a2,
                      float* c2, Py_ssize_t J, Py_ssize_t M, Py_ssize_t K, Py_ssize_t N,
                      Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """c[:, j0:j1] = a^T b[:, j0:j1], sums[j0:j1] = column sums (sums not NULL) and
    c2[:, j0:j1] = a2^T b[:, j0:j1] (a2 not NULL), every row in order, in one pass over b."""
    cdef dl_tn_part parts[3]
    cdef int n = 1
    parts[0].a = a
    parts[0].lda = K
    parts[0].k = K
    parts[0].c = c
    parts[0].ldc = N
    if a2 != NULL:
        parts[n].a = a2
        parts[n].lda = J
        parts[n].k = J
        parts[n].c = c2
        parts[n].ldc = N
        n += 1
    if sums != NULL:  # a column of ones read with row stride 0
        parts[n].a = &_ONE
        parts[n].lda = 0
        parts[n].k = 1
        parts[n].c = sums
        parts[n].ldc = N
        n += 1
    dl_sgemm_chain_tn_parts(M, n, parts, j0, j1, b, N)


cdef void _tn_block(const floating* a, const floating* b, Py_ssize_t K, Py_ssize_t N, Py_ssize_t r0,
                    Py_ssize_t r1, floating* out, floating* sums) noexcept nogil:
    """out (K, N) = a[r0:r1]^T @ b[r0:r1]; sums (N,) = column sums of b[r0:r1] (if not NULL)."""
    cdef char tn = b'N'
    cdef char tt = b'T'
    cdef int k = <int>(r1 - r0), n = <int>N, m = <int>K
    cdef Py_ssize_t i, j
    cdef floating one = 1, zero = 0
    if k <= 0:
        memset(out, 0, K * N * sizeof(floating))
    else:
        # Row-major out (K, N) = A^T B is column-major out^T (N, K) = B^T A: B as (N, k) col-major
        # with ld N ('N'), A as (K, k) col-major with ld K, transposed ('T').
        if floating is float:
            sgemm(&tn, &tt, &n, &m, &k, &one, <float*>(b + r0 * N), &n, <float*>(a + r0 * K), &m,
                  &zero, out, &n)
        else:
            dgemm(&tn, &tt, &n, &m, &k, &one, <double*>(b + r0 * N), &n, <double*>(a + r0 * K), &m,
                  &zero, out, &n)
    if sums != NULL:
        memset(sums, 0, N * sizeof(floating))
        for i in range(r0, r1):
            for j in range(N):
                sums[j] = sums[j] + b[i * N + j]
