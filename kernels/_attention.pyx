# Design: fused scaled-dot-product attention (FlashAttention-2), forward and backward, Cython.
#   - Layout (B, T, H, D): query (B, T, H, D), key (B, S, Hk, D), value (B, S, Hk, Dv), output
#     (B, T, H, Dv), as Keras's MultiHeadAttention produces after its projections and as
#     keras.ops.dot_product_attention takes. H must be a multiple of Hk (grouped-query
#     attention): query head h reads key/value head h // (H // Hk).
#   - Forward: one task per (batch, head, query tile of BR rows), over the thread team under
#     TEAM_MAX_MACS (batch-1 sizes: no OpenMP barrier to wait at), else OpenMP. Per task the
#     query tile is scaled and transposed once, then key/value tiles of BC_FORWARD rows are walked
#     keeping the running row max m and sum l (online softmax); the accumulator is rescaled by
#     exp(m_old - m_new) when the max grows. The row log-sum-exp L = m + log l is stored for the
#     backward pass. Memory: per-thread tiles only, so it grows linearly with T and S.
#   - The forward works on S^T = K (scale Q)^T (keys x queries): K and V are read in place, and
#     the max and sum over keys are column-wise vector ops (no lane reductions). At B 32, T 128,
#     4 heads of 32, one thread: 4.7 -> 4.2 ms against S = Q K^T on a transposed copy of K.
#   - Scores: s = (scale q) . k + bias; where the boolean mask is 0 or (causal) j > i, s is
#     replaced by NEG = -1e9, as keras.ops.dot_product_attention does (a fully masked row is
#     then uniform over all keys, as in Keras). Causal is top-left aligned (j <= i, Keras's
#     tril(ones(T, S))). Key tiles wholly above the diagonal are skipped: exact whenever the row
#     has an unmasked key (their weight exp(NEG - m) is exactly 0); the op tier disables the
#     skip for inputs whose mask leaves a causal row empty.
#   - Dropout acts on the normalized probabilities inside the tile loop: keep (i, j) when the
#     counter-based hash splitmix64(seed, ((b*H + h)*T + i)*S + j) >> 11 >= ceil(rate * 2^53),
#     kept weights scaled by 1/(1 - rate). Forward and backward regenerate the same mask, and
#     no mask is stored.
#   - Backward: one task per (batch, key/value head): the task owns dK, dV of that head and dQ of
#     the H // Hk query heads that read it, so nothing is shared between threads (no atomics)
#     and every sum runs in one fixed order: bit-identical for any thread count. Per query head
#     it first transposes (scale Q) and dO tile by tile and splits L into two floats, then per key
#     tile walks the query tiles on S^T (keys x queries, as the forward): P^T = exp(S^T - L),
#     dP^T = V dO^T (* Z), dS^T = scale P^T * (dP^T - D) with D = rowsum(dO * O), dV += P^T dO,
#     dK += dS^T Q, dQ += dS K, all accumulated in place in the outputs (the first product of
#     each writes; scratch T (D + Dv + 3) floats per thread). A task per (batch, kv head) leaves
#     threads idle when B*Hk < threads (batch 1, one kv head). At B 32, T 128, 4 heads of 32,
#     one thread: 10.1 -> 9.6 ms against S = Q K^T on per-key-tile K^T, V^T and scratch dK, dV.
#   - Without bias, mask or dropout the pass after a scores product runs in its tiles'
#     epilogue, on the registers: the forward's column max, the backward's exp and dS
#     (dl_att_sgemm_max / _exp / _ds; the causal mask too on diagonal tiles: _maxc, _expc).
#   - The tile products are the project's AVX-512 sgemm tiles (dl_sgemm.h) in float32 on CPUs
#     that have them; float64 and other CPUs use the register-friendly loops of _gemm below
#     (8 columns of a row of C summed over k in registers, which the compiler vectorizes: float64
#     at B 4, T 128 5.9 -> 4.7 ms forward against an axpy into C per step of k). The float32
#     max, exp, sums, score gradient, transposes, D and L use the vector helpers of dl_attention.h.
#     Where the time goes (T 128, 4 heads of 32, one thread, in cache, perf): forward ~13.5 us per
#     query tile, 70% the two products (S^T with its max, P V), 12% exp, 3% the Q transpose;
#     backward ~62 us per (batch, head), 86% the five products (exp and dS in two of them), 3%
#     the transposes and D. The products run at 94-104 GFLOPS (k = D = 32 is short); out of cache
#     (B 32: 16 MB of operands) every part runs 10-20% slower here: only reading the backward's
#     rows (128 bytes of each 512) takes 2.3 ms, and prefetching the next head's rows (in bursts or
#     spread over this head's products) did not overlap it (10.4 with, 10.2 ms without).
#
# Legend: B batch, T query length, S key length, H query heads, Hk key/value heads, D key dim,
# Dv value dim, BR/BC query/key tile rows (BC_FORWARD: the forward's key tile; the non-causal
# backward's query tiles are 2 BR).
import numpy as np

