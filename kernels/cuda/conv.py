"""2-D convolution on the GPU: the CUDA twins of conv2d_forward / conv2d_backward_input /
conv2d_backward_weight (kernels/conv.py, _conv.pyx), same arguments and index formulas.

Design: direct convolution, one thread per output element (y, dx or dw), each summing its terms
in a fixed order, so results do not depend on the launch geometry; no im2col buffer. The bias
gradient is reduce.sum_axis0 over dy seen as (N*OH*OW, C_out); softmax activations run row-wise
over C_out after the bias is added. Not yet used by the op tier (Conv2D has no GPU path yet).

Legend: N batch, H W C_in input, OH OW C_out output, KH KW kernel, G groups.
"""
from numba import cuda

from ._launch import dummy_vector, grid_1d
from .elementwise import act_scalar, softmax_row
from .reduce import sum_axis0

SOFTMAX, LOG_SOFTMAX = 15, 16


@cuda.jit
def _forward(x, w, b, has_bias, sh, sw, ph, pw, dh, dw_, groups, code, alpha, y):
    idx = cuda.grid(1)
    n_, oh, ow, co = y.shape
    if idx < n_ * oh * ow * co:
        o = idx % co
        j = (idx // co) % ow
        i = (idx // (co * ow)) % oh
        n = idx // (co * ow * oh)
        kh_, kw_, cin_g = w.shape[0], w.shape[1], w.shape[2]
        c0 = (o // (co // groups)) * cin_g
        acc = 0.0
        for kh in range(kh_):
            ih = i * sh - ph + kh * dh
            if 0 <= ih < x.shape[1]:
                for kw in range(kw_):
                    iw = j * sw - pw + kw * dw_
                    if 0 <= iw < x.shape[2]:
                        for c in range(cin_g):
                            acc += x[n, ih, iw, c0 + c] * w[kh, kw, c, o]
        if has_bias:
            acc += b[o]
        y[n, i, j, o] = acc if code >= SOFTMAX else act_scalar(code, acc, alpha)


@cuda.jit
def _rows_softmax(y_rc, log):
    i = cuda.grid(1)
    if i < y_rc.shape[0]:
        softmax_row(y_rc, i, log)


@cuda.jit
def _backward_input(dy, w, sh, sw, ph, pw, dh, dw_, groups, dx):
    idx = cuda.grid(1)
    n_, h, wd, cin = dx.shape
    if idx < n_ * h * wd * cin:
        c = idx % cin
        iw = (idx // cin) % wd
        ih = (idx // (cin * wd)) % h
        n = idx // (cin * wd * h)
        kh_, kw_, cin_g, co = w.shape
        cout_g = co // groups
        g, cc = c // cin_g, c % cin_g
        acc = 0.0
        for kh in range(kh_):
            ti = ih + ph - kh * dh
            if ti >= 0 and ti % sh == 0 and ti // sh < dy.shape[1]:
                for kw in range(kw_):
                    tj = iw + pw - kw * dw_
                    if tj >= 0 and tj % sw == 0 and tj // sw < dy.shape[2]:
                        for o in range(g * cout_g, (g + 1) * cout_g):
                            acc += dy[n, ti // sh, tj // sw, o] * w[kh, kw, cc, o]
        dx[n, ih, iw, c] = acc


@cuda.jit
def _backward_weight(x, dy, sh, sw, ph, pw, dh, dw_, groups, dw):
    idx = cuda.grid(1)
    kh_, kw_, cin_g, co = dw.shape
    if idx < kh_ * kw_ * cin_g * co:
        o = idx % co
        c = (idx // co) % cin_g
        kw = (idx // (co * cin_g)) % kw_
        kh = idx // (co * cin_g * kw_)
        cx = (o // (co // groups)) * cin_g + c
        acc = 0.0
        for n in range(x.shape[0]):
            for i in range(dy.shape[1]):
                ih = i * sh - ph + kh * dh
                if 0 <= ih < x.shape[1]:
                    for j in range(dy.shape[2]):
                        iw = j * sw - pw + kw * dw_
                        if 0 <= iw < x.shape[2]:
                            acc += x[n, ih, iw, cx] * dy[n, i, j, o]
        dw[kh, kw, c, o] = acc


def conv2d_forward(x_nhwc, w_hwio, b_o, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups,
                   activation, alpha, y_nhwo, n_threads=1):
    """y = act(conv(x, w) + b); the CPU kernel's shapes and formula, on device arrays (b_o may be None)."""
    size = y_nhwo.size
    if size == 0:
        return
    has_bias = b_o is not None
    _forward[grid_1d(size)](x_nhwc, w_hwio, b_o if has_bias else dummy_vector(y_nhwo.dtype), has_bias,
                            stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups, activation,
                            float(alpha), y_nhwo)
    if activation in (SOFTMAX, LOG_SOFTMAX):
        rows = y_nhwo.reshape(size // y_nhwo.shape[3], y_nhwo.shape[3])
        _rows_softmax[grid_1d(rows.shape[0])](rows, activation == LOG_SOFTMAX)


def conv2d_backward_input(dy_nhwo, w_hwio, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups,
                          dx_nhwc, n_threads=1):
    """dx = the gradient of conv2d_forward's x for output gradient dy (every element written)."""
    if dx_nhwc.size:
        _backward_input[grid_1d(dx_nhwc.size)](dy_nhwo, w_hwio, stride_h, stride_w, pad_h, pad_w, dilation_h,
                                               dilation_w, groups, dx_nhwc)


def conv2d_backward_weight(x_nhwc, dy_nhwo, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups,
                           dw_hwio, db_o, n_threads=1):
    """dw (and db, unless None) = the gradients of conv2d_forward's w (and b) for output gradient dy."""
    if dw_hwio.size:
        _backward_weight[grid_1d(dw_hwio.size)](x_nhwc, dy_nhwo, stride_h, stride_w, pad_h, pad_w, dilation_h,
                                                dilation_w, groups, dw_hwio)
    if db_o is not None:
        co = dy_nhwo.shape[3]
        sum_axis0(dy_nhwo.reshape(dy_nhwo.size // co, co), db_o)


@cuda.jit
def _add_bias_channels(y_mc, b_c):
    i = cuda.grid(1)
    c = y_mc.shape[1]
    if i < y_mc.shape[0] * c:
        y_mc[i // c, i % c] += b_c[i % c]


def add_bias_channels(y_mc, b_c):
    """y += b per channel, in place; y_mc (M, C), b_c (C,) device arrays."""
    if y_mc.size:
        _add_bias_channels[grid_1d(y_mc.size)](y_mc, b_c)


@cuda.jit
def _depth_columns(x, kd, sd, pd, dd, groups, cols):
    i = cuda.grid(1)
    m, h, w, cc = cols.shape
    if i < m * h * w * cc:
        n_, d, _, _, c = x.shape
        od, cg = m // n_, c // groups
        ch, row = i % cc, i // (h * w * cc)
        px = (i // cc) % (h * w)
        g, t, k = ch // (kd * cg), (ch // cg) % kd, ch % cg
        src = (row % od) * sd + t * dd - pd
        v = x[row // od, src, px // w, px % w, g * cg + k] if 0 <= src < d else 0.0
        cols[row, px // w, px % w, ch] = v


@cuda.jit
def _depth_columns_backward(dcols, kd, sd, pd, dd, groups, dx):
    i = cuda.grid(1)
    n_, d, h, w, c = dx.shape
    if i < n_ * d * h * w * c:
        od, cg = dcols.shape[0] // n_, c // groups
        ch, px = i % c, (i // c) % (h * w)
        dep, n = (i // (c * h * w)) % d, i // (c * h * w * d)
        g, k = ch // cg, ch % cg
        acc = 0.0
        for t in range(kd):
            num = dep + pd - t * dd
            if num >= 0 and num % sd == 0 and num // sd < od:
                acc += dcols[n * od + num // sd, px // w, px % w, (g * kd + t) * cg + k]
        dx[n, dep, px // w, px % w, ch] = acc


@cuda.jit
def _move_depth(w5, w4, to_channels):
    i = cuda.grid(1)
    kd, kh, kw, cg, o = w5.shape
    if i < w5.size:
        oo, k, rest = i % o, (i // o) % cg, i // (o * cg)  # index into (KH, KW, KD, CG, O)
        t, x_, y_ = rest % kd, (rest // kd) % kw, rest // (kd * kw)
        if to_channels:
            w4[y_, x_, t * cg + k, oo] = w5[t, y_, x_, k, oo]
        else:
            w5[t, y_, x_, k, oo] = w4[y_, x_, t * cg + k, oo]


def depth_columns(x_ndhwc, kernel_d, stride_d, pad_d, dilation_d, groups, cols_out):
    """The CPU twin's depth columns (Conv3D as 2-D convolutions) on device arrays."""
    if cols_out.size:
        _depth_columns[grid_1d(cols_out.size)](x_ndhwc, kernel_d, stride_d, pad_d, dilation_d, groups, cols_out)


def depth_columns_backward(dcols, kernel_d, stride_d, pad_d, dilation_d, groups, dx_out):
    """The gradient of depth_columns' input, summed over taps in order; device arrays."""
    if dx_out.size:
        _depth_columns_backward[grid_1d(dx_out.size)](dcols, kernel_d, stride_d, pad_d, dilation_d, groups, dx_out)


def kernel_depth_to_channels(w_dhwio, w_hwco_out):
    """(KD, KH, KW, CG, O) -> (KH, KW, KD * CG, O) on device arrays."""
    if w_dhwio.size:
        _move_depth[grid_1d(w_dhwio.size)](w_dhwio, w_hwco_out, True)


def kernel_channels_to_depth(w_hwco, w_dhwio_out):
    """(KH, KW, KD * CG, O) -> (KD, KH, KW, CG, O) on device arrays."""
    if w_dhwio_out.size:
        _move_depth[grid_1d(w_dhwio_out.size)](w_dhwio_out, w_hwco, False)


KERNELS = {
    "depth_columns": depth_columns,
    "depth_columns_backward": depth_columns_backward,
    "kernel_depth_to_channels": kernel_depth_to_channels,
    "kernel_channels_to_depth": kernel_channels_to_depth,
    "add_bias_channels": add_bias_channels,
    "conv2d_forward": conv2d_forward,
    "conv2d_backward_input": conv2d_backward_input,
    "conv2d_backward_weight": conv2d_backward_weight,
}
