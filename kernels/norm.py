"""Normalization kernels: batch normalization on (rows, channels) views (Cython, see _norm.pyx).

Design: all Cython. The inference forward (y = x * scale + shift) because predict needs it; the
statistics and backward kernels because they are streaming loops the compiler vectorizes, and
being compiled ahead of time they add no JIT compile to the first training step (a Numba twin
measured at best 2x faster through the host's wider SIMD, at ~4 s of compile; see _norm.pyx). Sums over rows
use fixed CHUNK_ROWS chunks and an ordered serial reduction, so results are bit-identical for
any thread count.

Legend: R rows (all axes but the channel axis, flattened), C channels.
"""
from ._norm import (CHUNK_ROWS, batch_norm_backward_input, batch_norm_backward_params, batch_norm_forward,
                    batch_norm_moments)

KERNELS = {
    "batch_norm_forward": batch_norm_forward,
    "batch_norm_moments": batch_norm_moments,
    "batch_norm_backward_params": batch_norm_backward_params,
    "batch_norm_backward_input": batch_norm_backward_input,
}

__all__ = ["CHUNK_ROWS", *KERNELS]
