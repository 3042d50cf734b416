# Design: training-only, so Numba (`@jit(parallel=True)`, compiled on first call; inference never
# imports numba). One kernel per optimizer reads the parameter, its gradient and its slot arrays
# once and writes them back in place, instead of the 5-10 NumPy temporaries an unfused update
# makes. prange over the flat index: every element is updated by one thread, no reductions, so
# results are independent of the thread count.
#   - Scalars arrive as Python floats/bools; each kernel rounds them to the parameter dtype once,
#     as Keras casts hyper-parameters to the variable dtype (`1 - beta_1` is formed in float64
#     first, as Keras forms it in Python), so float32 updates are computed in float32.
#   - Step-dependent scalars are computed by the optimizer tier, once per step: Adam's
#     alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t), Adamax's lr / (1 - beta_1^t) and Nadam's
#     coefficients (`nadam_coefficients`, plain Python here), t = iterations + 1.
#   - AdamW = `decay_weights(w, lr * weight_decay)` then `adam_update` (Keras applies the
#     decoupled decay before the update step).
#   - Unused slot arrays (SGD's m without momentum, RMSprop's mg / mom) may be size-0 arrays.
#   - `prange` is reached as `_config.prange`: numba resolves it when the kernel compiles
#     (after `_config.load_numba()`), so this module never imports numba itself.
#
# Legend: N elements of one parameter (its flat size); every array argument is (N,) unless size 0.
"""Optimizer updates: fused, in-place Numba kernels on flat 1-D views (Keras 3 formulas)."""
import math

import numpy as np

from . import _config
from ._config import jit


@jit(parallel=True)
def sgd_update(w_n, g_n, m_n, lr, momentum, nesterov):
    """SGD (Keras 3): momentum == 0: w -= lr g; else m = momentum m - lr g and
    w += momentum m - lr g (nesterov) or w += m.

    w_n: (N,) float32/64, C-contiguous, IN/OUT (parameter)
    g_n: (N,) same dtype, C-contiguous, IN (gradient)
    m_n: (N,) same dtype, C-contiguous, IN/OUT (momentum slot; unused, may be size 0, if momentum == 0)
    lr, momentum: Python floats; nesterov: Python bool
    """
    n = w_n.shape[0]
    lr_ = w_n.dtype.type(lr)
    if momentum == 0.0:
        for i in _config.prange(n):
            w_n[i] -= g_n[i] * lr_
    else:
        mu = w_n.dtype.type(momentum)
        if nesterov:
            for i in _config.prange(n):
                step = g_n[i] * lr_
                m = m_n[i] * mu - step
                m_n[i] = m
                w_n[i] += m * mu - step
        else:
            for i in _config.prange(n):
                m = m_n[i] * mu - g_n[i] * lr_
                m_n[i] = m
                w_n[i] += m


@jit(parallel=True)
def adagrad_update(w_n, g_n, acc_n, lr, eps):
    """Adagrad (Keras 3): acc += g^2; w -= lr g / sqrt(acc + eps).

    w_n: (N,) float32/64, C-contiguous, IN/OUT (parameter)
    g_n: (N,) same dtype, C-contiguous, IN (gradient)
    acc_n: (N,) same dtype, C-contiguous, IN/OUT (accumulator slot)
    lr, eps: Python floats
    """
    n = w_n.shape[0]
    lr_ = w_n.dtype.type(lr)
    eps_ = w_n.dtype.type(eps)
    for i in _config.prange(n):
        g = g_n[i]
        acc = acc_n[i] + g * g
        acc_n[i] = acc
        w_n[i] -= (lr_ * g) / math.sqrt(acc + eps_)


