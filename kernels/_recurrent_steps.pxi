# Included by _recurrent.pyx: the per-step helpers of the recurrences (products on strided
# operands, activations and their derivatives, masked outputs, the copies of R the steps read,
# batch chunks). Legend as in _recurrent.pyx.

# ---- BLAS on row-major strided operands -------------------------------------------------------
cdef inline void _scale_row(floating* c, int n, floating beta) noexcept nogil:
    cdef int j
    if beta == 0:
        for j in range(n):
            c[j] = 0
    elif beta != 1:
        for j in range(n):
            c[j] = c[j] * beta


cdef void _mm(int m, int n, int k, const floating* a, int lda, const floating* b, int ldb,
              floating beta, floating* c, int ldc) noexcept nogil:
    """Row-major c (m, n) = a (m, k) @ b (k, n) + beta * c, row strides lda/ldb/ldc (elements).

    float32: dl_sgemm_chain (no packing, chunk-independent results, see the C block); float64 (the
    gradient checks): BLAS, one dgemv per row up to GEMV_ROWS rows.
    """
    cdef char tn = b'N'
    cdef int one_i = 1, i
    cdef floating one = 1
    if m <= 0 or n <= 0:
        return
    if k <= 0:
        for i in range(m):
            _scale_row(c + <Py_ssize_t>i * ldc, n, beta)
        return
    if floating is float:
        dl_sgemm_chain(m, n, k, a, lda, b, ldb, beta, NULL, c, ldc)
        return
    if m <= _GEMV_ROWS:
        # b row-major (k, n) is column-major (n, k) with leading dimension ldb: c_row = B @ a_row
        for i in range(m):
            dgemv(&tn, &n, &k, &one, <double*>b, &ldb, <double*>(a + <Py_ssize_t>i * lda), &one_i,
                  &beta, c + <Py_ssize_t>i * ldc, &one_i)
        return
    # Row-major C = A B is column-major C^T = B^T A^T: pass (B, A) swapped.
    dgemm(&tn, &tn, &n, &m, &k, &one, <double*>b, &ldb, <double*>a, &lda, &beta, c, &ldc)


# ---- activations and their derivatives from the output ----------------------------------------
cdef inline void _act(int code, floating alpha, const floating* x, floating* y,
                      Py_ssize_t n) noexcept nogil:
    """y = act(x) over n elements (y may alias x)."""
    if floating is float:
        if code == ACT_SIGMOID:
            dlr_sigmoid_f32(x, y, n)
            return
        if code == ACT_TANH:
            dlr_tanh_f32(x, y, n)
            return
    act_row(code, x, NULL, y, n, alpha)


cdef inline void _dact(int code, floating alpha, const floating* y, const floating* dy,
                       floating* dx, Py_ssize_t n) noexcept nogil:
    """dx = dy * act'(x), from the output y = act(x) (codes in BACKWARD_ACTIVATIONS)."""
    cdef Py_ssize_t i
    cdef floating v
    cdef floating one = 1
    cdef floating sixth = <floating>(1.0 / 6.0)
    cdef floating selu_scale = <floating>1.0507009873554805
    cdef floating selu_as = <floating>1.7580993408473766
    if code == ACT_SIGMOID:
        for i in range(n):
            dx[i] = dy[i] * (y[i] * (one - y[i]))
    elif code == ACT_TANH:
        for i in range(n):
            dx[i] = dy[i] * (one - y[i] * y[i])
    elif code == ACT_LINEAR:
        for i in range(n):
            dx[i] = dy[i]
    elif code == ACT_RELU:
        for i in range(n):
            dx[i] = dy[i] if y[i] > 0 else 0
    elif code == ACT_LEAKY_RELU:
        for i in range(n):
            dx[i] = dy[i] if y[i] > 0 else dy[i] * alpha
    elif code == ACT_ELU:
        for i in range(n):
            dx[i] = dy[i] if y[i] > 0 else dy[i] * (y[i] + alpha)
    elif code == ACT_SELU:
        for i in range(n):
            dx[i] = dy[i] * selu_scale if y[i] > 0 else dy[i] * (y[i] + selu_as)
    elif code == ACT_SOFTPLUS:
        for i in range(n):
            dx[i] = dy[i] * (-f_expm1(-y[i]))
    elif code == ACT_SOFTSIGN:
        for i in range(n):
            v = one - f_abs(y[i])
            dx[i] = dy[i] * v * v
    elif code == ACT_HARD_SIGMOID:
        for i in range(n):
            dx[i] = dy[i] * sixth if (y[i] > 0 and y[i] < 1) else 0
    elif code == ACT_RELU6:
        for i in range(n):
            dx[i] = dy[i] if (y[i] > 0 and y[i] < 6) else 0
    elif code == ACT_EXPONENTIAL:
        for i in range(n):
            dx[i] = dy[i] * y[i]
    else:
        for i in range(n):
            dx[i] = dy[i]


