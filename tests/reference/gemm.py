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


# ---- bfloat16 ----------------------------------------------------------------------------------
def round_bfloat16(x):
    """float32 ``x`` rounded to the nearest bfloat16 (ties to even; NaN stays NaN, inf stays inf),
    returned as float32: the top 16 bits of the float32 after integer rounding."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000).astype(np.uint32).view(np.float32)
    return np.where(np.isnan(x), np.float32(np.nan), rounded).astype(np.float32)


def matmul_bf16(a, b, out=None, trans_a=False, trans_b=False, beta=0.0):
    """bf16(op(a)) @ bf16(op(b)) + beta * out in float64: the products of bfloat16 operands are
    exact, so this is the float32-accumulated kernel's result up to its summation rounding."""
    return matmul(round_bfloat16(a), round_bfloat16(b), out, trans_a, trans_b, 1.0, beta)


def dense_bf16(x, w, b, activation, alpha=0.0):
    """activation(bf16(x) @ bf16(w) + b) in float64 (the bias is not rounded)."""
    return dense(round_bfloat16(x), round_bfloat16(w), b, activation, alpha)


def cast_float16(x):
    """float32 ``x`` rounded to float16 (NumPy's IEEE conversion: ties to even)."""
    return np.asarray(x, dtype=np.float32).astype(np.float16)


def widen_float16(x):
    """float16 ``x`` as float32 (exact)."""
    return np.asarray(x, dtype=np.float16).astype(np.float32)
