"""Layer and RMS normalization on the GPU: the CUDA twins of kernels/normalization.py
(_normalization.pyx) on (R, C) views, the same formulas (see tests/reference/normalization.py).

Design: the forward and the input gradient run one thread per row (the row's sums in float64, in
column order); the parameter gradients one thread per column (the rows added in order). Every
sum has a fixed order, so results do not depend on the launch geometry.

Legend: R rows, C features (the normalized axes, flattened last).
"""
import math

from numba import cuda

from ._launch import grid_1d


@cuda.jit
def _forward(x_rc, gamma_c, beta_c, epsilon, rms, y_rc, mean_r, rstd_r):
    r = cuda.grid(1)
    c_ = x_rc.shape[1]
    if r < x_rc.shape[0]:
        mean = 0.0
        if not rms:
            for c in range(c_):
                mean += float(x_rc[r, c])
            mean /= c_
        s = 0.0
        for c in range(c_):
            d = float(x_rc[r, c]) - mean
            s += d * d
        rstd = 1.0 / math.sqrt(s / c_ + epsilon)
        for c in range(c_):
            y_rc[r, c] = (float(x_rc[r, c]) - mean) * rstd * gamma_c[c] + beta_c[c]
        mean_r[r] = mean
        rstd_r[r] = rstd


@cuda.jit
def _backward_input(dy_rc, x_rc, mean_r, rstd_r, gamma_c, rms, dx_rc):
    r = cuda.grid(1)
    c_ = x_rc.shape[1]
    if r < x_rc.shape[0]:
        mean, rstd = mean_r[r], rstd_r[r]
        s_g = 0.0
        s_gx = 0.0
        for c in range(c_):
            g = float(dy_rc[r, c]) * gamma_c[c]
            s_g += g
            s_gx += g * (float(x_rc[r, c]) - mean) * rstd
        mean_g = 0.0 if rms else s_g / c_
        mean_gx = s_gx / c_
        for c in range(c_):
            g = float(dy_rc[r, c]) * gamma_c[c]
            dx_rc[r, c] = rstd * (g - mean_g - (float(x_rc[r, c]) - mean) * rstd * mean_gx)


@cuda.jit
def _backward_params(dy_rc, x_rc, mean_r, rstd_r, dgamma_c, dbeta_c):
    c = cuda.grid(1)
    if c < x_rc.shape[1]:
        s_dy = 0.0
        s_dyx = 0.0
        for r in range(x_rc.shape[0]):
            g = float(dy_rc[r, c])
            s_dy += g
            s_dyx += g * (float(x_rc[r, c]) - mean_r[r]) * rstd_r[r]
        dgamma_c[c] = s_dyx
        dbeta_c[c] = s_dy


def layer_norm_forward(x_rc, gamma_c, beta_c, epsilon, rms, y_out_rc, mean_out_r, rstd_out_r, n_threads=1):
    """y = (x - mean) * rstd * gamma + beta per row (rms: mean = 0); mean/rstd (R,) float64 out."""
    if x_rc.shape[0] and x_rc.shape[1]:
        _forward[grid_1d(x_rc.shape[0])](x_rc, gamma_c, beta_c, float(epsilon), bool(rms), y_out_rc, mean_out_r,
                                         rstd_out_r)


def layer_norm_backward(dy_rc, x_rc, mean_r, rstd_r, gamma_c, rms, dx_out_rc, dgamma_out_c, dbeta_out_c,
                        need_dx=True, need_params=True, n_threads=1):
    """dx (when need_dx) and dgamma, dbeta (when need_params) of layer_norm_forward."""
    if x_rc.shape[0] == 0 or x_rc.shape[1] == 0:
        return
    if need_dx:
        _backward_input[grid_1d(x_rc.shape[0])](dy_rc, x_rc, mean_r, rstd_r, gamma_c, bool(rms), dx_out_rc)
    if need_params:
        _backward_params[grid_1d(x_rc.shape[1])](dy_rc, x_rc, mean_r, rstd_r, dgamma_out_c, dbeta_out_c)


KERNELS = {"layer_norm_forward": layer_norm_forward, "layer_norm_backward": layer_norm_backward}
