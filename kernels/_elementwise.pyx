# Design: forward activations, Cython because inference needs them (predict never imports numba).
# The scalar math lives in _activations.pxd (inline, shared with dense_forward's epilogue).
# activation_forward works on flat 1-D views split into fixed blocks of BLOCK elements, one
# prange iteration per block; softmax/log_softmax run one row per prange iteration. Every output
# element is written by exactly one thread with the same arithmetic, so results are bit-identical
# for any n_threads. activation_backward is here too (C with AVX-512/AVX2 clones, see below).
#
# Legend: N elements of a flat array; R rows, C columns (softmax runs over C, the last axis).
from cython.parallel cimport prange

from kernels._activations cimport (
    floating, act_row, softmax_row, log_softmax_row, ACT_N_ELEMENTWISE,
    ACT_LINEAR, ACT_RELU, ACT_SIGMOID, ACT_TANH, ACT_LEAKY_RELU, ACT_ELU, ACT_SELU, ACT_GELU,
    ACT_GELU_TANH, ACT_SILU, ACT_SOFTPLUS, ACT_SOFTSIGN, ACT_HARD_SIGMOID, ACT_RELU6,
    ACT_EXPONENTIAL, ACT_SOFTMAX, ACT_LOG_SOFTMAX,
)

LINEAR = ACT_LINEAR
RELU = ACT_RELU
SIGMOID = ACT_SIGMOID
TANH = ACT_TANH
LEAKY_RELU = ACT_LEAKY_RELU
ELU = ACT_ELU
SELU = ACT_SELU
GELU = ACT_GELU
GELU_TANH = ACT_GELU_TANH
SILU = ACT_SILU
SOFTPLUS = ACT_SOFTPLUS
SOFTSIGN = ACT_SOFTSIGN
HARD_SIGMOID = ACT_HARD_SIGMOID
RELU6 = ACT_RELU6
EXPONENTIAL = ACT_EXPONENTIAL
SOFTMAX = ACT_SOFTMAX
LOG_SOFTMAX = ACT_LOG_SOFTMAX
N_ELEMENTWISE = ACT_N_ELEMENTWISE

ACTIVATIONS = {
    "linear": LINEAR,
    "relu": RELU,
    "sigmoid": SIGMOID,
    "tanh": TANH,
    "leaky_relu": LEAKY_RELU,
    "elu": ELU,
    "selu": SELU,
    "gelu": GELU,
    "gelu_tanh": GELU_TANH,
    "silu": SILU,
    "softplus": SOFTPLUS,
    "softsign": SOFTSIGN,
    "hard_sigmoid": HARD_SIGMOID,
    "relu6": RELU6,
    "exponential": EXPONENTIAL,
    "softmax": SOFTMAX,
    "log_softmax": LOG_SOFTMAX,
}

# Elements per prange iteration of activation_forward (fixed, so the split never depends on
# the thread count).
cdef Py_ssize_t BLOCK = 4096


def activation_forward(int code, const floating[::1] x, double alpha, floating[::1] y_out,
                       int n_threads=1):
    """y_out[i] = act_code(x[i]) for the elementwise codes 0..14 (see ACTIVATIONS).

    x: (N,) float32/64, C-contiguous, IN (may be the same buffer as y_out)
    y_out: (N,) same dtype, C-contiguous, OUT

    alpha is leaky_relu's negative slope or elu's alpha (ignored by the other codes).
    Raises ValueError for softmax/log_softmax codes (use softmax_forward/log_softmax_forward).
    """
    if code < 0 or code >= ACT_N_ELEMENTWISE:
        raise ValueError(f"activation_forward takes elementwise codes 0..14, received {code}")
    cdef Py_ssize_t n = x.shape[0], n_blocks = (n + BLOCK - 1) // BLOCK, blk, i0, i1
    cdef floating a = <floating>alpha
    if n == 0:
        return
    if n_blocks == 1:
        act_row(code, &x[0], <const floating*>NULL, &y_out[0], n, a)
        return
    for blk in prange(n_blocks, nogil=True, num_threads=n_threads, schedule="static"):
        i0 = blk * BLOCK
        i1 = i0 + BLOCK
        if i1 > n:
            i1 = n
        act_row(code, &x[i0], <const floating*>NULL, &y_out[i0], i1 - i0, a)


