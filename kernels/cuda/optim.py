"""Optimizer updates on the GPU, in place on device arrays: the CUDA twins of kernels/optim.py,
one thread per parameter element, the CPU formulas verbatim (scalars rounded to the parameter
dtype by the wrappers, as the CPU kernels round them), plus the gradient clipping, scaling and
moving-average helpers and Lamb's two passes.

Design: the sums of squares (clipnorm, global_clipnorm, Lamb's norms) are one block's tree
reduction in float64, so they are deterministic; the scale they give is formed on the device by
`scale_by_norm` / `trust_ratio_update`, so no norm is copied to the host.
Legend: N parameter elements (every variable flattened).
"""
import math

from numba import cuda, float64

from ._launch import THREADS_PER_BLOCK, grid_1d

_SUM_THREADS = THREADS_PER_BLOCK  # a power of two: the tree reduction halves it


@cuda.jit
def _sgd(w_n, g_n, m_n, lr, momentum, nesterov):
    i = cuda.grid(1)
    if i < w_n.shape[0]:
        step = g_n[i] * lr
        if momentum == 0.0:
            w_n[i] -= step
        else:
            m = m_n[i] * momentum - step
            m_n[i] = m
            w_n[i] += m * momentum - step if nesterov else m


@cuda.jit
def _adam(w_n, g_n, m_n, v_n, vhat_n, alpha, one_m_b1, one_m_b2, eps, amsgrad):
    i = cuda.grid(1)
    if i < w_n.shape[0]:
        g = g_n[i]
        m = m_n[i] + (g - m_n[i]) * one_m_b1
        m_n[i] = m
        v = v_n[i] + (g * g - v_n[i]) * one_m_b2
        v_n[i] = v
        if amsgrad:
            v = max(v, vhat_n[i])
            vhat_n[i] = v
        w_n[i] -= (m * alpha) / (math.sqrt(v) + eps)


@cuda.jit
def _adagrad(w_n, g_n, acc_n, lr, eps):
    i = cuda.grid(1)
    if i < w_n.shape[0]:
        g = g_n[i]
        acc = acc_n[i] + g * g
        acc_n[i] = acc
        w_n[i] -= (lr * g) / math.sqrt(acc + eps)


@cuda.jit
def _rmsprop(w_n, g_n, v_n, mg_n, mom_n, lr, rho, one_m_rho, mu, eps, centered, use_momentum):
    i = cuda.grid(1)
    if i < w_n.shape[0]:
        g = g_n[i]
        v = rho * v_n[i] + one_m_rho * (g * g)
        v_n[i] = v
        if centered:
            mg = rho * mg_n[i] + one_m_rho * g
            mg_n[i] = mg
            denom = v - mg * mg + eps
        else:
            denom = v + eps
        inc = (lr * g) / math.sqrt(denom)
        if use_momentum:
            mom = mu * mom_n[i] + inc
            mom_n[i] = mom
            w_n[i] -= mom
        else:
            w_n[i] -= inc


@cuda.jit
def _decay(w_n, f):
    i = cuda.grid(1)
    if i < w_n.shape[0]:
        w_n[i] -= w_n[i] * f


@cuda.jit
def _adamax(w_n, g_n, m_n, u_n, lr, one_m_b1, b2, eps):
    i = cuda.grid(1)
    if i < w_n.shape[0]:
        g = g_n[i]
        m = m_n[i] + (g - m_n[i]) * one_m_b1
        m_n[i] = m
        u = max(b2 * u_n[i], abs(g))
        u_n[i] = u
        w_n[i] -= (lr * m) / (u + eps)


@cuda.jit
def _nadam(w_n, g_n, m_n, v_n, lr, one_m_b1, one_m_b2, eps, cm, cg, cv):
    i = cuda.grid(1)
    if i < w_n.shape[0]:
        g = g_n[i]
        m = m_n[i] + (g - m_n[i]) * one_m_b1
        m_n[i] = m
        v = v_n[i] + (g * g - v_n[i]) * one_m_b2
        v_n[i] = v
        w_n[i] -= ((cm * m + cg * g) * lr) / (math.sqrt(cv * v) + eps)


