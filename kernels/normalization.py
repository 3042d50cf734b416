"""Normalization kernels on (rows, features) views (Cython, see _normalization.pyx): layer and RMS
normalization (statistics per row) and batch normalization (statistics per channel, over rows).

Design: all Cython, so inference needs no JIT. Layer/RMS norm: one fused kernel per direction,
OpenMP over rows. Batch norm: the inference forward y = x * scale + shift, the moments and the two
backward kernels, streaming loops the compiler vectorizes (a Numba twin measured at best 2x faster
at ~4 s of compile). Every sum over rows uses fixed chunks (CHUNK_ROWS, BATCH_CHUNK_ROWS) and an
ordered serial reduction, so results are bit-identical for any thread count.

Legend: R rows (all axes but the normalized or channel axes, flattened), C features or channels.
"""
from ._normalization import (BATCH_CHUNK_ROWS, CHUNK_ROWS, batch_norm_backward_input, batch_norm_backward_params,
                             batch_norm_forward, batch_norm_moments, layer_norm_backward, layer_norm_forward)

KERNELS = {
    "layer_norm_forward": layer_norm_forward,
    "layer_norm_backward": layer_norm_backward,
    "batch_norm_forward": batch_norm_forward,
    "batch_norm_moments": batch_norm_moments,
    "batch_norm_backward_params": batch_norm_backward_params,
    "batch_norm_backward_input": batch_norm_backward_input,
}

__all__ = ["BATCH_CHUNK_ROWS", "CHUNK_ROWS", *KERNELS]