# ---- shared per-row helpers -------------------------------------------------------------------
cdef inline void _copy(const floating* src, floating* dst, Py_ssize_t n) noexcept nogil:
    memcpy(dst, src, n * sizeof(floating))


cdef inline void _zero(floating* dst, Py_ssize_t n) noexcept nogil:
    memset(dst, 0, n * sizeof(floating))


cdef inline void _masked_output(floating* y_row, const floating* prev_row, bint has_prev,
                                bint zero_output, Py_ssize_t u) noexcept nogil:
    """A masked step's output: zeros, or the previous output (zeros before step 0)."""
    if zero_output or not has_prev:
        _zero(y_row, u)
    else:
        _copy(prev_row, y_row, u)


cdef inline void _output_grad(floating* dh, const floating* dy_row, floating* carry, bint valid,
                              bint masked, bint zero_output, Py_ssize_t u) noexcept nogil:
    """Adds step t's output gradient to dh (Keras masked-output semantics, see Design).

    No mask: dh += dy. zero_output: only valid steps' outputs depend on the step. Otherwise a
    masked output copies the previous output, so its gradient is carried back to the last valid
    step (carry holds it).
    """
    cdef Py_ssize_t j
    if not masked:
        for j in range(u):
            dh[j] = dh[j] + dy_row[j]
    elif zero_output:
        if valid:
            for j in range(u):
                dh[j] = dh[j] + dy_row[j]
    else:
        if valid:
            for j in range(u):
                dh[j] = dh[j] + dy_row[j] + carry[j]
                carry[j] = 0
        else:
            for j in range(u):
                carry[j] = carry[j] + dy_row[j]


cdef void _project(const floating* h, int ldh, const floating* rmask, Py_ssize_t rm_gstride, int n,
                   int u, int g0, int ng, const floating* r, int ldr, const floating* pk,
                   floating beta, floating* z, int ldz, floating* work) noexcept nogil:
    """z (n, ng*u) = (h masked per gate) @ r[:, g0*u:(g0+ng)*u] + beta * z (row stride ldz).

    rmask: NULL, or the masks of these n rows, gate g at rmask + g * rm_gstride (rows of u):
    gate g uses h * mask[g] (work: n * u scratch). pk: NULL, or (float32, no rmask) those
    columns of r packed by _pack_columns, which the product then reads instead of r.
    """
    cdef int g, i, j
    cdef const floating* m
    cdef const floating* hr
    cdef floating* w
    if floating is float:
        if pk != NULL:
            if _pack_finite(pk) and _rows_zero(h, ldh, n, u):
                # h = 0 (the first step without an initial state): every FMA chain gives +0
                for i in range(n):
                    w = z + <Py_ssize_t>i * ldz
                    for j in range(ng * u):
                        w[j] = w[j] + <float>0 if beta != 0 else <float>0
            else:
                dl_sgemm_chain_packed(n, ng * u, u, h, ldh, pk, beta, z, ldz)
            return
    if rmask == NULL:
        _mm(n, ng * u, u, h, ldh, r + g0 * u, ldr, beta, z, ldz)
        return
    for g in range(g0, g0 + ng):
        for i in range(n):
            m = rmask + g * rm_gstride + <Py_ssize_t>i * u
            hr = h + <Py_ssize_t>i * ldh
            w = work + <Py_ssize_t>i * u
            for j in range(u):
                w[j] = hr[j] * m[j]
        _mm(n, u, u, work, u, r + g * u, ldr, beta, z + (g - g0) * u, ldz)


