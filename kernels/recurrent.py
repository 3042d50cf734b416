"""Recurrent kernels: the fused SimpleRNN / LSTM / GRU recurrences, forward and backward through
time, the products around them, and the embedding gather / scatter-add (Cython; the Design block
is in _recurrent.pyx).

simple_rnn_forward(z_ntg, r_ug, mask_nt, rmask_knu, activation, alpha, zero_output, h_nu,
                   hprev_ntu, y_ntu, n_threads=1)
simple_rnn_backward(z_ntg, r_ug, mask_nt, rmask_knu, activation, alpha, zero_output, dy_ntu,
                    dh_nu, dz_ntg, n_threads=1)
lstm_forward(z_ntg, r_ug, mask_nt, rmask_knu, activation, alpha, recurrent_activation,
             recurrent_alpha, zero_output, h_nu, c_nu, hprev_ntu, cprev_ntu, y_ntu, n_threads=1)
lstm_backward(z_ntg, cprev_ntu, r_ug, mask_nt, rmask_knu, activation, alpha,
              recurrent_activation, recurrent_alpha, zero_output, dy_ntu, dh_nu, dc_nu, dz_ntg,
              n_threads=1)
gru_forward(z_ntg, r_ug, brh_u, mask_nt, rmask_knu, activation, alpha, recurrent_activation,
            recurrent_alpha, reset_after, zero_output, h_nu, hprev_ntu, aux_ntu, y_ntu,
            n_threads=1)
gru_backward(z_ntg, hprev_ntu, aux_ntu, r_ug, mask_nt, rmask_knu, activation, alpha,
             recurrent_activation, recurrent_alpha, reset_after, zero_output, dy_ntu, dh_nu,
             dz_ntg, dzr_ntg, n_threads=1)
rows_matmul(a_mk, b_kn, bias_n, c_mn, trans_b=False, n_threads=1)
rows_matmul_tn(a_mk, b_mn, c_kn, colsum_n, n_threads=1)
embedding_forward(ids_n, w_vd, y_nd, n_threads=1)
embedding_backward(ids_n, dy_nd, dw_vd)
(and, outside the table, for tests and benchmarks: step_matmul(a, b, c, beta=0.0, packed=False),
the per-step product; fast_activation(code, x_n, y_n), the float32 sigmoid/tanh; set_isa(isa),
which selects the float32 products' ISA.)

Legend: N batch, T time steps, K input features, U units, G = gates * U, V vocabulary rows, D
embedding width; M rows of a product. The embedding lookups live here because Embedding serves
the recurrent stack (mask_zero feeds the recurrent layers' masks); they are plain gathers.
"""
import ctypes
import os

from . import _config
from ._recurrent import (
    BACKWARD_ACTIVATIONS,
    GEMV_ROWS,
    MIN_CHUNK_ROWS,
    bind_blas_threads,
    embedding_backward,
    embedding_forward,
    fast_activation,
    gru_backward,
    gru_forward,
    lstm_backward,
    lstm_forward,
    simple_rnn_backward,
    TN_BLOCKS,
    rows_matmul,
    rows_matmul_tn,
    set_isa,
    simple_rnn_forward,
    step_matmul,
)


def _bind_blas_threads():
    """Hand the kernels the thread setter/getter of the BLAS that scipy.linalg.cython_blas calls
    (scipy's bundled LP64 OpenBLAS, not numpy's 64-bit-integer one), so a recurrence runs its
    per-step GEMMs single-threaded (see the Design block of _recurrent.pyx). Without it the
    kernels run in one chunk with BLAS as configured.
    """
    hooks = [h for h in _config.blas_thread_hooks() if "openblas64" not in os.path.basename(h[0]).lower()]
    hooks.sort(key=lambda h: 0 if "scipy" in h[0] else 1)
    if not hooks:
        return False
    _, getter, setter = hooks[0]
    bind_blas_threads(ctypes.cast(setter, ctypes.c_void_p).value, ctypes.cast(getter, ctypes.c_void_p).value)
    return True


BLAS_THREADS_BOUND = _bind_blas_threads()

KERNELS = {
    "simple_rnn_forward": simple_rnn_forward,
    "simple_rnn_backward": simple_rnn_backward,
    "lstm_forward": lstm_forward,
    "lstm_backward": lstm_backward,
    "gru_forward": gru_forward,
    "gru_backward": gru_backward,
    "embedding_forward": embedding_forward,
    "embedding_backward": embedding_backward,
    "rows_matmul": rows_matmul,
    "rows_matmul_tn": rows_matmul_tn,
}