from cython.parallel cimport prange, parallel
from libc.math cimport exp, log, ceil
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset
from libc.stdint cimport uint64_t

from . import _config
from ._team cimport team_run

cdef extern from "dl_sgemm.h" nogil:
    int dl_sgemm_available()
    void dl_sgemm(int a_cols, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a,
                  Py_ssize_t lda, const float* b, Py_ssize_t ldb, float beta, float* c,
                  Py_ssize_t ldc)

cdef extern from "dl_attention.h" nogil:
    float dl_att_dot_f(const float* a, const float* b, Py_ssize_t n, int vector)
    void dl_att_lse_f(double* lse, const float* m, const float* l, Py_ssize_t n, int vector)
    void dl_att_transpose_f(float* dst, Py_ssize_t ldd, const float* src, Py_ssize_t rows, Py_ssize_t cols,
                            Py_ssize_t lds, float scale, int vector)
    void dl_att_sgemm_max(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a, Py_ssize_t lda,
                          const float* b, Py_ssize_t ldb, float* c, Py_ssize_t ldc, const float* v,
                          Py_ssize_t voff, Py_ssize_t poff, float s, Py_ssize_t d)
    void dl_att_sgemm_maxc(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a, Py_ssize_t lda,
                           const float* b, Py_ssize_t ldb, float* c, Py_ssize_t ldc, const float* v,
                           Py_ssize_t voff, Py_ssize_t poff, float s, Py_ssize_t d)
    void dl_att_sgemm_exp(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a, Py_ssize_t lda,
                          const float* b, Py_ssize_t ldb, float* c, Py_ssize_t ldc, const float* v,
                          Py_ssize_t voff, Py_ssize_t poff, float s, Py_ssize_t d)
    void dl_att_sgemm_expc(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a, Py_ssize_t lda,
                           const float* b, Py_ssize_t ldb, float* c, Py_ssize_t ldc, const float* v,
                           Py_ssize_t voff, Py_ssize_t poff, float s, Py_ssize_t d)
    void dl_att_sgemm_ds(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a, Py_ssize_t lda,
                         const float* b, Py_ssize_t ldb, float* c, Py_ssize_t ldc, const float* v,
                         Py_ssize_t voff, Py_ssize_t poff, float s, Py_ssize_t d)
    void dl_att_col_max_f(const float* st, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t ld, float* mx, int vector)
    void dl_att_col_exp_sum_f(float* st, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t ld, const float* hi,
                              const float* lo, float* sum, int vector)
    void dl_att_col_dscore_f(float* dpt, const float* pt, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t ld,
                             const float* dd, float scale, int vector)
    void dl_att_prefetch(const void* p, Py_ssize_t rows, Py_ssize_t nbytes, Py_ssize_t stride)

ctypedef fused floating:
    float
    double

BR = 64
BC = 64
BC_FORWARD = 128
NEG = -1e9
# Tiles: 64 query rows; key tiles of 128 in the forward and 64 in the backward (measured at
# T = 4096, D = 32, one thread: forward 64 vs 71 ms with 128 over 64, backward 144 vs 147 ms with 64).
cdef Py_ssize_t _BR = 64, _BC = 64, _BCF = 128
cdef double _NEG = -1e9
cdef Py_ssize_t _TEAM_MAX_MACS = _config.TEAM_MAX_MACS
cdef int _OWN = dl_sgemm_available()


def set_isa(int isa):
    """Select the float32 paths: 0 AVX-512 (own GEMM tiles, vector exp), 1 baseline (plain loops,
    libm's expf), for tests; the default is the best the CPU has. Returns the previous
    selection, or -1 (nothing changed) where the CPU or the build lacks it."""
    global _OWN
    if isa not in (0, 1) or (isa == 0 and not dl_sgemm_available()):
        return -1
    previous = 0 if _OWN else 1
    _OWN = 1 if isa == 0 else 0
    return previous


cdef inline uint64_t _hash(uint64_t seed, uint64_t idx) noexcept nogil:
    cdef uint64_t z = seed + (idx + 1) * <uint64_t>0x9E3779B97F4A7C15
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