@jit(parallel=True)
def rmsprop_update(w_n, g_n, v_n, mg_n, mom_n, lr, rho, momentum, eps, centered):
    """RMSprop (Keras 3): v = rho v + (1 - rho) g^2; centered: mg = rho mg + (1 - rho) g and
    denom = v - mg^2 + eps, else denom = v + eps; inc = lr g / sqrt(denom);
    momentum > 0: mom = momentum mom + inc, w -= mom; else w -= inc.

    w_n: (N,) float32/64, C-contiguous, IN/OUT (parameter)
    g_n: (N,) same dtype, C-contiguous, IN (gradient)
    v_n: (N,) same dtype, C-contiguous, IN/OUT (velocity slot)
    mg_n: (N,) or (0,) same dtype, C-contiguous, IN/OUT (average gradient slot; used if centered)
    mom_n: (N,) or (0,) same dtype, C-contiguous, IN/OUT (momentum slot; used if momentum > 0)
    lr, rho, momentum, eps: Python floats; centered: Python bool
    """
    n = w_n.shape[0]
    lr_ = w_n.dtype.type(lr)
    rho_ = w_n.dtype.type(rho)
    one_m_rho = w_n.dtype.type(1.0 - rho)
    mu = w_n.dtype.type(momentum)
    eps_ = w_n.dtype.type(eps)
    use_momentum = momentum > 0.0
    for i in _config.prange(n):
        g = g_n[i]
        v = rho_ * v_n[i] + one_m_rho * (g * g)
        v_n[i] = v
        if centered:
            mg = rho_ * mg_n[i] + one_m_rho * g
            mg_n[i] = mg
            denom = v - mg * mg + eps_
        else:
            denom = v + eps_
        inc = (lr_ * g) / math.sqrt(denom)
        if use_momentum:
            mom = mu * mom_n[i] + inc
            mom_n[i] = mom
            w_n[i] -= mom
        else:
            w_n[i] -= inc


@jit(parallel=True)
def adam_update(w_n, g_n, m_n, v_n, vhat_n, alpha, beta_1, beta_2, eps, amsgrad):
    """Adam (Keras 3), alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t) from the caller:
    m += (g - m)(1 - beta_1); v += (g^2 - v)(1 - beta_2); amsgrad: vhat = max(vhat, v), used
    in place of v; w -= alpha m / (sqrt(v) + eps).

    w_n: (N,) float32/64, C-contiguous, IN/OUT (parameter)
    g_n: (N,) same dtype, C-contiguous, IN (gradient)
    m_n: (N,) same dtype, C-contiguous, IN/OUT (first moment slot)
    v_n: (N,) same dtype, C-contiguous, IN/OUT (second moment slot)
    vhat_n: (N,) or (0,) same dtype, C-contiguous, IN/OUT (max second moment; used if amsgrad)
    alpha, beta_1, beta_2, eps: Python floats; amsgrad: Python bool
    """
    n = w_n.shape[0]
    alpha_ = w_n.dtype.type(alpha)
    one_m_b1 = w_n.dtype.type(1.0 - beta_1)
    one_m_b2 = w_n.dtype.type(1.0 - beta_2)
    eps_ = w_n.dtype.type(eps)
    for i in _config.prange(n):
        g = g_n[i]
        m = m_n[i]
        m = m + (g - m) * one_m_b1
        m_n[i] = m
        v = v_n[i]
        v = v + (g * g - v) * one_m_b2
        v_n[i] = v
        if amsgrad:
            vh = vhat_n[i]
            if v > vh:
                vh = v
            vhat_n[i] = vh
            v = vh
        w_n[i] -= (m * alpha_) / (math.sqrt(v) + eps_)


@jit(parallel=True)
def decay_weights(w_n, factor):
    """Decoupled weight decay (AdamW and every optimizer's weight_decay): w -= w * factor,
    factor = lr * weight_decay from the caller.

    w_n: (N,) float32/64, C-contiguous, IN/OUT (parameter)
    factor: Python float
    """
    n = w_n.shape[0]
    f = w_n.dtype.type(factor)
    for i in _config.prange(n):
        w_n[i] -= w_n[i] * f


@jit(parallel=True)
def adamax_update(w_n, g_n, m_n, u_n, lr_t, beta_1, beta_2, eps):
    """Adamax (Keras 3), lr_t = lr / (1 - beta_1^t) from the caller:
    m += (g - m)(1 - beta_1); u = max(beta_2 u, |g|); w -= lr_t m / (u + eps).

    w_n: (N,) float32/64, C-contiguous, IN/OUT (parameter)
    g_n: (N,) same dtype, C-contiguous, IN (gradient)
    m_n: (N,) same dtype, C-contiguous, IN/OUT (first moment slot)
    u_n: (N,) same dtype, C-contiguous, IN/OUT (infinity-norm slot)
    lr_t, beta_1, beta_2, eps: Python floats
    """
    n = w_n.shape[0]
    lr_ = w_n.dtype.type(lr_t)
    one_m_b1 = w_n.dtype.type(1.0 - beta_1)
    b2 = w_n.dtype.type(beta_2)
    eps_ = w_n.dtype.type(eps)
    for i in _config.prange(n):
        g = g_n[i]
        m = m_n[i]
        m = m + (g - m) * one_m_b1
        m_n[i] = m
        u = b2 * u_n[i]
        ag = abs(g)
        if ag > u:
            u = ag
        u_n[i] = u
        w_n[i] -= (lr_ * m) / (u + eps_)


