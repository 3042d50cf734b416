# Design: 2-D max and average pooling on NHWC buffers, forward and backward, all Cython.
#   - Forwards are Cython because inference needs them (predict never imports numba).
#   - Backwards are Cython too. Measured at (64, 32, 32, 64) float32, 2 threads: a Numba twin
#     of avg_pool2d_backward ran in 0.55-0.6 ms against Cython's 0.9-1.3 ms (Numba compiles for
#     the host's AVX-512, the Cython build for the baseline ISA), but costs ~1.5 s of JIT
#     compile per dtype in the first training step, and pooling backward is a few percent of a
#     CNN step; so Cython, ahead of time, until the build targets the host ISA.
#   - 1-D pooling runs on the same kernels with H = 1 (the op tier reshapes (N, L, C) to
#     (N, 1, L, C)).
#   - Padding is given as the top/left pad; the window of output (oh, ow) covers input rows
#     [oh*SH - PT, oh*SH - PT + PH) clipped to [0, H), and likewise for columns. Padded cells
#     never take part: max pooling ignores them (as -inf would) and average pooling divides by
#     the number of real cells in the window (Keras/TensorFlow "same", ONNX count_include_pad=0).
#   - Forward: one prange iteration per output row (n, oh); each writes its own row of y.
#     The innermost loop runs over C, contiguous in NHWC, so it vectorizes.
#   - Backward is written as a gather over input rows: one prange iteration per input row
#     (n, ih) visits the output rows whose windows cover ih, in increasing order, and writes only
#     dx[n, ih]. Writes are disjoint and the summation order is fixed, so dx is bit-identical for
#     any n_threads, also for overlapping windows (stride < pool).
#   - max_pool2d_forward_argmax records, per output element, the offset kh*PW + kw of the first
#     maximum from the window's origin (row-major window order, TensorFlow's and PyTorch's tie
#     rule); the op tier calls it only while a tape records. max_pool2d_backward visits each
#     input cell's covering windows and adds dy where the offset matches. Both inner loops over C
#     are branch-free selects, so they vectorize (a flat-index scatter measured 10x slower).
#
# Legend: N batch, H/W input height/width, C channels, OH/OW output height/width,
#         PH/PW pool height/width, SH/SW strides, PT/PL top/left padding.
from cython.parallel cimport prange
from libc.stdint cimport int32_t

ctypedef fused floating:
    float
    double


