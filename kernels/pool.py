"""Pooling kernels: 2-D max and average pooling on NHWC buffers (Cython, see _pool.pyx).

Design: every pooling kernel is Cython: the forwards because inference needs them, the
backwards because they are gather loops as simple as the forwards, compiled ahead of time (a
Numba twin measured faster only through the host's wider SIMD, and adds a JIT compile per dtype
to the first training step; see _pool.pyx). 1-D pooling uses these kernels with H = 1. Global
pooling is not here: it is a plain reduction over H and W, done by the op tier with NumPy
(0.9 ms at (64, 32, 32, 64), the speed of reading the input once; benchmarks/bench_pool.py).

Legend: N batch, H/W input height/width, C channels, OH/OW output height/width,
        PH/PW pool height/width, SH/SW strides, PT/PL top/left padding.
"""
from ._pool import (avg_pool2d_2x2_backward, avg_pool2d_2x2_forward, avg_pool2d_backward, avg_pool2d_forward,
                    max_pool2d_2x2_backward, max_pool2d_2x2_forward, max_pool2d_backward, max_pool2d_forward,
                    max_pool2d_forward_argmax)

KERNELS = {
    "max_pool2d_forward": max_pool2d_forward,
    "max_pool2d_forward_argmax": max_pool2d_forward_argmax,
    "max_pool2d_backward": max_pool2d_backward,
    "avg_pool2d_forward": avg_pool2d_forward,
    "avg_pool2d_backward": avg_pool2d_backward,
    "max_pool2d_2x2_forward": max_pool2d_2x2_forward,
    "max_pool2d_2x2_backward": max_pool2d_2x2_backward,
    "avg_pool2d_2x2_forward": avg_pool2d_2x2_forward,
    "avg_pool2d_2x2_backward": avg_pool2d_2x2_backward,
}
