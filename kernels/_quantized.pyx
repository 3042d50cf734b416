# Design: int8 inference kernels (Keras 3 `quantize("int8")`): dynamic per-row activation
# quantization (abs-max / 127, Keras's rounding: half to even, clip to +-127), the int8 x int8 ->
# int32 GEMM of dl_igemm.h (AVX512-VNNI, AVX2 or the baseline, chosen at run time, all exact so
# bit-identical), and the dense epilogue y = acc / (w_scale * x_scale) + bias, then the
# activation, in float32 -- the operations and order of Keras's `_int8_call`, so outputs match
# Keras bit for bit where its int32 product is exact (it is). The weights are packed once
# (int8_pack) into the 16-column panels the GEMM reads, with their column sums (the VNNI path's
# +128 shift correction starts each accumulator). Rows are split over OpenMP tasks of
# ROWS_PER_TASK; every row is computed the same way whatever the split, so results are
# bit-identical for any n_threads. int8_dense_forward takes the float32 rows and quantizes them itself
# (one kernel call per Dense instead of quantize_rows + the product: 3.5-4.6 us less per layer at
# batch 1 measured at load ~9, the same at batch 256). Cython: inference needs these without numba.
#
# Convolutions (int8_conv2d_forward) are an implicit GEMM: each task of ROWS_PER_TASK output pixels
# gathers its patches (kh, kw, C) into an int8 row buffer (zeros where the window leaves the input;
# a 1x1 stride-1 convolution reads the input rows in place), multiplies them by the packed kernel
# with the same int8 GEMM, and applies the dense epilogue per pixel with its sample's scale.
# Depthwise convolutions (int8_depthwise_forward) accumulate in int32 per channel directly. Both can
# write float32, or requantize to int8 with a static output scale (out = clip(round(y * scale))),
# so calibrated conv stacks hand int8 to the next convolution (ReLU folded, the requantization done in
# registers on the AVX-512 path). Measured here (AMD EPYC, VNNI, 1 thread, the runner's CNN at batch
# 256): the im2col + VNNI GEMM takes 5.5 ms / 1.7 ms for the 3x3 32->64 / 64->128 layers against
# 19 ms / 6.6 ms for the float32 conv kernel (3.4x / 3.9x); the 1-channel first layer (K = 9) is
# slower in int8 (5 ms against 2.1 ms: im2col and epilogue per pixel outweigh 9 products; at batch 64
# with the 6x4 VNNI tiles: GEMM 0.24 ms, im2col + epilogue 1.0 ms, against 0.2 / 0.05 ms for the
# K = 288 / 576 layers), so the quantizer keeps convolutions of depth K < 32 in float32
# (its CONV_MIN_DEPTH).
#
# Legend: N rows, K inputs (Kp: K rounded up to 4), M outputs (Mp: M rounded up to 16),
# V embedding rows, D embedding width; conv: (N, H, W, C) int8 inputs, (KH, KW) kernel, P = N OH OW
# output pixels.
from kernels._ids cimport first_out_of_range
from cython.parallel cimport prange
from libc.stdint cimport int8_t, int32_t, int64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset

from kernels._activations cimport act_row, epilogue_row, ACT_LINEAR, ACT_RELU, ACT_SIGMOID, ACT_TANH

cdef extern from "dl_igemm.h" nogil:
    void dl_igemm_pack(Py_ssize_t k, Py_ssize_t n, const int8_t* B, Py_ssize_t ldb, int8_t* P, int32_t* csum)
    void dl_igemm(Py_ssize_t m, Py_ssize_t panels, Py_ssize_t kq, const int8_t* A, Py_ssize_t lda,
                  const int8_t* P, const int32_t* csum, int32_t* C, Py_ssize_t ldc)
    int dl_igemm_set_isa(int isa)
    int dl_igemm_cpu_isa()
    void dl_quantize_row(Py_ssize_t k, Py_ssize_t kp, const float* x, int8_t* q, float* scale)
    int8_t dl_round_q(float v)
    void dl_quantize_static(Py_ssize_t k, const float* x, float scale, int8_t* q)
    void dl_iconv_scale_row_c(Py_ssize_t m, const int32_t* acc, const float* ws, float s, const float* bias, int relu,
                              float* y)
    void dl_iconv_epilogue(Py_ssize_t r0, Py_ssize_t rows, Py_ssize_t pix, Py_ssize_t m, const int32_t* acc,
                           Py_ssize_t lda, const float* ws, const float* xs, const float* bias, int relu, float* y,
                           float out_scale, int8_t* q, float* scratch)
    void dl_requantize_row(Py_ssize_t m, const float* y, float scale, int8_t* q)
    void dl_i8_max_pool_row(Py_ssize_t ow, Py_ssize_t c, Py_ssize_t w, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t sw,
                            const int8_t* x, int8_t* y)
    void dl_iconv_im2col(Py_ssize_t r0, Py_ssize_t rows, const int8_t* x, Py_ssize_t h, Py_ssize_t w, Py_ssize_t c,
                         Py_ssize_t oh, Py_ssize_t ow, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                         Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t kp, int8_t* cols)

