# Design: 2-D max and average pooling on NHWC buffers, forward and backward, all Cython (the
# forwards because inference never imports numba; a Numba twin of the average backward cost
# ~1.5 s of JIT per dtype in the first training step). The row bodies are C in dl_pool_rows.h,
# compiled per ISA; the prange loops and buffer checks are here.
#   - 1-D pooling runs with H = 1 (the op tier reshapes (N, L, C) to (N, 1, L, C)).
#   - Padding is given as the top/left pad; the window of output (oh, ow) covers input rows
#     [oh*SH - PT, oh*SH - PT + PH) clipped to [0, H). Padded cells never take part: max ignores
#     them, average divides by the real cells (Keras/TensorFlow "same", ONNX count_include_pad=0).
#   - Forward: one prange iteration per output row (n, oh), the inner loop over C (contiguous).
#     Backward is a gather over input rows: iteration (n, ih) visits the output rows covering ih
#     in increasing order and writes only dx[n, ih], so dx is bit-identical for any n_threads.
#   - max_pool2d_forward_argmax records the offset kh*PW + kw of the first maximum (TensorFlow's
#     and PyTorch's tie rule), only while a tape records; both inner loops are branch-free
#     selects (a flat-index scatter measured 10x slower).
#   - 2x2 windows, stride 2, no padding (the cheatsheet CNN's pooling) have their own kernels
#     (max/avg_pool2d_2x2_*): a uint8 argmax, every dx cell written once, an AVX-512 max
#     backward row (GCC vectorized it by byte lanes and left C = 32 scalar), non-temporal stores
#     for a dx of 4 MB or more. Measured 1 thread, (64,30,30,32) float32: forward+argmax 0.49 ->
#     0.11 ms, backward 0.36 -> 0.09 ms against the general kernels.
#   - Global pooling works on (N, L = H * W, C), one sample per iteration; the max backward splits
#     dy evenly among tied maxima (TensorFlow's reduce_max gradient), counting ties in dx's first
#     row (no scratch). Measured (64, 8, 8, 128), layer forward+backward: GlobalMaxPooling2D 8.1
#     -> 0.35 ms against NumPy reductions.
#
# Legend: N batch, H/W input height/width, C channels, OH/OW output height/width,
#         PH/PW pool height/width, SH/SW strides, PT/PL top/left padding,
#         L = H * W (global pooling).
from cython.parallel cimport prange
from libc.stdint cimport int32_t, uint8_t
from libc.string cimport memset

