# Design: 2-D convolution on NHWC inputs and HWIO kernels (Keras layouts), forward and backward,
# with strides, zero padding (top/left given; bottom/right implied by the output size), dilation
# and groups. Conv1D runs here with H = 1; Conv2DTranspose's forward IS conv2d_backward_input.
# The backward kernels are in _conv_backward.pxi (included at the end).
#
# Paths (chosen per call from the shapes, select_path tells which):
# - "pointwise" (1x1, stride 1, no padding): the NHWC buffer already is the (pixels, C_in)
#   matrix, so each chunk is one GEMM on it (and dx = dy @ W^T, dW = x^T @ dy) with no copy.
# - "direct" (one input channel per group with groups > 1: depthwise convolutions): plain loops
#   over taps, vectorized over the channels (a GEMM with K = KH*KW would be call overhead).
# - "im2col" (everything else): a chunk of output pixels is unfolded into a per-thread column
#   buffer (P, KH*KW*C_in/groups) in (kh, kw, c) order, so the HWIO kernel already is the
#   (K, C_out) matrix, then one GEMM per group; a pixel's contiguous KW taps are one copy.
#   Backward input: dcol = dy @ W^T per (image, band) or per group of small images, then col2im.
# - float32 on CPUs with AVX-512 (OWN_SGEMM): every product runs on dl_sgemm.h instead of scipy's
#   OpenBLAS (Haswell build here) with bias + linear/relu fused into its stores, and stride-1,
#   dilation-1, one-group forwards and weight gradients are implicit GEMMs (dl_conv_tiles.h: the
#   tiles read the input rows in place; no im2col). The decisive measurement (1 thread, batch
#   64, forward / backward input / backward weight): 3x3 32->64 @15x15 1.9 / 2.1 / 1.9 ms =
#   170-212 GFLOPS, against 3.8 / - / 4.6 ms with OpenBLAS. On a Zen 4 class core (AVX-512 as
#   two 256-bit halves, ~116 GFLOPS peak), batch 1: the forward's gather tiles compute no dropped
#   pixel (15x15x32->64 70 -> 60 us, 104 GFLOPS).
# - conv2d_pool2x2_forward: the implicit forward with 2x2 max pooling in the tile stores (a tile
#   is 1-3 pooling windows); the conv output is never written and the rows and columns the
#   pooling's floor drops are never computed. The runner's CNN (three conv + pool blocks), batch
#   1, 1 thread: 104.6 us for conv then pool, 83.1 us fused, bit-identical.
#   With argmax_out the tiles also store the pooling's argmax bytes (2-4% more time): training's
#   fused conv + pool (ops ConvPool) keeps them instead of the conv output, and its backward runs
#   the two backward kernels on the (2 PH, 2 PW) output the pooling reads (an output "cut short").
#   The runner's cnn-train, 1 thread: 25.8 -> 21.3 ms CPU a step.
# - Winograd F(2x2, 3x3) (_conv_winograd.pxi, dl_winograd.h; float32, AVX-512): stride-1 3x3
#   one-group forwards (bias/relu and the fused 2x2 pooling + argmax in the output transform),
#   input gradients (the rotated kernel, paddings 2 - pad, rows no dy reaches zeroed) and weight
#   gradients (V^T dM per transform position over fixed slots) with both channel counts >= 16,
#   >= 128 tiles and >= 1.5x fewer products than the direct convolution. Measured (1 thread, Zen 4
#   class, batch 64, direct -> Winograd): 15x15x32->64 pooled forward 3.2 -> 1.9 ms, input
#   gradient of the 12x12 pooled dy 3.8 -> 2.5 ms, weight gradient 3.5 -> 2.1 ms; 6x6x64->128
#   forward 1.44 -> 1.21 ms, weight gradient 1.67 -> 1.10 ms (its input gradient from a 4x4 dy
#   saves no product and stays direct: 1.56 vs 1.80 ms). The runner's cnn-train 21.0 -> 16.0 ms
#   CPU a step; cnn inference at batch 256 84 -> 54 us CPU a sample. Transform blocks of
#   WINO_BLOCK_BYTES (512 KiB, best of 128 KiB - 1 MiB). Not bit-identical to the direct paths.
# The forward epilogue (bias + activation, epilogue_row from _activations.pxd) otherwise runs on
# each chunk right after its GEMM, while the chunk is in cache. COL_BYTES (1 MiB) measured best
# of 256 KiB - 2 MiB.
#
# Threading: OpenMP over chunks of output pixels (forward), over (image, band) tasks (backward
# input: a gather, each task writes its own dx rows) and over fixed slots (backward weight).
# Every BLAS call is single-threaded, made from an OpenMP thread (dl_blas_threads.h); without an
# OpenBLAS thread setter the kernels run on one OpenMP thread and leave parallelism to the BLAS.
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
from libc.stdlib cimport malloc, calloc, free
from posix.stdlib cimport posix_memalign
from libc.stdint cimport uint8_t
from libc.string cimport memcpy, memset