@jit(parallel=True)
def nadam_update(w_n, g_n, m_n, v_n, lr, beta_1, beta_2, eps, c_m, c_g, c_v):
    """Nadam (Keras 3), coefficients from `nadam_coefficients`:
    m += (g - m)(1 - beta_1); v += (g^2 - v)(1 - beta_2); m_hat = c_m m + c_g g;
    v_hat = c_v v; w -= lr m_hat / (sqrt(v_hat) + eps).

    w_n: (N,) float32/64, C-contiguous, IN/OUT (parameter)
    g_n: (N,) same dtype, C-contiguous, IN (gradient)
    m_n: (N,) same dtype, C-contiguous, IN/OUT (first moment slot)
    v_n: (N,) same dtype, C-contiguous, IN/OUT (second moment slot)
    lr, beta_1, beta_2, eps, c_m, c_g, c_v: Python floats
    """
    n = w_n.shape[0]
    lr_ = w_n.dtype.type(lr)
    one_m_b1 = w_n.dtype.type(1.0 - beta_1)
    one_m_b2 = w_n.dtype.type(1.0 - beta_2)
    eps_ = w_n.dtype.type(eps)
    cm = w_n.dtype.type(c_m)
    cg = w_n.dtype.type(c_g)
    cv = w_n.dtype.type(c_v)
    for i in _config.prange(n):
        g = g_n[i]
        m = m_n[i]
        m = m + (g - m) * one_m_b1
        m_n[i] = m
        v = v_n[i]
        v = v + (g * g - v) * one_m_b2
        v_n[i] = v
        m_hat = cm * m + cg * g
        w_n[i] -= (m_hat * lr_) / (math.sqrt(cv * v) + eps_)


@jit(parallel=True)
def adadelta_update(w_n, g_n, acc_g_n, acc_d_n, lr, rho, eps):
    """Adadelta (Keras 3): acc_g = rho acc_g + (1 - rho) g^2;
    d = -sqrt(acc_d + eps) g / sqrt(acc_g + eps); acc_d = rho acc_d + (1 - rho) d^2; w += lr d.

    w_n: (N,) float32/64, C-contiguous, IN/OUT (parameter)
    g_n: (N,) same dtype, C-contiguous, IN (gradient)
    acc_g_n, acc_d_n: (N,) same dtype, C-contiguous, IN/OUT (accumulated gradient / delta slots)
    lr, rho, eps: Python floats
    """
    n = w_n.shape[0]
    lr_ = w_n.dtype.type(lr)
    rho_ = w_n.dtype.type(rho)
    one_m_rho = w_n.dtype.type(1.0 - rho)
    eps_ = w_n.dtype.type(eps)
    for i in _config.prange(n):
        g = g_n[i]
        ag = rho_ * acc_g_n[i] + one_m_rho * (g * g)
        acc_g_n[i] = ag
        ad = acc_d_n[i]
        d = -((math.sqrt(ad + eps_) * g) / math.sqrt(ag + eps_))
        acc_d_n[i] = rho_ * ad + one_m_rho * (d * d)
        w_n[i] += lr_ * d


@jit(parallel=True)
def lion_update(w_n, g_n, m_n, lr, beta_1, beta_2):
    """Lion (Keras 3): w -= lr sign(beta_1 m + (1 - beta_1) g); m = beta_2 m + (1 - beta_2) g.

    w_n: (N,) float32/64, C-contiguous, IN/OUT (parameter)
    g_n: (N,) same dtype, C-contiguous, IN (gradient)
    m_n: (N,) same dtype, C-contiguous, IN/OUT (momentum slot)
    lr, beta_1, beta_2: Python floats (the (1 - beta) factors are formed in the parameter dtype,
    as Keras casts beta first)
    """
    n = w_n.shape[0]
    one = w_n.dtype.type(1.0)
    lr_ = w_n.dtype.type(lr)
    b1 = w_n.dtype.type(beta_1)
    b2 = w_n.dtype.type(beta_2)
    one_m_b1 = one - b1
    one_m_b2 = one - b2
    for i in _config.prange(n):
        g = g_n[i]
        m = m_n[i]
        c = m * b1 + g * one_m_b1
        if c > 0:
            w_n[i] -= lr_
        elif c < 0:
            w_n[i] += lr_
        elif c != c:  # NaN propagates as in sign()
            w_n[i] = c
        m_n[i] = m * b2 + g * one_m_b2


