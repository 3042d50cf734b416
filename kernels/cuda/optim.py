"""Optimizer updates on the GPU, in place on device arrays: the CUDA twins of kernels/optim.py
(SGD and Adam so far), one thread per parameter element, the CPU formulas verbatim.

Legend: N parameter elements (every variable flattened).
"""
import math

from numba import cuda

from ._launch import grid_1d


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


def sgd_update(w_n, g_n, m_n, lr, momentum, nesterov):
    """SGD (Keras 3), in place on w_n (and m_n when momentum != 0); (N,) device arrays."""
    t = w_n.dtype.type
    if w_n.shape[0]:
        _sgd[grid_1d(w_n.shape[0])](w_n, g_n, m_n if m_n.shape[0] else w_n, t(lr), t(momentum),
                                    bool(nesterov))


def adam_update(w_n, g_n, m_n, v_n, vhat_n, alpha, beta_1, beta_2, eps, amsgrad):
    """Adam (Keras 3), alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t) from the caller; in place
    on w_n, m_n, v_n (and vhat_n if amsgrad); (N,) device arrays, vhat_n may be (0,)."""
    t = w_n.dtype.type
    if w_n.shape[0]:
        _adam[grid_1d(w_n.shape[0])](w_n, g_n, m_n, v_n, vhat_n if vhat_n.shape[0] else v_n, t(alpha),
                                     t(1.0 - beta_1), t(1.0 - beta_2), t(eps), bool(amsgrad))


KERNELS = {"sgd_update": sgd_update, "adam_update": adam_update}