def dropout_threshold(double rate):
    """The 53-bit threshold the kernels compare against: keep when hash >> 11 >= it."""
    return int(ceil(rate * 9007199254740992.0))


cdef inline void _gemm(int a_cols, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating* a,
                       Py_ssize_t lda, const floating* b, Py_ssize_t ldb, int accumulate,
                       floating* c, Py_ssize_t ldc) noexcept nogil:
    """C (m, n) (+)= op(A) @ B; op(A) = A (m, k) rows, or A^T stored (k, m) when a_cols."""
    cdef Py_ssize_t i, p, j, j0
    cdef floating av
    cdef floating acc[8]
    cdef floating* cr
    cdef const floating* br
    if floating is float:
        if _OWN:
            dl_sgemm(a_cols, m, n, k, a, lda, b, ldb, 1.0 if accumulate else 0.0, c, ldc)
            return
    for i in range(m):
        cr = c + i * ldc
        if not accumulate:
            for j in range(n):
                cr[j] = 0
        for j0 in range(0, n - 7, 8):  # 8 columns summed in registers over all of k
            for j in range(8):
                acc[j] = cr[j0 + j]
            for p in range(k):
                av = a[p * lda + i] if a_cols else a[i * lda + p]
                br = b + p * ldb + j0
                for j in range(8):
                    acc[j] += av * br[j]
            for j in range(8):
                cr[j0 + j] = acc[j]
        for p in range(k):  # the last n % 8 columns
            av = a[p * lda + i] if a_cols else a[i * lda + p]
            br = b + p * ldb
            for j in range(n - n % 8, n):
                cr[j] += av * br[j]


cdef inline void _col_dscore(floating* dpt, const floating* pt, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t ld,
                             const floating* dd, floating scale) noexcept nogil:
    """dpt = scale * pt * (dpt - dd[c]) for (rows, cols) tiles, row stride ld."""
    cdef Py_ssize_t r, c
    if floating is float:
        dl_att_col_dscore_f(dpt, pt, rows, cols, ld, dd, scale, _OWN)
    else:
        for r in range(rows):
            for c in range(cols):
                dpt[r * ld + c] = scale * (pt[r * ld + c] * (dpt[r * ld + c] - dd[c]))


cdef inline void _scores_t(floating* st, Py_ssize_t ld, Py_ssize_t br, Py_ssize_t bc, Py_ssize_t b, Py_ssize_t h,
                           Py_ssize_t i0, Py_ssize_t j0, const floating[:, :, :, :] bias, int has_bias,
                           const unsigned char[:, :, :, :] mask, int has_mask, int causal) noexcept nogil:
    """S^T (bc keys, br queries; row stride ld): add the bias, replace masked scores (mask 0, or
    j > i when causal) by NEG."""
    cdef Py_ssize_t r, c
    cdef floating* sc
    for c in range(bc):
        sc = st + c * ld
        if has_bias:
            for r in range(br):
                sc[r] += bias[b, h, i0 + r, j0 + c]
        if has_mask:
            for r in range(br):
                if not mask[b, h, i0 + r, j0 + c]:
                    sc[r] = _NEG
        if causal:  # key j0 + c comes after the queries i0 .. j0 + c - 1
            for r in range(min(br, j0 + c - i0)):
                sc[r] = _NEG


cdef inline void _dropout_row(floating* p, Py_ssize_t bc, Py_ssize_t stride, uint64_t seed, uint64_t base,
                              uint64_t threshold, floating keep_scale) noexcept nogil:
    """p[c * stride] *= keep(c) / (1 - rate) for the counters base + c."""
    cdef Py_ssize_t c
    for c in range(bc):
        if (_hash(seed, base + c) >> 11) >= threshold:
            p[c * stride] = p[c * stride] * keep_scale
        else:
            p[c * stride] = 0


cdef inline floating _row_dot(const floating* a, const floating* b, Py_ssize_t n) noexcept nogil:
    """sum of a[c] * b[c] (float32: 16-lane partial sums on AVX-512)."""
    cdef Py_ssize_t c
    cdef floating t = 0
    if floating is float:
        return dl_att_dot_f(a, b, n, _OWN)
    else:
        for c in range(n):
            t = t + a[c] * b[c]
        return t


cdef inline void _scale_row(floating* x, Py_ssize_t n, floating scale) noexcept nogil:
    cdef Py_ssize_t c
    for c in range(n):
        x[c] = x[c] * scale


