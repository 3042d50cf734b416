# Design: the Embedding layer's lookups: a row gather forward (OpenMP over lookups, each writing its
# own output row) and a scatter-add backward in lookup order (serial: two lookups of one id add
# into the same row, and the fixed order keeps the result bit-identical run to run). Cython, as
# inference needs the forward without numba.
#
# Legend: N lookups (all ids, flattened), V vocabulary rows, D embedding width.
from cython.parallel cimport prange
from libc.string cimport memcpy

from kernels._activations cimport floating
from kernels._ids cimport first_out_of_range, index_t


def embedding_forward(const index_t[::1] ids_n, const floating[:, ::1] w_vd,
                      floating[:, ::1] y_nd, int n_threads=1):
    """y_nd[i] = w_vd[ids_n[i]]; ValueError (nothing written) when an id is outside [0, V).

    ids_n: (N,) int32/int64, C-contiguous, IN (N = all lookups, flattened)
    w_vd: (V, D) float32/64, C-contiguous, IN
    y_nd: (N, D) same dtype, C-contiguous, OUT
    """
    cdef Py_ssize_t N = ids_n.shape[0], D = w_vd.shape[1], V = w_vd.shape[0], i, bad
    if N == 0 or D == 0:
        return
    bad = first_out_of_range(&ids_n[0], N, V)
    if bad >= 0:
        raise ValueError(f"embedding_forward: ids must be in [0, {V}), received {ids_n[bad]} at position {bad}")
    if n_threads <= 1:
        with nogil:
            for i in range(N):
                memcpy(&y_nd[i, 0], &w_vd[ids_n[i], 0], D * sizeof(floating))
    else:
        for i in prange(N, nogil=True, num_threads=n_threads, schedule="static"):
            memcpy(&y_nd[i, 0], &w_vd[ids_n[i], 0], D * sizeof(floating))


def embedding_backward(const index_t[::1] ids_n, const floating[:, ::1] dy_nd,
                       floating[:, ::1] dw_vd):
    """dw_vd[ids_n[i]] += dy_nd[i] for i = 0..N-1 in order (scatter-add, deterministic).

    ids_n: (N,) int32/int64, C-contiguous, IN (the forward's ids, checked there)
    dy_nd: (N, D) float32/64, C-contiguous, IN
    dw_vd: (V, D) same dtype, C-contiguous, IN/OUT (accumulated into; zero it first)
    """
    cdef Py_ssize_t N = ids_n.shape[0], D = dy_nd.shape[1], i, j
    cdef floating* row
    cdef const floating* src
    if N == 0 or D == 0:
        return
    with nogil:
        for i in range(N):
            row = &dw_vd[ids_n[i], 0]
            src = &dy_nd[i, 0]
            for j in range(D):
                row[j] = row[j] + src[j]
