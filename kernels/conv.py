"""Convolution kernels: Cython (see _conv.pyx for the paths, threading and determinism).

conv2d_forward(x_nhwc, w_hwio, b_o, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w,
               groups, activation, alpha, y_nhwo, n_threads=1)
conv2d_pool2x2_forward(x_nhwc, w_hwio, b_o, pad_h, pad_w, activation, alpha, y_nphwo, n_threads=1,
                       argmax_out=None)
conv2d_backward_input(dy_nhwo, w_hwio, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w,
                      groups, dx_nhwc, n_threads=1)
conv2d_backward_weight(x_nhwc, dy_nhwo, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w,
                       groups, dw_hwio, db_o, n_threads=1)
conv2d_pool2x2_backward_weight(x_nhwc, dy_nphwo, y_nphwo, argmax_nphwo, pad_h, pad_w, relu, dw_hwio,
                               db_o, n_threads=1)
add_bias_channels(y_mc, b_c)   (NumPy: the transposed convolution's bias)
depth_columns(x_ndhwc, kernel_d, stride_d, pad_d, dilation_d, groups, cols_out) and
depth_columns_backward(dcols, ..., dx_out); kernel_depth_to_channels(w_dhwio, w_hwco_out) and
kernel_channels_to_depth(w_hwco, w_dhwio_out)   (NumPy: Conv3D through the 2-D kernels)

Design: all three are Cython. The forward must be (inference never imports numba); the
backward kernels are the same machinery (im2col / col2im around single-threaded BLAS calls made
from OpenMP threads, with per-thread buffers) and run at 85-100% of the forward rate per core
on the 3x3 layers (see _conv.pyx). Numba would have to reach BLAS through np.dot on fresh arrays per chunk, with
its checks and allocations inside the parallel loop, and would add JIT time to the first
training step, so no Numba twin was kept: one implementation per kernel. Conv1D runs through
these kernels with H = 1, and Conv2DTranspose's forward is conv2d_backward_input.

Paths (``conv_path`` tells which one a shape takes; the measurements are in _conv.pyx's Design):
- pointwise (1x1, stride 1, no padding): one GEMM per chunk straight on the NHWC buffer;
- direct (C_in/groups == 1: depthwise layers, single-channel inputs): channel-vectorized loops;
- im2col (the rest): per-thread column buffers of COL_BYTES, one GEMM per chunk and group, the
  3x3 stride-1 fast path (a pixel's KW taps copied as one run) inside im2col.
conv2d_pool2x2_forward is a convolution followed by 2x2 max pooling (the common CNN block) in one
pass: on the implicit path the tiles pool in registers and the conv output is never written;
with argmax_out they also write the pooling's argmax bytes (training's fused conv + pool op), from
which conv2d_pool2x2_backward_weight takes the weight gradient straight from the pooled gradient
(the first layer of a CNN, whose input needs no gradient: never the (2 PH, 2 PW) gradient).
Winograd F(2x2, 3x3) (dl_winograd.h) takes the stride-1 3x3 float32 forwards, input and weight
gradients with enough channels and tiles on AVX-512 (2.25x fewer products; see _conv.pyx's Design
block for the rule and the measurements; _conv.winograd_path tells which call takes it).

BLAS threading: OpenBLAS is switched to one thread while a conv kernel runs (every BLAS in the
process that exposes openblas_set_num_threads/openblas_get_num_threads, found once at import);
parallelism comes from OpenMP over disjoint chunks. Without such a BLAS the kernels run on one
OpenMP thread and the BLAS parallelizes each GEMM itself.
"""
import numpy as np

from . import _conv
from ._conv import (
    COL_BYTES,
    DW_SLOTS,
    MAX_CHUNK_PIXELS,
    MIN_CHUNK_PIXELS,
    MIN_TASKS,
    conv2d_backward_input,
    conv2d_backward_weight,
    conv2d_forward,
    conv2d_pool2x2_backward_weight,
    conv2d_pool2x2_forward,
    select_path,
)



def conv_path(kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, h, w, out_h, out_w, c_in, groups):
    """"pointwise", "direct" or "im2col": the path the conv kernels take for these shapes."""
    return select_path(kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, h, w, out_h, out_w,
                       c_in, groups)


