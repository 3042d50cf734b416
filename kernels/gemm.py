"""Matrix products: Cython kernels over the own AVX-512 float32 GEMM (dl_sgemm.h) or scipy's BLAS
(see _gemm.pyx).

matmul(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, n_threads=-1)
dense_forward(x_nk, w_km, b_m, activation, alpha, y_nm, n_threads=1)

bfloat16 (the mixed_bfloat16 / bfloat16 dtype policies; operands rounded to bf16, float32 sums,
AVX512_BF16 VDPBF16PS tiles where the CPU has them, portable C otherwise: dl_bf16gemm.h):
matmul_bf16(a, b, out, trans_a=False, trans_b=False, beta=0.0, n_threads=-1)
dense_forward_bf16(x_nk, w_km, b_m, activation, alpha, y_nm, n_threads=1)
round_bfloat16(x, out)
cast_float16(x, out), widen_float16(x, out)  (float32 <-> float16, for the float16 policies' casts)
"""
from . import _gemm
from ._gemm import (EPILOGUE_PARALLEL_MIN, FLOAT16_CASTS, bf16_isa, cast_float16, dense_forward, dense_forward_bf16,
                    matmul, matmul_bf16, round_bfloat16, set_bf16_isa, widen_float16)


KERNELS = {"matmul": matmul, "dense_forward": dense_forward, "matmul_bf16": matmul_bf16,
           "dense_forward_bf16": dense_forward_bf16, "round_bfloat16": round_bfloat16, "cast_float16": cast_float16,
           "widen_float16": widen_float16}
