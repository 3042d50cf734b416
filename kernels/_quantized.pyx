# Design: int8 inference kernels (Keras 3 `quantize("int8")`): dynamic per-row activation
# quantization (abs-max / 127, Keras's rounding: half to even, clip to +-127), the int8 x int8 ->
# int32 GEMM of dl_igemm.h (AVX512-VNNI, AVX2 or the baseline, chosen at run time, all exact so
# bit-identical), and the dense epilogue y = acc / (w_scale * x_scale) + bias, then the
# activation, in float32 -- the operations and order of Keras's `_int8_call`, so outputs match
# Keras bit for bit where its int32 product is exact (it is). The weights are packed once
# (int8_pack) into the 16-column panels the GEMM reads, with their column sums (the VNNI path's
# +128 shift correction starts each accumulator). Rows are split over OpenMP tasks of
# ROWS_PER_TASK; every row is computed the same way whatever the split, so results are
# bit-identical for any n_threads. Cython: inference needs these without numba.
#
# Legend: N rows, K inputs (Kp: K rounded up to 4), M outputs (Mp: M rounded up to 16),
# V embedding rows, D embedding width.
from cython.parallel cimport prange
from libc.stdint cimport int8_t, int32_t, int64_t
from libc.stdlib cimport malloc, free

from kernels._activations cimport epilogue_row, ACT_LINEAR, ACT_RELU

cdef extern from "dl_igemm.h" nogil:
    void dl_igemm_pack(Py_ssize_t k, Py_ssize_t n, const int8_t* B, Py_ssize_t ldb, int8_t* P, int32_t* csum)
    void dl_igemm(Py_ssize_t m, Py_ssize_t panels, Py_ssize_t kq, const int8_t* A, Py_ssize_t lda,
                  const int8_t* P, const int32_t* csum, int32_t* C, Py_ssize_t ldc)
    int dl_igemm_set_isa(int isa)
    int dl_igemm_cpu_isa()
    void dl_quantize_row(Py_ssize_t k, Py_ssize_t kp, const float* x, int8_t* q, float* scale)

ROWS_PER_TASK = 64
cdef Py_ssize_t _ROWS = ROWS_PER_TASK


def set_isa(int isa):
    """Select the int8 GEMM path: 0 AVX512-VNNI, 1 AVX2, 2 baseline (tests); returns the previous
    one, or -1 (nothing changed) where the CPU lacks it."""
    return dl_igemm_set_isa(isa)


def cpu_isa():
    """The best int8 GEMM path this CPU runs (0 VNNI, 1 AVX2, 2 baseline)."""
    return dl_igemm_cpu_isa()


def packed_size(Py_ssize_t k, Py_ssize_t m):
    """(bytes of the packed weights, length of the column sums) for a (k, m) int8 kernel."""
    cdef Py_ssize_t panels = (m + 15) // 16, kq = (k + 3) // 4
    return panels * kq * 64, panels * 16


def int8_pack(const int8_t[:, ::1] w_km, int8_t[::1] packed, int32_t[::1] csum_m):
    """Packs an int8 kernel for int8_matmul / int8_dense_forward (sizes from packed_size).

    w_km: (K, M) int8, C-contiguous, IN
    packed: (ceil(M/16) * ceil(K/4) * 64,) int8, C-contiguous, OUT
    csum_m: (Mp,) int32, C-contiguous, OUT (column sums, zero on the padding)
    """
    cdef Py_ssize_t k = w_km.shape[0], m = w_km.shape[1]
    if m == 0:
        return
    with nogil:
        dl_igemm_pack(k, m, &w_km[0, 0] if k > 0 else NULL, m, &packed[0] if k > 0 else NULL, &csum_m[0])


def quantize_rows(const float[:, ::1] x_nk, int8_t[:, ::1] q_nk, float[::1] scale_n, int n_threads=1):
    """q_nk[i] = clip(round(x_nk[i] * scale_n[i]), -127, 127), scale_n[i] = 127 / (max|x_nk[i]| + 1e-7).

    x_nk: (N, K) float32, C-contiguous, IN
    q_nk: (N, Kp) int8, C-contiguous, OUT (Kp >= K; columns K.. written as zeros)
    scale_n: (N,) float32, C-contiguous, OUT
    """
    cdef Py_ssize_t n = x_nk.shape[0], k = x_nk.shape[1], kp = q_nk.shape[1], i
    if n == 0 or kp == 0:
        return
    if n_threads <= 1:
        with nogil:
            for i in range(n):
                dl_quantize_row(k, kp, &x_nk[i, 0] if k > 0 else NULL, &q_nk[i, 0], &scale_n[i])
    else:
        for i in prange(n, nogil=True, num_threads=n_threads, schedule="static"):
            dl_quantize_row(k, kp, &x_nk[i, 0] if k > 0 else NULL, &q_nk[i, 0], &scale_n[i])