def add_bias_channels(y_mc, b_c):
    """y += b per channel, in place (the transposed convolution's bias; NumPy: one broadcast add).

    y_mc: (M, C) float32/64, C-contiguous, IN/OUT (M = N * H * W pixels)
    b_c: (C,) same dtype, IN
    """
    y_mc += b_c


def depth_columns(x_ndhwc, kernel_d, stride_d, pad_d, dilation_d, groups, cols_out):
    """Conv3D as 2-D convolutions: output depth o of sample n reads the input depths
    o * stride_d + t * dilation_d - pad_d, t < KD (zeros outside), stacked on the channel axis
    group by group (NumPy slicing, one copy per tap).

    x_ndhwc: (N, D, H, W, C) float32/64, IN
    cols_out: (N * OD, H, W, G * KD * CG) same dtype, C-contiguous, OUT (CG = C / groups)
    """
    n, d, h, w, c = x_ndhwc.shape
    od, cg = cols_out.shape[0] // n, c // groups
    cols = cols_out.reshape(n, od, h, w, groups, kernel_d, cg)
    for t in range(kernel_d):
        src = np.arange(od) * stride_d + t * dilation_d - pad_d
        ok = (src >= 0) & (src < d)
        tap = cols[..., t, :]  # a view: (N, OD, H, W, G, CG)
        tap[:, ~ok] = 0
        tap[:, ok] = x_ndhwc[:, src[ok]].reshape(n, int(ok.sum()), h, w, groups, cg)


def depth_columns_backward(dcols, kernel_d, stride_d, pad_d, dilation_d, groups, dx_out):
    """The gradient of depth_columns' input: dx[n, o * stride_d + t * dilation_d - pad_d] +=
    the tap-t slice of dcols[n, o], summed over t in order (taps outside the input dropped).

    dcols: (N * OD, H, W, G * KD * CG) float32/64, IN
    dx_out: (N, D, H, W, C) same dtype, C-contiguous, OUT
    """
    n, d, h, w, c = dx_out.shape
    od, cg = dcols.shape[0] // n, c // groups
    cols = dcols.reshape(n, od, h, w, groups, kernel_d, cg)
    dx_out[...] = 0
    for t in range(kernel_d):
        src = np.arange(od) * stride_d + t * dilation_d - pad_d
        ok = (src >= 0) & (src < d)
        dx_out[:, src[ok]] += cols[..., t, :][:, ok].reshape(n, int(ok.sum()), h, w, c)


def kernel_depth_to_channels(w_dhwio, w_hwco_out):
    """A Conv3D kernel (KD, KH, KW, CG, O) as the 2-D kernels' (KH, KW, KD * CG, O) (KD moved next to CG).

    w_dhwio: (KD, KH, KW, CG, O) float32/64, IN
    w_hwco_out: (KH, KW, KD * CG, O) same dtype, C-contiguous, OUT
    """
    kd, kh, kw, cg, o = w_dhwio.shape
    w_hwco_out.reshape(kh, kw, kd, cg, o)[...] = np.moveaxis(w_dhwio, 0, 2)


def kernel_channels_to_depth(w_hwco, w_dhwio_out):
    """The inverse of kernel_depth_to_channels (the kernel gradient back in Keras's layout).

    w_hwco: (KH, KW, KD * CG, O) float32/64, IN
    w_dhwio_out: (KD, KH, KW, CG, O) same dtype, C-contiguous, OUT
    """
    kd, kh, kw, cg, o = w_dhwio_out.shape
    w_dhwio_out[...] = np.moveaxis(w_hwco.reshape(kh, kw, kd, cg, o), 2, 0)


KERNELS = {
    "depth_columns": depth_columns,
    "depth_columns_backward": depth_columns_backward,
    "kernel_depth_to_channels": kernel_depth_to_channels,
    "kernel_channels_to_depth": kernel_channels_to_depth,
    "add_bias_channels": add_bias_channels,
    "conv2d_forward": conv2d_forward,
    "conv2d_pool2x2_forward": conv2d_pool2x2_forward,
    "conv2d_backward_input": conv2d_backward_input,
    "conv2d_backward_weight": conv2d_backward_weight,
    "conv2d_pool2x2_backward_weight": conv2d_pool2x2_backward_weight,
}

__all__ = ["KERNELS", "conv_path", "COL_BYTES", "DW_SLOTS", "MIN_CHUNK_PIXELS", "MAX_CHUNK_PIXELS",
           "MIN_TASKS"] + sorted(KERNELS)