@jit(parallel=True)
def ftrl_update(w_n, g_n, n_n, z_n, lr, power, l1, l2_reg, l2_shrinkage):
    """FTRL-Proximal (Keras 3), power = -learning_rate_power, l2_reg = l2 + beta / (2 lr) from the
    caller: g' = g + 2 l2_shrinkage w; n' = n + g^2; z += g' - (n'^power - n^power) / lr w;
    w = (clip(z, -l1, l1) - z) / (n'^power / lr + 2 l2_reg); n = n'.

    w_n: (N,) float32/64, C-contiguous, IN/OUT (parameter)
    g_n: (N,) same dtype, C-contiguous, IN (gradient)
    n_n: (N,) same dtype, C-contiguous, IN/OUT (accumulator slot)
    z_n: (N,) same dtype, C-contiguous, IN/OUT (linear slot)
    lr, power, l1, l2_reg, l2_shrinkage: Python floats
    """
    n = w_n.shape[0]
    lr_ = w_n.dtype.type(lr)
    p = w_n.dtype.type(power)
    l1_ = w_n.dtype.type(l1)
    two_l2 = w_n.dtype.type(2.0) * w_n.dtype.type(l2_reg)
    two_shrink = w_n.dtype.type(2.0 * l2_shrinkage)
    use_sqrt = power == 0.5  # Keras's default: sqrt is several times faster than a general pow
    for i in _config.prange(n):
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
        z = z_n[i] + ((g + two_shrink * w) - ((new_pow - old_pow) / lr_) * w)
        z_n[i] = z
        clipped = z
        if clipped > l1_:
            clipped = l1_
        elif clipped < -l1_:
            clipped = -l1_
        w_n[i] = (clipped - z) / (new_pow / lr_ + two_l2)
        n_n[i] = new_acc


@jit(parallel=True)
def axpby(x_n, a, y_n, b, out_n):
    """out = a x + b y, elementwise (gradient scaling and accumulation, the weights' moving
    average); out_n may be x_n or y_n; b == 0 leaves y out (out = a x, so inf stays inf).

    x_n, y_n: (N,) float32/64, C-contiguous, IN
    out_n: (N,) same dtype, C-contiguous, OUT
    a, b: Python floats
    """
    n = x_n.shape[0]
    a_ = x_n.dtype.type(a)
    b_ = x_n.dtype.type(b)
    if b == 0.0:
        for i in _config.prange(n):
            out_n[i] = a_ * x_n[i]
    else:
        for i in _config.prange(n):
            out_n[i] = a_ * x_n[i] + b_ * y_n[i]


@jit()
def sum_squares(x_n, total_1):
    """total += sum x^2, accumulated in float64 (the norms of gradient clipping and Lamb).

    x_n: (N,) float32/64, C-contiguous, IN
    total_1: (1,) float64, IN/OUT (start it at 0; one per norm, or shared for a global norm)
    """
    s = 0.0
    for i in range(x_n.shape[0]):
        v = np.float64(x_n[i])  # squared in float64: float() keeps a float32 in numba
        s += v * v
    total_1[0] += s


@jit(parallel=True)
def scale_by_norm(x_n, total_1, clip_norm, nonfinite_nan, out_n):
    """out = x min(1, clip_norm / sqrt(total)) (clipnorm, global_clipnorm), 1 where the norm is 0;
    a NaN norm gives NaN, an infinite one 0 (or NaN with ``nonfinite_nan``, global_clipnorm's
    rule). out_n may be x_n.

    x_n: (N,) float32/64, C-contiguous, IN
    total_1: (1,) float64, IN (the sum of squares from `sum_squares`)
    clip_norm: Python float; nonfinite_nan: Python bool
    out_n: (N,) same dtype as x_n, C-contiguous, OUT
    """
    norm = math.sqrt(total_1[0])
    if norm != norm or (nonfinite_nan and math.isinf(norm)):
        scale = math.nan
    elif norm <= clip_norm:
        scale = 1.0
    else:
        scale = clip_norm / norm
    s = x_n.dtype.type(scale)
    for i in _config.prange(x_n.shape[0]):
        out_n[i] = x_n[i] * s if scale != 1.0 else x_n[i]