@cuda.jit
def _adadelta(w_n, g_n, acc_g_n, acc_d_n, lr, rho, one_m_rho, eps):
    i = cuda.grid(1)
    if i < w_n.shape[0]:
        g = g_n[i]
        ag = rho * acc_g_n[i] + one_m_rho * (g * g)
        acc_g_n[i] = ag
        ad = acc_d_n[i]
        d = -((math.sqrt(ad + eps) * g) / math.sqrt(ag + eps))
        acc_d_n[i] = rho * ad + one_m_rho * (d * d)
        w_n[i] += lr * d


@cuda.jit
def _lion(w_n, g_n, m_n, lr, b1, one_m_b1, b2, one_m_b2):
    i = cuda.grid(1)
    if i < w_n.shape[0]:
        g = g_n[i]
        m = m_n[i]
        c = m * b1 + g * one_m_b1
        if c > 0:
            w_n[i] -= lr
        elif c < 0:
            w_n[i] += lr
        elif c != c:  # NaN propagates as in sign()
            w_n[i] = c
        m_n[i] = m * b2 + g * one_m_b2


@cuda.jit
def _ftrl(w_n, g_n, n_n, z_n, lr, p, l1, two_l2, two_shrink, use_sqrt):
    i = cuda.grid(1)
    if i < w_n.shape[0]:
        g = g_n[i]
        w = w_n[i]
        acc = n_n[i]
        new_acc = acc + g * g
        if use_sqrt:
            new_pow = math.sqrt(new_acc)
            old_pow = math.sqrt(acc)
        else:
            new_pow = new_acc ** p
            old_pow = acc ** p
        z = z_n[i] + ((g + two_shrink * w) - ((new_pow - old_pow) / lr) * w)
        z_n[i] = z
        clipped = min(max(z, -l1), l1)
        w_n[i] = (clipped - z) / (new_pow / lr + two_l2)
        n_n[i] = new_acc


@cuda.jit
def _axpby(x_n, a, y_n, b, out_n):
    i = cuda.grid(1)
    if i < x_n.shape[0]:
        out_n[i] = a * x_n[i] if b == 0 else a * x_n[i] + b * y_n[i]


@cuda.jit
def _sum_squares(x_n, total_1):
    partial = cuda.shared.array(_SUM_THREADS, float64)
    t = cuda.threadIdx.x
    s = 0.0
    for i in range(t, x_n.shape[0], _SUM_THREADS):
        v = float64(x_n[i])
        s += v * v
    partial[t] = s
    cuda.syncthreads()
    half = _SUM_THREADS // 2
    while half > 0:
        if t < half:
            partial[t] += partial[t + half]
        cuda.syncthreads()
        half //= 2
    if t == 0:
        total_1[0] += partial[0]


@cuda.jit
def _scale_by_norm(x_n, total_1, clip_norm, nonfinite_nan, out_n):
    i = cuda.grid(1)
    if i < x_n.shape[0]:
        norm = math.sqrt(total_1[0])
        if norm != norm or (nonfinite_nan and math.isinf(norm)):
            out_n[i] = x_n[i] * math.nan
        elif norm <= clip_norm:
            out_n[i] = x_n[i]
        else:
            out_n[i] = x_n[i] * (clip_norm / norm)  # the scale in float64: within an ulp of the CPU's


@cuda.jit
def _clip_values(x_n, hi, out_n):
    i = cuda.grid(1)
    if i < x_n.shape[0]:
        v = x_n[i]
        out_n[i] = hi if v > hi else (-hi if v < -hi else v)


@cuda.jit
def _lamb_moments(g_n, m_n, v_n, u_n, c1, c2, one_m_b1, one_m_b2, eps):
    i = cuda.grid(1)
    if i < g_n.shape[0]:
        g = g_n[i]
        m = m_n[i] + (g - m_n[i]) * one_m_b1
        m_n[i] = m
        v = v_n[i] + (g * g - v_n[i]) * one_m_b2
        v_n[i] = v
        u_n[i] = (m / c1) / (math.sqrt(v / c2) + eps)


