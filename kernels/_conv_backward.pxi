# Included by _conv.pyx: conv2d_backward_input and conv2d_backward_weight (paths, threading,
# determinism and legend in _conv.pyx's Design block).

# ---- backward: input -------------------------------------------------------------------------
cdef void _direct_backward_input_row(const floating* dy, const floating* w, const Geom* g,
                                     Py_ssize_t row, floating* dx) noexcept nogil:
    """dx[n, ih, :, :] for row = n*H + ih (CG == 1): a gather over the taps that reach it."""
    cdef Py_ssize_t n = row // g.h
    cdef Py_ssize_t ih = row - n * g.h
    cdef Py_ssize_t kh, kw, t, u, oh, ow, iw, c, m
    cdef Py_ssize_t mult = g.og, nc = g.c, no = g.o
    cdef floating* dxr = dx + row * g.w * nc
    cdef floating* dxp
    cdef const floating* dyp
    cdef const floating* wp
    cdef floating s
    _zero(dxr, g.w * nc)
    for kh in range(g.kh):
        t = ih + g.ph - kh * g.dh
        if t < 0 or t % g.sh != 0:
            continue
        oh = t // g.sh
        if oh >= g.oh:
            continue
        for iw in range(g.w):
            dxp = dxr + iw * nc
            for kw in range(g.kw):
                u = iw + g.pw - kw * g.dw
                if u < 0 or u % g.sw != 0:
                    continue
                ow = u // g.sw
                if ow >= g.ow:
                    continue
                dyp = dy + ((n * g.oh + oh) * g.ow + ow) * no
                wp = w + (kh * g.kw + kw) * no
                if mult == 1:
                    for c in range(nc):
                        dxp[c] += dyp[c] * wp[c]
                else:
                    for c in range(nc):
                        s = 0
                        for m in range(mult):
                            s = s + dyp[c * mult + m] * wp[c * mult + m]
                        dxp[c] += s


cdef void _col2im_block(const floating* dcol, const Geom* g, Py_ssize_t n, Py_ssize_t oh0,
                        Py_ssize_t oh1, Py_ssize_t ow0, Py_ssize_t ow1, Py_ssize_t grp,
                        Py_ssize_t ih0, Py_ssize_t ih1, Py_ssize_t iw0, Py_ssize_t iw1,
                        floating* dx) noexcept nogil:
    """dx[n, ih, iw, grp*CG:] += dcol[pixel, (kh, kw, :)] for the output pixels (oh, ow) of the
    block, keeping only the input positions inside [ih0, ih1) x [iw0, iw1)."""
    cdef Py_ssize_t oh, ow, kh, kw, ih, iw, c, iw_first
    cdef Py_ssize_t cg = g.cg, kwc = g.kw * g.cg
    cdef const floating* src = dcol
    cdef const floating* s
    cdef floating* d
    cdef bint vector = False  # AVX-512 adds, whole runs of KW taps where contiguous
    if floating is float:
        vector = _OWN_SGEMM
    for oh in range(oh0, oh1):
        for ow in range(ow0, ow1):
            for kh in range(g.kh):
                ih = oh * g.sh - g.ph + kh * g.dh
                if ih >= ih0 and ih < ih1:
                    iw_first = ow * g.sw - g.pw
                    if (vector and kwc >= 16 and g.dw == 1 and cg == g.c and iw_first >= iw0
                            and iw_first + g.kw <= iw1):
                        if floating is float:
                            dl_add_to(dx + ((n * g.h + ih) * g.w + iw_first) * g.c,
                                      src + kh * kwc, kwc)
                        continue
                    for kw in range(g.kw):
                        iw = ow * g.sw - g.pw + kw * g.dw
                        if iw >= iw0 and iw < iw1:
                            d = dx + ((n * g.h + ih) * g.w + iw) * g.c + grp * cg
                            s = src + kh * kwc + kw * cg
                            if vector and cg >= 16:
                                if floating is float:
                                    dl_add_to(d, s, cg)
                            else:
                                for c in range(cg):
                                    d[c] += s[c]
            src += g.k


