# Design: training-only, so Numba (`@jit(parallel=True)`, compiled on first call; inference never
# calls it), except the generator. The op draws a 64-bit key from its seeded generator;
# philox_uniform turns it into u ~ U[0, 1) in x's dtype, and dropout_forward applies u, so every
# kernel is deterministic.
#   - philox_uniform is a counter-based generator (Philox4x32-10, Salmon et al. 2011) using all
#     four words of a block (4 float32 or 2 float64 draws): u[i] depends on (key, i) only, the
#     same on any thread count and on the GPU (kernels/cuda/dropout.py), whatever its launch
#     geometry. It is Cython (_dropout.pyx over dl_philox.h: 16 blocks per AVX-512 step, 4-5x
#     the scalar Numba loop it replaced; see that file).
#   - mask = (u >= rate), compared in float64 (u widened exactly); y = x * mask * (1 / (1 - rate))
#     with the scale rounded once to x's dtype (tf.nn.dropout's `x * scale * keep_mask`).
#   - Elementwise prange over the flat index: disjoint writes, results independent of the
#     thread count.
#   - `prange` is reached as `_config.prange`: numba resolves it when the kernel compiles
#     (after `_config.load_numba()`), so this module never imports numba itself.
#
# Legend: N elements (the flat size of x).
"""Dropout: Numba kernels on flat 1-D views, and the Cython generator (_dropout.pyx)."""
from . import _config
from ._config import jit
from ._dropout import philox_uniform


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


def philox_uniform_drawn(draw, u_out_n):
    """philox_uniform(*draw(), u_out_n): the key drawn at the call, so that a replayed list of kernel
    calls (a captured training step) draws a new key at each replay, as the op would.

    draw: a callable returning (key0, key1), Python ints in [0, 2**32), IN
    u_out_n: (N,) float32/64, C-contiguous, OUT: float32 from 24 bits, float64 from 53
    """
    key0, key1 = draw()
    philox_uniform(key0, key1, u_out_n)


KERNELS = {"dropout_forward": dropout_forward, "dropout_backward": dropout_backward, "philox_uniform": philox_uniform,
           "philox_uniform_drawn": philox_uniform_drawn}
