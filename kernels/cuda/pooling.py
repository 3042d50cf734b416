"""Pooling on the GPU: the CUDA twins of kernels/pooling.py (_pooling.pyx), same names,
signatures and rules: a window of output (oh, ow) covers input rows [oh*SH - PT, oh*SH - PT + PH)
clipped to the input; padded cells never take part (max ignores them, average divides by the
real cells); the argmax is the offset kh * PW + kw of the first maximum (compared with ``>``).

Design: forwards run one thread per output element; backwards are gathers, one thread per input
element visiting the windows that cover it in increasing (oh, ow) order and writing only its own
cell, so results do not depend on the launch geometry and no atomics are needed. The 2x2
stride-2 kernels are the general ones at that geometry (uint8 argmax). Global pooling runs one
thread per (n, c) over L = H * W rows in order; its max backward splits dy among tied maxima.

Legend: N batch, H W input, C channels, OH OW output, PH PW pool, SH SW strides, PT PL top/left
padding, L = H * W.
"""
import math

from numba import cuda

from ._launch import grid_1d


@cuda.jit
def _pool_forward(x, ph, pw, sh, sw, pt, pl, is_max, record, y, argmax):
    idx = cuda.grid(1)
    n_, oh_, ow_, c_ = y.shape
    if idx < n_ * oh_ * ow_ * c_:
        c = idx % c_
        ow = (idx // c_) % ow_
        oh = (idx // (c_ * ow_)) % oh_
        n = idx // (c_ * ow_ * oh_)
        h0, w0 = oh * sh - pt, ow * sw - pl
        best = -math.inf
        where = 0
        total = 0.0
        count = 0
        for kh in range(ph):
            ih = h0 + kh
            if 0 <= ih < x.shape[1]:
                for kw in range(pw):
                    iw = w0 + kw
                    if 0 <= iw < x.shape[2]:
                        v = x[n, ih, iw, c]
                        if is_max:
                            if count == 0 or v > best:
                                best = v
                                where = kh * pw + kw
                        else:
                            total += float(v)
                        count += 1
        if is_max:
            y[n, oh, ow, c] = best
            if record:
                argmax[n, oh, ow, c] = where
        else:
            y[n, oh, ow, c] = total / count


@cuda.jit
def _pool_backward(dy, argmax, ph, pw, sh, sw, pt, pl, is_max, dx):
    idx = cuda.grid(1)
    n_, h_, w_, c_ = dx.shape
    if idx < n_ * h_ * w_ * c_:
        c = idx % c_
        iw = (idx // c_) % w_
        ih = (idx // (c_ * w_)) % h_
        n = idx // (c_ * w_ * h_)
        oh_, ow_ = dy.shape[1], dy.shape[2]
        # the outputs whose windows hold ih: oh * sh - pt <= ih < oh * sh - pt + ph
        oh_lo = max(0, (ih + pt - ph + sh) // sh)
        ow_lo = max(0, (iw + pl - pw + sw) // sw)
        acc = 0.0
        for oh in range(oh_lo, min(oh_, (ih + pt) // sh + 1)):
            kh = ih - (oh * sh - pt)
            for ow in range(ow_lo, min(ow_, (iw + pl) // sw + 1)):
                kw = iw - (ow * sw - pl)
                if is_max:
                    if argmax[n, oh, ow, c] == kh * pw + kw:
                        acc += dy[n, oh, ow, c]
                else:  # divided by the real cells of that window
                    rows = min(oh * sh - pt + ph, h_) - max(oh * sh - pt, 0)
                    cols = min(ow * sw - pl + pw, w_) - max(ow * sw - pl, 0)
                    acc += dy[n, oh, ow, c] / (rows * cols)
        dx[n, ih, iw, c] = acc


def _forward(x, geometry, is_max, y, argmax):
    if y.size:
        record = argmax is not None
        _pool_forward[grid_1d(y.size)](x, *geometry, is_max, record, y, argmax if record else y)


def _backward(dy, argmax, geometry, is_max, dx):
    if dx.size:
        _pool_backward[grid_1d(dx.size)](dy, dy if argmax is None else argmax, *geometry, is_max, dx)


def max_pool2d_forward(x_nhwc, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left, y_out_nhwc, n_threads=1):
    """y = the max of each (clipped) window; (N, H, W, C) -> (N, OH, OW, C) device arrays."""
    _forward(x_nhwc, (pool_h, pool_w, stride_h, stride_w, pad_top, pad_left), True, y_out_nhwc, None)


def max_pool2d_forward_argmax(x_nhwc, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left, y_out_nhwc,
                              argmax_out_nhwc, n_threads=1):
    """max_pool2d_forward, also writing the int32 offset kh * PW + kw of each first maximum."""
    _forward(x_nhwc, (pool_h, pool_w, stride_h, stride_w, pad_top, pad_left), True, y_out_nhwc, argmax_out_nhwc)


def max_pool2d_backward(dy_nhwc, argmax_nhwc, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left,
                        dx_out_nhwc, n_threads=1):
    """dx[n, ih, iw, c] = sum of dy over the outputs whose maximum was (ih, iw) (every cell written)."""
    _backward(dy_nhwc, argmax_nhwc, (pool_h, pool_w, stride_h, stride_w, pad_top, pad_left), True, dx_out_nhwc)


def avg_pool2d_forward(x_nhwc, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left, y_out_nhwc, n_threads=1):
    """y = the mean of the real cells of each window."""
    _forward(x_nhwc, (pool_h, pool_w, stride_h, stride_w, pad_top, pad_left), False, y_out_nhwc, None)


def avg_pool2d_backward(dy_nhwc, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left, dx_out_nhwc,
                        n_threads=1):
    """dx[n, ih, iw, c] = sum of dy / count over the windows holding (ih, iw)."""
    _backward(dy_nhwc, None, (pool_h, pool_w, stride_h, stride_w, pad_top, pad_left), False, dx_out_nhwc)


_TILE = (2, 2, 2, 2, 0, 0)


def max_pool2d_2x2_forward(x_nhwc, y_out_nhwc, argmax_out_nhwc=None, n_threads=1):
    """max_pool2d_forward with 2x2 windows, stride 2, no padding; argmax (uint8) unless None."""
    _forward(x_nhwc, _TILE, True, y_out_nhwc, argmax_out_nhwc)


def max_pool2d_2x2_backward(dy_nhwc, argmax_nhwc, dx_out_nhwc, n_threads=1):
    """max_pool2d_backward for 2x2 windows, stride 2, no padding (a trailing odd row/column gets 0)."""
    _backward(dy_nhwc, argmax_nhwc, _TILE, True, dx_out_nhwc)


def avg_pool2d_2x2_forward(x_nhwc, y_out_nhwc, n_threads=1):
    """avg_pool2d_forward with 2x2 windows, stride 2, no padding."""
    _forward(x_nhwc, _TILE, False, y_out_nhwc, None)


def avg_pool2d_2x2_backward(dy_nhwc, dx_out_nhwc, n_threads=1):
    """avg_pool2d_backward for 2x2 windows, stride 2, no padding."""
    _backward(dy_nhwc, None, _TILE, False, dx_out_nhwc)


@cuda.jit
def _global_forward(x, is_max, y):
    idx = cuda.grid(1)
    n_, c_ = y.shape
    if idx < n_ * c_:
        n, c = idx // c_, idx % c_
        if is_max:
            best = x[n, 0, c]
            for i in range(1, x.shape[1]):
                v = x[n, i, c]
                if v > best or v != v:  # NaN wins, as numpy.max
                    best = v
                if best != best:
                    break
            y[n, c] = best
        else:
            total = 0.0
            for i in range(x.shape[1]):
                total += float(x[n, i, c])
            y[n, c] = total / x.shape[1]


@cuda.jit
def _global_backward(x, y, dy, is_max, dx):
    idx = cuda.grid(1)
    n_, l_, c_ = dx.shape
    if idx < n_ * c_:
        n, c = idx // c_, idx % c_
        if is_max:
            ties = 0
            for i in range(l_):
                if x[n, i, c] == y[n, c]:
                    ties += 1
            share = dy[n, c] / ties if ties else math.nan
            for i in range(l_):
                dx[n, i, c] = share if x[n, i, c] == y[n, c] else 0.0
        else:
            share = dy[n, c] / l_
            for i in range(l_):
                dx[n, i, c] = share


def global_avg_pool_forward(x_nlc, y_out_nc, n_threads=1):
    """y[n, c] = the mean of x[n, :, c]; x (N, L, C), y (N, C) device arrays."""
    if y_out_nc.size:
        _global_forward[grid_1d(y_out_nc.size)](x_nlc, False, y_out_nc)


def global_avg_pool_backward(dy_nc, dx_out_nlc, n_threads=1):
    """dx[n, l, c] = dy[n, c] / L."""
    if dy_nc.size:
        _global_backward[grid_1d(dy_nc.size)](dx_out_nlc, dy_nc, dy_nc, False, dx_out_nlc)


def global_max_pool_forward(x_nlc, y_out_nc, n_threads=1):
    """y[n, c] = the max of x[n, :, c] (NaN anywhere gives NaN)."""
    if y_out_nc.size:
        _global_forward[grid_1d(y_out_nc.size)](x_nlc, True, y_out_nc)


def global_max_pool_backward(x_nlc, y_nc, dy_nc, dx_out_nlc, n_threads=1):
    """dx[n, l, c] = dy[n, c] / k where x[n, l, c] == y[n, c] (k such cells), else 0."""
    if dy_nc.size:
        _global_backward[grid_1d(dy_nc.size)](x_nlc, y_nc, dy_nc, True, dx_out_nlc)


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
