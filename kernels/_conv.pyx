# Design: 2-D convolution on NHWC inputs and HWIO kernels (Keras layouts), forward and backward,
# with strides, zero padding (top/left given; bottom/right implied by the output size), dilation
# and groups. Conv1D runs here with H = 1; Conv2DTranspose's forward IS conv2d_backward_input.
#
# Paths (chosen per call from the shapes, select_path tells which):
# - "pointwise" (1x1, stride 1, no padding): the NHWC buffer already is the (pixels, C_in)
#   matrix, so each chunk is one GEMM on it (and dx = dy @ W^T, dW = x^T @ dy) with no copy.
# - "direct" (one input channel per group with groups > 1: depthwise convolutions): plain loops
#   over taps, vectorized over the channels; a GEMM with K = KH*KW and N = depth_multiplier per
#   group would spend its time in call overhead.
# - "im2col" (everything else): a chunk of output pixels is unfolded into a per-thread column
#   buffer (P, KH*KW*C_in/groups), taps in (kh, kw, c) order so that the HWIO kernel is already
#   the (K, C_out) matrix, then one GEMM per group. Where a pixel's KW taps are contiguous in
#   memory (dilation 1, groups 1, inside the image: every stride-1 3x3 interior pixel), the row
#   of taps is one copy. The backward input runs dcol = dy @ W^T per (image, band), or per group
#   of whole small images (one GEMM over all their pixels), then col2im.
# - float32 on CPUs with AVX-512 (OWN_SGEMM): every product runs on the own register-tiled GEMM
#   of dl_sgemm.h instead of scipy's OpenBLAS, bias + linear/relu fused into its stores, and the
#   forward of stride-1, dilation-1, one-group convolutions is an implicit GEMM (dl_conv_tiles.h:
#   the tiles read the input, or one zero-padded copy of the image, as overlapping rows; no
#   im2col) where at most a quarter of its "wide" pixels are dropped or K <= 32; their weight
#   gradient too (tiles of 14 taps x 32 channels summed over groups of whole images; no pixel
#   is dropped there, so always: 3x3 32->64 @15x15 batch 64 2.33 -> 1.94 ms, 1->32 @32x32
#   0.92 -> 0.58, 64->128 @6x6 0.81 -> 0.78; batch 1: 56 -> 33 us on the 32->64 layer).
#   Not kept: folding relu's backward into the weight-gradient tiles (B loaded under the mask
#   y > 0, so no dz pass): 0.87 -> 10.2 ms on the 1->32 layer, 1.8 -> 6.1 on 32->64 (the
#   compare and masked loads in the inner loop of every tile, repeated for each tile of taps).
# The forward epilogue (bias + activation, epilogue_row from _activations.pxd) otherwise
# runs on each chunk right after its GEMM, while the chunk is in cache.
#
# Measured with the own GEMM (1 thread, batch 64, float32, forward / backward input / backward
# weight in ms, this 2-core AMD EPYC Zen 5 while shared; OpenBLAS-Haswell in brackets):
#   3x3 1->32 @32x32:   0.29 / - / 0.8 (implicit forward: 0.64 with im2col + GEMM; [0.81, -, 1.6])
#   3x3 32->64 @15x15:  1.9 / 2.1-2.3 / 1.9-2.3 = 170-212 GFLOPS   [3.8 / - / 4.6 = 87-104]
#   3x3 64->128 @6x6:   0.7 / 0.72 (whole-image tasks; 1.3 per image) / 0.8 = 185-211 GFLOPS
#   batch 1: 5 / 29 / 12 us forward (the 3 layers of the cheatsheet CNN).
#   dl_sgemm alone: 245-262 GFLOPS on the conv shapes (OpenBLAS Haswell: 104-124; OpenBLAS's
#   own AVX-512 kernels, with OPENBLAS_CORETYPE unset, measured 163-193 on the convolutions).
# Measured earlier with OpenBLAS only (Haswell sgemm, 121 GFLOPS/core square):
# - One im2col of the whole batch + one big GEMM reaches only 93 / 107 / 90 / 76: the chunked
#   column buffer stays in L2, the 75 MB full column matrix streams from memory.
# - COL_BYTES 256 KiB / 512 KiB / 1 MiB: 95 / 99 / 101 (3x3 32->64), 99 / 104 / 109 (64->128).
#   (With the own GEMM 512 KiB and 1 MiB were within the noise of each other.)
# - Tap runs (one copy of KW*C_in): 96 vs 79 without on the 7x7 3-channel layer; no change
#   for C_in >= 32 (each tap already is a memcpy).
# - A shifted-GEMM 3x3 path (9 GEMMs of K = C_in into y, no im2col) was not kept: K = 32..64
#   per GEMM and 9 read-modify-writes of y make it memory-bound, and BLAS refuses the row-
#   overlapping operand (lda < K) that would merge the taps (the own GEMM accepts it: that is
#   the implicit path).
#
# Threading: OpenMP over chunks of output pixels (forward), over (image, band of input rows or
# columns) tasks (backward input: a gather, each task writes its own dx rows) and over fixed
# slots (backward weight). Every GEMM is a single-threaded BLAS call made from an OpenMP thread:
# the kernel switches OpenBLAS to one thread for its duration (set_blas_hooks; nested and
# concurrent calls are counted under the GIL; measured < 1 us per switch). Calling a threaded
# OpenBLAS from two OpenMP threads measured 7-20 GFLOPS against 45-80 with single-threaded calls
# on the same loaded machine: OpenBLAS's pthreads server serializes level-3 calls and its
# spinning workers oversubscribe the cores. Where no OpenBLAS thread setter is found (another
# BLAS), kernels run on one OpenMP thread and leave the parallelism to the BLAS.
#
# Determinism: chunk sizes, bands and slots depend on the shapes only, never on n_threads;
# outputs of parallel tasks are disjoint; the weight gradient accumulates chunk j into slot
# j % DW_SLOTS in increasing j (BLAS beta = 1), then sums the slots in slot order. dx is a gather:
# each dx element sums its contributions in (oh, ow, kh, kw) order whatever the banding.
#
# Legend: N batch, H/W input height/width, C_in input channels (C), OH/OW output height/width,
# C_out output channels (O), KH/KW kernel height/width, G groups, CG = C_in/G, OG = C_out/G,
# K = KH*KW*CG (one column-matrix row), P pixels of a chunk, S weight-gradient slots.
from cython.parallel cimport prange, parallel, threadid
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport sgemm, dgemm