ROWS_PER_TASK = 64
cdef Py_ssize_t _ROWS = ROWS_PER_TASK


def set_isa(int isa):
    """Select the int8 GEMM path: 0 AVX512-VNNI, 1 AVX2, 2 baseline (tests); returns the previous
    one, or -1 (nothing changed) where the CPU lacks it."""
    return dl_igemm_set_isa(isa)


def cpu_isa():
    """The best int8 GEMM path this CPU runs (0 VNNI, 1 AVX2, 2 baseline)."""
    return dl_igemm_cpu_isa()


def packed_size(Py_ssize_t k, Py_ssize_t m):
    """(bytes of the packed weights, length of the column sums) for a (k, m) int8 kernel."""
    cdef Py_ssize_t panels = (m + 15) // 16, kq = (k + 3) // 4
    return panels * kq * 64, panels * 16


def int8_pack(const int8_t[:, ::1] w_km, int8_t[::1] packed, int32_t[::1] csum_m):
    """Packs an int8 kernel for int8_matmul / int8_dense_forward (sizes from packed_size).

    w_km: (K, M) int8, C-contiguous, IN
    packed: (ceil(M/16) * ceil(K/4) * 64,) int8, C-contiguous, OUT
    csum_m: (Mp,) int32, C-contiguous, OUT (column sums, zero on the padding)
    """
    cdef Py_ssize_t k = w_km.shape[0], m = w_km.shape[1]
    if m == 0:
        return
    with nogil:
        dl_igemm_pack(k, m, &w_km[0, 0] if k > 0 else NULL, m, &packed[0] if k > 0 else NULL, &csum_m[0])


def quantize_rows(const float[:, ::1] x_nk, int8_t[:, ::1] q_nk, float[::1] scale_n, int n_threads=1):
    """q_nk[i] = clip(round(x_nk[i] * scale_n[i]), -127, 127), scale_n[i] = 127 / (max|x_nk[i]| + 1e-7).

    x_nk: (N, K) float32, C-contiguous, IN
    q_nk: (N, Kp) int8, C-contiguous, OUT (Kp >= K; columns K.. written as zeros)
    scale_n: (N,) float32, C-contiguous, OUT
    """
    cdef Py_ssize_t n = x_nk.shape[0], k = x_nk.shape[1], kp = q_nk.shape[1], i
    if n == 0 or kp == 0:
        return
    if n_threads <= 1:
        with nogil:
            for i in range(n):
                dl_quantize_row(k, kp, &x_nk[i, 0] if k > 0 else NULL, &q_nk[i, 0], &scale_n[i])
    else:
        for i in prange(n, nogil=True, num_threads=n_threads, schedule="static"):
            dl_quantize_row(k, kp, &x_nk[i, 0] if k > 0 else NULL, &q_nk[i, 0], &scale_n[i])