cdef extern from "dl_pool_rows.h":
    void dlp_max2x2_row_f32(const float* x0, const float* x1, float* y, uint8_t* am,
                            Py_ssize_t ow, Py_ssize_t c) noexcept nogil
    void dlp_max2x2_row_f64(const double* x0, const double* x1, double* y, uint8_t* am,
                            Py_ssize_t ow, Py_ssize_t c) noexcept nogil
    void dlp_max2x2_back_row_f32_any(const float* dy, const uint8_t* am, float* dx0, float* dx1,
                                     Py_ssize_t ow, Py_ssize_t c, int stream) noexcept nogil
    void dlp_max2x2_back_row_f64_any(const double* dy, const uint8_t* am, double* dx0, double* dx1,
                                     Py_ssize_t ow, Py_ssize_t c, int stream) noexcept nogil
    void dlp_avg2x2_row_f32(const float* x0, const float* x1, float* y, Py_ssize_t ow,
                            Py_ssize_t c) noexcept nogil
    void dlp_avg2x2_row_f64(const double* x0, const double* x1, double* y, Py_ssize_t ow,
                            Py_ssize_t c) noexcept nogil
    void dlp_avg2x2_back_row_f32(const float* dy, float* dx0, float* dx1, Py_ssize_t ow,
                                 Py_ssize_t c) noexcept nogil
    int dlp_intrinsics_allowed
    ctypedef struct dlp_geom:
        Py_ssize_t h, w, c, oh, ow, ph, pw, sh, sw, pt, pl
    void dlp_max_row_f32(const float* x, float* y, int32_t* am, Py_ssize_t oh, dlp_geom g) noexcept nogil
    void dlp_max_row_f64(const double* x, double* y, int32_t* am, Py_ssize_t oh, dlp_geom g) noexcept nogil
    void dlp_max_back_row_f32(const float* dy, const int32_t* am, float* dx, Py_ssize_t ih,
                              dlp_geom g) noexcept nogil
    void dlp_max_back_row_f64(const double* dy, const int32_t* am, double* dx, Py_ssize_t ih,
                              dlp_geom g) noexcept nogil
    void dlp_avg_row_f32(const float* x, float* y, Py_ssize_t oh, dlp_geom g) noexcept nogil
    void dlp_avg_row_f64(const double* x, double* y, Py_ssize_t oh, dlp_geom g) noexcept nogil
    void dlp_avg_back_row_f32(const float* dy, float* dx, Py_ssize_t ih, dlp_geom g) noexcept nogil
    void dlp_avg_back_row_f64(const double* dy, double* dx, Py_ssize_t ih, dlp_geom g) noexcept nogil
    void dlp_global_avg_f32(const float* x, float* y, Py_ssize_t l, Py_ssize_t c) noexcept nogil
    void dlp_global_avg_f64(const double* x, double* y, Py_ssize_t l, Py_ssize_t c) noexcept nogil
    void dlp_global_avg_back_f32(const float* dy, float* dx, Py_ssize_t l, Py_ssize_t c) noexcept nogil
    void dlp_global_avg_back_f64(const double* dy, double* dx, Py_ssize_t l, Py_ssize_t c) noexcept nogil
    void dlp_global_max_f32(const float* x, float* y, Py_ssize_t l, Py_ssize_t c) noexcept nogil
    void dlp_global_max_f64(const double* x, double* y, Py_ssize_t l, Py_ssize_t c) noexcept nogil
    void dlp_global_max_back_f32(const float* x, const float* y, const float* dy, float* dx,
                                 Py_ssize_t l, Py_ssize_t c) noexcept nogil
    void dlp_global_max_back_f64(const double* x, const double* y, const double* dy, double* dx,
                                 Py_ssize_t l, Py_ssize_t c) noexcept nogil
    void dlp_avg2x2_back_row_f64(const double* dy, double* dx0, double* dx1, Py_ssize_t ow,
                                 Py_ssize_t c) noexcept nogil

ctypedef fused floating:
    float
    double


cdef inline dlp_geom _geometry(Py_ssize_t h, Py_ssize_t w, Py_ssize_t c, Py_ssize_t oh, Py_ssize_t ow,
                               int pool_h, int pool_w, int stride_h, int stride_w, int pad_top,
                               int pad_left) noexcept nogil:
    cdef dlp_geom g
    g.h, g.w, g.c, g.oh, g.ow = h, w, c, oh, ow
    g.ph, g.pw, g.sh, g.sw, g.pt, g.pl = pool_h, pool_w, stride_h, stride_w, pad_top, pad_left
    return g