cdef extern from "dl_sgemm.h" nogil:
    int dl_sgemm_available()
    void dl_sgemm(int a_cols, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a,
                  Py_ssize_t lda, const float* b, Py_ssize_t ldb, float beta, float* c,
                  Py_ssize_t ldc)
    void dl_sgemm_ep(int a_cols, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a,
                     Py_ssize_t lda, const float* b, Py_ssize_t ldb, float beta, float* c,
                     Py_ssize_t ldc, const float* bias, int relu)
    void dl_transpose(const float* src, Py_ssize_t lds, Py_ssize_t rows, Py_ssize_t cols,
                      float* dst, Py_ssize_t ldd)

cdef extern from "dl_conv_tiles.h" nogil:
    void dl_conv_valid_rows(Py_ssize_t q0, Py_ssize_t q1, const float* x, Py_ssize_t W,
                            Py_ssize_t C, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t OW,
                            const float* w, Py_ssize_t O, float* y, const float* bias, int relu)
    void dl_add_to(float* dst, const float* src, Py_ssize_t n)
    void dl_conv_wgrad(Py_ssize_t nimg, const float* x, Py_ssize_t sx, Py_ssize_t Wx,
                       Py_ssize_t C, Py_ssize_t KH, Py_ssize_t KW, const float* dy,
                       Py_ssize_t sy, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t O,
                       float beta, float* dw)

from kernels._activations cimport (
    floating, epilogue_row, ACT_RELU,
)

# Bytes of one thread's column buffer: the chunk's P rows of K taps (measured best of 256 KiB -
# 2 MiB on the benchmark shapes, see Design; about one L2).
COL_BYTES = 1024 * 1024
# Pixels of a chunk are kept within [MIN_CHUNK_PIXELS, MAX_CHUNK_PIXELS] (a GEMM with fewer rows
# is call overhead) and small problems are split into at least MIN_TASKS chunks / tasks.
MIN_CHUNK_PIXELS = 32
MAX_CHUNK_PIXELS = 4096
MIN_TASKS = 8
# Weight-gradient partial sums: fixed, so the result never depends on the thread count.
DW_SLOTS = 8

cdef Py_ssize_t _COL_BYTES = COL_BYTES
cdef Py_ssize_t _MIN_CHUNK = MIN_CHUNK_PIXELS
cdef Py_ssize_t _MAX_CHUNK = MAX_CHUNK_PIXELS
cdef Py_ssize_t _MIN_TASKS = MIN_TASKS
cdef Py_ssize_t _DW_SLOTS = DW_SLOTS