from . import _config
from ._team cimport team_run

# The implicit forward runs on the thread team under TEAM_MAX_MACS multiply-adds; the im2col
# forward stays on one thread under PARALLEL_MIN_MACS (kernels/_config.py).
cdef Py_ssize_t _TEAM_MAX_MACS = _config.TEAM_MAX_MACS
cdef Py_ssize_t _PARALLEL_MIN_MACS = _config.PARALLEL_MIN_MACS

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

cdef extern from "dl_sgemm_isa.h" nogil:
    int dl_own_sgemm(int isa, int a_cols, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                     const float* a, Py_ssize_t lda, const float* b, Py_ssize_t ldb, float beta,
                     float* c, Py_ssize_t ldc, const float* bias, int relu)

cdef extern from "dl_conv_tiles.h" nogil:
    void dl_conv_valid_pixels(Py_ssize_t p0, Py_ssize_t p1, const float* x, Py_ssize_t W,
                              Py_ssize_t C, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t OW,
                              const float* w, Py_ssize_t O, float* y, const float* bias, int relu)
    void dl_conv_valid_pool2x2(Py_ssize_t q0, Py_ssize_t q1, const float* x, Py_ssize_t W,
                               Py_ssize_t C, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t PW,
                               const float* w, Py_ssize_t O, float* y, const float* bias, int relu,
                               uint8_t* am)
    void dl_add_to(float* dst, const float* src, Py_ssize_t n)
    void dl_sum_rows_avx512(float* acc, const float* rows, Py_ssize_t n_rows, Py_ssize_t width,
                            int first)
    void dl_conv_wgrad(Py_ssize_t nimg, const float* x, Py_ssize_t sx, Py_ssize_t Wx,
                       Py_ssize_t C, Py_ssize_t KH, Py_ssize_t KW, const float* dy,
                       Py_ssize_t sy, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t O,
                       float beta, float* dw)

cdef extern from "dl_winograd.h" nogil:
    void dl_wino_filter(const float* w, Py_ssize_t C, Py_ssize_t O, int flip, float* U)
    void dl_wino_block(const float* x, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t ph,
                       Py_ssize_t pw, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t TH, Py_ssize_t TW,
                       Py_ssize_t t0, Py_ssize_t t1, const float* U, Py_ssize_t O, const float* zeros,
                       float* V, float* M, float* y, const float* bias, int relu, int pool, uint8_t* am)
    void dl_wino_wgrad_block(const float* x, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C, Py_ssize_t ph,
                             Py_ssize_t pw, const float* dy, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t TH,
                             Py_ssize_t TW, Py_ssize_t t0, Py_ssize_t t1, Py_ssize_t O, const float* zeros,
                             float* V, float* dM, float* dU, float* db)
    void dl_wino_filter_grad(const float* dU, Py_ssize_t C, Py_ssize_t O, float* dw)

import numpy as np

from . import _gemm as _gemm_kernels
from kernels._blas_threads cimport (
    dl_blas_bind, dl_blas_serial_enter, dl_blas_serial_exit, sgemm, dgemm,
)

from . import _blas
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
# The chunk products take the path _gemm's choice picks for their shape on one thread (own
# tiles at an ISA level or BLAS); False: BLAS always (set_tuning(own_sgemm=False)).
cdef bint _USE_OWN = True
OWN_LEVELS = {"avx512": 0, "avx2": 1, "base": 2}


# The implicit-GEMM forward and weight gradient (stride 1, float32, own GEMM): 0 never, 1 or 2
# wherever they apply (2 was "always" when the forward dropped pixels; tests still pass it).
cdef int _IMPLICIT = 1