def max_pool2d_forward(const floating[:, :, :, ::1] x_nhwc, int pool_h, int pool_w,
                       int stride_h, int stride_w, int pad_top, int pad_left,
                       floating[:, :, :, ::1] y_out_nhwc, int n_threads=1):
    """y[n, oh, ow, c] = max of x[n, ih, iw, c] over the (clipped) window of (oh, ow).

    x_nhwc: (N, H, W, C) float32/64, C-contiguous, IN
    y_out_nhwc: (N, OH, OW, C) same dtype, C-contiguous, OUT
    Every window must hold at least one real cell (true for Keras "valid" and "same").
    """
    cdef Py_ssize_t n_ = x_nhwc.shape[0], oh_ = y_out_nhwc.shape[1], row, n, oh
    cdef dlp_geom g = _geometry(x_nhwc.shape[1], x_nhwc.shape[2], x_nhwc.shape[3], oh_, y_out_nhwc.shape[2],
                                pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)
    if n_ == 0 or oh_ == 0 or g.ow == 0 or g.c == 0:
        return
    for row in prange(n_ * oh_, nogil=True, num_threads=n_threads, schedule="static"):
        n = row // oh_
        oh = row - n * oh_
        if floating is float:
            dlp_max_row_f32(&x_nhwc[n, 0, 0, 0], &y_out_nhwc[n, oh, 0, 0], NULL, oh, g)
        else:
            dlp_max_row_f64(&x_nhwc[n, 0, 0, 0], &y_out_nhwc[n, oh, 0, 0], NULL, oh, g)


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
    cdef Py_ssize_t n_ = x_nhwc.shape[0], oh_ = y_out_nhwc.shape[1], row, n, oh
    cdef dlp_geom g = _geometry(x_nhwc.shape[1], x_nhwc.shape[2], x_nhwc.shape[3], oh_, y_out_nhwc.shape[2],
                                pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)
    if n_ == 0 or oh_ == 0 or g.ow == 0 or g.c == 0:
        return
    for row in prange(n_ * oh_, nogil=True, num_threads=n_threads, schedule="static"):
        n = row // oh_
        oh = row - n * oh_
        if floating is float:
            dlp_max_row_f32(&x_nhwc[n, 0, 0, 0], &y_out_nhwc[n, oh, 0, 0], &argmax_out_nhwc[n, oh, 0, 0], oh, g)
        else:
            dlp_max_row_f64(&x_nhwc[n, 0, 0, 0], &y_out_nhwc[n, oh, 0, 0], &argmax_out_nhwc[n, oh, 0, 0], oh, g)


def max_pool2d_backward(const floating[:, :, :, ::1] dy_nhwc, const int32_t[:, :, :, ::1] argmax_nhwc,
                        int pool_h, int pool_w, int stride_h, int stride_w, int pad_top, int pad_left,
                        floating[:, :, :, ::1] dx_out_nhwc, int n_threads=1):
    """dx[n, ih, iw, c] = sum of dy[n, oh, ow, c] over the outputs whose maximum was (ih, iw).

    dy_nhwc: (N, OH, OW, C) float32/64, C-contiguous, IN
    argmax_nhwc: (N, OH, OW, C) int32, C-contiguous, IN (window offsets from
        max_pool2d_forward_argmax with the same geometry)
    dx_out_nhwc: (N, H, W, C) same dtype as dy, C-contiguous, OUT (fully overwritten)
    """
    cdef Py_ssize_t n_ = dx_out_nhwc.shape[0], h = dx_out_nhwc.shape[1], row, n, ih
    cdef dlp_geom g = _geometry(h, dx_out_nhwc.shape[2], dx_out_nhwc.shape[3], dy_nhwc.shape[1], dy_nhwc.shape[2],
                                pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)
    if n_ == 0 or h == 0 or g.w == 0 or g.c == 0:
        return
    for row in prange(n_ * h, nogil=True, num_threads=n_threads, schedule="static"):
        n = row // h
        ih = row - n * h
        if floating is float:
            dlp_max_back_row_f32(&dy_nhwc[n, 0, 0, 0], &argmax_nhwc[n, 0, 0, 0], &dx_out_nhwc[n, ih, 0, 0], ih, g)
        else:
            dlp_max_back_row_f64(&dy_nhwc[n, 0, 0, 0], &argmax_nhwc[n, 0, 0, 0], &dx_out_nhwc[n, ih, 0, 0], ih, g)


def avg_pool2d_forward(const floating[:, :, :, ::1] x_nhwc, int pool_h, int pool_w,
                       int stride_h, int stride_w, int pad_top, int pad_left,
                       floating[:, :, :, ::1] y_out_nhwc, int n_threads=1):
    """y[n, oh, ow, c] = mean of x[n, ih, iw, c] over the real (unpadded) cells of the window.

    x_nhwc: (N, H, W, C) float32/64, C-contiguous, IN
    y_out_nhwc: (N, OH, OW, C) same dtype, C-contiguous, OUT
    """
    cdef Py_ssize_t n_ = x_nhwc.shape[0], oh_ = y_out_nhwc.shape[1], row, n, oh
    cdef dlp_geom g = _geometry(x_nhwc.shape[1], x_nhwc.shape[2], x_nhwc.shape[3], oh_, y_out_nhwc.shape[2],
                                pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)
    if n_ == 0 or oh_ == 0 or g.ow == 0 or g.c == 0:
        return
    for row in prange(n_ * oh_, nogil=True, num_threads=n_threads, schedule="static"):
        n = row // oh_
        oh = row - n * oh_
        if floating is float:
            dlp_avg_row_f32(&x_nhwc[n, 0, 0, 0], &y_out_nhwc[n, oh, 0, 0], oh, g)
        else:
            dlp_avg_row_f64(&x_nhwc[n, 0, 0, 0], &y_out_nhwc[n, oh, 0, 0], oh, g)


