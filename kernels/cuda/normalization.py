"""Layer and RMS normalization on the GPU: the CUDA twins of kernels/normalization.py
(_normalization.pyx) on (R, C) views, the same formulas (see tests/reference/normalization.py).

Design: the forward and the input gradient run one thread per row (the row's sums in float64, in
column order); the parameter gradients one thread per column (the rows added in order). Every
sum has a fixed order, so results do not depend on the launch geometry.

Batch normalization (the batch_norm_* kernels, the section below), on the same (R, C) views,
and its per-channel terms (batch_norm_scale_shift, batch_norm_backward_terms,
batch_norm_update_moving), so a training step keeps every statistic on the device.

Design: elementwise kernels (forward, backward_input) run one thread per element; the sums over
rows (moments, backward_params) one thread per channel, adding the rows in order in float64
(deterministic for any launch geometry; the CPU adds fixed row chunks, so the last bits may
differ within float tolerance). The per-channel terms run one thread per channel with the CPU
twins' float64 formulas.

Legend: R rows (every axis but the normalized or channel axes), C features or channels.
"""
import math

from numba import cuda

from ._launch import dummy_vector, grid_1d


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


# ---- batch normalization ----
@cuda.jit
def _bn_affine(x_rc, scale_c, shift_c, y_rc):
    i = cuda.grid(1)
    c_ = x_rc.shape[1]
    if i < x_rc.shape[0] * c_:
        r, c = i // c_, i % c_
        y_rc[r, c] = x_rc[r, c] * scale_c[c] + shift_c[c]


@cuda.jit
def _bn_moments(x_rc, mean_c, var_c):
    c = cuda.grid(1)
    r_ = x_rc.shape[0]
    if c < x_rc.shape[1]:
        s = 0.0
        for r in range(r_):
            s += float(x_rc[r, c])  # float64 sums (float() keeps the simulator's Python scalars wide too)
        mean = s / r_
        s = 0.0
        for r in range(r_):
            d = float(x_rc[r, c]) - mean
            s += d * d
        mean_c[c] = mean
        var_c[c] = s / r_


@cuda.jit
def _bn_backward_params(dy_rc, x_rc, mean_c, inv_std_c, dgamma_c, dbeta_c):
    c = cuda.grid(1)
    if c < x_rc.shape[1]:
        s_dy = 0.0
        s_dyx = 0.0
        for r in range(x_rc.shape[0]):
            g = float(dy_rc[r, c])
            s_dy += g
            s_dyx += g * (float(x_rc[r, c]) - mean_c[c])
        dbeta_c[c] = s_dy
        dgamma_c[c] = s_dyx * inv_std_c[c]


@cuda.jit
def _bn_backward_input(dy_rc, x_rc, mean_c, a_c, k_c, b_c, dx_rc):
    i = cuda.grid(1)
    c_ = x_rc.shape[1]
    if i < x_rc.shape[0] * c_:
        r, c = i // c_, i % c_
        dx_rc[r, c] = a_c[c] * dy_rc[r, c] - k_c[c] * (x_rc[r, c] - mean_c[c]) - b_c[c]


@cuda.jit
def _bn_scale_shift(mean_c, var_c, gamma_c, has_gamma, beta_c, has_beta, epsilon, scale_c, shift_c, inv_std_c,
                 cast_stats, mean_out_c, var_out_c):
    c = cuda.grid(1)
    if c < mean_c.shape[0]:
        mean = float(mean_c[c])
        var = float(var_c[c])
        inv_std = 1.0 / math.sqrt(var + epsilon)
        scale = float(gamma_c[c]) * inv_std if has_gamma else inv_std
        shift = -mean * scale
        if has_beta:
            shift += float(beta_c[c])
        scale_c[c] = scale
        shift_c[c] = shift
        inv_std_c[c] = inv_std
        if cast_stats:
            mean_out_c[c] = mean
            var_out_c[c] = var


