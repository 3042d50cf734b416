"""Reference optimizer steps in plain NumPy (never imports dlcore).

One step function per optimizer, following Keras 3's `update_step` sources
(keras/src/optimizers/{sgd,adagrad,rmsprop,adam,adamw,adamax,nadam}.py and the base
optimizer's `_apply_weight_decay`). Each takes the parameter, its gradient and its slot
variables, works on copies and returns the new values; hyper-parameters are applied in the
parameter's dtype (NumPy 2 keeps Python-float scalars weak, as Keras casts them to the variable
dtype). `iterations` is the optimizer's step count before this step (t = iterations + 1).
"""
import numpy as np


def _c(a):
    return np.array(a, copy=True)


def sgd_step(w, g, m, learning_rate=0.01, momentum=0.0, nesterov=False):
    """Returns (w, m)."""
    w, m = _c(w), _c(m)
    if momentum != 0:
        m = -g * learning_rate + m * momentum
        if nesterov:
            w = w + (-g * learning_rate + m * momentum)
        else:
            w = w + m
    else:
        w = w - g * learning_rate
    return w, m


def adagrad_step(w, g, accumulator, learning_rate=0.001, epsilon=1e-7):
    """Returns (w, accumulator); Keras starts the accumulator at initial_accumulator_value=0.1."""
    w, acc = _c(w), _c(accumulator)
    acc = acc + np.square(g)
    w = w - (learning_rate * g) / np.sqrt(acc + epsilon)
    return w, acc


def rmsprop_step(w, g, velocity, average_grad, momentum_slot, learning_rate=0.001, rho=0.9,
                 momentum=0.0, epsilon=1e-7, centered=False):
    """Returns (w, velocity, average_grad, momentum_slot)."""
    w, v, mg, mom = _c(w), _c(velocity), _c(average_grad), _c(momentum_slot)
    v = rho * v + (1 - rho) * np.square(g)
    if centered:
        mg = rho * mg + (1 - rho) * g
        denominator = v - np.square(mg) + epsilon
    else:
        denominator = v + epsilon
    increment = (learning_rate * g) / np.sqrt(denominator)
    if momentum > 0:
        mom = momentum * mom + increment
        w = w - mom
    else:
        w = w - increment
    return w, v, mg, mom


def adam_step(w, g, m, v, vhat, iterations, learning_rate=0.001, beta_1=0.9, beta_2=0.999,
              epsilon=1e-7, amsgrad=False):
    """Returns (w, m, v, vhat)."""
    w, m, v, vhat = _c(w), _c(m), _c(v), _c(vhat)
    dt = w.dtype.type
    local_step = dt(iterations + 1)
    beta_1_power = dt(beta_1) ** local_step
    beta_2_power = dt(beta_2) ** local_step
    alpha = learning_rate * np.sqrt(1 - beta_2_power) / (1 - beta_1_power)
    m = m + (g - m) * (1 - beta_1)
    v = v + (np.square(g) - v) * (1 - beta_2)
    v_used = v
    if amsgrad:
        vhat = np.maximum(vhat, v)
        v_used = vhat
    w = w - (m * alpha) / (np.sqrt(v_used) + epsilon)
    return w, m, v, vhat


def apply_weight_decay(w, learning_rate, weight_decay):
    """Keras' decoupled decay (AdamW and `weight_decay=` on any optimizer), before the update."""
    return w - w * weight_decay * learning_rate


def adamw_step(w, g, m, v, vhat, iterations, learning_rate=0.001, weight_decay=0.004,
               beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False):
    """Returns (w, m, v, vhat)."""
    w = apply_weight_decay(_c(w), learning_rate, weight_decay)
    return adam_step(w, g, m, v, vhat, iterations, learning_rate, beta_1, beta_2, epsilon,
                     amsgrad)


def adamax_step(w, g, m, u, iterations, learning_rate=0.001, beta_1=0.9, beta_2=0.999,
                epsilon=1e-7):
    """Returns (w, m, u)."""
    w, m, u = _c(w), _c(m), _c(u)
    dt = w.dtype.type
    beta_1_power = dt(beta_1) ** dt(iterations + 1)
    m = m + (g - m) * (1 - beta_1)
    u = np.maximum(beta_2 * u, np.abs(g))
    w = w - (learning_rate * m) / ((1 - beta_1_power) * (u + epsilon))
    return w, m, u