cdef inline void _transpose(floating* dst, Py_ssize_t ldd, const floating* src, Py_ssize_t rows, Py_ssize_t cols,
                            Py_ssize_t lds, floating scale) noexcept nogil:
    """dst (cols, ldd) = scale * src (rows, cols)^T, src row stride lds (float32: 16 x 16 register
    blocks)."""
    cdef Py_ssize_t r, c
    if floating is float:
        dl_att_transpose_f(dst, ldd, src, rows, cols, lds, scale, _OWN)
    else:
        for r in range(rows):
            for c in range(cols):
                dst[c * ldd + r] = scale * src[r * lds + c]


cdef inline void _col_max(const floating* st, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t ld,
                          floating* mx) noexcept nogil:
    """mx[c] = max(mx[c], st[0:rows, c]) for st (rows, cols), row stride ld."""
    cdef Py_ssize_t r, c
    if floating is float:
        dl_att_col_max_f(st, rows, cols, ld, mx, _OWN)
    else:
        for r in range(rows):
            for c in range(cols):
                if st[r * ld + c] > mx[c]:
                    mx[c] = st[r * ld + c]


cdef inline void _col_exp_sum(floating* st, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t ld,
                              const floating* shift, const floating* shift_lo, floating* tot) noexcept nogil:
    """st = exp(st - shift[c] - shift_lo[c]) in place for st (rows, cols), row stride ld; tot[c] =
    the column sums. shift_lo, tot: NULL when not wanted."""
    cdef Py_ssize_t r, c
    if floating is float:
        dl_att_col_exp_sum_f(st, rows, cols, ld, shift, shift_lo, tot, _OWN)
    else:
        if tot != NULL:
            for c in range(cols):
                tot[c] = 0
        for r in range(rows):
            for c in range(cols):
                st[r * ld + c] = exp(st[r * ld + c] - shift[c] - (shift_lo[c] if shift_lo != NULL else 0))
                if tot != NULL:
                    tot[c] = tot[c] + st[r * ld + c]


cdef struct _Forward:
    # One attention_forward call's operands as raw pointers (C-contiguous q, k, v, out, lse; bias
    # and mask at byte strides), for its tasks on OpenMP or the team.
    const void* q
    const void* k
    const void* v
    void* out
    double* lse
    const char* bias
    const char* mask
    Py_ssize_t bs0, bs1, bs2, bs3, ms0, ms1, ms2, ms3
    Py_ssize_t B, T, H, D, S, Hk, Dv, n_qt
    int has_bias, has_mask, causal, dropping, is_double
    int failed  # a task found no memory for its scratch: the call raises MemoryError
    double scale, keep_scale
    uint64_t seed, threshold


cdef inline void _forward_scores(floating* st, Py_ssize_t br, Py_ssize_t bc, Py_ssize_t b, Py_ssize_t h,
                                 Py_ssize_t i0, Py_ssize_t j0, const _Forward* f) noexcept nogil:
    """_scores on the raw bias and mask, for S^T (bc keys, br queries; row stride BR)."""
    cdef Py_ssize_t r, c
    cdef floating* sc
    cdef const char* col
    for c in range(bc):
        sc = st + c * _BR
        if f.has_bias:
            col = f.bias + b * f.bs0 + h * f.bs1 + i0 * f.bs2 + (j0 + c) * f.bs3
            for r in range(br):
                sc[r] += (<const floating*>(col + r * f.bs2))[0]
        if f.has_mask:
            col = f.mask + b * f.ms0 + h * f.ms1 + i0 * f.ms2 + (j0 + c) * f.ms3
            for r in range(br):
                if not col[r * f.ms2]:
                    sc[r] = _NEG
        if f.causal:  # key j0 + c comes after the queries i0 .. j0 + c - 1
            for r in range(min(br, j0 + c - i0)):
                sc[r] = _NEG


cdef inline void _forward_prefetch(const _Forward* f, Py_ssize_t task, int esize) noexcept nogil:
    """Hints task's query tile and first key tile into the cache."""
    cdef Py_ssize_t b = task // (f.H * f.n_qt), h = (task // f.n_qt) % f.H, i0 = (task % f.n_qt) * _BR
    cdef Py_ssize_t kvh = h // (f.H // f.Hk)
    dl_att_prefetch(<const char*>f.q + ((b * f.T + i0) * f.H + h) * f.D * esize, min(_BR, f.T - i0),
                    f.D * esize, f.H * f.D * esize)
    dl_att_prefetch(<const char*>f.k + (b * f.S * f.Hk + kvh) * f.D * esize, min(_BCF, f.S), f.D * esize,
                    f.Hk * f.D * esize)