def avg_pool2d_backward(const floating[:, :, :, ::1] dy_nhwc, int pool_h, int pool_w,
                        int stride_h, int stride_w, int pad_top, int pad_left,
                        floating[:, :, :, ::1] dx_out_nhwc, int n_threads=1):
    """dx[n, ih, iw, c] = sum of dy[n, oh, ow, c] / count(oh, ow) over the windows holding (ih, iw).

    dy_nhwc: (N, OH, OW, C) float32/64, C-contiguous, IN
    dx_out_nhwc: (N, H, W, C) same dtype, C-contiguous, OUT (fully overwritten)
    count(oh, ow) is the number of real cells in the window, as in avg_pool2d_forward.
    """
    cdef Py_ssize_t n_ = dx_out_nhwc.shape[0], h = dx_out_nhwc.shape[1], row, n, ih
    cdef dlp_geom g = _geometry(h, dx_out_nhwc.shape[2], dx_out_nhwc.shape[3], dy_nhwc.shape[1], dy_nhwc.shape[2],
                                pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)
    if n_ == 0 or h == 0 or g.w == 0 or g.c == 0:
        return
    for row in prange(n_ * h, nogil=True, num_threads=n_threads, schedule="static"):
        n = row // h
        ih = row - n * h
        if floating is float:
            dlp_avg_back_row_f32(&dy_nhwc[n, 0, 0, 0], &dx_out_nhwc[n, ih, 0, 0], ih, g)
        else:
            dlp_avg_back_row_f64(&dy_nhwc[n, 0, 0, 0], &dx_out_nhwc[n, ih, 0, 0], ih, g)


# ---- 2x2 windows, stride 2, no padding (the common case) -------------------------------------
# STREAM: max_pool2d_2x2_backward writes a dx of at least this many bytes with non-temporal stores
# (where the AVX-512 row runs and the rows are 16-byte aligned). Measured in the CNN training
# step, 1 thread: the (64, 30, 30, 32) backward 0.8-1.0 -> 0.48 ms, step min 14.0 -> 13.6 ms
# (A/B over 16 alternating blocks); streaming the 2.8 MB dx of (64, 13, 13, 64) as well gained
# nothing, its consumer (the next activation backward) reads it back from cache.
cdef Py_ssize_t _stream_min_bytes = 1 << 22


def _set_stream_min_bytes(Py_ssize_t n):
    """Set the dx size from which max_pool2d_2x2_backward streams its stores (tests set 0);
    returns the previous one."""
    global _stream_min_bytes
    previous, _stream_min_bytes = _stream_min_bytes, n
    return previous


def _allow_intrinsics(bint allowed):
    """Whether max_pool2d_2x2_backward may take its AVX-512 intrinsics row (where the CPU has
    AVX-512); False runs the portable C row, so tests cover both on any machine."""
    global dlp_intrinsics_allowed
    dlp_intrinsics_allowed = 1 if allowed else 0


# Output row (n, oh) reads input rows 2oh and 2oh+1; the windows tile the input but for the last
# row/column when H/W is odd, which the backward zeroes (floor division drops them, as "valid").
cdef inline void _max2x2_row(const floating* x0, const floating* x1, floating* y, uint8_t* am,
                             Py_ssize_t ow, Py_ssize_t c) noexcept nogil:
    if floating is float:
        dlp_max2x2_row_f32(x0, x1, y, am, ow, c)
    else:
        dlp_max2x2_row_f64(x0, x1, y, am, ow, c)


