"""Normalization kernels on (rows, features) views (Cython, see _normalization.pyx): layer and RMS
normalization (statistics per row) and batch normalization (statistics per channel, over rows).

Design: all Cython, so inference needs no JIT. Layer/RMS norm: one fused kernel per direction,
OpenMP over rows. Batch norm: the inference forward y = x * scale + shift, the moments and the two
backward kernels, streaming loops the compiler vectorizes (a Numba twin measured at best 2x faster
at ~4 s of compile). Every sum over rows uses fixed chunks (CHUNK_ROWS, BATCH_CHUNK_ROWS) and an
ordered serial reduction, so results are bit-identical for any thread count. The per-channel batch-norm
terms (scale/shift from the statistics, the backward's a, k, b, the moving averages) are NumPy here,
float64; they are kernels so that the GPU twins keep them on the device (kernels/cuda/normalization.py).

Legend: R rows (all axes but the normalized or channel axes, flattened), C features or channels.
"""
import numpy as np

from ._normalization import (BATCH_CHUNK_ROWS, CHUNK_ROWS, batch_norm_backward_input, batch_norm_backward_params,
                             batch_norm_forward, batch_norm_moments, layer_norm_backward, layer_norm_forward)


def batch_norm_scale_shift(mean_c, var_c, gamma_c, beta_c, epsilon, scale_out_c, shift_out_c, inv_std_out_c,
                           mean_out_c=None, var_out_c=None):
    """inv_std = 1 / sqrt(var + epsilon); scale = gamma * inv_std; shift = beta - mean * scale.

    mean_c, var_c: (C,) float32/64, IN; gamma_c, beta_c: (C,) or None (1 and 0), IN
    scale_out_c, shift_out_c: (C,) the input's dtype, OUT; inv_std_out_c: (C,) float64, OUT
    mean_out_c, var_out_c: (C,) or None, OUT: mean_c and var_c cast to their dtype
    """
    inv_std = np.add(var_c, epsilon, out=inv_std_out_c, dtype=np.float64)  # in float64 whatever var's dtype
    np.sqrt(inv_std, out=inv_std)
    np.divide(1.0, inv_std, out=inv_std)
    scale = inv_std if gamma_c is None else np.multiply(gamma_c, inv_std, dtype=np.float64)
    shift = np.multiply(mean_c, -scale, dtype=np.float64)
    if beta_c is not None:
        np.add(shift, beta_c, out=shift, dtype=np.float64)
    np.copyto(scale_out_c, scale, casting="unsafe")
    np.copyto(shift_out_c, shift, casting="unsafe")
    if mean_out_c is not None:
        np.copyto(mean_out_c, mean_c, casting="unsafe")
        np.copyto(var_out_c, var_c, casting="unsafe")


def batch_norm_backward_terms(gamma_c, inv_std_c, dgamma_c, dbeta_c, dmean_c, dvar_c, rows, a_out_c, k_out_c,
                              b_out_c):
    """a = gamma * inv_std, k = a * inv_std * dgamma / R - 2 dvar / R, b = a * dbeta / R - dmean / R:
    the per-channel terms of batch_norm_backward_input for training-mode batch normalization.

    gamma_c: (C,) or None (1), IN; inv_std_c: (C,) float64, IN; dgamma_c, dbeta_c: (C,), IN
    dmean_c, dvar_c: (C,) or None (0), IN: gradients reaching the mean and variance outputs
    rows: R; a_out_c, k_out_c, b_out_c: (C,) the input's dtype, OUT
    """
    g = 1.0 if gamma_c is None else np.asarray(gamma_c, dtype=np.float64)
    a = g * inv_std_c
    k = a * inv_std_c * np.asarray(dgamma_c, dtype=np.float64) / rows
    b = a * np.asarray(dbeta_c, dtype=np.float64) / rows
    if dmean_c is not None:
        b -= np.asarray(dmean_c, dtype=np.float64) / rows
    if dvar_c is not None:
        k -= 2.0 * np.asarray(dvar_c, dtype=np.float64) / rows
    a_out_c[:], k_out_c[:], b_out_c[:] = a, k, b


def batch_norm_update_moving(moving_c, batch_c, momentum, new_out_c):
    """new_out_c = moving_c * momentum + batch_c * (1 - momentum) (a moving mean or variance).

    moving_c, batch_c: (C,) float32/64, IN
    new_out_c: (C,) same dtype, OUT (may be moving_c)
    """
    new_out_c[:] = moving_c * momentum + batch_c * (1.0 - momentum)


KERNELS = {
    "layer_norm_forward": layer_norm_forward,
    "layer_norm_backward": layer_norm_backward,
    "batch_norm_forward": batch_norm_forward,
    "batch_norm_moments": batch_norm_moments,
    "batch_norm_backward_params": batch_norm_backward_params,
    "batch_norm_backward_input": batch_norm_backward_input,
    "batch_norm_scale_shift": batch_norm_scale_shift,
    "batch_norm_backward_terms": batch_norm_backward_terms,
    "batch_norm_update_moving": batch_norm_update_moving,
}

__all__ = ["BATCH_CHUNK_ROWS", "CHUNK_ROWS", *KERNELS]