def int8_matmul(const int8_t[:, ::1] q_nk, const int8_t[::1] packed, const int32_t[::1] csum_m,
                int32_t[:, ::1] acc_nm, int n_threads=1):
    """acc_nm = q_nk @ w (exact int32), w packed by int8_pack.

    q_nk: (N, Kp) int8, C-contiguous, IN (Kp = K rounded up to 4, zero-padded)
    packed: int8 from int8_pack, IN
    csum_m: (Mp,) int32 from int8_pack, IN
    acc_nm: (N, Mp) int32, C-contiguous, OUT (Mp = M rounded up to 16)
    """
    cdef Py_ssize_t n = q_nk.shape[0], kq = q_nk.shape[1] // 4, mp = acc_nm.shape[1]
    cdef Py_ssize_t task, tasks = (n + _ROWS - 1) // _ROWS, r0
    if n == 0 or mp == 0:
        return
    if kq == 0:
        acc_nm[:, :] = 0
        return
    if n_threads <= 1 or tasks <= 1:
        with nogil:
            dl_igemm(n, mp // 16, kq, &q_nk[0, 0], q_nk.shape[1], &packed[0], &csum_m[0], &acc_nm[0, 0], mp)
    else:
        for task in prange(tasks, nogil=True, num_threads=n_threads, schedule="static"):
            r0 = task * _ROWS
            dl_igemm(min(_ROWS, n - r0), mp // 16, kq, &q_nk[r0, 0], q_nk.shape[1], &packed[0], &csum_m[0],
                     &acc_nm[r0, 0], mp)


cdef int _dense_rows(Py_ssize_t r0, Py_ssize_t rows, Py_ssize_t m, Py_ssize_t kq, const int8_t* q, Py_ssize_t ldq,
                     const float* xs, const int8_t* packed, const int32_t* csum, const float* ws,
                     const float* bias, int code, float alpha, float* y) noexcept nogil:
    """Rows [r0, r0 + rows) of int8_dense_forward; returns -1 when out of memory."""
    cdef Py_ssize_t mp = (m + 15) // 16 * 16, i, j
    cdef int32_t* acc = <int32_t*>malloc(rows * mp * sizeof(int32_t))
    cdef float* yr
    cdef float s
    if acc == NULL:
        return -1
    if kq > 0:
        dl_igemm(rows, mp // 16, kq, q + r0 * ldq, ldq, packed, csum, acc, mp)
    else:
        for j in range(rows * mp):
            acc[j] = 0
    for i in range(rows):
        yr = y + (r0 + i) * m
        s = xs[r0 + i]
        for j in range(m):
            yr[j] = <float>acc[i * mp + j] / (ws[j] * s)
        if bias != NULL:
            for j in range(m):
                yr[j] = yr[j] + bias[j]
        if code == ACT_RELU:
            for j in range(m):
                yr[j] = yr[j] if yr[j] > 0 else 0.0
        elif code != ACT_LINEAR:
            epilogue_row(code, yr, <const float*>NULL, m, alpha)
    free(acc)
    return 0


def int8_dense_forward(const int8_t[:, ::1] q_nk, const float[::1] x_scale_n, const int8_t[::1] packed,
                       const int32_t[::1] csum_m, const float[::1] w_scale_m, const float[::1] b_m,
                       int activation, double alpha, float[:, ::1] y_nm, int n_threads=1):
    """y_nm = act((q_nk @ w) / (w_scale_m * x_scale_n[:, None]) + b_m), w packed by int8_pack.

    q_nk: (N, Kp) int8, C-contiguous, IN (from quantize_rows)
    x_scale_n: (N,) float32, C-contiguous, IN
    packed: int8 from int8_pack, IN
    csum_m: (Mp,) int32 from int8_pack, IN
    w_scale_m: (M,) float32, C-contiguous, IN
    b_m: (M,) float32, C-contiguous, IN, or None (no bias)
    y_nm: (N, M) float32, C-contiguous, OUT
    """
    cdef Py_ssize_t n = y_nm.shape[0], m = y_nm.shape[1], kq = q_nk.shape[1] // 4
    cdef Py_ssize_t task, tasks = (n + _ROWS - 1) // _ROWS, r0
    cdef const float* bias = NULL
    cdef const int8_t* pk = NULL
    cdef int status = 0, bad = 0
    if n == 0 or m == 0:
        return
    if b_m is not None:
        bias = &b_m[0]
    if kq > 0:
        pk = &packed[0]
    if n_threads <= 1 or tasks <= 1:
        with nogil:
            status = _dense_rows(0, n, m, kq, &q_nk[0, 0], q_nk.shape[1], &x_scale_n[0], pk, &csum_m[0],
                                 &w_scale_m[0], bias, activation, <float>alpha, &y_nm[0, 0])
    else:
        for task in prange(tasks, nogil=True, num_threads=n_threads, schedule="static"):
            r0 = task * _ROWS
            if _dense_rows(r0, min(_ROWS, n - r0), m, kq, &q_nk[0, 0], q_nk.shape[1], &x_scale_n[0], pk,
                           &csum_m[0], &w_scale_m[0], bias, activation, <float>alpha, &y_nm[0, 0]) != 0:
                bad += 1
        status = -1 if bad else 0
    if status != 0:
        raise MemoryError()


def int8_embedding_forward(const int64_t[::1] ids_n, const int8_t[:, ::1] w_vd, const float[::1] scale_v,
                           float[:, ::1] y_nd, int n_threads=1):
    """y_nd[i] = w_vd[ids_n[i]] / scale_v[ids_n[i]] (ids assumed in [0, V): the op checks them).

    ids_n: (N,) int64, C-contiguous, IN
    w_vd: (V, D) int8, C-contiguous, IN
    scale_v: (V,) float32, C-contiguous, IN
    y_nd: (N, D) float32, C-contiguous, OUT
    """
    cdef Py_ssize_t N = ids_n.shape[0], D = w_vd.shape[1], i, j
    cdef int64_t r
    if N == 0 or D == 0:
        return
    for i in prange(N, nogil=True, num_threads=max(n_threads, 1), schedule="static"):
        r = ids_n[i]
        for j in range(D):
            y_nd[i, j] = <float>w_vd[r, j] / scale_v[r]