@cuda.jit
def _trust_ratio_update(w_n, u_n, w_sq_1, u_sq_1, lr):
    i = cuda.grid(1)
    if i < w_n.shape[0]:
        w_norm = math.sqrt(w_sq_1[0])
        u_norm = math.sqrt(u_sq_1[0])
        ratio = w_norm / u_norm if w_norm > 0.0 and u_norm > 0.0 else 1.0
        w_n[i] -= (ratio * lr) * u_n[i]  # the step in float64: within an ulp of the CPU's


@cuda.jit
def _adafactor_rows_cols(g, r, c, b, one_m_b, eps1):
    i = cuda.grid(1)
    nb, nr, nc = g.shape
    if i < nb * nr:  # r[bb, row] from the mean of G over the row
        bb, row = i // nr, i % nr
        s = 0.0
        for j in range(nc):
            s += g[bb, row, j] * g[bb, row, j] + eps1
        r[bb, row] = b * r[bb, row] + one_m_b * (s / nc)
    elif i < nb * nr + nb * nc:  # c[bb, col] from the mean of G over the column
        k = i - nb * nr
        bb, col = k // nc, k % nc
        s = 0.0
        for j in range(nr):
            s += g[bb, j, col] * g[bb, j, col] + eps1
        c[bb, col] = b * c[bb, col] + one_m_b * (s / nr)


@cuda.jit
def _row_means(r, out):
    i = cuda.grid(1)
    if i < r.shape[0]:
        s = 0.0
        for j in range(r.shape[1]):
            s += r[i, j]
        out[i] = s / r.shape[1]


@cuda.jit
def _adafactor_v(r, c, r_mean, v):
    i = cuda.grid(1)
    nb, nr, nc = v.shape
    if i < nb * nr * nc:
        bb, row, col = i // (nr * nc), (i // nc) % nr, i % nc
        v[bb, row, col] = (r[bb, row] / r_mean[bb]) * c[bb, col]


@cuda.jit
def _adafactor_moments(g_n, v_n, b, one_m_b, eps1):
    i = cuda.grid(1)
    if i < g_n.shape[0]:
        g = g_n[i]
        v_n[i] = b * v_n[i] + one_m_b * (g * g + eps1)


@cuda.jit
def _adafactor_direction(g_n, v_n, u_n):
    i = cuda.grid(1)
    if i < g_n.shape[0]:
        u_n[i] = g_n[i] / math.sqrt(v_n[i])


@cuda.jit
def _adafactor_apply(w_n, u_n, sums_2, rho_t, eps2, clip):
    i = cuda.grid(1)
    size = w_n.shape[0]
    if i < size:
        rms_w, rms_u = math.sqrt(sums_2[0] / size), math.sqrt(sums_2[1] / size)
        alpha = max(eps2, rms_w) * rho_t  # in float64: within an ulp of the CPU's
        w_n[i] -= alpha * (u_n[i] / max(1.0, rms_u / clip))


def _n(a):
    return a.shape[0]


def sgd_update(w_n, g_n, m_n, lr, momentum, nesterov):
    """SGD (Keras 3), in place on w_n (and m_n when momentum != 0); (N,) device arrays."""
    t = w_n.dtype.type
    if _n(w_n):
        _sgd[grid_1d(_n(w_n))](w_n, g_n, m_n if _n(m_n) else w_n, t(lr), t(momentum), bool(nesterov))


def adagrad_update(w_n, g_n, acc_n, lr, eps):
    """Adagrad (Keras 3), in place on w_n and acc_n; (N,) device arrays."""
    t = w_n.dtype.type
    if _n(w_n):
        _adagrad[grid_1d(_n(w_n))](w_n, g_n, acc_n, t(lr), t(eps))


def rmsprop_update(w_n, g_n, v_n, mg_n, mom_n, lr, rho, momentum, eps, centered):
    """RMSprop (Keras 3), in place; mg_n / mom_n may be (0,) when unused; (N,) device arrays."""
    t = w_n.dtype.type
    if _n(w_n):
        _rmsprop[grid_1d(_n(w_n))](w_n, g_n, v_n, mg_n if _n(mg_n) else v_n, mom_n if _n(mom_n) else v_n,
                                   t(lr), t(rho), t(1.0 - rho), t(momentum), t(eps), bool(centered),
                                   bool(momentum > 0.0))