def set_tuning(col_bytes=None, dw_slots=None, tap_runs=None, own_sgemm=None, implicit=None):
    """Override COL_BYTES / DW_SLOTS / the contiguous-taps copy of im2col / the use of the own
    float32 GEMM / the implicit-GEMM forward (measurements and tests only); returns the previous
    values."""
    global _COL_BYTES, _DW_SLOTS, _TAP_RUNS, _OWN_SGEMM, _IMPLICIT, _USE_OWN
    previous = (_COL_BYTES, _DW_SLOTS, _TAP_RUNS, _OWN_SGEMM, _IMPLICIT)
    if own_sgemm is not None:
        _OWN_SGEMM = bool(own_sgemm) and OWN_SGEMM
        _USE_OWN = bool(own_sgemm)
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
    int own  # float32 chunk products: -1 BLAS, else the own tiles' ISA level


# ---- BLAS threading: one thread per BLAS call while the kernel runs (dl_blas_threads.h) ----
def bind_blas_threads(size_t address):
    """Bind the process's BLAS state: function table and thread switch (kernels/_blas.py)."""
    dl_blas_bind(address)


_blas.bind_at_import(bind_blas_threads)  # before any kernel of this module can call BLAS


# ---- small helpers -------------------------------------------------------------------------
cdef int _choose_own(Geom* g) except -2:
    """g.own for a float32 call: the path _gemm's choice takes for one chunk product
    (P, OG) x K on one thread."""
    cdef Py_ssize_t rows, k = g.k if g.path == P_IM2COL else g.cg
    if not _USE_OWN or g.path == P_DIRECT or k <= 0 or g.og <= 1:
        g.own = -1 if not _USE_OWN else g.own
        return g.own
    rows = _chunk_pixels(g, g.n * g.oh * g.ow, 4)
    if rows <= 1:
        return g.own
    path, _ = _gemm_kernels.choose_path(rows, g.og, k, False, False, 1)
    g.own = OWN_LEVELS.get(path, -1)
    return g.own


cdef inline void _gemm(int own, bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                       const floating* a, Py_ssize_t lda, const floating* b, Py_ssize_t ldb,
                       double beta, floating* c, Py_ssize_t ldc) noexcept nogil:
    """Row-major c (m, n) = op(a) op(b) + beta c, all dims > 0 (column-major BLAS, operands swapped)."""
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef int mi = <int>m, ni = <int>n, ki = <int>k, la = <int>lda, lb = <int>ldb, lc = <int>ldc
    cdef float one_f = 1.0, beta_f = <float>beta
    cdef double one_d = 1.0
    if floating is float:
        if own >= 0 and not trans_b:
            if dl_own_sgemm(own, trans_a, m, n, k, a, lda, b, ldb, beta_f, c, ldc, NULL, 0) == 0:
                return  # else out of memory for the packing: BLAS
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


cdef inline void _sum_rows(floating* acc, const floating* rows, Py_ssize_t n_rows, Py_ssize_t width,
                           bint first) noexcept nogil:
    """acc[:width] = (0 if first else acc) + the n_rows rows of `rows` (row stride width), each
    column summed in row order (the AVX-512 loop gives the same bits as the scalar one)."""
    cdef Py_ssize_t p, o
    if floating is float:
        if _OWN_SGEMM:
            dl_sum_rows_avx512(acc, rows, n_rows, width, first)
            return
    if first:
        _zero(acc, width)
    for p in range(n_rows):
        for o in range(width):
            acc[o] += rows[p * width + o]


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
    g.own = 0 if _OWN_SGEMM else -1
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
        fused = g.own == 0 and (code == 0 or code == ACT_RELU) and g.path != P_DIRECT and g.k > 0
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
                _gemm(g.own, False, False, np_, g.og, g.cg, x + p0 * g.c + grp * g.cg, g.c,
                      w + grp * g.og, g.o, 0.0, yc + grp * g.og, g.o)
            else:
                _gemm(g.own, False, False, np_, g.og, g.k, col, g.k, w + grp * g.og, g.o, 0.0,
                      yc + grp * g.og, g.o)
    if not fused and (code != 0 or bias != NULL):
        for p in range(np_):
            epilogue_row(code, yc + p * g.o, bias, g.o, alpha)


