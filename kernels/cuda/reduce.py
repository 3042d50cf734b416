"""Reductions on the GPU: the CUDA twin of kernels/reduce.py.

Design: one thread per column, adding rows in order, so the sum is deterministic.
Legend: N rows (batch), M columns (features).
"""
from numba import cuda

from ._launch import grid_1d


@cuda.jit
def _sum_axis0(x_nm, out_m):
    j = cuda.grid(1)
    if j < x_nm.shape[1]:
        s = 0.0
        for i in range(x_nm.shape[0]):
            s += x_nm[i, j]
        out_m[j] = s


def sum_axis0(x_nm, out_m, n_threads=1):
    """out_m[j] = sum_i x_nm[i, j]; x_nm: (N, M), out_m: (M,) device arrays."""
    if x_nm.shape[1]:
        _sum_axis0[grid_1d(x_nm.shape[1])](x_nm, out_m)


KERNELS = {"sum_axis0": sum_axis0}
