"""Pooling kernels: 2-D max and average pooling on NHWC buffers (Cython, see _pooling.pyx).

Design: every pooling kernel is Cython: the forwards because inference needs them, the
backwards because they are gather loops as simple as the forwards, compiled ahead of time (a
Numba twin measured faster only through the host's wider SIMD, and adds a JIT compile per dtype
to the first training step; see _pooling.pyx). 1-D pooling uses these kernels with H = 1. 2x2
windows with stride 2 and no padding have their own kernels (*_2x2_*, uint8 argmax). Global
pooling (channels_last) runs the global_* kernels on (N, L = H * W, C) views: NumPy's reductions
over the middle axes measured 2x (mean) to 20x (max, forward) slower, and the max backward, a
chain of NumPy temporaries, up to 50x.

Legend: N batch, H/W input height/width, C channels, OH/OW output height/width,
        PH/PW pool height/width, SH/SW strides, PT/PL top/left padding.
"""
from ._pooling import (avg_pool2d_2x2_backward, avg_pool2d_2x2_forward, avg_pool2d_backward, avg_pool2d_forward,
                    global_avg_pool_backward, global_avg_pool_forward, global_max_pool_backward,
                    global_max_pool_forward, max_pool2d_2x2_backward, max_pool2d_2x2_forward, max_pool2d_backward,
                    max_pool2d_forward, max_pool2d_forward_argmax)

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
    "global_avg_pool_forward": global_avg_pool_forward,
    "global_avg_pool_backward": global_avg_pool_backward,
    "global_max_pool_forward": global_max_pool_forward,
    "global_max_pool_backward": global_max_pool_backward,
}
