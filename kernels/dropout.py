# Design: training-only, so Numba (`@jit(parallel=True)`, compiled on first call; inference never
# calls it). The op draws a 64-bit key from its seeded generator; philox_uniform turns it into
# u ~ U[0, 1) in x's dtype, and dropout_forward applies u, so every kernel is deterministic.
#   - philox_uniform is a counter-based generator (Philox4x32-10, Salmon et al. 2011) using all
#     four words of a block (4 float32 or 2 float64 draws): u[i] depends on (key, i) only, the
#     same on any thread count and on the GPU (kernels/cuda/dropout.py), whatever its launch
#     geometry. Every product is of two 32-bit values in uint64, so nothing overflows.
#   - mask = (u >= rate), compared in float64 (u widened exactly); y = x * mask * (1 / (1 - rate))
#     with the scale rounded once to x's dtype (tf.nn.dropout's `x * scale * keep_mask`).
#   - Elementwise prange over the flat index: disjoint writes, results independent of the
#     thread count.
#   - `prange` is reached as `_config.prange`: numba resolves it when the kernel compiles
#     (after `_config.load_numba()`), so this module never imports numba itself.
#
# Legend: N elements (the flat size of x).
"""Dropout: Numba kernels on flat 1-D views."""
import numpy as np

from . import _config
from ._config import jit

PHILOX_M0, PHILOX_M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
PHILOX_W0, PHILOX_W1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
LOW32, SHIFT32 = np.uint64(0xFFFFFFFF), np.uint64(32)
SHIFT5, SHIFT6, SHIFT8 = np.uint64(5), np.uint64(6), np.uint64(8)


@jit()
def philox_block(block, key0, key1):
    """The four 32-bit words of Philox4x32-10 at counter (block mod 2^32, block >> 32, 0, 0)."""
    c0, c1, c2, c3 = np.uint64(block) & LOW32, np.uint64(block) >> SHIFT32, np.uint64(0), np.uint64(0)
    k0, k1 = np.uint64(key0) & LOW32, np.uint64(key1) & LOW32
    for _ in range(10):
        p0, p1 = PHILOX_M0 * c0, PHILOX_M1 * c2
        c0, c1, c2, c3 = (p1 >> SHIFT32) ^ c1 ^ k0, p1 & LOW32, (p0 >> SHIFT32) ^ c3 ^ k1, p0 & LOW32
        k0, k1 = (k0 + PHILOX_W0) & LOW32, (k1 + PHILOX_W1) & LOW32
    return c0, c1, c2, c3


@jit(parallel=True)
def philox_uniform(key0, key1, u_out_n):
    """u_out_n[i] = a uniform [0, 1) draw that depends only on (key0, key1, i).

    key0, key1: Python ints in [0, 2**32), IN (the key)
    u_out_n: (N,) float32/64, C-contiguous, OUT: float32 from 24 bits, float64 from 53

    Block b = i // 4 (float32: words b0..b3 give elements 4b..4b+3, 24 top bits each) or
    i // 2 (float64: words (w0, w1) and (w2, w3) give 2b, 2b+1, 27 + 26 bits as NumPy's doubles).
    """
    n = u_out_n.shape[0]
    per = 2 if u_out_n.itemsize == 8 else 4
    full = n // per
    # whole blocks without per-element bounds tests (1.2-1.5x faster), then the partial block
    if per == 2:
        for block in _config.prange(full):
            r0, r1, r2, r3 = philox_block(block, key0, key1)
            u_out_n[2 * block] = (float(r0 >> SHIFT5) * 67108864.0 + float(r1 >> SHIFT6)) * 1.1102230246251565e-16
            u_out_n[2 * block + 1] = (float(r2 >> SHIFT5) * 67108864.0 + float(r3 >> SHIFT6)) * 1.1102230246251565e-16
    else:
        for block in _config.prange(full):
            r0, r1, r2, r3 = philox_block(block, key0, key1)
            u_out_n[4 * block] = np.float32(float(r0 >> SHIFT8) * 5.960464477539063e-08)
            u_out_n[4 * block + 1] = np.float32(float(r1 >> SHIFT8) * 5.960464477539063e-08)
            u_out_n[4 * block + 2] = np.float32(float(r2 >> SHIFT8) * 5.960464477539063e-08)
            u_out_n[4 * block + 3] = np.float32(float(r3 >> SHIFT8) * 5.960464477539063e-08)
    if full * per < n:
        r0, r1, r2, r3 = philox_block(full, key0, key1)
        i = full * per
        if per == 2:
            u_out_n[i] = (float(r0 >> SHIFT5) * 67108864.0 + float(r1 >> SHIFT6)) * 1.1102230246251565e-16
        else:
            u_out_n[i] = float(r0 >> SHIFT8) * 5.960464477539063e-08
            if i + 1 < n:
                u_out_n[i + 1] = float(r1 >> SHIFT8) * 5.960464477539063e-08
            if i + 2 < n:
                u_out_n[i + 2] = float(r2 >> SHIFT8) * 5.960464477539063e-08


@jit(parallel=True)
def dropout_forward(x_n, u_n, rate, y_out_n, mask_out_n):
    """y_out_n = x_n * (u_n >= rate) / (1 - rate); mask_out_n = (u_n >= rate).

    x_n: (N,) float32/64, C-contiguous, IN
    u_n: (N,) same dtype, C-contiguous, IN (uniform [0, 1) randoms)
    y_out_n: (N,) same dtype, C-contiguous, OUT
    mask_out_n: (N,) uint8, C-contiguous, OUT (1 = kept)
    rate: Python float in [0, 1)
    """
    n = x_n.shape[0]
    scale = x_n.dtype.type(1.0 / (1.0 - rate))
    zero = x_n.dtype.type(0.0)
    for i in _config.prange(n):
        if u_n[i] >= rate:
            mask_out_n[i] = 1
            y_out_n[i] = x_n[i] * scale
        else:
            mask_out_n[i] = 0
            y_out_n[i] = zero


@jit(parallel=True)
def dropout_backward(dy_n, mask_n, rate, dx_out_n):
    """dx_out_n = dy_n * mask_n / (1 - rate).

    dy_n: (N,) float32/64, C-contiguous, IN
    mask_n: (N,) uint8, C-contiguous, IN (from dropout_forward)
    dx_out_n: (N,) same dtype as dy_n, C-contiguous, OUT
    rate: Python float in [0, 1), the forward's rate
    """
    n = dy_n.shape[0]
    scale = dy_n.dtype.type(1.0 / (1.0 - rate))
    zero = dy_n.dtype.type(0.0)
    for i in _config.prange(n):
        if mask_n[i] != 0:
            dx_out_n[i] = dy_n[i] * scale
        else:
            dx_out_n[i] = zero


KERNELS = {"dropout_forward": dropout_forward, "dropout_backward": dropout_backward, "philox_uniform": philox_uniform}