cdef enum:
    P_POINTWISE = 0
    P_DIRECT = 1
    P_IM2COL = 2

PATH_NAMES = ("pointwise", "direct", "im2col")


cdef bint _TAP_RUNS = True
# float32 products use the kernels' own AVX-512 GEMM (dl_sgemm.h) where the CPU has it
OWN_SGEMM = bool(dl_sgemm_available())
cdef bint _OWN_SGEMM = OWN_SGEMM


# The implicit-GEMM forward (stride 1, float32, own GEMM): 0 never, 1 where it measured faster
# than im2col (see Design), 2 always (tests).
cdef int _IMPLICIT = 1


def set_tuning(col_bytes=None, dw_slots=None, tap_runs=None, own_sgemm=None, implicit=None):
    """Override COL_BYTES / DW_SLOTS / the contiguous-taps copy of im2col / the use of the own
    float32 GEMM / the implicit-GEMM forward (measurements and tests only); returns the previous
    values."""
    global _COL_BYTES, _DW_SLOTS, _TAP_RUNS, _OWN_SGEMM, _IMPLICIT
    previous = (_COL_BYTES, _DW_SLOTS, _TAP_RUNS, _OWN_SGEMM, _IMPLICIT)
    if own_sgemm is not None:
        _OWN_SGEMM = bool(own_sgemm) and OWN_SGEMM
    if implicit is not None:
        _IMPLICIT = int(implicit)
    if col_bytes is not None:
        _COL_BYTES = col_bytes
    if dw_slots is not None:
        _DW_SLOTS = dw_slots
    if tap_runs is not None:
        _TAP_RUNS = tap_runs
    return previous

cdef struct Geom:
    Py_ssize_t n, h, w, c, oh, ow, o, kh, kw
    Py_ssize_t sh, sw, ph, pw, dh, dw
    Py_ssize_t groups, cg, og, k
    int path


# ---- BLAS threading --------------------------------------------------------------------------
ctypedef int (*blas_get_t)() noexcept nogil
ctypedef void (*blas_set_t)(int) noexcept nogil

cdef int _MAX_HOOKS = 8
cdef blas_get_t _getters[8]
cdef blas_set_t _setters[8]
cdef int _saved[8]
cdef int _n_hooks = -1  # -1: not installed; 0: no OpenBLAS found
cdef int _serial_depth = 0


def set_blas_hooks(hooks):
    """Install (getter_address, setter_address) pairs of the OpenBLAS thread-count functions of
    every BLAS loaded in the process; [] means none was found (kernels then run on one thread)."""
    global _n_hooks
    cdef int i = 0
    for get_addr, set_addr in list(hooks)[:_MAX_HOOKS]:
        _getters[i] = <blas_get_t><size_t>get_addr
        _setters[i] = <blas_set_t><size_t>set_addr
        i += 1
    _n_hooks = i


def blas_hooks_installed():
    return _n_hooks


cdef int _serial_blas_enter(int n_threads):
    """Make BLAS single-threaded for a parallel kernel; returns the OpenMP thread count to use.
    Called with the GIL held, so the nesting count is exact across Python threads."""
    global _serial_depth
    cdef int i
    if _n_hooks <= 0:
        return 1
    if _serial_depth == 0:
        for i in range(_n_hooks):
            _saved[i] = _getters[i]()
            if _saved[i] != 1:
                _setters[i](1)
    _serial_depth += 1
    return n_threads if n_threads > 1 else 1


cdef void _serial_blas_exit():
    global _serial_depth
    cdef int i
    if _n_hooks <= 0:
        return
    _serial_depth -= 1
    if _serial_depth == 0:
        for i in range(_n_hooks):
            if _saved[i] != 1:
                _setters[i](_saved[i])


# ---- small helpers -------------------------------------------------------------------------
cdef inline void _gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                       const floating* a, Py_ssize_t lda, const floating* b, Py_ssize_t ldb,
                       double beta, floating* c, Py_ssize_t ldc) noexcept nogil:
    """Row-major c (m, n) = op(a) op(b) + beta c, all dims > 0 (column-major BLAS, operands swapped)."""
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef int mi = <int>m, ni = <int>n, ki = <int>k, la = <int>lda, lb = <int>ldb, lc = <int>ldc
    cdef float one_f = 1.0, beta_f = <float>beta
    cdef double one_d = 1.0
    if floating is float:
        if _OWN_SGEMM and not trans_b:
            dl_sgemm(trans_a, m, n, k, a, lda, b, ldb, beta_f, c, ldc)
            return
        sgemm(&tb, &ta, &ni, &mi, &ki, &one_f, <float*>b, &lb, <float*>a, &la, &beta_f, c, &lc)
    else:
        dgemm(&tb, &ta, &ni, &mi, &ki, &one_d, <double*>b, &lb, <double*>a, &la, &beta, c, &lc)


