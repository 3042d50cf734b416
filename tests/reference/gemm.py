"""Reference matrix products for the kernel tests: plain NumPy in float64, from the formulas.

Never imports dlcore.
"""
import numpy as np

from . import elementwise as _act


def matmul(a, b, out=None, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """alpha * op(a) @ op(b) + beta * out (out ignored when beta == 0), in float64."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    opa = a.T if trans_a else a
    opb = b.T if trans_b else b
    m, k = opa.shape
    n = opb.shape[1]
    prod = np.zeros((m, n))
    if k:
        prod = np.einsum("ik,kj->ij", opa, opb)
    result = alpha * prod
    if beta != 0:
        result = result + beta * np.asarray(out, dtype=np.float64)
    return result


def dense(x, w, b, activation, alpha=0.0):
    """activation(x @ w + b) in float64; b may be None; activation is a Keras name."""
    z = matmul(x, w)
    if b is not None:
        z = z + np.asarray(b, dtype=np.float64)[None, :]
    if activation == "softmax":
        return _act.softmax(z) if z.size else z
    if activation == "log_softmax":
        return _act.log_softmax(z) if z.size else z
    return _act.FORWARD[activation](z, alpha)
