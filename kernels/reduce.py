"""Reductions: Cython kernels (see _reduce.pyx)."""
from ._reduce import sum_all, sum_axis0

KERNELS = {"sum_axis0": sum_axis0, "sum_all": sum_all}