def max_pool2d_2x2_forward(const floating[:, :, :, ::1] x_nhwc, floating[:, :, :, ::1] y_out_nhwc,
                           uint8_t[:, :, :, ::1] argmax_out_nhwc=None, int n_threads=1):
    """max_pool2d_forward with 2x2 windows, stride 2, no padding; OH = H // 2, OW = W // 2.

    x_nhwc: (N, H, W, C) float32/64, C-contiguous, IN
    y_out_nhwc: (N, OH, OW, C) same dtype, C-contiguous, OUT
    argmax_out_nhwc: (N, OH, OW, C) uint8, C-contiguous, OUT, or None: kh * 2 + kw of the first
        maximum in its window (the offsets of max_pool2d_forward_argmax, one byte each)
    """
    cdef Py_ssize_t n_ = x_nhwc.shape[0], c_ = x_nhwc.shape[3]
    cdef Py_ssize_t oh_ = y_out_nhwc.shape[1], ow_ = y_out_nhwc.shape[2], row, n, oh
    cdef bint record = argmax_out_nhwc is not None
    cdef uint8_t* ap = NULL
    if n_ == 0 or oh_ == 0 or ow_ == 0 or c_ == 0:
        return
    for row in prange(n_ * oh_, nogil=True, num_threads=n_threads, schedule="static"):
        n = row // oh_
        oh = row - n * oh_
        if record:
            ap = &argmax_out_nhwc[n, oh, 0, 0]
        _max2x2_row(&x_nhwc[n, 2 * oh, 0, 0], &x_nhwc[n, 2 * oh + 1, 0, 0], &y_out_nhwc[n, oh, 0, 0],
                    ap, ow_, c_)


cdef inline void _zero_tail(floating* dx_row, Py_ssize_t w, Py_ssize_t c, Py_ssize_t ow) noexcept nogil:
    """Zero the input columns past 2 * OW of one dx row (the last one when W is odd)."""
    if w > 2 * ow:
        memset(dx_row + 2 * ow * c, 0, (w - 2 * ow) * c * sizeof(floating))


def max_pool2d_2x2_backward(const floating[:, :, :, ::1] dy_nhwc, const uint8_t[:, :, :, ::1] argmax_nhwc,
                            floating[:, :, :, ::1] dx_out_nhwc, int n_threads=1):
    """max_pool2d_backward for 2x2 windows, stride 2, no padding: each input cell is written once.

    dy_nhwc: (N, OH, OW, C) float32/64, C-contiguous, IN
    argmax_nhwc: (N, OH, OW, C) uint8, C-contiguous, IN (from max_pool2d_2x2_forward)
    dx_out_nhwc: (N, H, W, C) same dtype as dy, C-contiguous, OUT (fully overwritten)
    """
    cdef Py_ssize_t n_ = dx_out_nhwc.shape[0], h = dx_out_nhwc.shape[1], w = dx_out_nhwc.shape[2]
    cdef Py_ssize_t c_ = dx_out_nhwc.shape[3], oh_ = dy_nhwc.shape[1], ow_ = dy_nhwc.shape[2]
    cdef Py_ssize_t row, n, oh
    cdef floating* dx0
    cdef floating* dx1
    cdef int stream = n_ * h * w * c_ * <Py_ssize_t>sizeof(floating) >= _stream_min_bytes
    if n_ == 0 or h == 0 or w == 0 or c_ == 0:
        return
    for row in prange(n_ * oh_, nogil=True, num_threads=n_threads, schedule="static"):
        n = row // oh_
        oh = row - n * oh_
        dx0 = &dx_out_nhwc[n, 2 * oh, 0, 0]
        dx1 = &dx_out_nhwc[n, 2 * oh + 1, 0, 0]
        if floating is float:
            dlp_max2x2_back_row_f32_any(&dy_nhwc[n, oh, 0, 0], &argmax_nhwc[n, oh, 0, 0], dx0, dx1, ow_, c_, stream)
        else:
            dlp_max2x2_back_row_f64_any(&dy_nhwc[n, oh, 0, 0], &argmax_nhwc[n, oh, 0, 0], dx0, dx1, ow_, c_, stream)
        _zero_tail(dx0, w, c_, ow_)
        _zero_tail(dx1, w, c_, ow_)
        if h > 2 * oh_ and oh == oh_ - 1:
            memset(&dx_out_nhwc[n, 2 * oh_, 0, 0], 0, (h - 2 * oh_) * w * c_ * sizeof(floating))