@cuda.jit
def _bn_backward_terms(gamma_c, has_gamma, inv_std_c, dgamma_c, dbeta_c, dmean_c, has_dmean, dvar_c, has_dvar, rows,
                    a_c, k_c, b_c):
    c = cuda.grid(1)
    if c < inv_std_c.shape[0]:
        g = float(gamma_c[c]) if has_gamma else 1.0
        inv_std = inv_std_c[c]
        a = g * inv_std
        k = a * inv_std * float(dgamma_c[c]) / rows
        b = a * float(dbeta_c[c]) / rows
        if has_dmean:
            b -= float(dmean_c[c]) / rows
        if has_dvar:
            k -= 2.0 * float(dvar_c[c]) / rows
        a_c[c] = a
        k_c[c] = k
        b_c[c] = b


@cuda.jit
def _bn_update_moving(moving_c, batch_c, momentum, new_c):
    c = cuda.grid(1)
    if c < moving_c.shape[0]:
        new_c[c] = moving_c[c] * momentum + batch_c[c] * (1.0 - momentum)


def batch_norm_forward(x_rc, scale_c, shift_c, y_out_rc, n_threads=1):
    """y_out_rc[r, c] = x_rc[r, c] * scale_c[c] + shift_c[c]; device arrays of one dtype."""
    if x_rc.size:
        _bn_affine[grid_1d(x_rc.size)](x_rc, scale_c, shift_c, y_out_rc)


def batch_norm_moments(x_rc, mean_out_c, var_out_c, n_threads=1):
    """Per-channel mean and biased variance over the rows (float64 outputs), R >= 1."""
    if x_rc.shape[1]:
        _bn_moments[grid_1d(x_rc.shape[1])](x_rc, mean_out_c, var_out_c)


def batch_norm_backward_params(dy_rc, x_rc, mean_c, inv_std_c, dgamma_out_c, dbeta_out_c, n_threads=1):
    """dbeta = sum_r dy; dgamma = sum_r dy * (x - mean) * inv_std (mean_c, inv_std_c float64)."""
    if x_rc.shape[1]:
        _bn_backward_params[grid_1d(x_rc.shape[1])](dy_rc, x_rc, mean_c, inv_std_c, dgamma_out_c, dbeta_out_c)


def batch_norm_backward_input(dy_rc, x_rc, mean_c, a_c, k_c, b_c, dx_out_rc, n_threads=1):
    """dx_out_rc[r, c] = a_c[c] * dy[r, c] - k_c[c] * (x[r, c] - mean_c[c]) - b_c[c]."""
    if x_rc.size:
        _bn_backward_input[grid_1d(x_rc.size)](dy_rc, x_rc, mean_c, a_c, k_c, b_c, dx_out_rc)


def batch_norm_scale_shift(mean_c, var_c, gamma_c, beta_c, epsilon, scale_out_c, shift_out_c, inv_std_out_c,
                           mean_out_c=None, var_out_c=None):
    """The CPU twin's per-channel terms on device arrays (gamma_c, beta_c, mean/var_out_c may be None)."""
    c = mean_c.shape[0]
    if c:
        cast = mean_out_c is not None
        _bn_scale_shift[grid_1d(c)](mean_c, var_c, mean_c if gamma_c is None else gamma_c, gamma_c is not None,
                                 mean_c if beta_c is None else beta_c, beta_c is not None, float(epsilon),
                                 scale_out_c, shift_out_c, inv_std_out_c, cast,
                                 mean_out_c if cast else scale_out_c, var_out_c if cast else scale_out_c)


def batch_norm_backward_terms(gamma_c, inv_std_c, dgamma_c, dbeta_c, dmean_c, dvar_c, rows, a_out_c, k_out_c,
                              b_out_c):
    """The CPU twin's a, k, b of batch_norm_backward_input on device arrays (gamma/dmean/dvar may be None)."""
    c = inv_std_c.shape[0]
    if c:
        other = dummy_vector(a_out_c.dtype)
        _bn_backward_terms[grid_1d(c)](other if gamma_c is None else gamma_c, gamma_c is not None, inv_std_c,
                                    dgamma_c, dbeta_c, other if dmean_c is None else dmean_c, dmean_c is not None,
                                    other if dvar_c is None else dvar_c, dvar_c is not None, float(rows),
                                    a_out_c, k_out_c, b_out_c)


def batch_norm_update_moving(moving_c, batch_c, momentum, new_out_c):
    """new_out_c = moving_c * momentum + batch_c * (1 - momentum)."""
    if moving_c.shape[0]:
        _bn_update_moving[grid_1d(moving_c.shape[0])](moving_c, batch_c, float(momentum), new_out_c)


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