cdef bint _needs_pad(const Geom* g) noexcept nogil:
    """Whether the output pixels read outside the image (a valid convolution whose output is
    cut short, as the fused pooling's floor does, reads the image in place)."""
    return g.ph != 0 or g.pw != 0 or g.oh + g.kh - 1 > g.h or g.ow + g.kw - 1 > g.w


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
                                 int code, float alpha, float* pad, float* y,
                                 bint pool, uint8_t* am) noexcept nogil:
    """Output rows [r0, r1) of image n (stride 1, dilation 1, one group, float32): the implicit
    GEMM of dl_conv_tiles.h over the image, or over its zero-padded copy in `pad`
    ((OH+KH-1) x (OW+KW-1) x C) when the convolution pads. With `pool`, rows of the 2x2 max
    pooling of the (OH, OW) output (OH, OW even; code linear or relu) and, unless am is NULL,
    their argmax bytes (am: (N, OH/2, OW/2, O) like y)."""
    cdef const float* xi = x + n * g.h * g.w * g.c
    if _needs_pad(g):
        _pad_image(xi, g, pad)
        _implicit_band(pad, g.ow + g.kw - 1, w, bias, g, n, r0, r1, code, alpha, y, pool, am)
    else:
        _implicit_band(xi, g.w, w, bias, g, n, r0, r1, code, alpha, y, pool, am)