cdef inline Py_ssize_t _imax(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a if a > b else b


cdef inline Py_ssize_t _imin(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a if a < b else b


cdef inline Py_ssize_t _first_cover(Py_ssize_t i, Py_ssize_t pad, Py_ssize_t pool,
                                    Py_ssize_t stride) noexcept nogil:
    """The first output index whose window [o*stride - pad, o*stride - pad + pool) holds i."""
    cdef Py_ssize_t num = i + pad - pool + 1
    if num <= 0:
        return 0
    return (num + stride - 1) // stride


cdef inline void _argmax_update(const floating* xp, floating* yp, int32_t* ap, int32_t k,
                                Py_ssize_t n) noexcept nogil:
    """yp = max(yp, xp) and ap = k where xp won, over n channels: branch-free, so it vectorizes."""
    cdef Py_ssize_t c
    cdef floating v, y
    cdef int32_t a, m
    for c in range(n):  # unconditional loads and a bit-mask select: GCC vectorizes this form
        v = xp[c]
        y = yp[c]
        a = ap[c]
        m = -(<int32_t>(v > y))
        yp[c] = v if v > y else y
        ap[c] = (k & m) | (a & ~m)


cdef inline void _add_where(floating* dxp, const floating* dyp, const int32_t* ap, int32_t k,
                            Py_ssize_t n) noexcept nogil:
    """dxp += dyp where ap == k, over n channels: branch-free, so it vectorizes."""
    cdef Py_ssize_t c
    cdef floating zero = 0, g
    for c in range(n):  # every load unconditional, so the compiler can if-convert and vectorize
        g = dyp[c]
        dxp[c] += g if ap[c] == k else zero


def max_pool2d_forward(const floating[:, :, :, ::1] x_nhwc, int pool_h, int pool_w,
                       int stride_h, int stride_w, int pad_top, int pad_left,
                       floating[:, :, :, ::1] y_out_nhwc, int n_threads=1):
    """y[n, oh, ow, c] = max of x[n, ih, iw, c] over the (clipped) window of (oh, ow).

    x_nhwc: (N, H, W, C) float32/64, C-contiguous, IN
    y_out_nhwc: (N, OH, OW, C) same dtype, C-contiguous, OUT
    Every window must hold at least one real cell (true for Keras "valid" and "same").
    """
    cdef Py_ssize_t n_ = x_nhwc.shape[0], h = x_nhwc.shape[1], w = x_nhwc.shape[2]
    cdef Py_ssize_t c_ = x_nhwc.shape[3], oh_ = y_out_nhwc.shape[1], ow_ = y_out_nhwc.shape[2]
    cdef Py_ssize_t row, n, oh, ow, ih, iw, c, hs, he, ws, we
    cdef const floating* xp
    cdef floating* yp
    cdef floating v
    if n_ == 0 or oh_ == 0 or ow_ == 0 or c_ == 0:
        return
    for row in prange(n_ * oh_, nogil=True, num_threads=n_threads, schedule="static"):
        n = row // oh_
        oh = row - n * oh_
        hs = _imax(oh * stride_h - pad_top, 0)
        he = _imin(oh * stride_h - pad_top + pool_h, h)
        for ow in range(ow_):
            ws = _imax(ow * stride_w - pad_left, 0)
            we = _imin(ow * stride_w - pad_left + pool_w, w)
            yp = &y_out_nhwc[n, oh, ow, 0]
            xp = &x_nhwc[n, hs, ws, 0]
            for c in range(c_):
                yp[c] = xp[c]
            for ih in range(hs, he):
                for iw in range(ws, we):
                    xp = &x_nhwc[n, ih, iw, 0]
                    for c in range(c_):
                        v = xp[c]
                        yp[c] = v if v > yp[c] else yp[c]


def max_pool2d_forward_argmax(const floating[:, :, :, ::1] x_nhwc, int pool_h, int pool_w,
                              int stride_h, int stride_w, int pad_top, int pad_left,
                              floating[:, :, :, ::1] y_out_nhwc, int32_t[:, :, :, ::1] argmax_out_nhwc,
                              int n_threads=1):
    """max_pool2d_forward, also recording where in its window each maximum came from.

    x_nhwc: (N, H, W, C) float32/64, C-contiguous, IN
    y_out_nhwc: (N, OH, OW, C) same dtype, C-contiguous, OUT
    argmax_out_nhwc: (N, OH, OW, C) int32, C-contiguous, OUT: kh * PW + kw, the offset of the
        first maximum (row-major window order; ties go to the first) from the window's origin
        (oh * SH - PT, ow * SW - PL)
    """
    cdef Py_ssize_t n_ = x_nhwc.shape[0], h = x_nhwc.shape[1], w = x_nhwc.shape[2]
    cdef Py_ssize_t c_ = x_nhwc.shape[3], oh_ = y_out_nhwc.shape[1], ow_ = y_out_nhwc.shape[2]
    cdef Py_ssize_t row, n, oh, ow, ih, iw, c, h0, w0, hs, he, ws, we
    cdef const floating* xp
    cdef floating* yp
    cdef int32_t* ap
    cdef int32_t k
    if n_ == 0 or oh_ == 0 or ow_ == 0 or c_ == 0:
        return
    for row in prange(n_ * oh_, nogil=True, num_threads=n_threads, schedule="static"):
        n = row // oh_
        oh = row - n * oh_
        h0 = oh * stride_h - pad_top
        hs = _imax(h0, 0)
        he = _imin(h0 + pool_h, h)
        for ow in range(ow_):
            w0 = ow * stride_w - pad_left
            ws = _imax(w0, 0)
            we = _imin(w0 + pool_w, w)
            yp = &y_out_nhwc[n, oh, ow, 0]
            ap = &argmax_out_nhwc[n, oh, ow, 0]
            xp = &x_nhwc[n, hs, ws, 0]
            k = <int32_t>((hs - h0) * pool_w + (ws - w0))
            for c in range(c_):
                yp[c] = xp[c]
                ap[c] = k
            for ih in range(hs, he):
                for iw in range(ws, we):
                    xp = &x_nhwc[n, ih, iw, 0]
                    k = <int32_t>((ih - h0) * pool_w + (iw - w0))
                    _argmax_update(xp, yp, ap, k, c_)


def max_pool2d_backward(const floating[:, :, :, ::1] dy_nhwc, const int32_t[:, :, :, ::1] argmax_nhwc,
                        int pool_h, int pool_w, int stride_h, int stride_w, int pad_top, int pad_left,
                        floating[:, :, :, ::1] dx_out_nhwc, int n_threads=1):
    """dx[n, ih, iw, c] = sum of dy[n, oh, ow, c] over the outputs whose maximum was (ih, iw).

    dy_nhwc: (N, OH, OW, C) float32/64, C-contiguous, IN
    argmax_nhwc: (N, OH, OW, C) int32, C-contiguous, IN (window offsets from
        max_pool2d_forward_argmax with the same geometry)
    dx_out_nhwc: (N, H, W, C) same dtype as dy, C-contiguous, OUT (fully overwritten)
    """
    cdef Py_ssize_t n_ = dx_out_nhwc.shape[0], h = dx_out_nhwc.shape[1], w = dx_out_nhwc.shape[2]
    cdef Py_ssize_t c_ = dx_out_nhwc.shape[3], oh_ = dy_nhwc.shape[1], ow_ = dy_nhwc.shape[2]
    cdef Py_ssize_t row, n, ih, oh, oh0, oh1, ow, c, iw, w0, ws, we
    cdef floating* dxp
    cdef const floating* dyp
    cdef const int32_t* ap
    cdef int32_t k
    if n_ == 0 or h == 0 or w == 0 or c_ == 0:
        return
    for row in prange(n_ * h, nogil=True, num_threads=n_threads, schedule="static"):
        n = row // h
        ih = row - n * h
        dxp = &dx_out_nhwc[n, ih, 0, 0]
        for c in range(w * c_):
            dxp[c] = 0
        oh0 = _first_cover(ih, pad_top, pool_h, stride_h)
        oh1 = _imin((ih + pad_top) // stride_h + 1, oh_)
        for oh in range(oh0, oh1):
            for ow in range(ow_):
                w0 = ow * stride_w - pad_left
                ws = _imax(w0, 0)
                we = _imin(w0 + pool_w, w)
                dyp = &dy_nhwc[n, oh, ow, 0]
                ap = &argmax_nhwc[n, oh, ow, 0]
                for iw in range(ws, we):
                    k = <int32_t>((ih - (oh * stride_h - pad_top)) * pool_w + (iw - w0))
                    _add_where(dxp + iw * c_, dyp, ap, k, c_)


def avg_pool2d_forward(const floating[:, :, :, ::1] x_nhwc, int pool_h, int pool_w,
                       int stride_h, int stride_w, int pad_top, int pad_left,
                       floating[:, :, :, ::1] y_out_nhwc, int n_threads=1):
    """y[n, oh, ow, c] = mean of x[n, ih, iw, c] over the real (unpadded) cells of the window.

    x_nhwc: (N, H, W, C) float32/64, C-contiguous, IN
    y_out_nhwc: (N, OH, OW, C) same dtype, C-contiguous, OUT
    """
    cdef Py_ssize_t n_ = x_nhwc.shape[0], h = x_nhwc.shape[1], w = x_nhwc.shape[2]
    cdef Py_ssize_t c_ = x_nhwc.shape[3], oh_ = y_out_nhwc.shape[1], ow_ = y_out_nhwc.shape[2]
    cdef Py_ssize_t row, n, oh, ow, ih, iw, c, hs, he, ws, we
    cdef const floating* xp
    cdef floating* yp
    cdef floating inv
    if n_ == 0 or oh_ == 0 or ow_ == 0 or c_ == 0:
        return
    for row in prange(n_ * oh_, nogil=True, num_threads=n_threads, schedule="static"):
        n = row // oh_
        oh = row - n * oh_
        hs = _imax(oh * stride_h - pad_top, 0)
        he = _imin(oh * stride_h - pad_top + pool_h, h)
        for ow in range(ow_):
            ws = _imax(ow * stride_w - pad_left, 0)
            we = _imin(ow * stride_w - pad_left + pool_w, w)
            yp = &y_out_nhwc[n, oh, ow, 0]
            for c in range(c_):
                yp[c] = 0
            for ih in range(hs, he):
                for iw in range(ws, we):
                    xp = &x_nhwc[n, ih, iw, 0]
                    for c in range(c_):
                        yp[c] += xp[c]
            inv = <floating>(1.0 / ((he - hs) * (we - ws)))
            for c in range(c_):
                yp[c] *= inv


def avg_pool2d_backward(const floating[:, :, :, ::1] dy_nhwc, int pool_h, int pool_w,
                        int stride_h, int stride_w, int pad_top, int pad_left,
                        floating[:, :, :, ::1] dx_out_nhwc, int n_threads=1):
    """dx[n, ih, iw, c] = sum of dy[n, oh, ow, c] / count(oh, ow) over the windows holding (ih, iw).

    dy_nhwc: (N, OH, OW, C) float32/64, C-contiguous, IN
    dx_out_nhwc: (N, H, W, C) same dtype, C-contiguous, OUT (fully overwritten)
    count(oh, ow) is the number of real cells in the window, as in avg_pool2d_forward.
    """
    cdef Py_ssize_t n_ = dx_out_nhwc.shape[0], h = dx_out_nhwc.shape[1], w = dx_out_nhwc.shape[2]
    cdef Py_ssize_t c_ = dx_out_nhwc.shape[3], oh_ = dy_nhwc.shape[1], ow_ = dy_nhwc.shape[2]
    cdef Py_ssize_t row, n, ih, oh, oh0, oh1, ow, c, iw, hs, he, ws, we
    cdef floating* dxp
    cdef const floating* dyp
    cdef floating inv
    if n_ == 0 or h == 0 or w == 0 or c_ == 0:
        return
    for row in prange(n_ * h, nogil=True, num_threads=n_threads, schedule="static"):
        n = row // h
        ih = row - n * h
        dxp = &dx_out_nhwc[n, ih, 0, 0]
        for c in range(w * c_):
            dxp[c] = 0
        oh0 = _first_cover(ih, pad_top, pool_h, stride_h)
        oh1 = _imin((ih + pad_top) // stride_h + 1, oh_)
        for oh in range(oh0, oh1):
            hs = _imax(oh * stride_h - pad_top, 0)
            he = _imin(oh * stride_h - pad_top + pool_h, h)
            for ow in range(ow_):
                ws = _imax(ow * stride_w - pad_left, 0)
                we = _imin(ow * stride_w - pad_left + pool_w, w)
                inv = <floating>(1.0 / ((he - hs) * (we - ws)))
                dyp = &dy_nhwc[n, oh, ow, 0]
                for iw in range(ws, we):
                    for c in range(c_):
                        dxp[iw * c_ + c] += dyp[c] * inv