cdef inline void _forward_task(floating* qt, const _Forward* f, Py_ssize_t task) noexcept nogil:
    """Query tile task (b, head, query tile): the online softmax over the key tiles. qt: scratch
    of BR * (D + BC_FORWARD + Dv) + 4 BR floats."""
    cdef Py_ssize_t T = f.T, H = f.H, D = f.D, Dv = f.Dv, S = f.S, Hk = f.Hk, esize = sizeof(floating)
    cdef Py_ssize_t b = task // (H * f.n_qt), h = (task // f.n_qt) % H, qi = task % f.n_qt
    cdef Py_ssize_t kvh = h // (H // Hk), i0 = qi * _BR, br = min(_BR, T - i0), r, c, jt, j0, bc, n_jt
    cdef Py_ssize_t kend = min(S, i0 + br) if f.causal else S
    cdef floating* st = qt + _BR * D
    cdef floating* acc = st + _BCF * _BR
    cdef floating* m = acc + _BR * Dv
    cdef floating* l = m + _BR
    cdef floating* tot = l + _BR
    cdef floating* alpha = tot + _BR
    cdef const floating* k = <const floating*>f.k + (b * S * Hk + kvh) * D
    cdef const floating* v = <const floating*>f.v + (b * S * Hk + kvh) * Dv
    cdef floating* out = <floating*>f.out + ((b * T + i0) * H + h) * Dv
    cdef floating inv
    cdef int fused
    _transpose(qt, _BR, <const floating*>f.q + ((b * T + i0) * H + h) * D, br, D, H * D, <floating>f.scale)
    for r in range(br):
        m[r] = -1e30
        l[r] = 0
    memset(acc, 0, sizeof(floating) * br * Dv)
    n_jt = (kend + _BCF - 1) // _BCF
    for jt in range(n_jt):
        j0 = jt * _BCF
        bc = min(_BCF, kend - j0)
        memcpy(alpha, m, sizeof(floating) * br)
        fused = 0
        if floating is float:  # S^T and its column max in one pass (the causal mask in the tiles)
            if _OWN and not (f.has_bias or f.has_mask):
                if f.causal and j0 + bc - 1 > i0:
                    dl_att_sgemm_maxc(bc, br, D, k + j0 * Hk * D, Hk * D, qt, _BR, st, _BR, m, 0, 0, 0, j0 - i0)
                else:
                    dl_att_sgemm_max(bc, br, D, k + j0 * Hk * D, Hk * D, qt, _BR, st, _BR, m, 0, 0, 0, 0)
                fused = 1
        if not fused:
            _gemm(0, bc, br, D, k + j0 * Hk * D, Hk * D, qt, _BR, 0, st, _BR)  # S^T = K (scale Q)^T
            _forward_scores(st, br, bc, b, h, i0, j0, f)
            _col_max(st, bc, br, _BR, m)
        dl_att_prefetch(v + j0 * Hk * Dv, bc, Dv * esize, Hk * Dv * esize)
        _col_exp_sum(st, bc, br, _BR, m, NULL, tot)
        for r in range(br):
            if jt > 0:  # the first tile: nothing to rescale
                alpha[r] = exp(alpha[r] - m[r])
                l[r] = l[r] * alpha[r] + tot[r]
                if alpha[r] != 1:
                    _scale_row(acc + r * Dv, Dv, alpha[r])
            else:
                l[r] = tot[r]
            if f.dropping:
                _dropout_row(st + r, bc, _BR, f.seed, (((b * H + h) * T + i0 + r) * S + j0), f.threshold,
                             <floating>f.keep_scale)
        if jt + 1 < n_jt:
            dl_att_prefetch(k + (j0 + _BCF) * Hk * D, min(_BCF, kend - j0 - _BCF), D * esize, Hk * D * esize)
        elif task + 1 < f.B * H * f.n_qt:
            _forward_prefetch(f, task + 1, esize)
        _gemm(1, br, Dv, bc, st, _BR, v + j0 * Hk * Dv, Hk * Dv, 1, acc, Dv)  # O += P V
    for r in range(br):
        inv = 1.0 / l[r]
        for c in range(Dv):
            out[r * H * Dv + c] = acc[r * Dv + c] * inv
    if floating is float:
        dl_att_lse_f(f.lse + (b * H + h) * T + i0, m, l, br, _OWN)
    else:
        for r in range(br):
            f.lse[(b * H + h) * T + i0 + r] = m[r] + log(l[r])