cdef void _backward_input_task(const floating* dy, const floating* w, const floating* wt,
                               const Geom* g, Py_ssize_t n,
                               Py_ssize_t ih0, Py_ssize_t ih1, Py_ssize_t iw0, Py_ssize_t iw1,
                               Py_ssize_t chunk, floating* dcol, floating* dx) noexcept nogil:
    """dx[n, ih0:ih1, iw0:iw1, :] (im2col path): dcol = dy @ W^T over the output pixels that reach
    the band (in blocks of at most `chunk` pixels), then col2im restricted to the band. wt: W^T
    (C_out, K) when the caller transposed it (the own float32 GEMM takes B untransposed), or NULL."""
    cdef Py_ssize_t ih, grp, rows, m
    cdef Py_ssize_t oh, oh1, ow0, ow1
    cdef Py_ssize_t ext_h = (g.kh - 1) * g.dh, ext_w = (g.kw - 1) * g.dw
    cdef Py_ssize_t oh_lo = _ceil_div(ih0 + g.ph - ext_h, g.sh)
    cdef Py_ssize_t oh_hi = _floor_div(ih1 - 1 + g.ph, g.sh) + 1
    cdef Py_ssize_t ow_lo = _ceil_div(iw0 + g.pw - ext_w, g.sw)
    cdef Py_ssize_t ow_hi = _floor_div(iw1 - 1 + g.pw, g.sw) + 1
    cdef bint full_row
    for ih in range(ih0, ih1):
        _zero(dx + ((n * g.h + ih) * g.w + iw0) * g.c, (iw1 - iw0) * g.c)
    if oh_lo < 0:
        oh_lo = 0
    if oh_hi > g.oh:
        oh_hi = g.oh
    if ow_lo < 0:
        ow_lo = 0
    if ow_hi > g.ow:
        ow_hi = g.ow
    if oh_lo >= oh_hi or ow_lo >= ow_hi or g.og == 0:
        return
    full_row = ow_lo == 0 and ow_hi == g.ow and g.ow <= chunk
    oh = oh_lo
    while oh < oh_hi:
        if full_row:
            rows = chunk // g.ow
            if rows > oh_hi - oh:
                rows = oh_hi - oh
            oh1 = oh + rows
            ow0 = 0
            ow1 = g.ow
        else:
            oh1 = oh + 1
            ow0 = ow_lo
        while True:
            if not full_row:
                ow1 = ow0 + chunk
                if ow1 > ow_hi:
                    ow1 = ow_hi
            m = (oh1 - oh) * (ow1 - ow0)
            for grp in range(g.groups):
                if wt != NULL:
                    _gemm(g.own, False, False, m, g.k, g.og, dy + ((n * g.oh + oh) * g.ow + ow0) * g.o + grp * g.og,
                          g.o, wt + grp * g.og * g.k, g.k, 0.0, dcol, g.k)
                else:
                    _gemm(g.own, False, True, m, g.k, g.og, dy + ((n * g.oh + oh) * g.ow + ow0) * g.o + grp * g.og,
                          g.o, w + grp * g.og, g.o, 0.0, dcol, g.k)
                _col2im_block(dcol, g, n, oh, oh1, ow0, ow1, grp, ih0, ih1, iw0, iw1, dx)
            if full_row or ow1 >= ow_hi:
                break
            ow0 = ow1
        oh = oh1


cdef void _backward_input_images(const floating* dy, const floating* w, const floating* wt,
                                 const Geom* g, Py_ssize_t n0, Py_ssize_t n1, floating* dcol,
                                 floating* dx) noexcept nogil:
    """dx[n0:n1] (im2col path, whole images): one dcol = dy @ W^T over all their output pixels
    (at most a chunk), then col2im image by image. The same sums in the same order as
    _backward_input_task over whole images."""
    cdef Py_ssize_t plane = g.oh * g.ow, m = (n1 - n0) * plane, grp, img
    _zero(dx + n0 * g.h * g.w * g.c, (n1 - n0) * g.h * g.w * g.c)
    for grp in range(g.groups):
        if wt != NULL:
            _gemm(g.own, False, False, m, g.k, g.og, dy + n0 * plane * g.o + grp * g.og, g.o,
                  wt + grp * g.og * g.k, g.k, 0.0, dcol, g.k)
        else:
            _gemm(g.own, False, True, m, g.k, g.og, dy + n0 * plane * g.o + grp * g.og, g.o,
                  w + grp * g.og, g.o, 0.0, dcol, g.k)
        for img in range(n0, n1):
            _col2im_block(dcol + (img - n0) * plane * g.k, g, img, 0, g.oh, 0, g.ow, grp,
                          0, g.h, 0, g.w, dx)


