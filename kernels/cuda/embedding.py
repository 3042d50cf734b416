"""Embedding on the GPU: the CUDA twins of kernels/embedding.py (row gather, scatter-add).

Design: the forward is one thread per output element. The backward is a sort, not atomics:
the lookups are ordered by id on the host (a stable argsort of the N int64 ids, which the op
keeps on the host anyway), and one thread per (distinct id, column) adds that id's rows of dy in
their original order into dw. Each element of dw is thus summed in the CPU kernel's order, so
the result is deterministic and equals the CPU's bit for bit; float atomics would make the
order, and the rounding, depend on the scheduling.

Legend: N lookups (flattened), V vocabulary rows, D embedding width; S distinct ids.
"""
import numpy as np
from numba import cuda

from ._launch import grid_1d


@cuda.jit
def _gather(ids_n, w_vd, y_nd):
    i = cuda.grid(1)
    d = y_nd.shape[1]
    if i < y_nd.shape[0] * d:
        y_nd[i // d, i % d] = w_vd[ids_n[i // d], i % d]


@cuda.jit
def _segment_add(order_n, starts_s1, uniq_s, dy_nd, dw_vd):
    i = cuda.grid(1)
    d = dy_nd.shape[1]
    if i < uniq_s.shape[0] * d:
        s, j = i // d, i % d
        row = uniq_s[s]
        acc = dw_vd[row, j]
        for p in range(starts_s1[s], starts_s1[s + 1]):
            acc += dy_nd[order_n[p], j]
        dw_vd[row, j] = acc


def embedding_forward(ids_n, w_vd, y_nd, n_threads=1):
    """y_nd[i] = w_vd[ids_n[i]]; ids_n (N,) int64, w_vd (V, D), y_nd (N, D) OUT; device arrays."""
    if y_nd.shape[0] and y_nd.shape[1]:
        _gather[grid_1d(y_nd.shape[0] * y_nd.shape[1])](ids_n, w_vd, y_nd)


def embedding_backward(ids_n, dy_nd, dw_vd):
    """dw_vd[ids_n[i]] += dy_nd[i], i in order within each id (deterministic); ids_n (N,) int64
    (host or device), dy_nd (N, D) and dw_vd (V, D) IN/OUT device arrays."""
    n, d = dy_nd.shape
    if n == 0 or d == 0:
        return
    ids = ids_n.copy_to_host() if hasattr(ids_n, "copy_to_host") else np.asarray(ids_n)
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    uniq = sorted_ids[starts]
    bounds = np.r_[starts, n].astype(np.int64)
    _segment_add[grid_1d(uniq.size * d)](cuda.to_device(order.astype(np.int64)), cuda.to_device(bounds),
                                         cuda.to_device(uniq.astype(np.int64)), dy_nd, dw_vd)


KERNELS = {"embedding_forward": embedding_forward, "embedding_backward": embedding_backward}