def nadam_step(w, g, m, v, u_product, iterations, learning_rate=0.001, beta_1=0.9,
               beta_2=0.999, epsilon=1e-7):
    """Returns (w, m, v, u_product); u_product starts at 1.0 and is shared by all variables.

    Keras updates u_product in `_backend_update_step` before calling `update_step`.
    """
    w, m, v = _c(w), _c(m), _c(v)
    dt = w.dtype.type
    u_product = dt(u_product) * dt(beta_1) * (dt(1.0) - dt(0.5) * dt(0.96) ** dt(iterations + 1))
    local_step = dt(iterations + 1)
    next_step = dt(iterations + 2)
    decay = dt(0.96)
    b1, b2 = dt(beta_1), dt(beta_2)
    u_t = b1 * (dt(1.0) - dt(0.5) * decay**local_step)
    u_t_1 = b1 * (dt(1.0) - dt(0.5) * decay**next_step)
    u_product_t = u_product
    u_product_t_1 = u_product_t * u_t_1
    beta_2_power = b2**local_step
    m = m + (g - m) * (1 - beta_1)
    v = v + (np.square(g) - v) * (1 - beta_2)
    m_hat = (u_t_1 * m) / (1 - u_product_t_1) + ((1 - u_t) * g) / (1 - u_product_t)
    v_hat = v / (1 - beta_2_power)
    w = w - (m_hat * learning_rate) / (np.sqrt(v_hat) + epsilon)
    return w, m, v, u_product


def adadelta_step(w, g, acc_grad, acc_delta, learning_rate=0.001, rho=0.95, epsilon=1e-7):
    """Returns (w, acc_grad, acc_delta) (keras/src/optimizers/adadelta.py)."""
    acc_grad = rho * _c(acc_grad) + (1 - rho) * np.square(g)
    delta = -(np.sqrt(acc_delta + epsilon) * g / np.sqrt(acc_grad + epsilon))
    acc_delta = rho * _c(acc_delta) + (1 - rho) * np.square(delta)
    return w + learning_rate * delta, acc_grad, acc_delta


def lion_step(w, g, m, learning_rate=0.001, beta_1=0.9, beta_2=0.99):
    """Returns (w, m) (keras/src/optimizers/lion.py)."""
    w = w - learning_rate * np.sign(m * beta_1 + g * (1.0 - beta_1))
    return w, m * beta_2 + g * (1.0 - beta_2)


def ftrl_step(w, g, accumulator, linear, learning_rate=0.001, learning_rate_power=-0.5,
              l1_regularization_strength=0.0, l2_regularization_strength=0.0,
              l2_shrinkage_regularization_strength=0.0, beta=0.0):
    """Returns (w, accumulator, linear) (keras/src/optimizers/ftrl.py; the accumulator starts at
    initial_accumulator_value=0.1)."""
    l2_reg = l2_regularization_strength + beta / (2.0 * learning_rate)
    grad_to_use = g + 2 * l2_shrinkage_regularization_strength * w
    new_accum = accumulator + np.square(g)
    p = -learning_rate_power
    linear = linear + grad_to_use - (new_accum ** p - accumulator ** p) / learning_rate * w
    quadratic = new_accum ** p / learning_rate + 2 * l2_reg
    l1 = l1_regularization_strength
    return (np.clip(linear, -l1, l1) - linear) / quadratic, new_accum, linear


# Gradient clipping (keras/src/optimizers/base_optimizer.py: `_clip_gradients`, `clip_by_norm`,
# `clip_by_global_norm`) and the helpers the fused steps are built from.


def axpby(x, a, y, b):
    """a x + b y in x's dtype; b == 0 leaves y out (so a NaN or inf in y is not read)."""
    dt = x.dtype.type
    return dt(a) * x if b == 0 else dt(a) * x + dt(b) * y


def sum_squares(*arrays):
    """sum of x^2 over all the arrays, in float64 (a global norm's square)."""
    return float(sum(np.sum(np.square(np.asarray(a, dtype=np.float64))) for a in arrays))


def clip_by_norm(x, clip_norm):
    """Keras's clipnorm, per gradient: x clip_norm / max(||x||, clip_norm) (x unchanged at norm 0;
    NaN for a NaN norm, 0 for an infinite one)."""
    x64 = np.asarray(x, dtype=np.float64)
    norm = np.sqrt(np.sum(np.square(x64)))
    with np.errstate(invalid="ignore"):
        return (x64 * clip_norm / np.maximum(norm, clip_norm)).astype(x.dtype)