def adam_update(w_n, g_n, m_n, v_n, vhat_n, alpha, beta_1, beta_2, eps, amsgrad):
    """Adam (Keras 3), alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t) from the caller; in place
    on w_n, m_n, v_n (and vhat_n if amsgrad); (N,) device arrays, vhat_n may be (0,)."""
    t = w_n.dtype.type
    if _n(w_n):
        _adam[grid_1d(_n(w_n))](w_n, g_n, m_n, v_n, vhat_n if _n(vhat_n) else v_n, t(alpha),
                                t(1.0 - beta_1), t(1.0 - beta_2), t(eps), bool(amsgrad))


def decay_weights(w_n, factor):
    """Decoupled weight decay: w -= w * factor, in place; (N,) device array."""
    if _n(w_n):
        _decay[grid_1d(_n(w_n))](w_n, w_n.dtype.type(factor))


def adamax_update(w_n, g_n, m_n, u_n, lr_t, beta_1, beta_2, eps):
    """Adamax (Keras 3), lr_t = lr / (1 - beta_1^t) from the caller; in place; (N,) device arrays."""
    t = w_n.dtype.type
    if _n(w_n):
        _adamax[grid_1d(_n(w_n))](w_n, g_n, m_n, u_n, t(lr_t), t(1.0 - beta_1), t(beta_2), t(eps))


def nadam_update(w_n, g_n, m_n, v_n, lr, beta_1, beta_2, eps, c_m, c_g, c_v):
    """Nadam (Keras 3), coefficients from `nadam_coefficients`; in place; (N,) device arrays."""
    t = w_n.dtype.type
    if _n(w_n):
        _nadam[grid_1d(_n(w_n))](w_n, g_n, m_n, v_n, t(lr), t(1.0 - beta_1), t(1.0 - beta_2), t(eps),
                                 t(c_m), t(c_g), t(c_v))


def adadelta_update(w_n, g_n, acc_g_n, acc_d_n, lr, rho, eps):
    """Adadelta (Keras 3), in place; (N,) device arrays."""
    t = w_n.dtype.type
    if _n(w_n):
        _adadelta[grid_1d(_n(w_n))](w_n, g_n, acc_g_n, acc_d_n, t(lr), t(rho), t(1.0 - rho), t(eps))


def lion_update(w_n, g_n, m_n, lr, beta_1, beta_2):
    """Lion (Keras 3), in place; the (1 - beta) factors formed in the parameter dtype as on the
    CPU; (N,) device arrays."""
    t = w_n.dtype.type
    if _n(w_n):
        _lion[grid_1d(_n(w_n))](w_n, g_n, m_n, t(lr), t(beta_1), t(1.0) - t(beta_1), t(beta_2),
                                t(1.0) - t(beta_2))


def ftrl_update(w_n, g_n, n_n, z_n, lr, power, l1, l2_reg, l2_shrinkage):
    """FTRL-Proximal (Keras 3), power = -learning_rate_power, l2_reg = l2 + beta / (2 lr) from the
    caller; in place; (N,) device arrays."""
    t = w_n.dtype.type
    if _n(w_n):
        _ftrl[grid_1d(_n(w_n))](w_n, g_n, n_n, z_n, t(lr), t(power), t(l1), t(2.0) * t(l2_reg),
                                t(2.0 * l2_shrinkage), bool(power == 0.5))


def axpby(x_n, a, y_n, b, out_n):
    """out = a x + b y (b == 0: a x, y unread); (N,) device arrays, out_n may be x_n or y_n."""
    t = x_n.dtype.type
    if _n(x_n):
        _axpby[grid_1d(_n(x_n))](x_n, t(a), y_n, t(b), out_n)


def sum_squares(x_n, total_1):
    """total_1[0] += sum x^2 in float64 (one block's deterministic tree); total_1: (1,) float64."""
    if _n(x_n):
        _sum_squares[1, _SUM_THREADS](x_n, total_1)