def avg_pool2d_2x2_forward(const floating[:, :, :, ::1] x_nhwc, floating[:, :, :, ::1] y_out_nhwc,
                           int n_threads=1):
    """avg_pool2d_forward with 2x2 windows, stride 2, no padding; OH = H // 2, OW = W // 2.

    x_nhwc: (N, H, W, C) float32/64, C-contiguous, IN
    y_out_nhwc: (N, OH, OW, C) same dtype, C-contiguous, OUT
    """
    cdef Py_ssize_t n_ = x_nhwc.shape[0], c_ = x_nhwc.shape[3]
    cdef Py_ssize_t oh_ = y_out_nhwc.shape[1], ow_ = y_out_nhwc.shape[2], row, n, oh
    if n_ == 0 or oh_ == 0 or ow_ == 0 or c_ == 0:
        return
    for row in prange(n_ * oh_, nogil=True, num_threads=n_threads, schedule="static"):
        n = row // oh_
        oh = row - n * oh_
        if floating is float:
            dlp_avg2x2_row_f32(&x_nhwc[n, 2 * oh, 0, 0], &x_nhwc[n, 2 * oh + 1, 0, 0],
                               &y_out_nhwc[n, oh, 0, 0], ow_, c_)
        else:
            dlp_avg2x2_row_f64(&x_nhwc[n, 2 * oh, 0, 0], &x_nhwc[n, 2 * oh + 1, 0, 0],
                               &y_out_nhwc[n, oh, 0, 0], ow_, c_)


def avg_pool2d_2x2_backward(const floating[:, :, :, ::1] dy_nhwc, floating[:, :, :, ::1] dx_out_nhwc,
                            int n_threads=1):
    """avg_pool2d_backward for 2x2 windows, stride 2, no padding: dx = dy / 4 over each window.

    dy_nhwc: (N, OH, OW, C) float32/64, C-contiguous, IN
    dx_out_nhwc: (N, H, W, C) same dtype, C-contiguous, OUT (fully overwritten)
    """
    cdef Py_ssize_t n_ = dx_out_nhwc.shape[0], h = dx_out_nhwc.shape[1], w = dx_out_nhwc.shape[2]
    cdef Py_ssize_t c_ = dx_out_nhwc.shape[3], oh_ = dy_nhwc.shape[1], ow_ = dy_nhwc.shape[2]
    cdef Py_ssize_t row, n, oh
    cdef floating* dx0
    cdef floating* dx1
    if n_ == 0 or h == 0 or w == 0 or c_ == 0:
        return
    for row in prange(n_ * oh_, nogil=True, num_threads=n_threads, schedule="static"):
        n = row // oh_
        oh = row - n * oh_
        dx0 = &dx_out_nhwc[n, 2 * oh, 0, 0]
        dx1 = &dx_out_nhwc[n, 2 * oh + 1, 0, 0]
        if floating is float:
            dlp_avg2x2_back_row_f32(&dy_nhwc[n, oh, 0, 0], dx0, dx1, ow_, c_)
        else:
            dlp_avg2x2_back_row_f64(&dy_nhwc[n, oh, 0, 0], dx0, dx1, ow_, c_)
        _zero_tail(dx0, w, c_, ow_)
        _zero_tail(dx1, w, c_, ow_)
        if h > 2 * oh_ and oh == oh_ - 1:
            memset(&dx_out_nhwc[n, 2 * oh_, 0, 0], 0, (h - 2 * oh_) * w * c_ * sizeof(floating))