@jit(parallel=True)
def clip_values(x_n, limit, out_n):
    """out = clip(x, -limit, limit) (clipvalue; NaN stays NaN); out_n may be x_n.

    x_n: (N,) float32/64, C-contiguous, IN
    limit: Python float
    out_n: (N,) same dtype, C-contiguous, OUT
    """
    hi = x_n.dtype.type(limit)
    for i in _config.prange(x_n.shape[0]):
        v = x_n[i]
        out_n[i] = hi if v > hi else (-hi if v < -hi else v)


@jit(parallel=True)
def lamb_moments(g_n, m_n, v_n, u_n, c_1, c_2, beta_1, beta_2, eps):
    """Lamb's Adam part (Keras 3), c_1 = 1 - beta_1^t and c_2 = 1 - beta_2^t from the caller:
    m += (g - m)(1 - beta_1); v += (g^2 - v)(1 - beta_2); u = (m / c_1) / (sqrt(v / c_2) + eps).

    g_n: (N,) float32/64, C-contiguous, IN (gradient)
    m_n, v_n: (N,) same dtype, C-contiguous, IN/OUT (first / second moment slots)
    u_n: (N,) same dtype, C-contiguous, OUT (the update before the trust ratio)
    c_1, c_2, beta_1, beta_2, eps: Python floats
    """
    c1 = g_n.dtype.type(c_1)
    c2 = g_n.dtype.type(c_2)
    one_m_b1 = g_n.dtype.type(1.0 - beta_1)
    one_m_b2 = g_n.dtype.type(1.0 - beta_2)
    eps_ = g_n.dtype.type(eps)
    for i in _config.prange(g_n.shape[0]):
        g = g_n[i]
        m = m_n[i] + (g - m_n[i]) * one_m_b1
        m_n[i] = m
        v = v_n[i] + (g * g - v_n[i]) * one_m_b2
        v_n[i] = v
        u_n[i] = (m / c1) / (math.sqrt(v / c2) + eps_)


@jit(parallel=True)
def trust_ratio_update(w_n, u_n, w_sq_1, u_sq_1, lr):
    """Lamb's step: ratio = ||w|| / ||u|| (1 where either norm is 0); w -= ratio lr u.

    w_n: (N,) float32/64, C-contiguous, IN/OUT (parameter)
    u_n: (N,) same dtype, C-contiguous, IN (from `lamb_moments`)
    w_sq_1, u_sq_1: (1,) float64, IN (sums of squares of w and u from `sum_squares`)
    lr: Python float
    """
    w_norm = math.sqrt(w_sq_1[0])
    u_norm = math.sqrt(u_sq_1[0])
    ratio = w_norm / u_norm if w_norm > 0.0 and u_norm > 0.0 else 1.0
    step = w_n.dtype.type(ratio) * w_n.dtype.type(lr)
    for i in _config.prange(w_n.shape[0]):
        w_n[i] -= step * u_n[i]


def adafactor_factored_moments(g_brc, r_br, c_bc, beta, epsilon_1, v_brc):
    """Adafactor's factored second moments (Keras 3) of a variable of rank >= 2 viewed as
    (B, R, C) (its last two axes R, C): G = g^2 + epsilon_1; r = beta r + (1 - beta) mean(G, -1);
    c = beta c + (1 - beta) mean(G, -2); v = r / mean(r, -1) (x) c. NumPy (the reductions are
    row and column means), in the gradient's dtype.

    g_brc: (B, R, C) float32/64, IN; r_br: (B, R), c_bc: (B, C) same dtype, IN/OUT
    v_brc: (B, R, C) same dtype, OUT; beta: Python float (already rounded to the dtype), epsilon_1: Python float
    """
    dt = g_brc.dtype.type
    b = dt(beta)
    one_m_b = dt(1) - b
    regulated = np.square(g_brc) + dt(epsilon_1)
    r_br[...] = b * r_br + one_m_b * np.mean(regulated, axis=-1)
    c_bc[...] = b * c_bc + one_m_b * np.mean(regulated, axis=-2)
    v_brc[...] = (r_br / np.mean(r_br, axis=-1, keepdims=True))[..., None] * c_bc[..., None, :]