def scale_by_norm(x_n, total_1, clip_norm, nonfinite_nan, out_n):
    """out = x min(1, clip_norm / sqrt(total_1[0])) with the CPU twin's NaN/inf rules; (N,) device
    arrays, total_1 (1,) float64 from `sum_squares`; out_n may be x_n."""
    if _n(x_n):
        _scale_by_norm[grid_1d(_n(x_n))](x_n, total_1, float(clip_norm), bool(nonfinite_nan), out_n)


def clip_values(x_n, limit, out_n):
    """out = clip(x, -limit, limit); (N,) device arrays, out_n may be x_n."""
    if _n(x_n):
        _clip_values[grid_1d(_n(x_n))](x_n, x_n.dtype.type(limit), out_n)


def lamb_moments(g_n, m_n, v_n, u_n, c_1, c_2, beta_1, beta_2, eps):
    """Lamb's moments and update u (before the trust ratio); (N,) device arrays, m_n/v_n in place."""
    t = g_n.dtype.type
    if _n(g_n):
        _lamb_moments[grid_1d(_n(g_n))](g_n, m_n, v_n, u_n, t(c_1), t(c_2), t(1.0 - beta_1), t(1.0 - beta_2),
                                        t(eps))


def trust_ratio_update(w_n, u_n, w_sq_1, u_sq_1, lr):
    """Lamb's step w -= (||w|| / ||u||) lr u, the norms from `sum_squares` (1,) float64 arrays."""
    if _n(w_n):
        _trust_ratio_update[grid_1d(_n(w_n))](w_n, u_n, w_sq_1, u_sq_1, float(w_n.dtype.type(lr)))


def adafactor_factored_moments(g_brc, r_br, c_bc, beta, epsilon_1, v_brc):
    """Adafactor's factored moments (r, c in place; v out) on (B, R, C) device arrays: row and
    column means (one thread per row or column), then the row means of r, then v."""
    nb, nr, nc = g_brc.shape
    if g_brc.size == 0:
        return
    t = g_brc.dtype.type
    b = t(beta)
    _adafactor_rows_cols[grid_1d(nb * (nr + nc))](g_brc, r_br, c_bc, b, t(1) - b, t(epsilon_1))
    r_mean = cuda.device_array(nb, dtype=g_brc.dtype)
    _row_means[grid_1d(nb)](r_br, r_mean)
    _adafactor_v[grid_1d(g_brc.size)](r_br, c_bc, r_mean, v_brc)


def adafactor_moments(g_n, v_n, beta, epsilon_1):
    """Adafactor's unfactored moment v = beta v + (1 - beta)(g^2 + epsilon_1); (N,) device arrays."""
    t = g_n.dtype.type
    if _n(g_n):
        b = t(beta)
        _adafactor_moments[grid_1d(_n(g_n))](g_n, v_n, b, t(1) - b, t(epsilon_1))


def adafactor_direction(g_n, v_n, u_out_n):
    """u = g / sqrt(v); (N,) device arrays."""
    if _n(g_n):
        _adafactor_direction[grid_1d(_n(g_n))](g_n, v_n, u_out_n)


def adafactor_apply(w_n, u_n, sums_2, rho_t, epsilon_2, clip_threshold):
    """w -= alpha u / max(1, rms(u) / clip_threshold) with the norms from sums_2 (device (2,) float64)."""
    if _n(w_n):
        _adafactor_apply[grid_1d(_n(w_n))](w_n, u_n, sums_2, float(rho_t), float(epsilon_2), float(clip_threshold))


KERNELS = {"sgd_update": sgd_update, "adagrad_update": adagrad_update, "rmsprop_update": rmsprop_update,
           "adam_update": adam_update, "decay_weights": decay_weights, "adamax_update": adamax_update,
           "nadam_update": nadam_update, "adadelta_update": adadelta_update, "lion_update": lion_update,
           "ftrl_update": ftrl_update, "axpby": axpby, "sum_squares": sum_squares, "scale_by_norm": scale_by_norm,
           "clip_values": clip_values, "lamb_moments": lamb_moments, "trust_ratio_update": trust_ratio_update,
           "adafactor_factored_moments": adafactor_factored_moments, "adafactor_moments": adafactor_moments,
           "adafactor_direction": adafactor_direction, "adafactor_apply": adafactor_apply}
