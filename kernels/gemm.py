"""Matrix products: Cython kernels over the own AVX-512 float32 GEMM (dl_sgemm.h) or scipy's BLAS
(see _gemm.pyx).

matmul(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, n_threads=-1)
dense_forward(x_nk, w_km, b_m, activation, alpha, y_nm, n_threads=1)
"""
from . import _blas, _gemm
from ._gemm import EPILOGUE_PARALLEL_MIN, dense_forward, matmul

_blas.bind(_gemm)

KERNELS = {"matmul": matmul, "dense_forward": dense_forward}