def adafactor_moments(g_n, v_n, beta, epsilon_1):
    """Adafactor's unfactored second moment (rank < 2): v = beta v + (1 - beta)(g^2 + epsilon_1).

    g_n: (N,) float32/64, IN; v_n: (N,) same dtype, IN/OUT; beta (rounded to the dtype), epsilon_1: Python floats
    """
    dt = g_n.dtype.type
    b = dt(beta)
    v_n[...] = b * v_n + (dt(1) - b) * (np.square(g_n) + dt(epsilon_1))


def adafactor_direction(g_n, v_n, u_out_n):
    """Adafactor's update direction u = g / sqrt(v) (NumPy).

    g_n, v_n: (N,) float32/64, IN; u_out_n: (N,) same dtype, OUT
    """
    np.divide(g_n, np.sqrt(v_n), out=u_out_n)


def adafactor_apply(w_n, u_n, sums_2, rho_t, epsilon_2, clip_threshold):
    """Adafactor's step: w -= alpha u / max(1, rms(u) / clip_threshold), alpha = max(epsilon_2,
    rms(w)) rho_t, the rms from sums_2 = (sum w^2, sum u^2) by `sum_squares` (w before the step).

    w_n: (N,) float32/64, IN/OUT; u_n: (N,) same dtype, IN; sums_2: (2,) float64, IN
    rho_t, epsilon_2, clip_threshold: Python floats
    """
    dt = w_n.dtype.type
    size = w_n.shape[0]
    if size:
        rms_w, rms_u = math.sqrt(sums_2[0] / size), math.sqrt(sums_2[1] / size)
        alpha = dt(max(float(epsilon_2), rms_w) * rho_t)
        w_n -= alpha * (u_n / dt(max(1.0, rms_u / float(clip_threshold))))

def nadam_coefficients(t, beta_1, u_product_prev, beta_2):
    """Nadam's step scalars for step t = iterations + 1 (Keras 3, `Nadam.update_step` and
    `_backend_update_step`; plain Python, no numba).

    u_t = beta_1 (1 - 0.5 * 0.96^t), u_t1 = beta_1 (1 - 0.5 * 0.96^(t + 1)),
    u_product_t = u_product_prev * u_t (u_product starts at 1.0), and
    c_m = u_t1 / (1 - u_product_t u_t1), c_g = (1 - u_t) / (1 - u_product_t),
    c_v = 1 / (1 - beta_2^t).

    Returns (c_m, c_g, c_v, u_product_t); the optimizer keeps u_product_t for the next step.
    """
    t = float(t)
    u_t = beta_1 * (1.0 - 0.5 * 0.96 ** t)
    u_t1 = beta_1 * (1.0 - 0.5 * 0.96 ** (t + 1.0))
    u_product_t = u_product_prev * u_t
    c_m = u_t1 / (1.0 - u_product_t * u_t1)
    c_g = (1.0 - u_t) / (1.0 - u_product_t)
    c_v = 1.0 / (1.0 - beta_2 ** t)
    return c_m, c_g, c_v, u_product_t


KERNELS = {
    "sgd_update": sgd_update,
    "adagrad_update": adagrad_update,
    "rmsprop_update": rmsprop_update,
    "adam_update": adam_update,
    "decay_weights": decay_weights,
    "adamax_update": adamax_update,
    "nadam_update": nadam_update,
    "adadelta_update": adadelta_update,
    "lion_update": lion_update,
    "ftrl_update": ftrl_update,
    "axpby": axpby,
    "sum_squares": sum_squares,
    "scale_by_norm": scale_by_norm,
    "clip_values": clip_values,
    "lamb_moments": lamb_moments,
    "trust_ratio_update": trust_ratio_update,
    "adafactor_factored_moments": adafactor_factored_moments,
    "adafactor_moments": adafactor_moments,
    "adafactor_direction": adafactor_direction,
    "adafactor_apply": adafactor_apply,
}