def conv2d_backward_input(const floating[:, :, :, ::1] dy_nhwo, const floating[:, :, :, ::1] w_hwio,
                          int stride_h, int stride_w, int pad_h, int pad_w, int dilation_h,
                          int dilation_w, int groups, floating[:, :, :, ::1] dx_nhwc,
                          int n_threads=1):
    """dx = the gradient of conv2d_forward's x for output gradient dy (also: transposed conv).

    dy_nhwo: (N, OH, OW, C_out) float32/64, C-contiguous, IN
    w_hwio: (KH, KW, C_in/G, C_out) same dtype, C-contiguous, IN
    dx_nhwc: (N, H, W, C_in) same dtype, C-contiguous, OUT (every element written)

    dx[n, ih, iw, c] = sum of dy[n, i, j, o] * w[kh, kw, c', o] over ih = i*stride_h - pad_h +
    kh*dilation_h, iw = j*stride_w - pad_w + kw*dilation_w (same arguments as the forward; H and W
    come from dx, so positions no output reads get 0). Conv2DTranspose's forward is this kernel.
    """
    cdef Geom g
    cdef Py_ssize_t total, chunk, n_tasks, bands, band, extent, i, b, a0, a1, p0, p1, rows
    cdef Py_ssize_t images = 0  # > 0: each task takes this many whole images
    cdef floating* buf = NULL
    cdef floating* work = NULL
    cdef floating* wt = NULL
    cdef int threads
    cdef bint split_rows
    _geom(&g, dx_nhwc.shape[0], dx_nhwc.shape[1], dx_nhwc.shape[2], dx_nhwc.shape[3],
          dy_nhwo.shape[1], dy_nhwo.shape[2], dy_nhwo.shape[3], w_hwio.shape[0], w_hwio.shape[1],
          stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups)
    if floating is float:
        _choose_own(&g)
    if g.n * g.h * g.w * g.c == 0:
        return
    if g.oh * g.ow * g.o == 0:
        dx_nhwc[...] = 0
        return
    if floating is float:
        if _winograd_applies(&g, W_INPUT_GRAD):
            # dx = conv(dy, w rotated, channels swapped) with paddings 2 - pad, output (H, W)
            _winograd(&dy_nhwo[0, 0, 0, 0], g.n, g.oh, g.ow, g.o, 2 - g.ph, 2 - g.pw, g.h, g.w,
                      &w_hwio[0, 0, 0, 0], g.c, True, NULL, False, False, NULL, &dx_nhwc[0, 0, 0, 0],
                      n_threads)
            return
    total = g.n * g.oh * g.ow
    chunk = _chunk_pixels(&g, total, sizeof(floating))
    # tasks: pixel chunks (pointwise), input rows (direct), or (image, band) (im2col)
    if g.path == P_POINTWISE:
        n_tasks = (total + chunk - 1) // chunk
    elif g.path == P_DIRECT:
        n_tasks = g.n * g.h
    else:
        split_rows = g.h > 1
        extent = g.h if split_rows else g.w
        bands = 1
        if g.n < _MIN_TASKS:
            bands = (_MIN_TASKS + g.n - 1) // g.n
            if bands > extent:
                bands = extent
        n_tasks = g.n * bands
        if bands == 1 and g.oh * g.ow * 2 <= chunk:
            images = min(chunk // (g.oh * g.ow), (g.n + _MIN_TASKS - 1) // _MIN_TASKS)
            if images > 1:
                n_tasks = (g.n + images - 1) // images
            else:
                images = 0
    if n_threads > n_tasks:
        n_threads = <int>n_tasks
    if floating is float:
        if g.own >= 0 and g.path != P_DIRECT:
            wt = <floating*>malloc(g.k * g.o * sizeof(floating) + 64)
            if wt == NULL:
                raise MemoryError()
            dl_transpose(&w_hwio[0, 0, 0, 0], g.o, g.k, g.o, wt, g.k)
    threads = dl_blas_serial_enter(n_threads)
    work = <floating*>malloc(threads * (chunk * g.k + 16) * sizeof(floating))  # per-thread dcol
    try:
        if work == NULL:
            raise MemoryError()
        with nogil, parallel(num_threads=threads):
            buf = work + threadid() * (chunk * g.k + 16)
            for i in prange(n_tasks, schedule="dynamic"):
                if g.path == P_POINTWISE:
                    p0 = i * chunk
                    p1 = min(p0 + chunk, total)
                    for b in range(g.groups):
                        if wt != NULL:
                            _gemm(g.own, False, False, p1 - p0, g.cg, g.og, &dy_nhwo[0, 0, 0, 0] + p0 * g.o + b * g.og,
                                  g.o, wt + b * g.og * g.cg, g.cg, 0.0,
                                  &dx_nhwc[0, 0, 0, 0] + p0 * g.c + b * g.cg, g.c)
                        else:
                            _gemm(g.own, False, True, p1 - p0, g.cg, g.og, &dy_nhwo[0, 0, 0, 0] + p0 * g.o + b * g.og,
                                  g.o, &w_hwio[0, 0, 0, 0] + b * g.og, g.o, 0.0,
                                  &dx_nhwc[0, 0, 0, 0] + p0 * g.c + b * g.cg, g.c)
                elif g.path == P_DIRECT:
                    _direct_backward_input_row(&dy_nhwo[0, 0, 0, 0], &w_hwio[0, 0, 0, 0], &g, i,
                                               &dx_nhwc[0, 0, 0, 0])
                elif images > 0:
                    _backward_input_images(&dy_nhwo[0, 0, 0, 0], &w_hwio[0, 0, 0, 0], wt, &g,
                                           i * images, min((i + 1) * images, g.n), buf,
                                           &dx_nhwc[0, 0, 0, 0])
                else:
                    band = i % bands
                    a0 = band * extent // bands
                    a1 = (band + 1) * extent // bands
                    if split_rows:
                        _backward_input_task(&dy_nhwo[0, 0, 0, 0], &w_hwio[0, 0, 0, 0], wt, &g,
                                             i // bands, a0, a1, 0, g.w, chunk, buf,
                                             &dx_nhwc[0, 0, 0, 0])
                    else:
                        _backward_input_task(&dy_nhwo[0, 0, 0, 0], &w_hwio[0, 0, 0, 0], wt, &g,
                                             i // bands, 0, g.h, a0, a1, chunk, buf,
                                             &dx_nhwc[0, 0, 0, 0])
    finally:
        dl_blas_serial_exit()
        free(wt)
        free(work)


# ---- backward: weight ------------------------------------------------------------------------
cdef void _direct_backward_weight(const floating* x, const floating* dy, const Geom* g,
                                  Py_ssize_t p0, Py_ssize_t p1, floating* dw) noexcept nogil:
    """dw[kh, kw, 0, c*M + m] += sum_p x[tap pixel, c] dy[p, c*M + m] over p in [p0, p1) (CG == 1)."""
    cdef Py_ssize_t plane = g.oh * g.ow
    cdef Py_ssize_t n = p0 // plane
    cdef Py_ssize_t r = p0 - n * plane
    cdef Py_ssize_t oh = r // g.ow
    cdef Py_ssize_t ow = r - oh * g.ow
    cdef Py_ssize_t p, kh, kw, ih, iw, c, m
    cdef Py_ssize_t mult = g.og, nc = g.c, no = g.o
    cdef const floating* xp
    cdef const floating* dyp
    cdef floating* wp
    cdef floating v
    for p in range(p0, p1):
        dyp = dy + p * no
        for kh in range(g.kh):
            ih = oh * g.sh - g.ph + kh * g.dh
            if ih < 0 or ih >= g.h:
                continue
            for kw in range(g.kw):
                iw = ow * g.sw - g.pw + kw * g.dw
                if iw < 0 or iw >= g.w:
                    continue
                xp = x + ((n * g.h + ih) * g.w + iw) * nc
                wp = dw + (kh * g.kw + kw) * no
                if mult == 1:
                    for c in range(nc):
                        wp[c] += xp[c] * dyp[c]
                else:
                    for c in range(nc):
                        v = xp[c]
                        for m in range(mult):
                            wp[c * mult + m] += v * dyp[c * mult + m]
        ow += 1
        if ow == g.ow:
            ow = 0
            oh += 1
            if oh == g.oh:
                oh = 0
                n += 1


cdef void _backward_weight_chunk(const floating* x, const floating* dy, const Geom* g,
                                 Py_ssize_t p0, Py_ssize_t p1, bint first, floating* col,
                                 floating* dw, floating* db) noexcept nogil:
    """Slot partial sums: dw (K, C_out) (+)= col^T @ dy over the chunk; db (+)= sum of dy rows."""
    cdef Py_ssize_t grp, np_ = p1 - p0
    cdef const floating* dyc = dy + p0 * g.o
    cdef double beta = 0.0 if first else 1.0
    if g.path == P_DIRECT:
        if first:
            _zero(dw, g.k * g.o)
        _direct_backward_weight(x, dy, g, p0, p1, dw)
    elif g.k > 0:
        for grp in range(g.groups):
            if g.path == P_POINTWISE:
                _gemm(g.own, True, False, g.cg, g.og, np_, x + p0 * g.c + grp * g.cg, g.c,
                      dyc + grp * g.og, g.o, beta, dw + grp * g.og, g.o)
            else:
                _im2col(x, g, p0, p1, grp, col)
                _gemm(g.own, True, False, g.k, g.og, np_, col, g.k, dyc + grp * g.og, g.o, beta,
                      dw + grp * g.og, g.o)
    if db != NULL:
        _sum_rows(db, dyc, np_, g.o, first)


cdef void _implicit_wgrad_chunk(const float* x, const float* dy, const Geom* g, Py_ssize_t n0,
                                Py_ssize_t n1, bint first, float* pad, float* dw,
                                float* db) noexcept nogil:
    """Slot partial sums over images [n0, n1): dw (K, C_out) (+)= the implicit weight gradient
    (dl_conv_tiles.h), db (+)= the sum of their dy rows."""
    cdef Py_ssize_t hp = g.oh + g.kh - 1, wp = g.ow + g.kw - 1, img
    cdef Py_ssize_t plane = hp * wp * g.c
    cdef const float* xs = x + n0 * g.h * g.w * g.c
    cdef Py_ssize_t sx = g.h * g.w * g.c, wx = g.w  # x's row width (an output cut short reads x in place)
    cdef const float* dyc = dy + n0 * g.oh * g.ow * g.o
    if _needs_pad(g):
        for img in range(n0, n1):
            _pad_image(x + img * g.h * g.w * g.c, g, pad + (img - n0) * plane)
        xs, sx, wx = pad, plane, wp
    dl_conv_wgrad(n1 - n0, xs, sx, wx, g.c, g.kh, g.kw, dyc, g.oh * g.ow * g.o, g.oh, g.ow,
                  g.o, 0.0 if first else 1.0, dw)
    if db != NULL:
        _sum_rows(db, dyc, (n1 - n0) * g.oh * g.ow, g.o, first)


def conv2d_backward_weight(const floating[:, :, :, ::1] x_nhwc, const floating[:, :, :, ::1] dy_nhwo,
                           int stride_h, int stride_w, int pad_h, int pad_w, int dilation_h,
                           int dilation_w, int groups, floating[:, :, :, ::1] dw_hwio,
                           floating[::1] db_o, int n_threads=1):
    """dw (and db) = the gradients of conv2d_forward's w (and b) for output gradient dy.

    x_nhwc: (N, H, W, C_in) float32/64, C-contiguous, IN
    dy_nhwo: (N, OH, OW, C_out) same dtype, C-contiguous, IN
    dw_hwio: (KH, KW, C_in/G, C_out) same dtype, C-contiguous, OUT
    db_o: (C_out,) same dtype, C-contiguous, OUT, or None (no bias gradient)

    dw[kh, kw, c, o] = sum_{n, i, j} x[n, i*stride_h - pad_h + kh*dilation_h,
    j*stride_w - pad_w + kw*dilation_w, g*C_in/G + c] * dy[n, i, j, o]; db[o] = sum dy[..., o].
    Summed per fixed chunk into DW_SLOTS partial sums, then in slot order: bit-identical for any
    n_threads.
    """
    cdef Geom g
    cdef Py_ssize_t total, chunk, n_chunks, n_slots, s, j, size, stride_s, e, e0, e1
    cdef Py_ssize_t n_blocks, blk
    cdef floating* col = NULL
    cdef floating* work = NULL
    cdef floating* scratch
    cdef floating* db = NULL
    cdef floating acc
    cdef int threads
    cdef bint has_db = db_o is not None
    cdef bint implicit = False
    cdef Py_ssize_t col_size
    _geom(&g, x_nhwc.shape[0], x_nhwc.shape[1], x_nhwc.shape[2], x_nhwc.shape[3],
          dy_nhwo.shape[1], dy_nhwo.shape[2], dy_nhwo.shape[3], dw_hwio.shape[0], dw_hwio.shape[1],
          stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups)
    if floating is float:
        _choose_own(&g)
    size = g.k * g.o
    total = g.n * g.oh * g.ow
    if total == 0 or g.o == 0 or size == 0:
        if size > 0:
            dw_hwio[...] = 0
        if has_db and g.o > 0:
            db_o[...] = 0
        return
    if floating is float:
        if _winograd_applies(&g, W_WEIGHT_GRAD):
            _winograd_wgrad(&x_nhwc[0, 0, 0, 0], g.n, g.h, g.w, g.c, g.ph, g.pw, &dy_nhwo[0, 0, 0, 0],
                            g.oh, g.ow, g.o, &dw_hwio[0, 0, 0, 0], &db_o[0] if has_db else NULL, n_threads)
            return
    chunk = _chunk_pixels(&g, total, sizeof(floating))
    n_chunks = (total + chunk - 1) // chunk
    col_size = chunk * g.k
    if floating is float:
        implicit = _implicit_wgrad(&g)
    if implicit:
        # chunks of whole images whose x and dy fit in COL_BYTES, at least MIN_TASKS chunks
        # when there are enough images (a function of the shapes only)
        chunk = _COL_BYTES // ((g.h * g.w * g.c + g.oh * g.ow * g.o) * sizeof(floating) + 1)
        chunk = max(1, min(chunk, (g.n + _MIN_TASKS - 1) // _MIN_TASKS))
        n_chunks = (g.n + chunk - 1) // chunk
        col_size = chunk * (g.oh + g.kh - 1) * (g.ow + g.kw - 1) * g.c if _needs_pad(&g) else 1
    n_slots = min(_DW_SLOTS, n_chunks)
    stride_s = size + g.o
    scratch = <floating*>malloc(n_slots * stride_s * sizeof(floating) + 64)
    if scratch == NULL:
        raise MemoryError()
    if n_threads > n_slots:
        n_threads = <int>n_slots
    threads = dl_blas_serial_enter(n_threads)
    work = <floating*>malloc(threads * (col_size + 16) * sizeof(floating))  # per-thread columns
    try:
        if work == NULL:
            raise MemoryError()
        with nogil, parallel(num_threads=threads):
            col = work + threadid() * (col_size + 16)
            for s in prange(n_slots, schedule="dynamic"):
                j = s
                while j < n_chunks:
                    if floating is float:
                        if implicit:
                            _implicit_wgrad_chunk(&x_nhwc[0, 0, 0, 0], &dy_nhwo[0, 0, 0, 0], &g,
                                                  j * chunk, min((j + 1) * chunk, g.n), j == s,
                                                  col, scratch + s * stride_s,
                                                  scratch + s * stride_s + size if has_db else NULL)
                            j = j + n_slots
                            continue
                    _backward_weight_chunk(&x_nhwc[0, 0, 0, 0], &dy_nhwo[0, 0, 0, 0], &g, j * chunk,
                                           min((j + 1) * chunk, total), j == s, col,
                                           scratch + s * stride_s,
                                           scratch + s * stride_s + size if has_db else NULL)
                    j = j + n_slots
        # ordered sum of the slots, in blocks of elements (disjoint outputs)
        n_blocks = (stride_s + 1023) // 1024
        with nogil, parallel(num_threads=threads):
            for blk in prange(n_blocks, schedule="static"):
                e0 = blk * 1024
                e1 = min(e0 + 1024, stride_s)
                for e in range(e0, e1):
                    if e >= size and not has_db:
                        break
                    acc = scratch[e]
                    for s in range(1, n_slots):
                        acc = acc + scratch[s * stride_s + e]
                    if e < size:
                        (&dw_hwio[0, 0, 0, 0])[e] = acc
                    else:
                        db_o[e - size] = acc
    finally:
        dl_blas_serial_exit()
        free(scratch)
        free(work)


# ---- backward: weight of the fused convolution + 2x2 max pooling ------------------------------
cdef extern from "dl_conv_pool_grad.h" nogil:
    int dlc_intrinsics_allowed
    void dlc_pool_wgrad_image_f32_any(const float* x, Py_ssize_t rs, Py_ssize_t c, const float* dy,
                                      const float* y, const uint8_t* am, Py_ssize_t ph, Py_ssize_t pw,
                                      Py_ssize_t o, const Py_ssize_t* toff, Py_ssize_t taps, int relu,
                                      float* dw, float* db, float* g4)
    void dlc_pool_wgrad_image_f64(const double* x, Py_ssize_t rs, Py_ssize_t c, const double* dy,
                                  const double* y, const uint8_t* am, Py_ssize_t ph, Py_ssize_t pw,
                                  Py_ssize_t o, const Py_ssize_t* toff, Py_ssize_t taps, int relu,
                                  double* dw, double* db, double* g4)

# Images per chunk of conv2d_pool2x2_backward_weight: the batch in at most this many chunks
# (a function of the shapes only, so the slot sums do not depend on the thread count).
POOL_WGRAD_CHUNKS = 32


def _allow_pool_wgrad_intrinsics(bint allowed):
    """Whether conv2d_pool2x2_backward_weight may take its AVX-512 form (where the CPU has it);
    False runs the portable C, so tests cover both on any machine. Returns the previous setting."""
    global dlc_intrinsics_allowed
    previous = dlc_intrinsics_allowed != 0
    dlc_intrinsics_allowed = 1 if allowed else 0
    return previous


cdef void _pool_wgrad_image(const floating* x, Py_ssize_t h, Py_ssize_t w, Py_ssize_t c,
                            Py_ssize_t pad_h, Py_ssize_t pad_w, Py_ssize_t hp, Py_ssize_t wp, bint copy,
                            const floating* dy, const floating* y, const uint8_t* am, Py_ssize_t ph,
                            Py_ssize_t pw, Py_ssize_t o, const Py_ssize_t* toff, Py_ssize_t taps,
                            bint relu, floating* dw, floating* db, floating* buf) noexcept nogil:
    """One image's sums added into dw (taps, O) and db (O); buf: hp*wp*c (the padded image, when
    `copy`) + 4*o floats of scratch."""
    cdef Py_ssize_t r, r0, r1, c0, c1, rs = wp * c if copy else w * c
    cdef floating* g4 = buf + (hp * wp * c if copy else 0)
    if copy:  # rows and columns outside the input read zeros (padding)
        memset(buf, 0, hp * wp * c * sizeof(floating))
        r0, r1 = max(0, pad_h), min(hp, h + pad_h)
        c0, c1 = max(0, pad_w), min(wp, w + pad_w)
        for r in range(r0, r1):
            memcpy(buf + (r * wp + c0) * c, x + ((r - pad_h) * w + c0 - pad_w) * c, (c1 - c0) * c * sizeof(floating))
        x = buf
    if floating is float:
        dlc_pool_wgrad_image_f32_any(x, rs, c, dy, y, am, ph, pw, o, toff, taps, relu, dw, db, g4)
    else:
        dlc_pool_wgrad_image_f64(x, rs, c, dy, y, am, ph, pw, o, toff, taps, relu, dw, db, g4)


def conv2d_pool2x2_backward_weight(const floating[:, :, :, ::1] x_nhwc, const floating[:, :, :, ::1] dy_nphwo,
                                   const floating[:, :, :, ::1] y_nphwo, const uint8_t[:, :, :, ::1] argmax_nphwo,
                                   int pad_h, int pad_w, bint relu, floating[:, :, :, ::1] dw_hwio,
                                   floating[::1] db_o, int n_threads=1):
    """dw (and db) of conv2d_pool2x2_forward(x, w, b, pad_h, pad_w, linear or relu) for the pooled
    output gradient dy, without the convolution's (2 PH, 2 PW) gradient: per output channel the
    pooling's argmax picks which input of each window multiplies the gradient.

    x_nhwc: (N, H, W, C) float32/64, C-contiguous, IN
    dy_nphwo: (N, PH, PW, O) same dtype, C-contiguous, IN (gradient of the pooled output)
    y_nphwo: (N, PH, PW, O) same dtype, C-contiguous, IN (the pooled output: relu's mask)
    argmax_nphwo: (N, PH, PW, O) uint8, C-contiguous, IN (conv2d_pool2x2_forward's argmax_out)
    dw_hwio: (KH, KW, C, O) same dtype, C-contiguous, OUT
    db_o: (O,) same dtype, C-contiguous, OUT, or None

    The same sums as max_pool2d_2x2_backward then conv2d_backward_weight; chunks of whole images
    (POOL_WGRAD_CHUNKS at most) are summed into DW_SLOTS partial sums, then in slot order:
    bit-identical for any n_threads.
    """
    cdef Py_ssize_t n = x_nhwc.shape[0], h = x_nhwc.shape[1], w = x_nhwc.shape[2], c = x_nhwc.shape[3]
    cdef Py_ssize_t ph = dy_nphwo.shape[1], pw = dy_nphwo.shape[2], o = dy_nphwo.shape[3]
    cdef Py_ssize_t kh = dw_hwio.shape[0], kw = dw_hwio.shape[1]
    cdef Py_ssize_t hp = 2 * ph + kh - 1, wp = 2 * pw + kw - 1, taps = kh * kw * c
    cdef Py_ssize_t size = taps * o, stride_s = size + o, chunk, n_chunks, n_slots, s, j, img, e, r, q, ci
    cdef Py_ssize_t img_x = h * w * c, img_y = ph * pw * o, buf_size
    cdef bint copy = pad_h != 0 or pad_w != 0 or hp > h or wp > w
    cdef bint has_db = db_o is not None
    cdef floating* scratch = NULL
    cdef floating* work = NULL
    cdef floating* buf
    cdef Py_ssize_t* toff = NULL
    cdef floating acc
    shape_x = tuple([x_nhwc.shape[i] for i in range(4)])
    shape_dy = tuple([dy_nphwo.shape[i] for i in range(4)])
    shape_y = tuple([y_nphwo.shape[i] for i in range(4)])
    shape_am = tuple([argmax_nphwo.shape[i] for i in range(4)])
    shape_dw = tuple([dw_hwio.shape[i] for i in range(4)])
    if shape_y != shape_dy or shape_am != shape_dy:
        raise ValueError(f"conv2d_pool2x2_backward_weight: y_nphwo {shape_y} and argmax_nphwo {shape_am} must "
                         f"have dy_nphwo's shape {shape_dy}")
    if shape_dy[0] != n or shape_dw[2] != c or shape_dw[3] != o:
        raise ValueError(f"conv2d_pool2x2_backward_weight: x {shape_x}, dy {shape_dy} and dw {shape_dw} do not "
                         "agree (N of x and dy, C of x and dw, O of dy and dw)")
    if has_db and db_o.shape[0] != o:
        raise ValueError(f"conv2d_pool2x2_backward_weight: db_o has {db_o.shape[0]} entries, expected {o}")
    if size == 0:
        return
    if n == 0 or ph == 0 or pw == 0:
        dw_hwio[...] = 0
        if has_db:
            db_o[...] = 0
        return
    chunk = (n + POOL_WGRAD_CHUNKS - 1) // POOL_WGRAD_CHUNKS
    n_chunks = (n + chunk - 1) // chunk
    n_slots = min(_DW_SLOTS, n_chunks)
    if n_threads > n_slots:
        n_threads = <int>n_slots
    if n_threads < 1:
        n_threads = 1
    buf_size = (hp * wp * c if copy else 0) + 4 * o + 16
    scratch = <floating*>calloc(n_slots * stride_s, sizeof(floating))
    work = <floating*>malloc(n_threads * buf_size * sizeof(floating))
    toff = <Py_ssize_t*>malloc(taps * sizeof(Py_ssize_t))
    try:
        if scratch == NULL or work == NULL or toff == NULL:
            raise MemoryError()
        for r in range(kh):
            for q in range(kw):
                for ci in range(c):
                    toff[(r * kw + q) * c + ci] = r * (wp if copy else w) * c + q * c + ci
        with nogil, parallel(num_threads=n_threads):
            buf = work + threadid() * buf_size
            for s in prange(n_slots, schedule="dynamic"):
                j = s
                while j < n_chunks:
                    for img in range(j * chunk, min((j + 1) * chunk, n)):
                        _pool_wgrad_image(&x_nhwc[0, 0, 0, 0] + img * img_x, h, w, c, pad_h, pad_w, hp, wp,
                                          copy, &dy_nphwo[0, 0, 0, 0] + img * img_y,
                                          &y_nphwo[0, 0, 0, 0] + img * img_y,
                                          &argmax_nphwo[0, 0, 0, 0] + img * img_y, ph, pw, o, toff, taps,
                                          relu, scratch + s * stride_s, scratch + s * stride_s + size, buf)
                    j = j + n_slots
        for e in range(size + (o if has_db else 0)):
            acc = scratch[e]
            for s in range(1, n_slots):
                acc = acc + scratch[s * stride_s + e]
            if e < size:
                (&dw_hwio[0, 0, 0, 0])[e] = acc
            else:
                db_o[e - size] = acc
    finally:
        free(scratch)
        free(work)
        free(toff)
