"""int8 inference kernels (Cython, _quantized.pyx over dl_igemm.h).

quantize_rows(x_nk, q_nk, scale_n, n_threads=1)
int8_pack(w_km, packed, csum_m)
int8_matmul(q_nk, packed, csum_m, acc_nm, n_threads=1)
int8_dense_forward(x_nk, packed, csum_m, w_scale_m, b_m, activation, alpha, y_nm, n_threads=1)
int8_embedding_forward(ids_n, w_vd, scale_v, y_nd, n_threads=1)
quantize_static(x_l, scale, q_l, n_threads=1)
int8_conv2d_forward(x_nhwc, x_scale_n, packed, csum_m, w_scale_m, b_m, kh, kw, stride_h, stride_w, pad_h, pad_w,
                    dilation_h, dilation_w, oh, ow, activation, alpha, y_pm, yq_pm, out_scale, n_threads=1)
int8_depthwise_forward(x_nhwc, x_scale_n, w_hwo, w_scale_o, b_o, stride_h, stride_w, pad_h, pad_w, dilation_h,
                       dilation_w, oh, ow, activation, alpha, y_po, yq_po, out_scale, n_threads=1)
int8_max_pool2d_forward(x_nhwc, pool_h, pool_w, stride_h, stride_w, y_nhwc, n_threads=1)
int8_lstm_forward(xacc_ntg, x_scale_nt, w_scale_g, b_g, packed, csum_g, r_scale_g, mask_nt, activation, alpha,
                  recurrent_activation, recurrent_alpha, zero_output, h_nu, c_nu, y_ntu, n_threads=1)
int8_gru_forward(xacc_ntg, x_scale_nt, w_scale_g, b_g, packed_zr, csum_zr, packed_h, csum_h, r_scale_g, brh_u,
                 mask_nt, activation, alpha, recurrent_activation, recurrent_alpha, reset_after, zero_output, h_nu,
                 y_ntu, n_threads=1)

Legend: N rows, K inputs (Kp: rounded up to 4), M outputs (Mp: rounded up to 16), V rows, D width.
"""
from ._quantized import (ROWS_PER_TASK, cpu_isa, int8_conv2d_forward, int8_dense_forward, int8_depthwise_forward,
                         int8_embedding_forward, int8_gru_forward, int8_lstm_forward, int8_max_pool2d_forward,
                         int8_matmul, int8_pack, packed_size, quantize_rows, quantize_static, set_isa)

KERNELS = {
    "quantize_rows": quantize_rows,
    "int8_pack": int8_pack,
    "int8_matmul": int8_matmul,
    "int8_dense_forward": int8_dense_forward,
    "int8_embedding_forward": int8_embedding_forward,
    "quantize_static": quantize_static,
    "int8_conv2d_forward": int8_conv2d_forward,
    "int8_depthwise_forward": int8_depthwise_forward,
    "int8_max_pool2d_forward": int8_max_pool2d_forward,
    "int8_lstm_forward": int8_lstm_forward,
    "int8_gru_forward": int8_gru_forward,
}