cdef inline void add_rows(const floating* a, const floating* b, floating* out, Py_ssize_t rows,
                          Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t r, j
    for r in range(rows):
        for j in range(m):
            out[r * m + j] = a[r * m + j] + b[j]


def add_forward(const floating[::1] a_n, const floating[::1] b_m, floating[::1] out_n, int n_threads=1):
    """out_n[i] = a_n[i] + b_m[i % M]: the sum of two arrays of one shape (M == N), or of an array
    and one it repeats over its leading axes (a (..., *S) array plus an S-shaped one).

    a_n: (N,) float32/64, C-contiguous, IN (may be the same buffer as out_n)
    b_m: (M,) same dtype, C-contiguous, IN; N a multiple of M
    out_n: (N,) same dtype, C-contiguous, OUT
    """
    cdef Py_ssize_t n = a_n.shape[0], m = b_m.shape[0], n_blocks, blk, i0, i1, rows
    if n == 0:
        return
    if m == 0 or n % m != 0 or out_n.shape[0] != n:
        raise ValueError(f"add_forward: expected N a multiple of M and out of N elements, received N={n}, "
                         f"M={m}, out of {out_n.shape[0]}")
    if m == n:  # one shape: fixed blocks of the flat arrays
        n_blocks = (n + BLOCK - 1) // BLOCK
        for blk in prange(n_blocks, nogil=True, num_threads=n_threads, schedule="static"):
            i0 = blk * BLOCK
            i1 = i0 + BLOCK
            if i1 > n:
                i1 = n
            add_rows(&a_n[i0], &b_m[i0], &out_n[i0], 1, i1 - i0)
        return
    rows = n // m
    for blk in prange(rows, nogil=True, num_threads=n_threads, schedule="static"):
        add_rows(&a_n[blk * m], &b_m[0], &out_n[blk * m], 1, m)


def fill(floating[::1] out_n, double value):
    """out_n[:] = value.

    out_n: (N,) float32/64, C-contiguous, OUT
    value: float, IN (rounded to out_n's dtype)
    """
    cdef Py_ssize_t i, n = out_n.shape[0]
    cdef floating v = <floating>value
    for i in range(n):
        out_n[i] = v


def softmax_forward(const floating[:, ::1] x_rc, floating[:, ::1] y_out, int n_threads=1):
    """y_out[r] = softmax(x_rc[r]) over the last axis, with the row max subtracted first.

    x_rc: (R, C) float32/64, C-contiguous, IN (may be the same buffer as y_out)
    y_out: (R, C) same dtype, C-contiguous, OUT
    """
    cdef Py_ssize_t r = x_rc.shape[0], c = x_rc.shape[1], i
    if r == 0 or c == 0:
        return
    for i in prange(r, nogil=True, num_threads=n_threads, schedule="static"):
        softmax_row(&x_rc[i, 0], <const floating*>NULL, &y_out[i, 0], c)


def log_softmax_forward(const floating[:, ::1] x_rc, floating[:, ::1] y_out, int n_threads=1):
    """y_out[r] = x_rc[r] - max - log(sum(exp(x_rc[r] - max))) over the last axis.

    x_rc: (R, C) float32/64, C-contiguous, IN (may be the same buffer as y_out)
    y_out: (R, C) same dtype, C-contiguous, OUT
    """
    cdef Py_ssize_t r = x_rc.shape[0], c = x_rc.shape[1], i
    if r == 0 or c == 0:
        return
    for i in prange(r, nogil=True, num_threads=n_threads, schedule="static"):
        log_softmax_row(&x_rc[i, 0], <const floating*>NULL, &y_out[i, 0], c)


# ---- backward -----------------------------------------------------------------------------------
# Every elementwise code, both dtypes, in C compiled for AVX-512/AVX2/baseline (target_clones):
# one loop per code over a block of the flat arrays. float32 uses a vectorizable exp (Cephes
# polynomial, dl_expf.h) and erfc (Numerical Recipes' erfcc); float64 libm's exp/erfc.
# Derivatives read whichever of x (forward input) and y (forward output) is cheaper and stable:
# y for sigmoid, tanh, elu, selu, exponential; the sign tests of relu-like codes hold for y too.
# Both operands of a select are computed before it, so GCC emits vector blends (a conditional
# load became a mispredicted branch on random signs: 10x slower). `ivdep`: dy may be dx itself.
# Measured 1 thread, (64,30,30,32) float32, against the Numba kernel this replaced: leaky_relu
# 3.3 -> 0.34 ms, elu 4.1 -> 0.54, selu 4.1 -> 0.51, silu 6.3 -> 0.83, softplus 5.5 -> 0.68,
# gelu_tanh 9.9 -> 1.05, gelu 24 -> 1.6 ms; relu, sigmoid, tanh (already Cython, baseline SSE2)
# 0.25-0.29 -> 0.23-0.25 ms: they stream 12 bytes per element and are bound by memory.
# Worst float32 error against float64 over [-12, 12]: 2.4e-7 absolute (gelu).
# Non-temporal stores for a large relu dx (as max_pool2d_2x2_backward's) measured slower in
# the CNN step (min 12.2 -> 13.0 ms): its consumer, the convolution's backward, reads it from cache.
cdef extern from *:
    """
    #include <math.h>
    #include <stdint.h>
    #include <string.h>
    #include "dl_clones.h"
    #include "dl_expf.h"
    static inline double dle_exp(double x) { return exp(x); }
    /* erfc(x) for float32, vectorizable: Numerical Recipes' erfcc (Chebyshev fit, fractional
       error < 1.2e-7 in exact arithmetic), with the exp above. libm's erfcf is a scalar call:
       exact gelu's backward took 20 ms at 1.8M elements with it, against ~1 ms with this. */
    static inline float dle_erfcf(float x) {
        float z = x < 0.0f ? -x : x;
        float t = 1.0f / (1.0f + 0.5f * z);
        float p = t * (-0.82215223f + t * 0.17087277f);
        p = t * (1.48851587f + p);
        p = t * (-1.13520398f + p);
        p = t * (0.27886807f + p);
        p = t * (-0.18628806f + p);
        p = t * (0.09678418f + p);
        p = t * (0.37409196f + p);
        p = t * (1.00002368f + p);
        float r = t * dl_expf(-z * z - 1.26551223f + p);
        return x >= 0.0f ? r : 2.0f - r;
    }
    static inline double dle_erfc(double x) { return erfc(x); }

    /* dx[i] = dy[i] * act'(x[i]) for one activation code (elementwise.ACTIVATIONS). */
    #define DLE_LOOP(expr) _Pragma("GCC ivdep") for (i = 0; i < n; i++) { expr; }
    #define DLE_BACKWARD(T, S, EXP, ERFC)                                                         \
    DL_CLONES static void dle_act_backward_##S(int code, const T* x, const T* y, const T* dy,    \
                                                T alpha, T* dx, Py_ssize_t n) {                   \
        Py_ssize_t i;                                                                             \
        const T one = 1, zero = 0;                                                                \
        switch (code) {                                                                           \
        case 1: /* relu: 0 at x == 0 (as TF/PyTorch) */                                          \
            DLE_LOOP(T g = dy[i]; dx[i] = x[i] > zero ? g : zero) break;                          \
        case 2: /* sigmoid */                                                                     \
            DLE_LOOP(T s = y[i]; dx[i] = dy[i] * (s * (one - s))) break;                          \
        case 3: /* tanh */                                                                        \
            DLE_LOOP(T t = y[i]; dx[i] = dy[i] * (one - t * t)) break;                            \
        case 4: /* leaky_relu: alpha at 0 */                                                      \
            DLE_LOOP(T g = dy[i]; dx[i] = x[i] > zero ? g : g * alpha) break;                     \
        case 5: /* elu, x < 0: alpha e^x = y + alpha */                                           \
            DLE_LOOP(T g = dy[i]; T h = g * (y[i] + alpha); dx[i] = x[i] > zero ? g : h) break;   \
        case 6: /* selu */                                                                        \
            DLE_LOOP(T g = dy[i]; T p = g * (T)1.0507009873554805;                                \
                     T q = g * (y[i] + (T)1.7580993408473766); dx[i] = x[i] > zero ? p : q) break;\
        case 7: /* gelu: Phi(x) + x phi(x) */                                                     \
            DLE_LOOP(T v = x[i]; T cdf = (T)0.5 * ERFC(-v * (T)0.7071067811865476);               \
                     T pdf = (T)0.3989422804014327 * EXP((T)-0.5 * v * v);                        \
                     dx[i] = dy[i] * (cdf + v * pdf)) break;                                      \
        case 8: /* gelu_tanh: f = x s(2u), f' = s + 2 x s (1 - s) u' */                           \
            DLE_LOOP(T v = x[i];                                                                  \
                     T u2 = (T)(2 * 0.7978845608028654) * (v + (T)0.044715 * v * v * v);          \
                     T z = EXP(u2 < zero ? u2 : -u2); T r = one / (one + z);                      \
                     T s = u2 >= zero ? r : z * r;                                                \
                     T du = (T)0.7978845608028654 * (one + (T)(3 * 0.044715) * v * v);            \
                     dx[i] = dy[i] * (s + (T)2 * v * (z * r * r) * du)) break;                    \
        case 9: /* silu: f = x s(x), f' = s + x s (1 - s) */                                      \
            DLE_LOOP(T v = x[i]; T z = EXP(v < zero ? v : -v); T r = one / (one + z);             \
                     T s = v >= zero ? r : z * r; dx[i] = dy[i] * (s + v * (z * r * r))) break;   \
        case 10: /* softplus: s(x) */                                                             \
            DLE_LOOP(T v = x[i]; T z = EXP(v < zero ? v : -v); T r = one / (one + z);             \
                     dx[i] = dy[i] * (v >= zero ? r : z * r)) break;                              \
        case 11: /* softsign */                                                                   \
            DLE_LOOP(T v = x[i]; T d = one + (v < zero ? -v : v); dx[i] = dy[i] / (d * d)) break; \
        case 12: /* hard_sigmoid: 1/6 inside (-3, 3), 0 at the kinks */                          \
            DLE_LOOP(T v = x[i]; T g = dy[i] * (T)(1.0 / 6.0);                                    \
                     dx[i] = (v > (T)-3 && v < (T)3) ? g : zero) break;                           \
        case 13: /* relu6: 0 at the kinks */                                                      \
            DLE_LOOP(T v = x[i]; T g = dy[i]; dx[i] = (v > zero && v < (T)6) ? g : zero) break;   \
        case 14: /* exponential */                                                                \
            DLE_LOOP(dx[i] = dy[i] * y[i]) break;                                                 \
        default: /* linear */                                                                     \
            if (dx != dy) memcpy(dx, dy, n * sizeof(T));                                          \
        }                                                                                         \
    }
    DLE_BACKWARD(float, f32, dl_expf, dle_erfcf)
    DLE_BACKWARD(double, f64, dle_exp, dle_erfc)
    """
    void dle_act_backward_f32(int code, const float* x, const float* y, const float* dy,
                              float alpha, float* dx, Py_ssize_t n) noexcept nogil
    void dle_act_backward_f64(int code, const double* x, const double* y, const double* dy,
                              double alpha, double* dx, Py_ssize_t n) noexcept nogil


# Elements per prange iteration of activation_backward (fixed: thread-count free).
cdef Py_ssize_t _BW_BLOCK = 1 << 14


def activation_backward(int code, const floating[::1] x, const floating[::1] y,
                        const floating[::1] dy, double alpha, floating[::1] dx_out, int n_threads=1):
    """dx_out = dy * act_code'(x) for the elementwise codes 0..14 (see ACTIVATIONS).

    x: (N,) float32/64, C-contiguous, IN (the forward input; for the codes whose derivative is
        read off y or a sign test, the forward output may be passed instead)
    y: (N,) same dtype, C-contiguous, IN (the forward output)
    dy: (N,) same dtype, C-contiguous, IN (may be the same buffer as dx_out)
    dx_out: (N,) same dtype, C-contiguous, OUT

    alpha is leaky_relu's slope / elu's alpha. relu's derivative at exactly 0 is 0; leaky_relu's
    is alpha; relu6 and hard_sigmoid use 0 at their kinks.
    """
    if code < 0 or code >= ACT_N_ELEMENTWISE:
        raise ValueError(f"activation_backward takes elementwise codes 0..14, received {code}")
    cdef Py_ssize_t n = x.shape[0], b, i0, m, n_blocks = (x.shape[0] + _BW_BLOCK - 1) // _BW_BLOCK
    if n == 0:
        return
    for b in prange(n_blocks, nogil=True, num_threads=n_threads, schedule="static"):
        i0 = b * _BW_BLOCK
        m = _BW_BLOCK if i0 + _BW_BLOCK <= n else n - i0
        if floating is float:
            dle_act_backward_f32(code, &x[i0], &y[i0], &dy[i0], <float>alpha, &dx_out[i0], m)
        else:
            dle_act_backward_f64(code, &x[i0], &y[i0], &dy[i0], alpha, &dx_out[i0], m)
