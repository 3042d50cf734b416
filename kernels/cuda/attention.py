"""Scaled-dot-product attention on the GPU: the CUDA twins of kernels/attention.py, with the CPU
kernels' semantics (scale applied to q, additive bias, uint8 mask giving the score NEG, causal
j <= i, counter-based dropout with the same hash and counters, the row log-sum-exp in float64).

Design: a simple kernel, not FlashAttention's tiles. The forward runs one thread per query row
(b, h, i): a first pass over the keys finds the row's max and sum of exponentials, a second adds
p_ij * v_j into the thread's own output row. The backward runs one thread per query row for dQ
(and rowsum(dO * O), kept in a float64 scratch), then one thread per key row (b, j, kv head) for
dK and dV, summing over the group's heads and the queries in a fixed order: no atomics, so the
gradients are deterministic. Scores are recomputed rather than stored (O(T S) memory avoided).
Causal rows skip the keys j > i, which the op guarantees equals scoring them NEG (it turns a
causal mask with a fully masked row into an explicit mask).

Legend: B batch, T query length, S key length, H query heads, Hk key/value heads, D key dim,
Dv value dim.
"""
import math

import numpy as np
from numba import cuda

from ._launch import grid_1d

NEG = -1e9
_H1, _H2, _H3 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


@cuda.jit(device=True)
def _keep(seed, idx, threshold):
    """The CPU kernels' splitmix64 hash of (seed, idx): keep when hash >> 11 >= threshold."""
    z = seed + (idx + np.uint64(1)) * _H1
    z = (z ^ (z >> np.uint64(30))) * _H2
    z = (z ^ (z >> np.uint64(27))) * _H3
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)) >= threshold


@cuda.jit(device=True)
def _score(q, k, bias, has_bias, mask, has_mask, scale, b, h, i, kvh, j):
    """The masked, biased score of query (b, i, h) and key (b, j, kvh)."""
    if has_mask and mask[b, h, i, j] == 0:
        return NEG
    s = 0.0
    for c in range(q.shape[3]):
        s += (q[b, i, h, c] * scale) * k[b, j, kvh, c]
    if has_bias:
        s += bias[b, h, i, j]
    return s


@cuda.jit(device=True)
def _drop(p, dropping, seed, idx, threshold, keep_scale):
    if not dropping:
        return p
    return p * keep_scale if _keep(seed, idx, threshold) else 0.0


@cuda.jit
def _forward(q, k, v, bias, has_bias, mask, has_mask, scale, causal, dropping, seed, threshold, keep_scale, out,
             lse):
    row = cuda.grid(1)
    bsz, t_len, heads, _ = q.shape
    if row < bsz * heads * t_len:
        b, h, i = row // (heads * t_len), (row // t_len) % heads, row % t_len
        kvh = h // (heads // k.shape[2])
        s_len = k.shape[1]
        kend = min(s_len, i + 1) if causal else s_len
        top = -1e30
        for j in range(kend):
            top = max(top, _score(q, k, bias, has_bias, mask, has_mask, scale, b, h, i, kvh, j))
        total = 0.0
        for j in range(kend):
            total += math.exp(_score(q, k, bias, has_bias, mask, has_mask, scale, b, h, i, kvh, j) - top)
        for c in range(v.shape[3]):
            out[b, i, h, c] = 0.0
        base = ((b * heads + h) * t_len + i) * s_len
        for j in range(kend):
            p = math.exp(_score(q, k, bias, has_bias, mask, has_mask, scale, b, h, i, kvh, j) - top) / total
            p = _drop(p, dropping, seed, np.uint64(base + j), threshold, keep_scale)
            for c in range(v.shape[3]):
                out[b, i, h, c] += p * v[b, j, kvh, c]
        lse[b, h, i] = top + math.log(total) if kend else top


@cuda.jit(device=True)
def _dscore(q, k, v, bias, has_bias, mask, has_mask, scale, dropping, seed, threshold, keep_scale, lse, dout,
            dd, b, h, i, kvh, j, base):
    """(P_ij with dropout applied, dS_ij = P_ij (dP_ij - D_i), 0 where masked)."""
    p = math.exp(_score(q, k, bias, has_bias, mask, has_mask, scale, b, h, i, kvh, j) - lse[b, h, i])
    dp = 0.0
    for c in range(v.shape[3]):
        dp += dout[b, i, h, c] * v[b, j, kvh, c]
    kept = True
    if dropping:
        kept = _keep(seed, np.uint64(base + j), threshold)
    dp = dp * keep_scale if kept else 0.0
    ds = p * (dp - dd[b, h, i])
    if has_mask and mask[b, h, i, j] == 0:
        ds = 0.0
    return (p * keep_scale if kept else 0.0) if dropping else p, ds


