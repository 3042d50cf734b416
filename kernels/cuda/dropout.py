"""Dropout on the GPU: the CUDA twins of kernels/dropout.py, one thread per element.

Design: philox_uniform is the CPU's counter-based generator (Philox4x32-10, uint64 products of
32-bit words; one thread per block of four words: 4 float32 or 2 float64 draws), so u[i] depends
on (key, i) only: the same draw as the CPU and for any launch geometry. The
mask and scale formulas are the CPU kernels'.

Legend: N elements (the flat size of x).
"""
import numpy as np
from numba import cuda

from ._launch import grid_1d

M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
W0, W1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
LOW32, SHIFT32 = np.uint64(0xFFFFFFFF), np.uint64(32)
SHIFT5, SHIFT6, SHIFT8 = np.uint64(5), np.uint64(6), np.uint64(8)


@cuda.jit
def _philox_uniform(key0, key1, per, u):
    block = cuda.grid(1)
    n = u.shape[0]
    i = block * per
    if i < n:
        c0, c1, c2, c3 = np.uint64(block) & LOW32, np.uint64(block) >> SHIFT32, np.uint64(0), np.uint64(0)
        k0, k1 = np.uint64(key0) & LOW32, np.uint64(key1) & LOW32
        for _ in range(10):
            p0, p1 = M0 * c0, M1 * c2
            c0, c1, c2, c3 = (p1 >> SHIFT32) ^ c1 ^ k0, p1 & LOW32, (p0 >> SHIFT32) ^ c3 ^ k1, p0 & LOW32
            k0, k1 = (k0 + W0) & LOW32, (k1 + W1) & LOW32
        if per == 2:
            u[i] = (float(c0 >> SHIFT5) * 67108864.0 + float(c1 >> SHIFT6)) * 1.1102230246251565e-16
            if i + 1 < n:
                u[i + 1] = (float(c2 >> SHIFT5) * 67108864.0 + float(c3 >> SHIFT6)) * 1.1102230246251565e-16
        else:
            u[i] = float(c0 >> SHIFT8) * 5.960464477539063e-08
            if i + 1 < n:
                u[i + 1] = float(c1 >> SHIFT8) * 5.960464477539063e-08
            if i + 2 < n:
                u[i + 2] = float(c2 >> SHIFT8) * 5.960464477539063e-08
            if i + 3 < n:
                u[i + 3] = float(c3 >> SHIFT8) * 5.960464477539063e-08


@cuda.jit
def _dropout_forward(x, u, rate, scale, y, mask):
    i = cuda.grid(1)
    if i < x.shape[0]:
        if u[i] >= rate:
            mask[i] = 1
            y[i] = x[i] * scale
        else:
            mask[i] = 0
            y[i] = 0.0


@cuda.jit
def _dropout_backward(dy, mask, scale, dx):
    i = cuda.grid(1)
    if i < dy.shape[0]:
        dx[i] = dy[i] * scale if mask[i] != 0 else 0.0


def philox_uniform(key0, key1, u_out_n):
    """u_out_n[i] = the CPU twin's uniform draw for (key0, key1, i); (N,) float32/64 device array."""
    n = u_out_n.shape[0]
    if n:
        per = 2 if u_out_n.dtype.itemsize == 8 else 4  # one Philox block per thread: 2 doubles or 4 floats
        _philox_uniform[grid_1d((n + per - 1) // per)](int(key0), int(key1), per, u_out_n)


def dropout_forward(x_n, u_n, rate, y_out_n, mask_out_n):
    """y = x * (u >= rate) / (1 - rate), mask = (u >= rate) as uint8; (N,) device arrays."""
    if x_n.shape[0]:
        scale = x_n.dtype.type(1.0 / (1.0 - rate))
        _dropout_forward[grid_1d(x_n.shape[0])](x_n, u_n, float(rate), scale, y_out_n, mask_out_n)


def dropout_backward(dy_n, mask_n, rate, dx_out_n):
    """dx = dy * mask / (1 - rate); (N,) device arrays."""
    if dy_n.shape[0]:
        scale = dy_n.dtype.type(1.0 / (1.0 - rate))
        _dropout_backward[grid_1d(dy_n.shape[0])](dy_n, mask_n, scale, dx_out_n)


KERNELS = {"dropout_forward": dropout_forward, "dropout_backward": dropout_backward, "philox_uniform": philox_uniform}
