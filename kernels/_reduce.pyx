# Design: reductions the op tier needs on hot paths (bias gradients). Deterministic: each output
# element is summed by one thread in a fixed order, so results do not depend on the thread count.
#
# Legend: N rows (batch), M columns (features).
from cython.parallel cimport prange

ctypedef fused floating:
    float
    double


def sum_axis0(const floating[:, ::1] x_nm, floating[::1] out_m, int n_threads=1):
    """out_m[j] = sum_i x_nm[i, j].

    x_nm: (N, M) float32/64, C-contiguous, IN
    out_m: (M,) same dtype, OUT
    """
    cdef Py_ssize_t n = x_nm.shape[0], m = x_nm.shape[1], i, j, j0, j1, b
    cdef Py_ssize_t block = 64
    cdef Py_ssize_t n_blocks = (m + block - 1) // block
    for j in range(m):
        out_m[j] = 0
    # Column blocks are disjoint; rows are added in order inside each block.
    for b in prange(n_blocks, nogil=True, num_threads=n_threads, schedule="static"):
        j0 = b * block
        j1 = j0 + block
        if j1 > m:
            j1 = m
        for i in range(n):
            for j in range(j0, j1):
                out_m[j] += x_nm[i, j]