cdef void _project_back(const floating* dz, int ldz, const floating* rmask, Py_ssize_t rm_gstride,
                        int n, int u, int g0, int ng, const floating* rt, floating* dh,
                        floating* work) noexcept nogil:
    """dh (n, u) += sum over gates g0..g0+ng-1 of (dz[:, g - g0] @ R[:, g]^T) * mask[g] (no mask:
    one GEMM); rt = R^T (gates * u, u) row-major with row stride _pad_ld(u); dz holds ng*u columns per row (row stride
    ldz); masks as in _project."""
    cdef int g, i, j
    cdef int ldt = <int>_pad_ld(u)
    cdef const floating* m
    cdef floating* d
    cdef floating* w
    if rmask == NULL:
        _mm(n, u, ng * u, dz, ldz, rt + <Py_ssize_t>g0 * u * ldt, ldt, 1, dh, u)
        return
    for g in range(g0, g0 + ng):
        _mm(n, u, u, dz + (g - g0) * u, ldz, rt + <Py_ssize_t>g * u * ldt, ldt, 0, work, u)
        for i in range(n):
            m = rmask + g * rm_gstride + <Py_ssize_t>i * u
            d = dh + <Py_ssize_t>i * u
            w = work + <Py_ssize_t>i * u
            for j in range(u):
                d[j] = d[j] + w[j] * m[j]


# Forward passes with fewer rows read R in place: the padded copy (_pad_ld) costs more than it
# saves when a step is one or two row products (batch-1 inference: 10 us of a 120 us call).
cdef Py_ssize_t _PAD_MIN_ROWS = 8


# Forward passes of fewer rows and at least this many steps (float32, no recurrent dropout)
# read a panel-packed copy of R (_pack_columns, dl_sgemm_chain_packed): packing costs what about 5
# steps save (LSTM(128): 3.5 us against 2.0 -> 1.35 us per step).
cdef Py_ssize_t _PACK_MIN_STEPS = 6


cdef inline bint _packs(Py_ssize_t n, Py_ssize_t t, const void* rmask) noexcept nogil:
    return n < _PAD_MIN_ROWS and t >= _PACK_MIN_STEPS and rmask == NULL


