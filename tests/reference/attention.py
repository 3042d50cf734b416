"""NumPy reference for scaled-dot-product attention, written from the formulas (materialized
scores, (B, H, T, S)); never imports the kernels.

Layout as the kernels: query (B, T, H, D), key (B, S, Hk, D), value (B, S, Hk, Dv); bias and the
boolean mask broadcast to (B, H, T, S); a masked score (mask False, or j > i when causal) is
replaced by -1e9; dropout keeps weight (b, h, i, j) when splitmix64(seed, ((b*H+h)*T+i)*S+j) >> 11
is at least ceil(rate * 2^53), scaling kept weights by 1 / (1 - rate).
"""
import math

import numpy as np

NEG = -1e9
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def dropout_keep(B, H, T, S, rate, seed):
    """(B, H, T, S) bool: the weights the kernels' counter-based dropout keeps."""
    idx = np.arange(B * H * T * S, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + (idx + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    threshold = np.uint64(math.ceil(rate * 2.0**53))
    return ((z >> np.uint64(11)) >= threshold).reshape(B, H, T, S)


def _expand_heads(x, H):
    """(B, S, Hk, D) -> (B, H, S, D), query head h reading kv head h // (H // Hk)."""
    return np.repeat(np.transpose(x, (0, 2, 1, 3)), H // x.shape[2], axis=1)


def attention(q, k, v, bias=None, mask=None, scale=None, causal=False, dropout_rate=0.0, seed=0):
    """Returns (out (B, T, H, Dv), probs (B, H, T, S) before dropout, lse (B, H, T))."""
    B, T, H, D = q.shape
    S = k.shape[1]
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    qh = np.transpose(q, (0, 2, 1, 3)) * q.dtype.type(scale)
    kh, vh = _expand_heads(k, H), _expand_heads(v, H)
    s = qh @ np.swapaxes(kh, -1, -2)
    if bias is not None:
        s = s + bias
    keep = np.ones((B, H, T, S), dtype=bool)
    if mask is not None:
        keep &= np.broadcast_to(mask, keep.shape)
    if causal:
        keep &= np.tril(np.ones((T, S), dtype=bool))
    s = np.where(keep, s, NEG)
    m = s.max(-1, keepdims=True)
    e = np.exp(s - m)
    probs = e / e.sum(-1, keepdims=True)
    lse = (m + np.log(e.sum(-1, keepdims=True)))[..., 0]
    p = probs
    if dropout_rate > 0:
        p = probs * dropout_keep(B, H, T, S, dropout_rate, seed) / (1.0 - dropout_rate)
    out = np.transpose(p @ vh, (0, 2, 1, 3))
    return out.astype(q.dtype), probs.astype(q.dtype), lse.astype(q.dtype)


def attention_backward(q, k, v, dout, bias=None, mask=None, scale=None, causal=False, dropout_rate=0.0, seed=0):
    """(dq, dk, dv, dbias (B, H, T, S)) of attention() for the output gradient ``dout``."""
    B, T, H, D = q.shape
    Hk = k.shape[2]
    S = k.shape[1]
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    _, probs, _ = attention(q, k, v, bias, mask, scale, causal)
    keep = np.ones((B, H, T, S), dtype=bool)
    if mask is not None:
        keep &= np.broadcast_to(mask, keep.shape)
    if causal:
        keep &= np.tril(np.ones((T, S), dtype=bool))
    z = np.ones_like(probs)
    if dropout_rate > 0:
        z = dropout_keep(B, H, T, S, dropout_rate, seed) / (1.0 - dropout_rate)
    kh, vh = _expand_heads(k, H), _expand_heads(v, H)
    qh = np.transpose(q, (0, 2, 1, 3))
    do = np.transpose(dout, (0, 2, 1, 3))
    pz = probs * z
    dvh = np.swapaxes(pz, -1, -2) @ do
    dp = (do @ np.swapaxes(vh, -1, -2)) * z
    ds = probs * (dp - (dp * probs).sum(-1, keepdims=True))
    ds = np.where(keep, ds, 0)
    dq = np.transpose(scale * ds @ kh, (0, 2, 1, 3))
    dkh = scale * np.swapaxes(ds, -1, -2) @ qh
    group = H // Hk

    def fold(x):  # (B, H, S, D) -> (B, S, Hk, D): sum the query heads of each kv head
        return np.transpose(x.reshape(B, Hk, group, S, -1).sum(2), (0, 2, 1, 3))

    return dq.astype(q.dtype), fold(dkh).astype(q.dtype), fold(dvh).astype(q.dtype), ds.astype(q.dtype)
