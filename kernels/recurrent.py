"""Recurrent kernels: the fused SimpleRNN / LSTM / GRU recurrences, forward and backward through
time and the products around them (Cython; the Design block is in _recurrent.pyx).

simple_rnn_forward(z_ntg, r_ug, mask_nt, rmask_knu, activation, alpha, zero_output, h_nu,
                   hprev_ntu, y_ntu, n_threads=1)
simple_rnn_backward(z_ntg, r_ug, mask_nt, rmask_knu, activation, alpha, zero_output, dy_ntu,
                    dh_nu, dz_ntg, n_threads=1)
lstm_forward(z_ntg, r_ug, mask_nt, rmask_knu, activation, alpha, recurrent_activation,
             recurrent_alpha, zero_output, h_nu, c_nu, hprev_ntu, cprev_ntu, y_ntu, n_threads=1)
lstm_forward_inputs(x_tk, w_kg, b_g, z_ntg, r_ug, h_nu, c_nu, y_ntu, n_threads=1)   (one row, from the inputs)
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
rows_matmul_tn(a_mk, b_mn, c_kn, colsum_n, n_threads=1, a2_mj=None, c2_jn=None)
mask_time_steps(x_ntk, mask_nk, accumulate, out_ntk)   (Numba: the dropout masks' multiply)
(and, outside the table, for tests and benchmarks: step_matmul(a, b, c, beta=0.0, packed=False),
the per-step product; fast_activation(code, x_n, y_n), the float32 sigmoid/tanh; set_isa(isa),
which selects the float32 products' ISA; packed_cache_info() and packed_cache_clear(), the
batch-1 LSTM forward's cache of packed recurrent kernels.)

Legend: N batch, T time steps, K input features, U units, G = gates * U; M rows of a product.
"""
from . import _blas, _config, _recurrent
from ._config import jit
from ._recurrent import (
    BACKWARD_ACTIVATIONS,
    GEMV_ROWS,
    MIN_CHUNK_ROWS,
    TN_BLOCKS,
    fast_activation,
    gru_backward,
    gru_forward,
    lstm_backward,
    lstm_forward,
    lstm_forward_inputs,
    packed_cache_clear,
    packed_cache_info,
    rows_matmul,
    rows_matmul_tn,
    set_isa,
    simple_rnn_backward,
    simple_rnn_forward,
    step_matmul,
)



@jit(parallel=True)
def mask_time_steps(x_ntk, mask_nk, accumulate, out_ntk):
    """out = x * mask broadcast over time (a dropout mask per row and feature, the same at every
    step), added to out when ``accumulate`` (the per-gate input gradients); out may be x.

    x_ntk: (N, T, K) float32/64, IN
    mask_nk: (N, K) same dtype, IN
    accumulate: Python bool
    out_ntk: (N, T, K) same dtype, IN/OUT
    """
    n, t_len, k = x_ntk.shape
    for i in _config.prange(n):
        for t in range(t_len):
            for j in range(k):
                v = x_ntk[i, t, j] * mask_nk[i, j]
                out_ntk[i, t, j] = out_ntk[i, t, j] + v if accumulate else v


# Whether the recurrences run their BLAS calls single-threaded (an OpenBLAS thread setter found).
BLAS_THREADS_BOUND = _blas.hooks() > 0

KERNELS = {
    "simple_rnn_forward": simple_rnn_forward,
    "simple_rnn_backward": simple_rnn_backward,
    "lstm_forward": lstm_forward,
    "lstm_forward_inputs": lstm_forward_inputs,
    "lstm_backward": lstm_backward,
    "gru_forward": gru_forward,
    "gru_backward": gru_backward,
    "rows_matmul": rows_matmul,
    "rows_matmul_tn": rows_matmul_tn,
    "mask_time_steps": mask_time_steps,
}