cdef inline Py_ssize_t _pad_ld(Py_ssize_t cols) noexcept nogil:
    """Row stride of the kernels' copies of the recurrent kernel: cols rounded up to 16 floats,
    plus 16 when that is an even number of 64-byte lines. A power-of-two stride (2 KB for
    LSTM(128)'s 512 columns) maps a column panel's rows onto two L1 sets and makes every B load
    an L2 load (measured: 90 vs 190 GFLOPS for a 32x128x512 step)."""
    cdef Py_ssize_t ld = (cols + 15) // 16 * 16
    if (ld // 16) % 2 == 0:
        ld += 16
    return ld


cdef floating* _padded(const floating* r, Py_ssize_t rows, Py_ssize_t cols,
                       bint transpose) noexcept nogil:
    """A malloc'd copy of r (rows, cols), or of r^T (cols, rows), with row stride _pad_ld of its
    row length (the caller frees it)."""
    cdef Py_ssize_t out_rows = cols if transpose else rows
    cdef Py_ssize_t out_cols = rows if transpose else cols
    cdef Py_ssize_t ld = _pad_ld(out_cols)
    cdef floating* out = <floating*>malloc((out_rows * ld + 1) * sizeof(floating))
    cdef Py_ssize_t i, j
    memset(out, 0, out_rows * ld * sizeof(floating))
    if transpose:
        for i in range(rows):
            for j in range(cols):
                out[j * ld + i] = r[i * cols + j]
    else:
        for i in range(rows):
            memcpy(out + i * ld, r + i * cols, cols * sizeof(floating))
    return out


# Bytes past a 64-byte boundary where the packed panels start (measured: see the Design block).
cdef Py_ssize_t _PACK_OFFSET = 16


cdef floating* _pack_columns(const floating* r, Py_ssize_t ldr, Py_ssize_t rows, Py_ssize_t c0,
                             Py_ssize_t c1) noexcept nogil:
    """float32: a panel-packed copy of r[:, c0:c1] for dl_sgemm_chain_packed (free it with
    _free_pack); NULL for float64 or where the build has no packed product."""
    cdef int pw
    cdef Py_ssize_t panels, addr
    cdef char* raw
    cdef floating* out
    if floating is double:
        return NULL
    else:
        pw = dl_sgemm_chain_pack_width()
        if pw == 0:
            return NULL
        panels = (c1 - c0 + pw - 1) // pw
        raw = <char*>malloc(panels * rows * pw * sizeof(floating) + 160)
        if raw == NULL:
            return NULL
        addr = (<Py_ssize_t>raw + 16 + 63) // 64 * 64 + _PACK_OFFSET
        out = <floating*>addr
        (<void**>out)[-1] = raw
        (<int*>out)[-3] = dl_sgemm_chain_pack(<int>rows, <int>(c1 - c0), r + c0, ldr, out)
        return out


cdef inline void _free_pack(void* pk) noexcept nogil:
    if pk != NULL:
        free((<void**>pk)[-1])


cdef inline bint _pack_finite(const void* pk) noexcept nogil:
    """Whether the columns packed at pk are all finite (then 0 @ R is exactly +0)."""
    return (<const int*>pk)[-3] != 0


cdef extern from *:
    """
    #define DLR_PREFETCH_READ(p) __builtin_prefetch((p), 0, 2)
    #define DLR_PREFETCH_WRITE(p) __builtin_prefetch((p), 1, 2)
    """
    void DLR_PREFETCH_READ(const void* p) nogil
    void DLR_PREFETCH_WRITE(const void* p) nogil


cdef inline void _prefetch_rows(const void* first, Py_ssize_t stride, Py_ssize_t rows,
                                Py_ssize_t row_bytes, bint write) noexcept nogil:
    """Prefetch into L2 `rows` rows of row_bytes bytes, `stride` bytes apart, from first.

    The steps read and write one time slice of the batch-major (N, T, .) buffers: a chunk's
    rows are 2 KB pieces (LSTM(128) gates) T * 2 KB apart, too many short streams for the
    hardware prefetchers, so every line missed to L3 or memory. Prefetching a row's pieces of
    the next step as the gate loop finishes the row hides that (Design block of _recurrent.pyx)."""
    cdef Py_ssize_t i, off
    cdef const char* row
    for i in range(rows):
        row = <const char*>first + i * stride
        off = 0
        while off < row_bytes:
            if write:
                DLR_PREFETCH_WRITE(row + off)
            else:
                DLR_PREFETCH_READ(row + off)
            off += 64


cdef floating* _zero_row_product(const floating* r, Py_ssize_t ldr, Py_ssize_t u,
                                 Py_ssize_t g) noexcept nogil:
    """A malloc'd (g,) row: 0 @ r for r (u, g) with row stride ldr, through the step product
    (+0 where r's column is finite, NaN where not: what every zero row of a step gets; measured
    on LSTM(128) at batch 64, the first step's product is 2 % of the forward)."""
    cdef floating* row = <floating*>malloc((u + g + 1) * sizeof(floating))
    if row == NULL:
        return NULL  # the steps then run the product
    _zero(row, u)
    _mm(1, <int>g, <int>u, row, <int>u, r, <int>ldr, 0, row + u, <int>g)
    memmove(row, row + u, g * sizeof(floating))
    return row


cdef inline bint _rows_zero(const floating* h, int ldh, int n, int u) noexcept nogil:
    cdef int i, j
    for i in range(n):
        for j in range(u):
            if h[<Py_ssize_t>i * ldh + j] != 0:
                return False
    return True


# ---- batch chunks: rows are independent, so each thread runs the whole sequence for its rows ----
# The per-step GEMMs always run single-threaded (BLAS is set to one thread for the duration of a
# recurrence and restored after: dl_blas_threads.h): a threaded
# BLAS call per time step puts a barrier in every step, and each barrier costs a scheduler tick
# whenever a thread is descheduled, which is often on a busy 2-core machine (measured: 16 ms
# single-threaded vs 0.9 s median with 2-thread BLAS for one LSTM(128) forward at batch 64 under
# load). Parallelism comes from batch chunks instead: at most n_threads chunks of at least
# MIN_CHUNK_ROWS rows, each running every time step on its own rows, so the threads never wait
# for each other inside the sequence. 
MIN_CHUNK_ROWS = 16
cdef Py_ssize_t _MIN_CHUNK_ROWS = MIN_CHUNK_ROWS
cdef int _n_chunks(Py_ssize_t n, int n_threads) noexcept nogil:
    """Chunks of at least MIN_CHUNK_ROWS rows (one when n_threads is 1); more chunks than
    threads, handed out dynamically, so a descheduled thread's share moves to the other ones."""
    cdef Py_ssize_t c = n // _MIN_CHUNK_ROWS
    if c < 1 or n_threads <= 1:
        c = 1
    return <int>c


cdef inline int _team(int chunks, int n_threads) noexcept nogil:
    return chunks if chunks < n_threads else n_threads


cdef inline floating* _scratch(Py_ssize_t n, floating* like) noexcept nogil:
    """malloc'd scratch of n elements of like's type (like is only a type witness)."""
    return <floating*>malloc((n + 1) * sizeof(floating))


cdef inline const floating* _ptr3(const floating[:, :, ::1] a) noexcept nogil:
    return NULL if a is None else &a[0, 0, 0]