cdef inline void _copy(floating* dst, const floating* src, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    if n >= 16:
        memcpy(dst, src, n * sizeof(floating))
    else:
        for i in range(n):
            dst[i] = src[i]


cdef inline void _zero(floating* dst, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    if n >= 16:
        memset(dst, 0, n * sizeof(floating))
    else:
        for i in range(n):
            dst[i] = 0


cdef inline Py_ssize_t _floor_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """floor(a / b) for b > 0 and any sign of a (C division truncates)."""
    if a >= 0:
        return a // b
    return -((-a + b - 1) // b)


cdef inline Py_ssize_t _ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return -_floor_div(-a, b)


cdef void _geom(Geom* g, Py_ssize_t n, Py_ssize_t h, Py_ssize_t w, Py_ssize_t c, Py_ssize_t oh,
                Py_ssize_t ow, Py_ssize_t o, Py_ssize_t kh, Py_ssize_t kw, int sh, int sw, int ph,
                int pw, int dh, int dw, int groups):
    g.n, g.h, g.w, g.c, g.oh, g.ow, g.o, g.kh, g.kw = n, h, w, c, oh, ow, o, kh, kw
    g.sh, g.sw, g.ph, g.pw, g.dh, g.dw = sh, sw, ph, pw, dh, dw
    g.groups = groups
    g.cg = c // groups
    g.og = o // groups
    g.k = kh * kw * g.cg
    if kh == 1 and kw == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0 and oh == h and ow == w:
        g.path = P_POINTWISE
    elif g.cg == 1 and groups > 1:
        g.path = P_DIRECT
    else:
        g.path = P_IM2COL


def select_path(int kh, int kw, int stride_h, int stride_w, int pad_h, int pad_w, int h, int w,
                int oh, int ow, int c_in, int groups):
    """The path ("pointwise", "direct" or "im2col") the kernels take for these shapes."""
    cdef Geom g
    _geom(&g, 1, h, w, c_in, oh, ow, groups, kh, kw, stride_h, stride_w, pad_h, pad_w, 1, 1, groups)
    return PATH_NAMES[g.path]


cdef Py_ssize_t _chunk_pixels(const Geom* g, Py_ssize_t total, Py_ssize_t itemsize) noexcept nogil:
    """Pixels per chunk: a COL_BYTES column buffer, clipped, and at least MIN_TASKS chunks when
    the problem allows. A function of the shapes only."""
    cdef Py_ssize_t p = _COL_BYTES // (g.k * itemsize if g.k > 0 else itemsize)
    if g.path != P_IM2COL:
        p = _COL_BYTES // ((g.c if g.c > g.o else g.o) * itemsize + 1)
    if p > _MAX_CHUNK:
        p = _MAX_CHUNK
    if p < _MIN_CHUNK:
        p = _MIN_CHUNK
    if total < p * _MIN_TASKS:
        p = (total + _MIN_TASKS - 1) // _MIN_TASKS
        if p < _MIN_CHUNK:
            p = _MIN_CHUNK
    return p


# ---- im2col ----------------------------------------------------------------------------------
cdef void _im2col(const floating* x, const Geom* g, Py_ssize_t p0, Py_ssize_t p1,
                  Py_ssize_t grp, floating* col) noexcept nogil:
    """col[p - p0, (kh, kw, c)] = x[n, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw, grp*CG + c]
    (zero outside the image) for the output pixels p = (n, oh, ow) in [p0, p1)."""
    cdef Py_ssize_t plane = g.oh * g.ow
    cdef Py_ssize_t n = p0 // plane
    cdef Py_ssize_t r = p0 - n * plane
    cdef Py_ssize_t oh = r // g.ow
    cdef Py_ssize_t ow = r - oh * g.ow
    cdef Py_ssize_t p, kh, kw, ih, iw, iw0
    cdef Py_ssize_t cg = g.cg, kwc = g.kw * g.cg
    cdef bint runs = g.dw == 1 and g.cg == g.c and _TAP_RUNS
    cdef const floating* xrow
    cdef floating* dst = col
    for p in range(p0, p1):
        iw0 = ow * g.sw - g.pw
        for kh in range(g.kh):
            ih = oh * g.sh - g.ph + kh * g.dh
            if ih < 0 or ih >= g.h:
                _zero(dst, kwc)
            else:
                xrow = x + (n * g.h + ih) * g.w * g.c + grp * cg
                if runs and iw0 >= 0 and iw0 + g.kw <= g.w:
                    _copy(dst, xrow + iw0 * g.c, kwc)  # the KW taps are contiguous
                else:
                    for kw in range(g.kw):
                        iw = iw0 + kw * g.dw
                        if iw >= 0 and iw < g.w:
                            _copy(dst + kw * cg, xrow + iw * g.c, cg)
                        else:
                            _zero(dst + kw * cg, cg)
            dst += kwc
        ow += 1
        if ow == g.ow:
            ow = 0
            oh += 1
            if oh == g.oh:
                oh = 0
                n += 1


# ---- forward ---------------------------------------------------------------------------------
cdef void _direct_forward(const floating* x, const floating* w, const Geom* g, Py_ssize_t p0,
                          Py_ssize_t p1, floating* y) noexcept nogil:
    """y[p, c*M + m] = sum_taps x[tap pixel, c] w[kh, kw, 0, c*M + m] (CG == 1, M = OG)."""
    cdef Py_ssize_t plane = g.oh * g.ow
    cdef Py_ssize_t n = p0 // plane
    cdef Py_ssize_t r = p0 - n * plane
    cdef Py_ssize_t oh = r // g.ow
    cdef Py_ssize_t ow = r - oh * g.ow
    cdef Py_ssize_t p, kh, kw, ih, iw, c, m, j
    cdef Py_ssize_t mult = g.og, nc = g.c, no = g.o
    cdef const floating* xp
    cdef const floating* wp
    cdef floating* yp
    cdef floating v
    for p in range(p0, p1):
        yp = y + p * no
        for j in range(no):
            yp[j] = 0
        for kh in range(g.kh):
            ih = oh * g.sh - g.ph + kh * g.dh
            if ih < 0 or ih >= g.h:
                continue
            for kw in range(g.kw):
                iw = ow * g.sw - g.pw + kw * g.dw
                if iw < 0 or iw >= g.w:
                    continue
                xp = x + ((n * g.h + ih) * g.w + iw) * nc
                wp = w + (kh * g.kw + kw) * no
                if mult == 1:
                    for c in range(nc):
                        yp[c] += xp[c] * wp[c]
                else:
                    for c in range(nc):
                        v = xp[c]
                        for m in range(mult):
                            yp[c * mult + m] += v * wp[c * mult + m]
        ow += 1
        if ow == g.ow:
            ow = 0
            oh += 1
            if oh == g.oh:
                oh = 0
                n += 1


cdef void _forward_chunk(const floating* x, const floating* w, const floating* bias, const Geom* g,
                         Py_ssize_t p0, Py_ssize_t p1, int code, floating alpha, floating* col,
                         floating* y) noexcept nogil:
    cdef Py_ssize_t grp, p, np_ = p1 - p0
    cdef floating* yc = y + p0 * g.o
    cdef bint fused = False  # bias + linear/relu applied in the own GEMM's tile stores
    if floating is float:
        fused = _OWN_SGEMM and (code == 0 or code == ACT_RELU) and g.path != P_DIRECT and g.k > 0
    if g.path == P_DIRECT:
        _direct_forward(x, w, g, p0, p1, y)
    elif g.k == 0:
        _zero(yc, np_ * g.o)
    else:
        for grp in range(g.groups):
            if g.path == P_IM2COL:
                _im2col(x, g, p0, p1, grp, col)
            if fused:
                if floating is float:
                    dl_sgemm_ep(0, np_, g.og, g.k,
                                col if g.path == P_IM2COL else x + p0 * g.c + grp * g.cg,
                                g.k if g.path == P_IM2COL else g.c, w + grp * g.og, g.o, 0.0,
                                yc + grp * g.og, g.o, bias + grp * g.og if bias != NULL else NULL,
                                code == ACT_RELU)
            elif g.path == P_POINTWISE:
                _gemm(False, False, np_, g.og, g.cg, x + p0 * g.c + grp * g.cg, g.c,
                      w + grp * g.og, g.o, 0.0, yc + grp * g.og, g.o)
            else:
                _gemm(False, False, np_, g.og, g.k, col, g.k, w + grp * g.og, g.o, 0.0,
                      yc + grp * g.og, g.o)
    if not fused and (code != 0 or bias != NULL):
        for p in range(np_):
            epilogue_row(code, yc + p * g.o, bias, g.o, alpha)


cdef bint _needs_pad(const Geom* g) noexcept nogil:
    return g.ph != 0 or g.pw != 0 or g.oh + g.kh - 1 != g.h or g.ow + g.kw - 1 != g.w


cdef void _pad_image(const float* xi, const Geom* g, float* dst) noexcept nogil:
    """dst ((OH+KH-1), (OW+KW-1), C) = image xi shifted by (pad_h, pad_w), zeros around."""
    cdef Py_ssize_t hp = g.oh + g.kh - 1, wp = g.ow + g.kw - 1, r, col, ih, iw
    for r in range(hp):
        ih = r - g.ph
        for col in range(wp):
            iw = col - g.pw
            if ih >= 0 and ih < g.h and iw >= 0 and iw < g.w:
                _copy(dst + (r * wp + col) * g.c, xi + (ih * g.w + iw) * g.c, g.c)
            else:
                _zero(dst + (r * wp + col) * g.c, g.c)


cdef void _implicit_forward_task(const float* x, const float* w, const float* bias,
                                 const Geom* g, Py_ssize_t n, Py_ssize_t r0, Py_ssize_t r1,
                                 int code, float alpha, float* pad, float* y) noexcept nogil:
    """Output rows [r0, r1) of image n (stride 1, dilation 1, one group, float32): the implicit
    GEMM of dl_conv_tiles.h over the image, or over its zero-padded copy in `pad`
    ((OH+KH-1) x (OW+KW-1) x C) when the convolution pads."""
    cdef Py_ssize_t wp = g.ow + g.kw - 1, p
    cdef const float* xi = x + n * g.h * g.w * g.c
    cdef float* yi = y + n * g.oh * g.ow * g.o
    cdef bint fused = code == 0 or code == ACT_RELU
    if _needs_pad(g):
        _pad_image(xi, g, pad)
        xi = pad
    dl_conv_valid_rows(r0 * wp, (r1 - 1) * wp + g.ow, xi, wp, g.c, g.kh, g.kw, g.ow, w, g.o, yi,
                       bias if fused else NULL, code == ACT_RELU)
    if not fused:
        for p in range(r0 * g.ow, r1 * g.ow):
            epilogue_row(code, yi + p * g.o, bias, g.o, alpha)


cdef bint _implicit_wgrad(const Geom* g) noexcept nogil:
    """Whether the implicit GEMM applies (float32 callers; stride 1, dilation 1, one group, own
    GEMM). The weight gradient drops no pixel, so it takes it wherever it applies."""
    return (_OWN_SGEMM and _IMPLICIT > 0 and g.path == P_IM2COL and g.groups == 1
            and g.sh == 1 and g.sw == 1 and g.dh == 1 and g.dw == 1 and g.k > 0)


cdef bint _implicit_path(const Geom* g) noexcept nogil:
    """Stride 1, dilation 1, one group; in auto mode only where at most a quarter of the wide
    pixels are dropped or the column rows are short (K <= 32, where im2col is per-pixel overhead)."""
    cdef Py_ssize_t wp = g.ow + g.kw - 1
    if not _implicit_wgrad(g):
        return False
    return _IMPLICIT == 2 or 4 * g.ow >= 3 * wp or g.k <= 32


cdef int _implicit_forward(const float* x, const float* w, const float* bias, const Geom* g,
                           int code, float alpha, float* y, int n_threads) except -1:
    """Tasks of whole images, or of bands of output rows when there are fewer images than
    threads; each output is computed the same way whatever the split."""
    cdef Py_ssize_t bands = 1, n_tasks, i, band
    cdef Py_ssize_t pad_size = (g.oh + g.kh - 1) * (g.ow + g.kw - 1) * g.c
    cdef float* pad = NULL
    if g.n < n_threads:
        bands = min(g.oh, (n_threads + g.n - 1) // g.n)
    n_tasks = g.n * bands
    if n_threads > n_tasks:
        n_threads = <int>n_tasks
    if n_threads < 1:
        n_threads = 1
    pad = <float*>malloc(n_threads * (pad_size + 16) * sizeof(float))  # one per thread
    if pad == NULL:
        raise MemoryError()
    try:
        if n_threads == 1:
            with nogil:
                for i in range(n_tasks):
                    band = i % bands
                    _implicit_forward_task(x, w, bias, g, i // bands, band * g.oh // bands,
                                           (band + 1) * g.oh // bands, code, alpha, pad, y)
        else:
            for i in prange(n_tasks, nogil=True, num_threads=n_threads, schedule="dynamic"):
                band = i % bands
                _implicit_forward_task(x, w, bias, g, i // bands, band * g.oh // bands,
                                       (band + 1) * g.oh // bands, code, alpha,
                                       pad + threadid() * (pad_size + 16), y)
    finally:
        free(pad)
    return 0


def conv2d_forward(const floating[:, :, :, ::1] x_nhwc, const floating[:, :, :, ::1] w_hwio,
                   const floating[::1] b_o, int stride_h, int stride_w, int pad_h, int pad_w,
                   int dilation_h, int dilation_w, int groups, int activation, double alpha,
                   floating[:, :, :, ::1] y_nhwo, int n_threads=1):
    """y = act(conv(x, w) + b), the activation code from elementwise.ACTIVATIONS.

    x_nhwc: (N, H, W, C_in) float32/64, C-contiguous, IN
    w_hwio: (KH, KW, C_in/G, C_out) same dtype, C-contiguous, IN
    b_o: (C_out,) same dtype, C-contiguous, IN, or None (no bias)
    y_nhwo: (N, OH, OW, C_out) same dtype, C-contiguous, OUT

    y[n, i, j, o] = sum_{kh, kw, c} x[n, i*stride_h - pad_h + kh*dilation_h,
    j*stride_w - pad_w + kw*dilation_w, g*C_in/G + c] * w[kh, kw, c, o] (g = o // (C_out/G)),
    zero outside the input: pad_h / pad_w are the top / left paddings, the bottom / right ones
    follow from OH / OW. alpha is leaky_relu's slope / elu's alpha; softmax runs over C_out.
    """
    cdef Geom g
    cdef Py_ssize_t total, chunk, n_chunks, i, p0, p1
    cdef const floating* bias = NULL
    cdef floating* work = NULL
    cdef floating a = <floating>alpha
    cdef int threads
    _geom(&g, x_nhwc.shape[0], x_nhwc.shape[1], x_nhwc.shape[2], x_nhwc.shape[3],
          y_nhwo.shape[1], y_nhwo.shape[2], y_nhwo.shape[3], w_hwio.shape[0], w_hwio.shape[1],
          stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups)
    total = g.n * g.oh * g.ow
    if total == 0 or g.o == 0:
        return
    if b_o is not None:
        bias = &b_o[0]
    if floating is float:
        if _implicit_path(&g):
            _implicit_forward(&x_nhwc[0, 0, 0, 0], &w_hwio[0, 0, 0, 0], bias, &g, activation,
                              a, &y_nhwo[0, 0, 0, 0], n_threads)
            return
    chunk = _chunk_pixels(&g, total, sizeof(floating))
    n_chunks = (total + chunk - 1) // chunk
    if n_threads > n_chunks:
        n_threads = <int>n_chunks
    threads = _serial_blas_enter(n_threads)
    work = <floating*>malloc(threads * (chunk * g.k + 16) * sizeof(floating))  # per-thread columns
    try:
        if work == NULL:
            raise MemoryError()
        if threads <= 1:
            with nogil:
                for i in range(n_chunks):
                    p0 = i * chunk
                    p1 = min(p0 + chunk, total)
                    _forward_chunk(&x_nhwc[0, 0, 0, 0], &w_hwio[0, 0, 0, 0], bias, &g, p0, p1,
                                   activation, a, work, &y_nhwo[0, 0, 0, 0])
        else:
            for i in prange(n_chunks, nogil=True, num_threads=threads, schedule="dynamic"):
                p0 = i * chunk
                p1 = min(p0 + chunk, total)
                _forward_chunk(&x_nhwc[0, 0, 0, 0], &w_hwio[0, 0, 0, 0], bias, &g, p0, p1,
                               activation, a, work + threadid() * (chunk * g.k + 16),
                               &y_nhwo[0, 0, 0, 0])
    finally:
        _serial_blas_exit()
        free(work)


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
                    _gemm(False, False, m, g.k, g.og, dy + ((n * g.oh + oh) * g.ow + ow0) * g.o + grp * g.og,
                          g.o, wt + grp * g.og * g.k, g.k, 0.0, dcol, g.k)
                else:
                    _gemm(False, True, m, g.k, g.og, dy + ((n * g.oh + oh) * g.ow + ow0) * g.o + grp * g.og,
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
            _gemm(False, False, m, g.k, g.og, dy + n0 * plane * g.o + grp * g.og, g.o,
                  wt + grp * g.og * g.k, g.k, 0.0, dcol, g.k)
        else:
            _gemm(False, True, m, g.k, g.og, dy + n0 * plane * g.o + grp * g.og, g.o,
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
    if g.n * g.h * g.w * g.c == 0:
        return
    if g.oh * g.ow * g.o == 0:
        dx_nhwc[...] = 0
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
        if _OWN_SGEMM and g.path != P_DIRECT:
            wt = <floating*>malloc(g.k * g.o * sizeof(floating) + 64)
            if wt == NULL:
                raise MemoryError()
            dl_transpose(&w_hwio[0, 0, 0, 0], g.o, g.k, g.o, wt, g.k)
    threads = _serial_blas_enter(n_threads)
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
                            _gemm(False, False, p1 - p0, g.cg, g.og, &dy_nhwo[0, 0, 0, 0] + p0 * g.o + b * g.og,
                                  g.o, wt + b * g.og * g.cg, g.cg, 0.0,
                                  &dx_nhwc[0, 0, 0, 0] + p0 * g.c + b * g.cg, g.c)
                        else:
                            _gemm(False, True, p1 - p0, g.cg, g.og, &dy_nhwo[0, 0, 0, 0] + p0 * g.o + b * g.og,
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
        _serial_blas_exit()
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
    cdef Py_ssize_t grp, p, o, np_ = p1 - p0
    cdef const floating* dyc = dy + p0 * g.o
    cdef double beta = 0.0 if first else 1.0
    if g.path == P_DIRECT:
        if first:
            _zero(dw, g.k * g.o)
        _direct_backward_weight(x, dy, g, p0, p1, dw)
    elif g.k > 0:
        for grp in range(g.groups):
            if g.path == P_POINTWISE:
                _gemm(True, False, g.cg, g.og, np_, x + p0 * g.c + grp * g.cg, g.c,
                      dyc + grp * g.og, g.o, beta, dw + grp * g.og, g.o)
            else:
                _im2col(x, g, p0, p1, grp, col)
                _gemm(True, False, g.k, g.og, np_, col, g.k, dyc + grp * g.og, g.o, beta,
                      dw + grp * g.og, g.o)
    if db != NULL:
        if first:
            _zero(db, g.o)
        for p in range(np_):
            for o in range(g.o):
                db[o] += dyc[p * g.o + o]


cdef void _implicit_wgrad_chunk(const float* x, const float* dy, const Geom* g, Py_ssize_t n0,
                                Py_ssize_t n1, bint first, float* pad, float* dw,
                                float* db) noexcept nogil:
    """Slot partial sums over images [n0, n1): dw (K, C_out) (+)= the implicit weight gradient
    (dl_conv_tiles.h), db (+)= the sum of their dy rows."""
    cdef Py_ssize_t hp = g.oh + g.kh - 1, wp = g.ow + g.kw - 1, img, p, o
    cdef Py_ssize_t plane = hp * wp * g.c
    cdef const float* xs = x + n0 * g.h * g.w * g.c
    cdef Py_ssize_t sx = g.h * g.w * g.c
    cdef const float* dyc = dy + n0 * g.oh * g.ow * g.o
    if _needs_pad(g):
        for img in range(n0, n1):
            _pad_image(x + img * g.h * g.w * g.c, g, pad + (img - n0) * plane)
        xs, sx = pad, plane
    dl_conv_wgrad(n1 - n0, xs, sx, wp, g.c, g.kh, g.kw, dyc, g.oh * g.ow * g.o, g.oh, g.ow,
                  g.o, 0.0 if first else 1.0, dw)
    if db != NULL:
        if first:
            _zero(db, g.o)
        for p in range((n1 - n0) * g.oh * g.ow):
            for o in range(g.o):
                db[o] += dyc[p * g.o + o]


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
    size = g.k * g.o
    total = g.n * g.oh * g.ow
    if total == 0 or g.o == 0 or size == 0:
        if size > 0:
            dw_hwio[...] = 0
        if has_db and g.o > 0:
            db_o[...] = 0
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
    threads = _serial_blas_enter(n_threads)
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
        _serial_blas_exit()
        free(scratch)
        free(work)