def int8_matmul(const int8_t[:, ::1] q_nk, const int8_t[::1] packed, const int32_t[::1] csum_m,
                int32_t[:, ::1] acc_nm, int n_threads=1):
    """acc_nm = q_nk @ w (exact int32), w packed by int8_pack.

    q_nk: (N, Kp) int8, C-contiguous, IN (Kp = K rounded up to 4, zero-padded)
    packed: int8 from int8_pack, IN
    csum_m: (Mp,) int32 from int8_pack, IN
    acc_nm: (N, Mp) int32, C-contiguous, OUT (Mp = M rounded up to 16)
    """
    cdef Py_ssize_t n = q_nk.shape[0], kq = q_nk.shape[1] // 4, mp = acc_nm.shape[1]
    cdef Py_ssize_t task, tasks = (n + _ROWS - 1) // _ROWS, r0
    if n == 0 or mp == 0:
        return
    if kq == 0:
        acc_nm[:, :] = 0
        return
    if n_threads <= 1 or tasks <= 1:
        with nogil:
            dl_igemm(n, mp // 16, kq, &q_nk[0, 0], q_nk.shape[1], &packed[0], &csum_m[0], &acc_nm[0, 0], mp)
    else:
        for task in prange(tasks, nogil=True, num_threads=n_threads, schedule="static"):
            r0 = task * _ROWS
            dl_igemm(min(_ROWS, n - r0), mp // 16, kq, &q_nk[r0, 0], q_nk.shape[1], &packed[0], &csum_m[0],
                     &acc_nm[r0, 0], mp)


cdef int _dense_rows(Py_ssize_t r0, Py_ssize_t rows, Py_ssize_t m, Py_ssize_t kq, const int8_t* q, Py_ssize_t ldq,
                     const float* xs, const int8_t* packed, const int32_t* csum, const float* ws,
                     const float* bias, int code, float alpha, float* y) noexcept nogil:
    """Rows [r0, r0 + rows) of int8_dense_forward's product and epilogue; returns -1 when out of memory."""
    cdef Py_ssize_t mp = (m + 15) // 16 * 16, i, j
    cdef int32_t* acc = <int32_t*>malloc(rows * mp * sizeof(int32_t))
    cdef float* yr
    if acc == NULL:
        return -1
    if kq > 0:
        dl_igemm(rows, mp // 16, kq, q + r0 * ldq, ldq, packed, csum, acc, mp)
    else:
        for j in range(rows * mp):
            acc[j] = 0
    for i in range(rows):  # the convolutions' row epilogue (restrict pointers, vectorized per ISA): same operations
        yr = y + (r0 + i) * m
        dl_iconv_scale_row_c(m, acc + i * mp, ws, xs[r0 + i], bias, 0, yr)
        if code == ACT_RELU:
            for j in range(m):
                yr[j] = yr[j] if yr[j] > 0 else 0.0
        elif code != ACT_LINEAR:
            epilogue_row(code, yr, <const float*>NULL, m, alpha)
    free(acc)
    return 0


def int8_dense_forward(const float[:, ::1] x_nk, const int8_t[::1] packed, const int32_t[::1] csum_m,
                       const float[::1] w_scale_m, const float[::1] b_m, int activation, double alpha,
                       float[:, ::1] y_nm, int n_threads=1):
    """y_nm = act((q @ w) / (w_scale_m * x_scale[:, None]) + b_m), w packed by int8_pack, with each row of x
    quantized as quantize_rows does (q, x_scale: Keras's abs-max rule) inside the call: the same results
    as quantize_rows then the int8 product and epilogue, in one kernel call.

    x_nk: (N, K) float32, C-contiguous, IN
    packed: int8 from int8_pack, IN
    csum_m: (Mp,) int32 from int8_pack, IN
    w_scale_m: (M,) float32, C-contiguous, IN
    b_m: (M,) float32, C-contiguous, IN, or None (no bias)
    y_nm: (N, M) float32, C-contiguous, OUT
    """
    cdef Py_ssize_t n = y_nm.shape[0], m = y_nm.shape[1], k = x_nk.shape[1], kp = (k + 3) // 4 * 4, i
    cdef Py_ssize_t task, tasks = (n + _ROWS - 1) // _ROWS, r0
    cdef const float* bias = NULL
    cdef const int8_t* pk = NULL
    cdef float* xs
    cdef int8_t* q
    cdef int status = 0, bad = 0
    if x_nk.shape[0] != n:
        raise ValueError(f"int8_dense_forward: x has {x_nk.shape[0]} rows, y has {n}")
    if n == 0 or m == 0:
        return
    if b_m is not None:
        bias = &b_m[0]
    if k > 0:
        pk = &packed[0]
    xs = <float*>malloc(n * sizeof(float) + n * kp)
    if xs == NULL:
        raise MemoryError()
    q = <int8_t*>(xs + n)
    if n_threads <= 1 or tasks <= 1:
        with nogil:
            for i in range(n):
                dl_quantize_row(k, kp, &x_nk[i, 0] if k > 0 else NULL, q + i * kp, xs + i)
            status = _dense_rows(0, n, m, kp // 4, q, kp, xs, pk, &csum_m[0], &w_scale_m[0], bias, activation,
                                 <float>alpha, &y_nm[0, 0])
    else:
        for i in prange(n, nogil=True, num_threads=n_threads, schedule="static"):
            dl_quantize_row(k, kp, &x_nk[i, 0] if k > 0 else NULL, q + i * kp, xs + i)
        for task in prange(tasks, nogil=True, num_threads=n_threads, schedule="static"):
            r0 = task * _ROWS
            if _dense_rows(r0, min(_ROWS, n - r0), m, kp // 4, q, kp, xs, pk, &csum_m[0], &w_scale_m[0], bias,
                           activation, <float>alpha, &y_nm[0, 0]) != 0:
                bad += 1
        status = -1 if bad else 0
    free(xs)
    if status != 0:
        raise MemoryError()


def int8_embedding_forward(const int64_t[::1] ids_n, const int8_t[:, ::1] w_vd, const float[::1] scale_v,
                           float[:, ::1] y_nd, int n_threads=1):
    """y_nd[i] = w_vd[ids_n[i]] / scale_v[ids_n[i]]; ValueError (nothing written) when an id is
    outside [0, V).

    ids_n: (N,) int64, C-contiguous, IN
    w_vd: (V, D) int8, C-contiguous, IN
    scale_v: (V,) float32, C-contiguous, IN
    y_nd: (N, D) float32, C-contiguous, OUT
    """
    cdef Py_ssize_t N = ids_n.shape[0], D = w_vd.shape[1], V = w_vd.shape[0], i, j, bad
    cdef int64_t r
    if N == 0 or D == 0:
        return
    bad = first_out_of_range(&ids_n[0], N, V)
    if bad >= 0:
        raise ValueError(f"int8_embedding_forward: ids must be in [0, {V}), received {ids_n[bad]} at position "
                         f"{bad}")
    for i in prange(N, nogil=True, num_threads=max(n_threads, 1), schedule="static"):
        r = ids_n[i]
        for j in range(D):
            y_nd[i, j] = <float>w_vd[r, j] / scale_v[r]


def quantize_static(const float[::1] x_l, float scale, int8_t[::1] q_l, int n_threads=1):
    """q_l = clip(round(x_l * scale), -127, 127) (half to even; NaN gives 0): a static per-tensor scale.

    x_l: (L,) float32, C-contiguous, IN
    q_l: (L,) int8, C-contiguous, OUT
    """
    cdef Py_ssize_t n = x_l.shape[0], chunk = 65536, tasks = (n + chunk - 1) // chunk, t
    if n == 0:
        return
    if n_threads <= 1 or tasks <= 1:
        with nogil:
            dl_quantize_static(n, &x_l[0], scale, &q_l[0])
    else:
        for t in prange(tasks, nogil=True, num_threads=n_threads, schedule="static"):
            dl_quantize_static(min(chunk, n - t * chunk), &x_l[t * chunk], scale, &q_l[t * chunk])


ctypedef struct IConv:
    Py_ssize_t n, h, w, c, oh, ow, m, kh, kw, sh, sw, ph, pw, dh, dw, k, kp
    const float* xs      # (N,) per-sample input scales
    const float* ws      # (M,) kernel scales
    const float* bias    # (M,) or NULL
    int code
    float alpha
    float out_scale      # requantization scale (int8 output)
    float* y             # (P, M) float32 output, or NULL
    int8_t* yq           # (P, M) int8 output, or NULL


cdef void _epilogue(const IConv* g, Py_ssize_t r0, Py_ssize_t rows, const int32_t* acc, Py_ssize_t lda,
                    float* scratch) noexcept nogil:
    """Pixels [r0, r0 + rows): y = act(acc / (w_scale * x_scale[sample]) + bias), written as float32, or
    requantized to int8 (``scratch``: rows * M float32)."""
    cdef Py_ssize_t i, m = g.m, pix = g.oh * g.ow, b = r0 // pix, e = r0 % pix
    cdef float* block = g.y + r0 * m if g.y != NULL else scratch
    cdef float* yr
    cdef int code = g.code
    if code == ACT_RELU or code == ACT_LINEAR:
        dl_iconv_epilogue(r0, rows, pix, m, acc, lda, g.ws, g.xs, g.bias, code == ACT_RELU, block, g.out_scale,
                          g.yq + r0 * m if g.yq != NULL else NULL, scratch)
        return
    for i in range(rows):  # the other activations: float32 rows, then requantized as one block
        yr = block + i * m
        dl_iconv_scale_row_c(m, acc + i * lda, g.ws, g.xs[b], g.bias, 0, yr)
        epilogue_row(code, yr, <const float*>NULL, m, g.alpha)
        e += 1
        if e == pix:
            e = 0
            b += 1
    if g.yq != NULL:
        dl_requantize_row(rows * m, block, g.out_scale, g.yq + r0 * m)


cdef int _conv_rows(const IConv* g, Py_ssize_t r0, Py_ssize_t rows, const int8_t* x, const int8_t* packed,
                    const int32_t* csum) noexcept nogil:
    """Output pixels [r0, r0 + rows) of int8_conv2d_forward; -1 when out of memory."""
    cdef Py_ssize_t mp = (g.m + 15) // 16 * 16
    cdef bint direct = g.kh == 1 and g.kw == 1 and g.sh == 1 and g.sw == 1 and g.ph == 0 and g.pw == 0 \
        and g.kp == g.c
    cdef int8_t* cols = NULL
    cdef int32_t* acc = <int32_t*>malloc(rows * mp * sizeof(int32_t))
    cdef float* row = <float*>malloc(rows * g.m * sizeof(float)) if g.yq != NULL else NULL
    if not direct:
        cols = <int8_t*>malloc(rows * g.kp)
    if acc == NULL or (g.yq != NULL and row == NULL) or (not direct and cols == NULL):
        free(acc)
        free(row)
        free(cols)
        return -1
    if direct:  # a 1x1 stride-1 convolution: the input pixels are the GEMM's rows
        dl_igemm(rows, mp // 16, g.kp // 4, x + r0 * g.c, g.kp, packed, csum, acc, mp)
    else:
        dl_iconv_im2col(r0, rows, x, g.h, g.w, g.c, g.oh, g.ow, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.kp,
                        cols)
        dl_igemm(rows, mp // 16, g.kp // 4, cols, g.kp, packed, csum, acc, mp)
    _epilogue(g, r0, rows, acc, mp, row)
    free(acc)
    free(row)
    free(cols)
    return 0


cdef void _geometry(IConv* g, x, y_pm, yq_pm, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                    int activation, double alpha, float out_scale, Py_ssize_t oh, Py_ssize_t ow) except *:
    g.n, g.h, g.w, g.c = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
    g.oh, g.ow = oh, ow
    g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw = kh, kw, sh, sw, ph, pw, dh, dw
    g.k = kh * kw * g.c
    g.kp = (g.k + 3) // 4 * 4
    g.code, g.alpha, g.out_scale = activation, <float>alpha, out_scale
    out = y_pm if y_pm is not None else yq_pm
    if out is None or (y_pm is not None and yq_pm is not None):
        raise ValueError("int8 conv kernels: pass exactly one of the float32 and int8 outputs")
    g.m = out.shape[1]
    if out.shape[0] != g.n * oh * ow:
        raise ValueError(f"int8 conv kernels: the output has {out.shape[0]} rows, expected N * OH * OW = "
                         f"{g.n * oh * ow}")


def int8_conv2d_forward(const int8_t[:, :, :, ::1] x_nhwc, const float[::1] x_scale_n, const int8_t[::1] packed,
                        const int32_t[::1] csum_m, const float[::1] w_scale_m, const float[::1] b_m,
                        int kh, int kw, int stride_h, int stride_w, int pad_h, int pad_w, int dilation_h,
                        int dilation_w, Py_ssize_t oh, Py_ssize_t ow, int activation, double alpha,
                        float[:, ::1] y_pm, int8_t[:, ::1] yq_pm, float out_scale, int n_threads=1):
    """y = act(conv(x, w) / (w_scale_m * x_scale_n[sample]) + b_m) with the int8 GEMM (w packed by
    int8_pack from the (KH * KW * C, M) kernel), as float32 or requantized to int8 (yq = clip(round(y
    out_scale))). Rows of y are output pixels (n, i, j) in NHWC order; pad_h / pad_w are the top /
    left zero paddings (the input's int8 zero is 0.0).

    x_nhwc: (N, H, W, C) int8, C-contiguous, IN
    x_scale_n: (N,) float32, C-contiguous, IN
    packed: int8 from int8_pack of the (KH * KW * C, M) kernel, IN
    csum_m: (Mp,) int32 from int8_pack, IN
    w_scale_m: (M,) float32, C-contiguous, IN
    b_m: (M,) float32, C-contiguous, IN, or None (no bias)
    y_pm: (N * OH * OW, M) float32, C-contiguous, OUT, or None (then yq_pm)
    yq_pm: (N * OH * OW, M) int8, C-contiguous, OUT, or None (then y_pm)
    """
    cdef IConv g
    cdef Py_ssize_t total, task, tasks
    cdef int bad = 0
    _geometry(&g, x_nhwc, y_pm, yq_pm, kh, kw, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w,
              activation, alpha, out_scale, oh, ow)
    total = g.n * oh * ow
    if total == 0 or g.m == 0:
        return
    g.xs, g.ws = &x_scale_n[0], &w_scale_m[0]
    g.bias = &b_m[0] if b_m is not None else NULL
    g.y = &y_pm[0, 0] if y_pm is not None else NULL
    g.yq = &yq_pm[0, 0] if yq_pm is not None else NULL
    tasks = (total + _ROWS - 1) // _ROWS
    if n_threads <= 1 or tasks <= 1:
        with nogil:
            for task in range(tasks):
                if _conv_rows(&g, task * _ROWS, min(_ROWS, total - task * _ROWS), &x_nhwc[0, 0, 0, 0],
                              &packed[0], &csum_m[0]) != 0:
                    bad += 1
                    break
    else:
        for task in prange(tasks, nogil=True, num_threads=n_threads, schedule="static"):
            if _conv_rows(&g, task * _ROWS, min(_ROWS, total - task * _ROWS), &x_nhwc[0, 0, 0, 0], &packed[0],
                          &csum_m[0]) != 0:
                bad += 1
    if bad:
        raise MemoryError()


cdef int _depthwise_rows(const IConv* g, Py_ssize_t r0, Py_ssize_t rows, Py_ssize_t dm, const int8_t* x,
                         const int8_t* w) noexcept nogil:
    """Output pixels [r0, r0 + rows) of int8_depthwise_forward; -1 when out of memory."""
    cdef Py_ssize_t m = g.m, t, r, b, e, a, e2, ih, iw, cc, j, pix = g.oh * g.ow
    cdef int32_t* acc = <int32_t*>malloc(rows * m * sizeof(int32_t))
    cdef float* row = <float*>malloc(rows * m * sizeof(float))
    cdef int32_t* ar
    cdef const int8_t* xp
    cdef const int8_t* wp
    if acc == NULL or row == NULL:
        free(acc)
        free(row)
        return -1
    memset(acc, 0, rows * m * sizeof(int32_t))
    for t in range(rows):
        r = r0 + t
        b = r // pix
        e = r % pix
        ar = acc + t * m
        for a in range(g.kh):
            ih = (e // g.ow) * g.sh - g.ph + a * g.dh
            if ih < 0 or ih >= g.h:
                continue
            for e2 in range(g.kw):
                iw = (e % g.ow) * g.sw - g.pw + e2 * g.dw
                if iw < 0 or iw >= g.w:
                    continue
                xp = x + ((b * g.h + ih) * g.w + iw) * g.c
                wp = w + (a * g.kw + e2) * m
                if dm == 1:
                    for j in range(m):
                        ar[j] += <int32_t>xp[j] * <int32_t>wp[j]
                else:
                    for cc in range(g.c):
                        for j in range(dm):
                            ar[cc * dm + j] += <int32_t>xp[cc] * <int32_t>wp[cc * dm + j]
    _epilogue(g, r0, rows, acc, m, row)
    free(acc)
    free(row)
    return 0


def int8_depthwise_forward(const int8_t[:, :, :, ::1] x_nhwc, const float[::1] x_scale_n,
                           const int8_t[:, :, ::1] w_hwo, const float[::1] w_scale_o, const float[::1] b_o,
                           int stride_h, int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w,
                           Py_ssize_t oh, Py_ssize_t ow, int activation, double alpha, float[:, ::1] y_po,
                           int8_t[:, ::1] yq_po, float out_scale, int n_threads=1):
    """Depthwise y[., c * DM + d] = act(sum x[., c] w[., c * DM + d] / (w_scale * x_scale) + b) in int32,
    as float32 or requantized to int8 (see int8_conv2d_forward); DM = O / C.

    x_nhwc: (N, H, W, C) int8, C-contiguous, IN
    x_scale_n: (N,) float32, C-contiguous, IN
    w_hwo: (KH, KW, O) int8 (Keras's (KH, KW, C, DM) kernel with O = C * DM), C-contiguous, IN
    w_scale_o: (O,) float32, C-contiguous, IN
    b_o: (O,) float32, C-contiguous, IN, or None
    y_po: (N * OH * OW, O) float32, C-contiguous, OUT, or None (then yq_po)
    yq_po: (N * OH * OW, O) int8, C-contiguous, OUT, or None (then y_po)
    """
    cdef IConv g
    cdef Py_ssize_t total, task, tasks, dm
    cdef int bad = 0
    _geometry(&g, x_nhwc, y_po, yq_po, w_hwo.shape[0], w_hwo.shape[1], stride_h, stride_w, pad_h, pad_w,
              dilation_h, dilation_w, activation, alpha, out_scale, oh, ow)
    if g.c == 0 or g.m % g.c != 0 or w_hwo.shape[2] != g.m:
        raise ValueError(f"int8_depthwise_forward: expected a kernel of {g.m} outputs, a multiple of the "
                         f"{g.c} input channels; received {w_hwo.shape[2]}")
    dm = g.m // g.c
    total = g.n * oh * ow
    if total == 0:
        return
    g.xs, g.ws = &x_scale_n[0], &w_scale_o[0]
    g.bias = &b_o[0] if b_o is not None else NULL
    g.y = &y_po[0, 0] if y_po is not None else NULL
    g.yq = &yq_po[0, 0] if yq_po is not None else NULL
    tasks = (total + _ROWS - 1) // _ROWS
    if n_threads <= 1 or tasks <= 1:
        with nogil:
            for task in range(tasks):
                if _depthwise_rows(&g, task * _ROWS, min(_ROWS, total - task * _ROWS), dm, &x_nhwc[0, 0, 0, 0],
                                   &w_hwo[0, 0, 0]) != 0:
                    bad += 1
                    break
    else:
        for task in prange(tasks, nogil=True, num_threads=n_threads, schedule="static"):
            if _depthwise_rows(&g, task * _ROWS, min(_ROWS, total - task * _ROWS), dm, &x_nhwc[0, 0, 0, 0],
                               &w_hwo[0, 0, 0]) != 0:
                bad += 1
    if bad:
        raise MemoryError()


def int8_max_pool2d_forward(const int8_t[:, :, :, ::1] x_nhwc, int pool_h, int pool_w, int stride_h, int stride_w,
                            int8_t[:, :, :, ::1] y_nhwc, int n_threads=1):
    """y[n, i, j, c] = max over the window (i * stride_h + a, j * stride_w + b), a < pool_h, b < pool_w ("valid").

    x_nhwc: (N, H, W, C) int8, C-contiguous, IN
    y_nhwc: (N, OH, OW, C) int8, C-contiguous, OUT
    """
    cdef Py_ssize_t n = y_nhwc.shape[0], oh = y_nhwc.shape[1], ow = y_nhwc.shape[2], c = y_nhwc.shape[3]
    cdef Py_ssize_t w = x_nhwc.shape[2], row, b, i
    if n * oh * ow * c == 0:
        return
    for row in prange(n * oh, nogil=True, num_threads=max(n_threads, 1), schedule="static"):
        b = row // oh
        i = row % oh
        dl_i8_max_pool_row(ow, c, w, pool_h, pool_w, stride_w, &x_nhwc[b, i * stride_h, 0, 0], &y_nhwc[b, i, 0, 0])


include "_quantized_recurrent.pxi"