cdef void _implicit_band(const float* xi, Py_ssize_t wp, const float* w, const float* bias,
                         const Geom* g, Py_ssize_t n, Py_ssize_t r0, Py_ssize_t r1,
                         int code, float alpha, float* y, bint pool, uint8_t* am) noexcept nogil:
    """_implicit_forward_task's rows on image n's pixels xi (row stride wp pixels: padded or not)."""
    cdef Py_ssize_t p, pw = g.ow // 2
    cdef float* yi = y + n * g.oh * g.ow * g.o
    cdef bint fused = code == 0 or code == ACT_RELU
    if pool:
        dl_conv_valid_pool2x2(r0 * pw, r1 * pw, xi, wp, g.c, g.kh, g.kw, pw, w, g.o,
                              y + n * (g.oh // 2) * pw * g.o, bias, code == ACT_RELU,
                              am + n * (g.oh // 2) * pw * g.o if am != NULL else NULL)
        return
    dl_conv_valid_pixels(r0 * g.ow, r1 * g.ow, xi, wp, g.c, g.kh, g.kw, g.ow, w, g.o, yi,
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
    """Stride 1, dilation 1, one group: the gather tiles compute no dropped pixel, and measured
    0.61-1.01x im2col's time (1 thread; 5x5 and 7x7 kernels on 4-10 pixel images, "same")."""
    return _implicit_wgrad(g)


cdef struct _ImplicitJob:
    const float* x      # the images, or their padded copies (row stride wp pixels)
    const float* w
    const float* bias
    const Geom* g
    float* y
    uint8_t* am
    Py_ssize_t wp, image, bands, rows
    int code, pool
    float alpha


cdef void _implicit_chunk(void* arg, Py_ssize_t t) noexcept nogil:
    """Team chunk t: band t % bands of image t // bands."""
    cdef _ImplicitJob* j = <_ImplicitJob*>arg
    cdef Py_ssize_t n = t // j.bands, band = t % j.bands
    _implicit_band(j.x + n * j.image, j.wp, j.w, j.bias, j.g, n, band * j.rows // j.bands,
                   (band + 1) * j.rows // j.bands, j.code, j.alpha, j.y, j.pool, j.am)


cdef void _implicit_whole(void* arg) noexcept nogil:
    """Every image in one band (the load guard's serial form: the widest tiles)."""
    cdef _ImplicitJob* j = <_ImplicitJob*>arg
    cdef Py_ssize_t n
    for n in range(j.g.n):
        _implicit_band(j.x + n * j.image, j.wp, j.w, j.bias, j.g, n, 0, j.rows, j.code, j.alpha,
                       j.y, j.pool, j.am)


cdef int _implicit_team(const float* x, const float* w, const float* bias, const Geom* g,
                        int code, float alpha, float* y, int n_threads, bint pool,
                        uint8_t* am) except -1:
    """The batch-1-sized implicit convolution on the thread team: images padded once on the
    caller, then bands of about two output rows, at least 4 per thread over the batch."""
    cdef Py_ssize_t rows = g.oh // 2 if pool else g.oh, n
    cdef Py_ssize_t hp = g.oh + g.kh - 1, wp = g.ow + g.kw - 1
    cdef _ImplicitJob j
    cdef float* pad = NULL
    j.x, j.wp, j.image = x, g.w, g.h * g.w * g.c
    if _needs_pad(g):
        pad = <float*>malloc(g.n * hp * wp * g.c * sizeof(float) + 64)
        if pad == NULL:
            raise MemoryError()
        with nogil:
            for n in range(g.n):
                _pad_image(x + n * g.h * g.w * g.c, g, pad + n * hp * wp * g.c)
        j.x, j.wp, j.image = pad, wp, hp * wp * g.c
    j.w, j.bias, j.g, j.y, j.am = w, bias, g, y, am
    j.code, j.pool, j.alpha, j.rows = code, pool, alpha, rows
    j.bands = max(1, min(rows, max((rows + 1) // 2, (4 * n_threads + g.n - 1) // g.n)))
    with nogil:
        team_run(_implicit_chunk, &j, g.n * j.bands, n_threads, g.n * g.oh * g.ow * g.o * g.k * 2 + pool,
                 _implicit_whole)
    free(pad)
    return 0


cdef int _implicit_forward(const float* x, const float* w, const float* bias, const Geom* g,
                           int code, float alpha, float* y, int n_threads, bint pool=False,
                           uint8_t* am=NULL) except -1:
    """Tasks of whole images, or of bands of output rows (pooled rows with `pool`) when there are
    fewer images than threads; each output is computed the same way whatever the split. Under
    TEAM_MAX_MACS multiply-adds the tasks run on the thread team (_implicit_team)."""
    cdef Py_ssize_t bands = 1, n_tasks, i, band, rows = g.oh // 2 if pool else g.oh
    cdef Py_ssize_t pad_size = (g.oh + g.kh - 1) * (g.ow + g.kw - 1) * g.c
    cdef float* pad = NULL
    if n_threads > 1 and g.n * g.oh * g.ow * g.o * g.k < _TEAM_MAX_MACS:
        return _implicit_team(x, w, bias, g, code, alpha, y, n_threads, pool, am)
    if g.n < n_threads:
        bands = min(rows, (n_threads + g.n - 1) // g.n)
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
                    _implicit_forward_task(x, w, bias, g, i // bands, band * rows // bands,
                                           (band + 1) * rows // bands, code, alpha, pad, y, pool, am)
        else:
            for i in prange(n_tasks, nogil=True, num_threads=n_threads, schedule="dynamic"):
                band = i % bands
                _implicit_forward_task(x, w, bias, g, i // bands, band * rows // bands,
                                       (band + 1) * rows // bands, code, alpha,
                                       pad + threadid() * (pad_size + 16), y, pool, am)
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
    if floating is float:
        _choose_own(&g)
    total = g.n * g.oh * g.ow
    if total == 0 or g.o == 0:
        return
    if b_o is not None:
        bias = &b_o[0]
    if floating is float:
        if (activation == 0 or activation == ACT_RELU) and _winograd_applies(&g, W_FORWARD):
            _winograd(&x_nhwc[0, 0, 0, 0], g.n, g.h, g.w, g.c, g.ph, g.pw, g.oh, g.ow, &w_hwio[0, 0, 0, 0],
                      g.o, False, bias, activation == ACT_RELU, False, NULL, &y_nhwo[0, 0, 0, 0], n_threads)
            return
        if _implicit_path(&g):
            _implicit_forward(&x_nhwc[0, 0, 0, 0], &w_hwio[0, 0, 0, 0], bias, &g, activation,
                              a, &y_nhwo[0, 0, 0, 0], n_threads)
            return
    if total * g.o * g.k < _PARALLEL_MIN_MACS:  # no OpenMP team for batch-1 sizes
        n_threads = 1
    chunk = _chunk_pixels(&g, total, sizeof(floating))
    n_chunks = (total + chunk - 1) // chunk
    if n_threads > n_chunks:
        n_threads = <int>n_chunks
    threads = dl_blas_serial_enter(n_threads)
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
        dl_blas_serial_exit()
        free(work)


cdef void _max_pool_2x2(const floating* z, Py_ssize_t rows, Py_ssize_t pw, Py_ssize_t o,
                        floating* y, uint8_t* am) noexcept nogil:
    """y (rows, PW, O) = the 2x2 maxima of z (2 rows, 2 PW, O) in max_pool2d_2x2_forward's order;
    am (unless NULL) its argmax bytes (the offset 0..3 of the first maximum)."""
    cdef Py_ssize_t i, j, k
    cdef const floating* a
    cdef floating m, v
    cdef uint8_t arg
    for i in range(rows):
        for j in range(pw):
            a = z + (2 * i * 2 * pw + 2 * j) * o
            for k in range(o):
                m = a[k]
                arg = 0
                v = a[o + k]
                if v > m:
                    m, arg = v, 1
                v = a[2 * pw * o + k]
                if v > m:
                    m, arg = v, 2
                v = a[2 * pw * o + o + k]
                if v > m:
                    m, arg = v, 3
                y[(i * pw + j) * o + k] = m
                if am != NULL:
                    am[(i * pw + j) * o + k] = arg


def conv2d_pool2x2_forward(const floating[:, :, :, ::1] x_nhwc, const floating[:, :, :, ::1] w_hwio,
                           const floating[::1] b_o, int pad_h, int pad_w, int activation, double alpha,
                           floating[:, :, :, ::1] y_nphwo, int n_threads=1,
                           uint8_t[:, :, :, ::1] argmax_out=None):
    """y = max_pool_2x2(act(conv(x, w) + b)): a stride-1 one-group convolution followed by 2x2
    stride-2 unpadded max pooling (OH, OW of the convolution floored to even), in one pass.

    x_nhwc: (N, H, W, C_in) float32/64, C-contiguous, IN
    w_hwio: (KH, KW, C_in, C_out) same dtype, C-contiguous, IN
    b_o: (C_out,) same dtype, C-contiguous, IN, or None (no bias)
    y_nphwo: (N, PH, PW, C_out) same dtype, C-contiguous, OUT
    argmax_out: (N, PH, PW, C_out) uint8, C-contiguous, OUT, or None: kh * 2 + kw of the first
        maximum in its window (max_pool2d_2x2_forward's bytes; what training's backward reads)

    y[n, i, j, o] = max over a, b in {0, 1} of z[n, 2i + a, 2j + b, o], z = conv2d_forward's
    output with the top / left paddings pad_h / pad_w and (2 PH, 2 PW) output pixels, compared
    in max_pool2d_2x2_forward's order: bit-identical to the two kernels one after the other.
    float32 with linear or relu on AVX-512: the conv tiles pool in registers and never write z;
    otherwise z is computed into a buffer and pooled.
    """
    cdef Geom g
    cdef Py_ssize_t ph = y_nphwo.shape[1], pw = y_nphwo.shape[2]
    cdef const floating* bias = NULL
    cdef uint8_t* am = NULL
    if argmax_out is not None:
        shape_am = tuple([argmax_out.shape[i] for i in range(4)])
        shape_y = tuple([y_nphwo.shape[i] for i in range(4)])
        if shape_am != shape_y:
            raise ValueError(f"conv2d_pool2x2_forward: argmax_out has shape {shape_am}, y_nphwo {shape_y}: "
                             "they must match")
        if argmax_out.size > 0:
            am = &argmax_out[0, 0, 0, 0]
    _geom(&g, x_nhwc.shape[0], x_nhwc.shape[1], x_nhwc.shape[2], x_nhwc.shape[3], 2 * ph, 2 * pw,
          y_nphwo.shape[3], w_hwio.shape[0], w_hwio.shape[1], 1, 1, pad_h, pad_w, 1, 1, 1)
    if g.n == 0 or ph == 0 or pw == 0 or g.o == 0:
        return
    if b_o is not None:
        bias = &b_o[0]
    if floating is float:
        if (activation == 0 or activation == ACT_RELU) and _winograd_applies(&g, W_FORWARD):
            _winograd(&x_nhwc[0, 0, 0, 0], g.n, g.h, g.w, g.c, g.ph, g.pw, g.oh, g.ow, &w_hwio[0, 0, 0, 0],
                      g.o, False, bias, activation == ACT_RELU, True, am, &y_nphwo[0, 0, 0, 0], n_threads)
            return
        if _implicit_path(&g) and (activation == 0 or activation == ACT_RELU):
            _implicit_forward(&x_nhwc[0, 0, 0, 0], &w_hwio[0, 0, 0, 0], bias, &g, activation,
                              <float>alpha, &y_nphwo[0, 0, 0, 0], n_threads, True, am)
            return
    z = np.empty((g.n, 2 * ph, 2 * pw, g.o), dtype=np.float32 if floating is float else np.float64)
    cdef floating[:, :, :, ::1] zv = z
    conv2d_forward(x_nhwc, w_hwio, b_o, 1, 1, pad_h, pad_w, 1, 1, 1, activation, alpha, zv, n_threads)
    with nogil:
        _max_pool_2x2(&zv[0, 0, 0, 0], g.n * ph, pw, g.o, &y_nphwo[0, 0, 0, 0], am)


include "_conv_backward.pxi"
include "_conv_winograd.pxi"
