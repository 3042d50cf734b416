# Design: reductions the op tier needs on hot paths (bias gradients). Deterministic: each output
# element is summed by one thread in a fixed order, so results do not depend on the thread count.
#
# Legend: N rows (batch), M columns (features).
from cython.parallel cimport prange

ctypedef fused floating:
    float
    double

# Columns per task of sum_axis0: their running sums stay in registers (64 float32 = 4 zmm).
cdef Py_ssize_t _SUM_BLOCK = 64


cdef inline void _sum_rows(const floating* x, Py_ssize_t n, Py_ssize_t ld, Py_ssize_t w,
                           floating* out) noexcept nogil:
    """out[j] = sum over i (in order, from 0) of x[i * ld + j], for j < w <= _SUM_BLOCK: local
    sums the compiler vectorizes (the same additions, in the same order, as summing into out)."""
    cdef floating acc[64]
    cdef Py_ssize_t i, j
    for j in range(w):
        acc[j] = 0
    if w == 64:  # a constant trip count: the sums live in registers
        for i in range(n):
            for j in range(64):
                acc[j] = acc[j] + x[i * ld + j]
    else:
        for i in range(n):
            for j in range(w):
                acc[j] = acc[j] + x[i * ld + j]
    for j in range(w):
        out[j] = acc[j]


def sum_axis0(const floating[:, ::1] x_nm, floating[::1] out_m, int n_threads=1):
    """out_m[j] = sum_i x_nm[i, j].

    x_nm: (N, M) float32/64, C-contiguous, IN
    out_m: (M,) same dtype, OUT
    """
    cdef Py_ssize_t n = x_nm.shape[0], m = x_nm.shape[1], j, j0, j1, b
    cdef Py_ssize_t n_blocks = (m + _SUM_BLOCK - 1) // _SUM_BLOCK
    if n == 0:
        for j in range(m):
            out_m[j] = 0
        return
    # Column blocks are disjoint; rows are added in order inside each block.
    for b in prange(n_blocks, nogil=True, num_threads=n_threads, schedule="static"):
        j0 = b * _SUM_BLOCK
        j1 = j0 + _SUM_BLOCK
        if j1 > m:
            j1 = m
        _sum_rows(&x_nm[0, j0], n, m, j1 - j0, &out_m[j0])


def sum_all(const floating[::1] x_n, floating[::1] out_1, double divisor=1.0):
    """out_1[0] = (x_n[0] + x_n[1] + ...) / divisor, summed in order in double precision (a
    reduced loss: the losses' mean, the kernel call that makes it part of a captured step).

    x_n: (N,) float32/64, C-contiguous, IN
    out_1: (1,) same dtype, OUT
    """
    cdef double acc = 0.0
    cdef Py_ssize_t i
    with nogil:
        for i in range(x_n.shape[0]):
            acc = acc + x_n[i]
    out_1[0] = <floating>(acc / divisor)