cdef void _forward_chunk(void* arg, Py_ssize_t task) noexcept nogil:
    """Team chunk: one query tile task, on its own scratch."""
    cdef const _Forward* f = <const _Forward*>arg
    cdef Py_ssize_t n = _BR * (f.D + _BCF + f.Dv) + 4 * _BR
    cdef void* qs = malloc((sizeof(double) if f.is_double else sizeof(float)) * n)
    if qs == NULL:  # a few tens of KiB: the call raises MemoryError after the team's job
        (<_Forward*>f).failed = 1
        return
    if f.is_double:
        _forward_task(<double*>qs, f, task)
    else:
        _forward_task(<float*>qs, f, task)
    free(qs)


def attention_forward(const floating[:, :, :, ::1] q, const floating[:, :, :, ::1] k,
                      const floating[:, :, :, ::1] v, const floating[:, :, :, :] bias, int has_bias,
                      const unsigned char[:, :, :, :] mask, int has_mask, double scale, int causal,
                      double dropout_rate, unsigned long long seed, floating[:, :, :, ::1] out,
                      double[:, :, ::1] lse_out, int n_threads=1):
    """out = softmax(scale q k^T + bias, masked) @ v, tiled (FlashAttention-2).

    q: (B, T, H, D) float32/64, C-contiguous, IN
    k: (B, S, Hk, D) same dtype, IN; H % Hk == 0
    v: (B, S, Hk, Dv) same dtype, IN
    bias: (B, H, T, S) same dtype, any strides (a broadcast view), IN; read when has_bias
    mask: (B, H, T, S) uint8 (0 = masked), any strides, IN; read when has_mask
    scale: the score scale; causal: keep j <= i only; dropout_rate in [0, 1), seed: its key
    out: (B, T, H, Dv) same dtype, C-contiguous, OUT
    lse_out: (B, H, T) float64, OUT: the row log-sum-exp L = m + log(l) of the scores (float64:
        a fully masked float32 row has m = -1e9, where + log(S) would round away)

    n_threads > 1: calls under TEAM_MAX_MACS multiply-adds (batch-1 sizes) split their query
    tiles over the thread team (kernels/dl_team.h), larger ones over OpenMP; every tile is
    computed the same way by whichever thread runs it.
    """
    cdef Py_ssize_t B = q.shape[0], T = q.shape[1], H = q.shape[2], D = q.shape[3]
    cdef Py_ssize_t S = k.shape[1], Hk = k.shape[2], Dv = v.shape[3]
    cdef Py_ssize_t n_qt = (T + _BR - 1) // _BR, task
    cdef floating* qs
    cdef _Forward f
    if B == 0 or T == 0 or H == 0:
        return
    f.q = &q[0, 0, 0, 0] if D > 0 else NULL
    f.out = &out[0, 0, 0, 0] if Dv > 0 else NULL
    f.lse = &lse_out[0, 0, 0]
    f.k = &k[0, 0, 0, 0] if S > 0 and D > 0 else NULL
    f.v = &v[0, 0, 0, 0] if S > 0 and Dv > 0 else NULL
    f.bias = <const char*>&bias[0, 0, 0, 0] if has_bias else NULL
    f.bs0, f.bs1, f.bs2, f.bs3 = bias.strides[0], bias.strides[1], bias.strides[2], bias.strides[3]
    f.mask = <const char*>&mask[0, 0, 0, 0] if has_mask else NULL
    f.ms0, f.ms1, f.ms2, f.ms3 = mask.strides[0], mask.strides[1], mask.strides[2], mask.strides[3]
    f.B, f.T, f.H, f.D, f.S, f.Hk, f.Dv, f.n_qt = B, T, H, D, S, Hk, Dv, n_qt
    f.has_bias, f.has_mask, f.causal, f.dropping = has_bias, has_mask, causal, dropout_rate > 0
    f.failed = 0
    f.is_double = floating is double
    f.scale, f.keep_scale = scale, 1.0 / (1.0 - dropout_rate)
    f.seed, f.threshold = seed, dropout_threshold(dropout_rate)
    if n_threads > 1 and B * H * T * S * (D + Dv) < _TEAM_MAX_MACS:
        with nogil:
            team_run(_forward_chunk, &f, B * H * n_qt, n_threads, B * H * T * S * (D + Dv))
    else:
        with nogil, parallel(num_threads=n_threads):
            qs = <floating*>malloc(sizeof(floating) * (_BR * (D + _BCF + Dv) + 4 * _BR))
            for task in prange(B * H * n_qt, schedule="dynamic"):
                if qs != NULL:
                    _forward_task(qs, &f, task)
                else:
                    f.failed = 1
            free(qs)
    if f.failed:
        raise MemoryError("attention_forward: no memory for a query tile's scratch")