def clip_by_global_norm(xs, clip_norm):
    """Keras's global_clipnorm: every x times clip_norm min(1 / norm, 1 / clip_norm) over the global
    norm of all of them; a non-finite norm gives NaN (Keras adds use_norm - use_norm)."""
    norm = np.sqrt(sum_squares(*xs))
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = clip_norm * np.minimum(1.0 / norm, 1.0 / clip_norm) + (norm - norm)
    return [(np.asarray(x, dtype=np.float64) * scale).astype(x.dtype) for x in xs]


def clip_by_value(x, limit):
    """Keras's clipvalue: clip(x, -limit, limit); NaN stays NaN."""
    return np.clip(x, -limit, limit)


def lamb_moments(g, m, v, iterations, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Lamb's Adam part (keras/src/optimizers/lamb.py): returns (m, v, update) with
    update = (m / (1 - beta_1^t)) / (sqrt(v / (1 - beta_2^t)) + epsilon)."""
    dt = g.dtype.type
    t = dt(iterations + 1)
    m = m + (g - m) * (1 - beta_1)
    v = v + (np.square(g) - v) * (1 - beta_2)
    update = (m / (1 - dt(beta_1) ** t)) / (np.sqrt(v / (1 - dt(beta_2) ** t)) + epsilon)
    return m, v, update


def trust_ratio_step(w, update, learning_rate):
    """Lamb's step: w - ratio lr update, ratio = ||w|| / ||update|| (1 where either norm is 0)."""
    w_norm, u_norm = np.sqrt(sum_squares(w)), np.sqrt(sum_squares(update))
    ratio = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
    return w - w.dtype.type(ratio) * w.dtype.type(learning_rate) * update


def lamb_step(w, g, m, v, iterations, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Returns (w, m, v)."""
    m, v, update = lamb_moments(g, _c(m), _c(v), iterations, beta_1, beta_2, epsilon)
    return trust_ratio_step(_c(w), update, learning_rate), m, v


def adafactor_second_moment(g, r, c, v, beta_2_t, epsilon_1=1e-30):
    """Adafactor's second moment (keras/src/optimizers/adafactor.py), in g's dtype: G = g^2 +
    epsilon_1; rank >= 2: r = b r + (1 - b) mean(G, -1), c = b c + (1 - b) mean(G, -2),
    v = r / mean(r, -1) (x) c; else v = b v + (1 - b) G. Returns (r, c, v)."""
    dt = g.dtype.type
    b = dt(beta_2_t)
    regulated = np.square(g) + dt(epsilon_1)
    if g.ndim >= 2:
        r = b * r + (1 - b) * np.mean(regulated, axis=-1)
        c = b * c + (1 - b) * np.mean(regulated, axis=-2)
        v = np.expand_dims(r / np.mean(r, axis=-1, keepdims=True), -1) * np.expand_dims(c, -2)
    else:
        v = b * v + (1 - b) * regulated
    return r, c, v


def adafactor_direction(g, v):
    """u = g / sqrt(v)."""
    return g / np.sqrt(v)


def _rms(x):
    return np.sqrt(np.mean(np.square(np.asarray(x, dtype=np.float64))))


def adafactor_apply(w, u, rho_t, epsilon_2=1e-3, clip_threshold=1.0):
    """w - alpha u / max(1, rms(u) / clip_threshold), alpha = max(epsilon_2, rms(w)) rho_t."""
    alpha = max(epsilon_2, _rms(w)) * rho_t
    return (w - alpha * (u / max(1.0, _rms(u) / clip_threshold))).astype(w.dtype)


def adafactor_step(w, g, r, c, v, iterations, learning_rate=0.001, beta_2_decay=-0.8,
                   epsilon_1=1e-30, epsilon_2=1e-3, clip_threshold=1.0, relative_step=True):
    """Returns (w, r, c, v); r and c are (0,)-shaped placeholders for rank < 2 (Keras's slots)."""
    t = float(iterations + 1)
    lr = float(w.dtype.type(learning_rate))
    if relative_step:
        lr = min(lr, 1.0 / np.sqrt(t))
    rho_t = min(lr, 1.0 / np.sqrt(t))
    beta_2_t = 1.0 - t ** beta_2_decay
    r, c, v = adafactor_second_moment(g, _c(r), _c(c), _c(v), beta_2_t, epsilon_1)
    return adafactor_apply(_c(w), adafactor_direction(g, v), rho_t, epsilon_2, clip_threshold), r, c, v