@cuda.jit
def _backward_rows(q, k, v, bias, has_bias, mask, has_mask, scale, causal, dropping, seed, threshold, keep_scale,
                   out, lse, dout, dq, dd):
    row = cuda.grid(1)
    bsz, t_len, heads, d = q.shape
    if row < bsz * heads * t_len:
        b, h, i = row // (heads * t_len), (row // t_len) % heads, row % t_len
        kvh = h // (heads // k.shape[2])
        s_len = k.shape[1]
        t = 0.0
        for c in range(v.shape[3]):
            t += dout[b, i, h, c] * out[b, i, h, c]
        dd[b, h, i] = t
        for c in range(d):
            dq[b, i, h, c] = 0.0
        base = ((b * heads + h) * t_len + i) * s_len
        for j in range(min(s_len, i + 1) if causal else s_len):
            _, ds = _dscore(q, k, v, bias, has_bias, mask, has_mask, scale, dropping, seed, threshold, keep_scale,
                            lse, dout, dd, b, h, i, kvh, j, base)
            for c in range(d):
                dq[b, i, h, c] += ds * k[b, j, kvh, c]
        for c in range(d):
            dq[b, i, h, c] *= scale


@cuda.jit
def _backward_keys(q, k, v, bias, has_bias, mask, has_mask, scale, causal, dropping, seed, threshold, keep_scale,
                   lse, dout, dd, dk, dv):
    row = cuda.grid(1)
    bsz, s_len, kv_heads, d = k.shape
    if row < bsz * s_len * kv_heads:
        b, j, kvh = row // (s_len * kv_heads), (row // kv_heads) % s_len, row % kv_heads
        heads, t_len = q.shape[2], q.shape[1]
        group = heads // kv_heads
        for c in range(d):
            dk[b, j, kvh, c] = 0.0
        for c in range(v.shape[3]):
            dv[b, j, kvh, c] = 0.0
        for g in range(group):
            h = kvh * group + g
            for i in range(j if causal else 0, t_len):
                base = ((b * heads + h) * t_len + i) * s_len
                p, ds = _dscore(q, k, v, bias, has_bias, mask, has_mask, scale, dropping, seed, threshold,
                                keep_scale, lse, dout, dd, b, h, i, kvh, j, base)
                for c in range(v.shape[3]):
                    dv[b, j, kvh, c] += p * dout[b, i, h, c]
                for c in range(d):
                    dk[b, j, kvh, c] += ds * (q[b, i, h, c] * scale)


def _threshold(rate):
    return np.uint64(math.ceil(rate * 9007199254740992.0))


def _common(q, bias, has_bias, mask, has_mask, scale, causal, dropout_rate, seed):
    dt = q.dtype.type
    return (bias, bool(has_bias), mask, bool(has_mask), dt(scale), bool(causal), dropout_rate > 0,
            np.uint64(seed), _threshold(dropout_rate), dt(1.0 / (1.0 - dropout_rate)))


def attention_forward(q, k, v, bias, has_bias, mask, has_mask, scale, causal, dropout_rate, seed, out, lse_out,
                      n_threads=1):
    """out = softmax(scale q k^T + bias, masked) [dropout] @ v; lse_out (B, H, T) float64; device
    arrays with the CPU twin's shapes (bias (B, H, T, S) and uint8 mask read when flagged)."""
    bsz, t_len, heads, _ = q.shape
    if bsz * t_len * heads == 0:
        return
    args = _common(q, bias, has_bias, mask, has_mask, scale, causal, dropout_rate, seed)
    _forward[grid_1d(bsz * heads * t_len)](q, k, v, *args, out, lse_out)


def attention_backward(q, k, v, bias, has_bias, mask, has_mask, scale, causal, dropout_rate, seed, out, lse, dout,
                       dq_out, dk_out, dv_out, n_threads=1):
    """dq, dk, dv of attention_forward by recomputation (deterministic); device arrays."""
    bsz, t_len, heads, _ = q.shape
    s_len, kv_heads = k.shape[1], k.shape[2]
    if bsz == 0 or kv_heads == 0:
        return
    args = _common(q, bias, has_bias, mask, has_mask, scale, causal, dropout_rate, seed)
    dd = cuda.device_array((bsz, heads, t_len), dtype=np.float64)
    if t_len * heads:
        _backward_rows[grid_1d(bsz * heads * t_len)](q, k, v, *args, out, lse, dout, dq_out, dd)
    if s_len:
        _backward_keys[grid_1d(bsz * s_len * kv_heads)](q, k, v, *args, lse, dout, dd, dk_out, dv_out)


@cuda.jit
def _dropout_keep(seed, threshold, keep_out):
    idx = cuda.grid(1)
    bsz, heads, t_len, s_len = keep_out.shape
    if idx < bsz * heads * t_len * s_len:
        j = idx % s_len
        i = (idx // s_len) % t_len
        h = (idx // (s_len * t_len)) % heads
        b = idx // (s_len * t_len * heads)
        keep_out[b, h, i, j] = 1 if _keep(seed, np.uint64(idx), threshold) else 0


def attention_dropout_keep(B, H, T, S, dropout_rate, seed, keep_out):
    """keep_out[b, h, i, j] = 1 where the fused kernels keep attention weight (i, j), else 0;
    keep_out (B, H, T, S) uint8 device array."""
    if B * H * T * S:
        _dropout_keep[grid_1d(B * H * T * S)](np.uint64(seed), _threshold(dropout_rate), keep_out)


KERNELS = {
    "attention_forward": attention_forward,
    "attention_backward": attention_backward,
    "attention_dropout_keep": attention_dropout_keep,
}