def attention_backward(const floating[:, :, :, ::1] q, const floating[:, :, :, ::1] k,
                       const floating[:, :, :, ::1] v, const floating[:, :, :, :] bias, int has_bias,
                       const unsigned char[:, :, :, :] mask, int has_mask, double scale, int causal,
                       double dropout_rate, unsigned long long seed, const floating[:, :, :, ::1] out,
                       const double[:, :, ::1] lse, const floating[:, :, :, ::1] dout,
                       floating[:, :, :, ::1] dq_out, floating[:, :, :, ::1] dk_out,
                       floating[:, :, :, ::1] dv_out, int n_threads=1):
    """Gradients of attention_forward by recomputation (FlashAttention-2), deterministic.

    q, k, v, bias, mask, scale, causal, dropout_rate, seed: as attention_forward, IN
    out: (B, T, H, Dv) the forward output, IN; lse: (B, H, T) float64, its row log-sum-exp, IN
    dout: (B, T, H, Dv) gradient of out, C-contiguous, IN
    dq_out: (B, T, H, D), dk_out: (B, S, Hk, D), dv_out: (B, S, Hk, Dv), OUT (fully written)
    """
    cdef Py_ssize_t B = q.shape[0], T = q.shape[1], H = q.shape[2], D = q.shape[3]
    cdef Py_ssize_t S = k.shape[1], Hk = k.shape[2], Dv = v.shape[3]
    # query tiles of 128 rows (the longer k of the dV, dK products: 2-3% in cache at B 32, T 128), of 64
    # when causal (fewer masked scores on the diagonal)
    cdef Py_ssize_t tr = _BR if causal else 2 * _BR
    cdef Py_ssize_t group = H // Hk, n_it = (T + tr - 1) // tr, tp = n_it * tr
    cdef Py_ssize_t task, b, kvh, h, g, i0, it, it0, br, j0, jt, bc, r, c, i
    cdef Py_ssize_t n_jt = (S + _BC - 1) // _BC, esize = sizeof(floating)
    cdef floating* qt
    cdef floating* dot
    cdef floating* lhi
    cdef floating* llo
    cdef floating* dd
    cdef floating* st
    cdef floating* dpt
    cdef floating fscale = scale
    cdef floating keep_scale = 1.0 / (1.0 - dropout_rate)
    cdef uint64_t threshold = dropout_threshold(dropout_rate)
    cdef int dropping = dropout_rate > 0, first, fused
    cdef int failed[1]
    cdef Py_ssize_t words = tp * (D + Dv + 3) + 2 * _BC * tr
    if B == 0 or Hk == 0:
        return
    failed[0] = 0
    with nogil, parallel(num_threads=n_threads):
        qt = <floating*>malloc(sizeof(floating) * words)
        dot = qt + tp * D
        lhi = dot + tp * Dv
        llo = lhi + tp
        dd = llo + tp
        st = dd + tp
        dpt = st + _BC * tr
        for task in prange(B * Hk, schedule="dynamic"):
            b = task // Hk
            kvh = task % Hk
            if qt == NULL:
                failed[0] = 1
                continue
            for g in range(group):
                h = kvh * group + g
                # per query tile: (scale Q)^T (D, tr) and dO^T (Dv, tr); per query: L as two floats and
                # D = rowsum(dO * O)
                for it in range(n_it):
                    i0 = it * tr
                    br = min(tr, T - i0)
                    _transpose(qt + it * tr * D, tr, &q[b, i0, h, 0], br, D, H * D, fscale)
                    _transpose(dot + it * tr * Dv, tr, &dout[b, i0, h, 0], br, Dv, H * Dv, 1)
                for i in range(T):
                    lhi[i] = <floating>lse[b, h, i]
                    llo[i] = <floating>(lse[b, h, i] - lhi[i])
                    dd[i] = _row_dot(&dout[b, i, h, 0], &out[b, i, h, 0], Dv)
                    if S == 0:
                        memset(&dq_out[b, i, h, 0], 0, sizeof(floating) * D)
                for jt in range(n_jt):
                    j0 = jt * _BC
                    bc = min(_BC, S - j0)
                    it0 = (j0 // tr) if causal else 0
                    if jt + 1 < n_jt:
                        dl_att_prefetch(&k[b, j0 + _BC, kvh, 0], min(_BC, S - j0 - _BC), D * esize, Hk * D * esize)
                        dl_att_prefetch(&v[b, j0 + _BC, kvh, 0], min(_BC, S - j0 - _BC), Dv * esize, Hk * Dv * esize)
                    if g == 0 and it0 >= n_it:  # no query sees these keys
                        for r in range(bc):
                            memset(&dk_out[b, j0 + r, kvh, 0], 0, sizeof(floating) * D)
                            memset(&dv_out[b, j0 + r, kvh, 0], 0, sizeof(floating) * Dv)
                    for it in range(it0, n_it):
                        i0 = it * tr
                        br = min(tr, T - i0)
                        first = g == 0 and it == it0  # dK, dV of this key tile start here
                        fused = 0
                        if floating is float:  # the exp and dS in the products' epilogues where nothing is masked
                            if _OWN and not (has_bias or has_mask or dropping):  # causal: masked P^T = 0, dS^T = 0
                                if causal and j0 + bc - 1 > i0:
                                    dl_att_sgemm_expc(bc, br, D, &k[b, j0, kvh, 0], Hk * D, qt + it * tr * D, tr,
                                                      st, tr, lhi + i0, tp, 0, 0, j0 - i0)
                                else:
                                    dl_att_sgemm_exp(bc, br, D, &k[b, j0, kvh, 0], Hk * D, qt + it * tr * D, tr,
                                                     st, tr, lhi + i0, tp, 0, 0, 0)
                                dl_att_sgemm_ds(bc, br, Dv, &v[b, j0, kvh, 0], Hk * Dv, dot + it * tr * Dv, tr,
                                                dpt, tr, dd + i0, 0, st - dpt, fscale, 0)
                                fused = 1
                        if not fused:
                            _gemm(0, bc, br, D, &k[b, j0, kvh, 0], Hk * D, qt + it * tr * D, tr, 0, st, tr)
                            _scores_t(st, tr, br, bc, b, h, i0, j0, bias, has_bias, mask, has_mask, causal)
                            _col_exp_sum(st, bc, br, tr, lhi + i0, llo + i0, NULL)  # P^T = exp(S^T - L)
                            _gemm(0, bc, br, Dv, &v[b, j0, kvh, 0], Hk * Dv, dot + it * tr * Dv, tr, 0, dpt, tr)
                            if dropping:  # dP = dO V^T * Z; then P * Z for dV, dS = scale P * (dP - D)
                                for r in range(br):
                                    _dropout_row(dpt + r, bc, tr, seed, (((b * H + h) * T + i0 + r) * S + j0),
                                                 threshold, keep_scale)
                            _col_dscore(dpt, st, bc, br, tr, dd + i0, fscale)
                            for c in range(bc):
                                if has_mask:  # masked scores do not depend on q, k
                                    for r in range(br):
                                        if not mask[b, h, i0 + r, j0 + c]:
                                            dpt[c * tr + r] = 0
                                if causal:
                                    for r in range(min(br, j0 + c - i0)):
                                        dpt[c * tr + r] = 0
                            if dropping:
                                for r in range(br):
                                    _dropout_row(st + r, bc, tr, seed, (((b * H + h) * T + i0 + r) * S + j0),
                                                 threshold, keep_scale)
                        _gemm(0, bc, Dv, br, st, tr, &dout[b, i0, h, 0], H * Dv, not first,
                              &dv_out[b, j0, kvh, 0], Hk * Dv)  # dV += P^T dO
                        _gemm(0, bc, D, br, dpt, tr, &q[b, i0, h, 0], H * D, not first,
                              &dk_out[b, j0, kvh, 0], Hk * D)  # dK += dS^T Q
                        _gemm(1, br, D, bc, dpt, tr, &k[b, j0, kvh, 0], Hk * D, jt > 0,
                              &dq_out[b, i0, h, 0], H * D)  # dQ += dS K
        free(qt)
    if failed[0]:
        raise MemoryError("attention_backward: no memory for a task's query tiles")


def attention_dropout_keep(Py_ssize_t B, Py_ssize_t H, Py_ssize_t T, Py_ssize_t S, double dropout_rate,
                           unsigned long long seed, unsigned char[:, :, :, ::1] keep_out):
    """keep_out[b, h, i, j] = 1 where the fused kernels keep attention weight (i, j), else 0.

    B, H, T, S: the score shape; dropout_rate, seed: as attention_forward, IN
    keep_out: (B, H, T, S) uint8, OUT. For the materialized (non-fused) attention path.
    """
    cdef uint64_t threshold = dropout_threshold(dropout_rate)
    cdef Py_ssize_t b, h, i, j
    cdef uint64_t base
    with nogil:
        for b in range(B):
            for h in range(H):
                for i in range(T):
                    base = ((b * H + h) * T + i) * S
                    for j in range(S):
                        keep_out[b, h, i, j] = (_hash(seed, base + j) >> 11) >= threshold