# ---- global pooling: one sample per prange iteration, L = H * W rows of C channels -------------
def global_avg_pool_forward(const floating[:, :, ::1] x_nlc, floating[:, ::1] y_out_nc, int n_threads=1):
    """y[n, c] = mean of x[n, l, c] over l, summed in row order.

    x_nlc: (N, L, C) float32/64, C-contiguous, IN (L = H * W of an NHWC input, L >= 1)
    y_out_nc: (N, C) same dtype, C-contiguous, OUT
    """
    cdef Py_ssize_t n_ = x_nlc.shape[0], l = x_nlc.shape[1], c_ = x_nlc.shape[2], n
    if n_ == 0 or l == 0 or c_ == 0:
        return
    for n in prange(n_, nogil=True, num_threads=n_threads, schedule="static"):
        if floating is float:
            dlp_global_avg_f32(&x_nlc[n, 0, 0], &y_out_nc[n, 0], l, c_)
        else:
            dlp_global_avg_f64(&x_nlc[n, 0, 0], &y_out_nc[n, 0], l, c_)


def global_avg_pool_backward(const floating[:, ::1] dy_nc, floating[:, :, ::1] dx_out_nlc, int n_threads=1):
    """dx[n, l, c] = dy[n, c] / L.

    dy_nc: (N, C) float32/64, C-contiguous, IN
    dx_out_nlc: (N, L, C) same dtype, C-contiguous, OUT (fully overwritten)
    """
    cdef Py_ssize_t n_ = dx_out_nlc.shape[0], l = dx_out_nlc.shape[1], c_ = dx_out_nlc.shape[2], n
    if n_ == 0 or l == 0 or c_ == 0:
        return
    for n in prange(n_, nogil=True, num_threads=n_threads, schedule="static"):
        if floating is float:
            dlp_global_avg_back_f32(&dy_nc[n, 0], &dx_out_nlc[n, 0, 0], l, c_)
        else:
            dlp_global_avg_back_f64(&dy_nc[n, 0], &dx_out_nlc[n, 0, 0], l, c_)


def global_max_pool_forward(const floating[:, :, ::1] x_nlc, floating[:, ::1] y_out_nc, int n_threads=1):
    """y[n, c] = max of x[n, l, c] over l; a NaN anywhere gives NaN (as numpy.max).

    x_nlc: (N, L, C) float32/64, C-contiguous, IN (L >= 1)
    y_out_nc: (N, C) same dtype, C-contiguous, OUT
    """
    cdef Py_ssize_t n_ = x_nlc.shape[0], l = x_nlc.shape[1], c_ = x_nlc.shape[2], n
    if n_ == 0 or l == 0 or c_ == 0:
        return
    for n in prange(n_, nogil=True, num_threads=n_threads, schedule="static"):
        if floating is float:
            dlp_global_max_f32(&x_nlc[n, 0, 0], &y_out_nc[n, 0], l, c_)
        else:
            dlp_global_max_f64(&x_nlc[n, 0, 0], &y_out_nc[n, 0], l, c_)


def global_max_pool_backward(const floating[:, :, ::1] x_nlc, const floating[:, ::1] y_nc,
                             const floating[:, ::1] dy_nc, floating[:, :, ::1] dx_out_nlc, int n_threads=1):
    """dx[n, l, c] = dy[n, c] / k where x[n, l, c] == y[n, c], k such cells (ties share, as
    TensorFlow's reduce_max gradient); 0 elsewhere; NaN for the whole (n, c) when k == 0.

    x_nlc: (N, L, C) float32/64, C-contiguous, IN (the forward input)
    y_nc: (N, C) same dtype, C-contiguous, IN (global_max_pool_forward's output)
    dy_nc: (N, C) same dtype, C-contiguous, IN
    dx_out_nlc: (N, L, C) same dtype, C-contiguous, OUT (fully overwritten)
    """
    cdef Py_ssize_t n_ = x_nlc.shape[0], l = x_nlc.shape[1], c_ = x_nlc.shape[2], n
    if n_ == 0 or l == 0 or c_ == 0:
        return
    for n in prange(n_, nogil=True, num_threads=n_threads, schedule="static"):
        if floating is float:
            dlp_global_max_back_f32(&x_nlc[n, 0, 0], &y_nc[n, 0], &dy_nc[n, 0], &dx_out_nlc[n, 0, 0], l, c_)
        else:
            dlp_global_max_back_f64(&x_nlc[n, 0, 0], &y_nc[n, 0], &dy_nc[n, 0], &dx_out_nlc[n, 0, 0], l, c_)
