"""Layer and RMS normalization kernels on (rows, features) views (Cython, see _normalization.pyx).

Design: all Cython, one fused kernel per direction, OpenMP over rows; parameter gradients are
summed in fixed CHUNK_ROWS chunks in a fixed order, so results are bit-identical for any thread
count. Batch normalization (statistics over rows, per channel) is the ``norm`` family.

Legend: R rows, C features (the normalized axes, flattened last).
"""
from ._normalization import CHUNK_ROWS, layer_norm_backward, layer_norm_forward

KERNELS = {
    "layer_norm_forward": layer_norm_forward,
    "layer_norm_backward": layer_norm_backward,
}

__all__ = ["CHUNK_ROWS", *KERNELS]
