"""Scaled-dot-product attention: ``dot_product_attention`` as ``keras.ops`` (layout (B, T, N, H)),
forward and backward through the fused FlashAttention-2 kernels (kernels/_attention.pyx).

Legend: B batch, T query length, S key length, N query heads, K key/value heads (N % K == 0),
H key dim, Hv value dim.
"""
import math

import numpy as np

from .. import devices, kernels
from ..autograd import Function, is_recording
from ..tensor import Tensor
from .core import contiguous, device_of, empty_on, float_array, unbroadcast
from .core import value as _value
from .gemm import _matmul

_EMPTY_MASK = np.zeros((1, 1, 1, 1), dtype=np.uint8)
NEG = -1e9  # the score of a masked (query, key) pair, as in kernels/_attention.pyx


def _seed_int(seed):
    """A 64-bit key for the kernels' counter-based dropout (fresh from dlcore's generator when None)."""
    if seed is None or isinstance(seed, np.random.Generator):
        from ..utils.random import generator

        return int(generator(seed).integers(0, 2**63))
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"dot_product_attention: seed must be an integer or None, received {seed!r}")
    return int(seed) % 2**64


class DotProductAttention(Function):
    """out = softmax(scale q k^T + bias, masked) [dropout] @ v, fused; bias may receive a gradient.

    Inputs: q (B, T, N, H), k (B, S, K, H), v (B, S, K, Hv), bias broadcastable to (B, N, T, S)
    or None. Attributes: mask (B, N, T, S) uint8 view or None, scale, causal, rate, seed.
    GPU arrays run the kernels/cuda twins (a host bias or mask is copied in, materialized).
    """

    runs_on_gpu = True

    @staticmethod
    def forward(ctx, q, k, v, bias, mask, scale, causal, rate, seed):
        if devices.is_device_array(q):
            return _device_forward(ctx, q, k, v, bias, mask, scale, causal, rate, seed)
        dtype = q.dtype
        q, k, v = (contiguous(x.astype(dtype, copy=False)) for x in (q, k, v))
        if bias is not None:
            bias = np.asarray(bias, dtype=dtype)
        B, T, N, _ = q.shape
        S, Hv = k.shape[1], v.shape[3]
        full = (B, N, T, S)
        bias_view = np.broadcast_to(bias, full) if bias is not None else np.zeros((1, 1, 1, 1), dtype)
        mask_view = mask if mask is not None else _EMPTY_MASK
        out = np.empty((B, T, N, Hv), dtype=dtype)
        lse = np.empty((B, N, T), dtype=np.float64)
        threads = kernels.team_threads_for_macs(B * N * T * S * (q.shape[3] + Hv))
        args = (q, k, v, bias_view, int(bias is not None), mask_view, int(mask is not None), float(scale),
                int(causal), float(rate), seed)
        kernels.get("attention_forward")(*args, out, lse, threads)
        if S == 0:  # no keys: an empty weighted sum, as einsum over an empty axis
            out.fill(0)
        if ctx is not None:
            ctx.save(q, k, v, out, lse)
            ctx.args, ctx.threads, ctx.bias_shape = args, threads, None if bias is None else bias.shape
        return out

    @staticmethod
    def backward(ctx, dy, needs):
        q, k, v, out, lse = ctx.saved
        if devices.is_device_array(q):
            if ctx.bias_shape is not None and needs[3]:
                raise ValueError("dot_product_attention: the gradient of `bias` has no GPU path yet; pass the bias "
                                 "as a constant, or train on the CPU")
            dq, dk, dv = (devices.empty(x.shape, x.dtype, x) for x in (q, k, v))
            kernels.get("attention_backward", "cuda")(*ctx.args, out, lse, devices.to_device(dy), dq, dk, dv)
            return dq, dk, dv, None
        dy = contiguous(dy.astype(q.dtype, copy=False))
        dq, dk, dv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
        kernels.get("attention_backward")(*ctx.args, out, lse, dy, dq, dk, dv, ctx.threads)
        dbias = None
        if ctx.bias_shape is not None and needs[3]:
            dbias = unbroadcast(_score_gradient(q, k, v, dy, out, lse, ctx.args), ctx.bias_shape)
        return dq, dk, dv, dbias


def _device_forward(ctx, q, k, v, bias, mask, scale, causal, rate, seed):
    """DotProductAttention.forward on GPU arrays (q, k, v on the device, one dtype)."""
    dtype = q.dtype
    for name, x in (("key", k), ("value", v)):
        if not devices.is_device_array(x) or x.dtype != dtype:
            raise TypeError(f"dot_product_attention: on the GPU, `{name}` must be a GPU array of the query's dtype "
                            f"{dtype}; received {type(x).__name__} of dtype {x.dtype}")
    B, T, N, _ = q.shape
    S, Hv = k.shape[1], v.shape[3]
    full = (B, N, T, S)
    if bias is None:
        bias_view = devices.to_device(np.zeros((1, 1, 1, 1), dtype))
    elif devices.is_device_array(bias):
        if tuple(bias.shape) != full:
            raise ValueError(f"dot_product_attention: a GPU bias must have the full shape (B, N, T, S) = {full}, "
                             f"received {tuple(bias.shape)}")
        bias_view = bias
    else:
        bias_view = devices.to_device(np.ascontiguousarray(np.broadcast_to(np.asarray(bias, dtype), full)))
    mask_view = devices.to_device(_EMPTY_MASK if mask is None else np.ascontiguousarray(mask))
    out = devices.empty((B, T, N, Hv), dtype, q)
    lse = devices.empty((B, N, T), np.float64, q)
    args = (q, k, v, bias_view, int(bias is not None), mask_view, int(mask is not None), float(scale), int(causal),
            float(rate), seed)
    kernels.get("attention_forward", "cuda")(*args, out, lse)
    if S == 0:
        out[:] = 0
    if ctx is not None:
        ctx.save(q, k, v, out, lse)
        ctx.args, ctx.bias_shape = args, None if bias is None else bias.shape
    return out


def _score_gradient(q, k, v, dy, out, lse, args):
    """dL/d(scores) (B, N, T, S), materialized: the gradient of an additive bias (it has that
    size already). P is rebuilt from the stored log-sum-exp, dS = P * (dP - rowsum(dO * O))."""
    _, _, _, bias_view, _, mask_view, has_mask, scale, causal, rate, seed = args
    B, T, N, _ = q.shape
    S, K = k.shape[1], k.shape[2]
    qh = np.transpose(q, (0, 2, 1, 3)) * q.dtype.type(scale)
    kh = np.repeat(np.transpose(k, (0, 2, 1, 3)), N // K, axis=1)
    vh = np.repeat(np.transpose(v, (0, 2, 1, 3)), N // K, axis=1)
    keep = np.ones((B, N, T, S), dtype=bool)
    if has_mask:
        keep &= mask_view.astype(bool)
    if causal:
        keep &= np.tril(np.ones((T, S), dtype=bool))
    s = np.where(keep, qh @ np.swapaxes(kh, -1, -2) + bias_view, NEG)
    p = np.exp(s - lse[..., None]).astype(q.dtype)
    do = np.transpose(dy, (0, 2, 1, 3))
    dp = do @ np.swapaxes(vh, -1, -2)
    if rate > 0:
        z = np.empty((B, N, T, S), dtype=np.uint8)
        kernels.get("attention_dropout_keep")(B, N, T, S, rate, seed, z)
        dp = dp * z / (1.0 - rate)
    d = np.sum(do * np.transpose(out, (0, 2, 1, 3)), axis=-1, keepdims=True)
    return np.where(keep, p * (dp - d), 0).astype(q.dtype)


def _operand(x):
    """A float ndarray, or a GPU array as it is (the op checks its dtype)."""
    return x if devices.is_device_array(x) else float_array(x)


def _check(name, x, ndim=4):
    if x.ndim != ndim:
        raise ValueError(f"dot_product_attention: `{name}` must be 4D (batch, length, heads, dim), "
                         f"received shape {x.shape}")


def dot_product_attention(query, key, value, bias=None, mask=None, scale=None, is_causal=False,
                          flash_attention=None, attn_logits_soft_cap=None, *, dropout_rate=0.0, seed=None):
    """``softmax(query . key * scale + bias, masked) @ value`` as ``keras.ops.dot_product_attention``.

    query (B, T, N, H), key (B, S, K, H), value (B, S, K, Hv) with N a multiple of K (grouped-query
    attention); bias broadcastable to (B, N, T, S), added to the scaled scores; mask: boolean,
    broadcastable to (B, N, T, S), True where a score takes part; scale defaults to 1/sqrt(H);
    is_causal keeps key j <= query i. Always fused (flash_attention True or None; False is
    accepted and computes the same result). dlcore additions: ``dropout_rate`` on the attention
    weights (training), ``seed`` its key. Returns (B, T, N, Hv).
    """
    if attn_logits_soft_cap is not None:
        raise ValueError("dot_product_attention: attn_logits_soft_cap is only supported by Keras's JAX TPU "
                         f"backend and not by dlcore; received attn_logits_soft_cap={attn_logits_soft_cap!r}")
    if not 0 <= dropout_rate < 1:
        raise ValueError(f"dot_product_attention: dropout_rate must be in [0, 1), received {dropout_rate!r}")
    qv, kv, vv = (_operand(_value(x)) for x in (query, key, value))
    for name, x in (("query", qv), ("key", kv), ("value", vv)):
        _check(name, x)
    dtype = np.result_type(qv.dtype, kv.dtype, vv.dtype)
    if dtype not in (np.float32, np.float64):
        dtype = np.dtype(np.float32)
    B, T, N, H = qv.shape
    if kv.shape[0] != B or vv.shape[0] != B or kv.shape[1] != vv.shape[1] or kv.shape[2] != vv.shape[2]:
        raise ValueError("dot_product_attention: expected key (B, S, K, H) and value (B, S, K, Hv) with the "
                         f"query's batch; received query {qv.shape}, key {kv.shape}, value {vv.shape}")
    if kv.shape[3] != H:
        raise ValueError(f"dot_product_attention: key's last dimension must equal the query's ({H}), "
                         f"received query {qv.shape}, key {kv.shape}")
    S, K = kv.shape[1], kv.shape[2]
    if K == 0 or N % K:
        raise ValueError(f"dot_product_attention: the query's heads ({N}) must be a multiple of the key's "
                         f"heads ({K})")
    full = (B, N, T, S)
    bias_arr = None
    if bias is not None:
        bias_arr = _value(bias)
        bias_arr = bias_arr if devices.is_device_array(bias_arr) else float_array(bias_arr, dtype=dtype)
        try:
            np.broadcast_shapes(bias_arr.shape, full)
        except ValueError:
            raise ValueError(f"dot_product_attention: bias must broadcast to (B, N, T, S) = {full}, "
                             f"received shape {bias_arr.shape}") from None
    mask_view = None
    causal = bool(is_causal)
    if mask is not None:
        m = np.asarray(_value(mask)).astype(bool)
        try:
            m = np.broadcast_to(m, full)
        except ValueError:
            raise ValueError(f"dot_product_attention: mask must broadcast to (B, N, T, S) = {full}, "
                             f"received shape {m.shape}") from None
        if causal:
            tril = np.tril(np.ones((T, S), dtype=bool))
            if T and S and not np.all(np.any(m & tril, axis=-1)):
                # a row with no visible key is uniform over all keys (Keras): no causal tile skip
                m, causal = m & tril, False
        mask_view = m.view(np.uint8)
    if scale is None:
        scale = 1.0 / math.sqrt(H) if H else 1.0
    rate = float(dropout_rate)
    seed_key = _seed_int(seed) if rate > 0 else 0
    attrs = dict(mask=mask_view, scale=float(scale), causal=causal, rate=rate, seed=seed_key)
    if not is_recording():
        q, k, v = (x if devices.is_device_array(x) else x.astype(dtype, copy=False) for x in (qv, kv, vv))
        return Tensor(DotProductAttention.forward(None, q, k, v, bias_arr, **attrs))
    from .core import cast

    def typed(x, arr):  # a Tensor keeps its graph (through a cast node when its dtype differs)
        if isinstance(x, Tensor):
            return x if x.value.dtype == dtype else cast(x, dtype)
        return arr if devices.is_device_array(arr) else arr.astype(dtype, copy=False)

    return DotProductAttention.apply(typed(query, qv), typed(key, kv), typed(value, vv),
                                     None if bias is None else typed(bias, bias_arr), **attrs)


def _explicit(equation, x_ndim, w_ndim):
    """``equation`` with each '...' spelled as letters the equation does not use (the ellipsis of
    an operand covers its dimensions beyond its letters, aligned from the right)."""
    inputs, out = equation.split("->")
    xs, ws = inputs.split(",")
    spare = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in equation]
    counts = [nd - len(spec.replace("...", "")) for spec, nd in ((xs, x_ndim), (ws, w_ndim)) if "..." in spec]
    n = max(counts, default=0)
    if n > len(spare):
        raise ValueError(f"einsum: too many dimensions for the ellipsis of '{equation}'")
    letters = "".join(spare[:n])

    def fill(spec, nd):
        return spec.replace("...", letters[n - (nd - len(spec.replace("...", ""))):]) if "..." in spec else spec

    return f"{fill(xs, x_ndim)},{fill(ws, w_ndim)}->{out.replace('...', letters)}"


def _einsum_to(spec_a, a, spec_b, b, target, shape):
    """einsum(spec_a, spec_b -> target) (letters only), where target letters found in neither
    operand are broadcast (the gradient is the same at every index along them)."""
    have = set(spec_a) | set(spec_b)
    kept = "".join(t for t in target if t in have)
    r = np.einsum(f"{spec_a},{spec_b}->{kept}", a, b)
    if len(kept) != len(target):
        axes = tuple(i for i, t in enumerate(target) if t not in have)
        r = np.ascontiguousarray(np.broadcast_to(np.expand_dims(r, axes), shape))
    return r


class EinsumProduct(Function):
    """y = einsum(equation, x, w) for two operands; the gradients are einsums too (NumPy)."""

    @staticmethod
    def forward(ctx, x, w, equation):
        if w.dtype != x.dtype:
            w = w.astype(x.dtype)
        if ctx is not None:
            ctx.save(x, w)
            ctx.equation = _explicit(equation, x.ndim, w.ndim)
        return np.einsum(equation, x, w)

    @staticmethod
    def backward(ctx, dy, needs):
        x, w = ctx.saved
        inputs, out = ctx.equation.split("->")
        xs, ws = inputs.split(",")
        dy = dy.astype(x.dtype, copy=False)
        dx = _einsum_to(out, dy, ws, w, xs, x.shape) if needs[0] else None
        dw = _einsum_to(xs, x, out, dy, ws, w.shape) if needs[1] else None
        return dx, dw


def einsum_product(equation, x, kernel):
    """``einsum(equation, x, kernel)`` for EinsumDense's general equations (two operands,
    explicit output); differentiable in both operands."""
    xv = float_array(_value(x))
    if not is_recording():
        return Tensor(EinsumProduct.forward(None, xv, float_array(_value(kernel)), equation))
    return EinsumProduct.apply(x if isinstance(x, Tensor) else xv, kernel, equation=equation)


class SelfAttentionQKV(Function):
    """q, k, v = x @ wq + bq, x @ wk + bk, x @ wv + bv: self-attention's three projections in one op.

    Inputs: x (B, T, D); wq, wk (D, N, H), wv (D, N, Hv) (Keras's EinsumDense layouts); bq, bk
    (N, H), bv (N, Hv), all three or none. Outputs: q, k (B, T, N, H), v (B, T, N, Hv), each
    written contiguous by its own dense kernel (bias fused), as the attention kernel reads them.
    Design: one GEMM over the concatenated kernels measured slower here (its interleaved output
    needs three copies for the attention kernel, and the kernels a concatenation per call): 128
    rows 355 vs 300 us, 4096 rows 11.8-15.3 vs 10.3-14.0 ms (loaded 2-core machine). The saving
    is one op and one graph node instead of three layer calls. The backward accumulates dx over
    the three products in one buffer (GEMM beta = 1) and computes each weight gradient in place.
    """

    n_outputs = 3
    runs_on_gpu = True

    @staticmethod
    def forward(ctx, x, wq, wk, wv, bq, bk, bv):
        B, T, D = x.shape
        device = device_of(wq)
        if device != "cpu":  # a batch enters the GPU here (no-op for device arrays)
            x2 = devices.to_device(np.asarray(x, dtype=wq.dtype) if not devices.is_device_array(x) else x)
            x2 = x2.reshape(B * T, D)
        else:
            x2 = contiguous(x.astype(wq.dtype, copy=False).reshape(B * T, D))
        dense_forward = kernels.get("dense_forward", device)
        outs = []
        for w, b in ((wq, bq), (wk, bk), (wv, bv)):
            y = empty_on(device, (B, T) + tuple(w.shape[1:]), wq.dtype)
            dense_forward(x2, w.reshape(D, w.size // D), None if b is None else b.reshape(b.size), 0, 0.0,
                          y.reshape(B * T, y.size // (B * T)), kernels.team_threads_for_macs(B * T * w.size))
            outs.append(y)
        if ctx is not None:
            ctx.save(x2, wq, wk, wv)
            ctx.x_shape, ctx.has_bias = x.shape, bq is not None
        return tuple(outs)

    @staticmethod
    def backward(ctx, dys, needs):
        x2, *ws = ctx.saved
        rows, D = x2.shape
        device = device_of(x2)
        matmul = kernels.get("matmul", device)
        if device != "cpu":
            dy2s = [devices.to_device(dy).reshape(rows, dy.size // rows) for dy in dys]
        else:
            dy2s = [contiguous(dy.astype(x2.dtype, copy=False).reshape(rows, -1)) for dy in dys]
        dx = None
        if needs[0]:
            dx = empty_on(device, (rows, D), x2.dtype)
            for i, (dy2, w) in enumerate(zip(dy2s, ws)):
                matmul(dy2, w.reshape(D, w.size // D), dx, False, True, 1.0, 0.0 if i == 0 else 1.0)
            dx = dx.reshape(tuple(ctx.x_shape))
        dws, dbs = [], []
        for i, (dy2, w) in enumerate(zip(dy2s, ws)):
            dws.append(_matmul(x2, dy2, trans_a=True).reshape(tuple(w.shape)) if needs[1 + i] else None)
            db = None
            if ctx.has_bias and needs[4 + i]:
                db = empty_on(device, dy2.shape[1], x2.dtype)
                kernels.get("sum_axis0", device)(dy2, db, kernels.threads_for(dy2.size))
                db = db.reshape(tuple(w.shape[1:]))
            dbs.append(db)
        return (dx, *dws, *dbs)


def self_attention_qkv(x, wq, wk, wv, bq=None, bk=None, bv=None):
    """(q, k, v) = the query, key and value projections of ``x`` (B, T, D) in one op: kernels
    wq, wk (D, N, H), wv (D, N, Hv), biases (N, H), (N, H), (N, Hv) or all None. The same values
    as three EinsumDense("abc,cde->abde") calls; differentiable in every input."""
    biases = (bq, bk, bv)
    if any(b is None for b in biases) and not all(b is None for b in biases):
        raise ValueError("self_attention_qkv: pass all three biases or none")
    xv = _value(x)
    if xv.ndim != 3:
        raise ValueError(f"self_attention_qkv: x must be (B, T, D), received shape {xv.shape}")
    for name, w in (("wq", wq), ("wk", wk), ("wv", wv)):
        shape = np.shape(_value(w))
        if len(shape) != 3 or shape[0] != xv.shape[2]:
            raise ValueError(f"self_attention_qkv: {name} must be (D={xv.shape[2]}, N, H), received shape {shape}")
    if not is_recording():
        outs = SelfAttentionQKV.forward(None, xv, *(_value(t) for t in (wq, wk, wv) + biases))
        return tuple(Tensor(o) for o in outs)
    return SelfAttentionQKV.apply(x, wq, wk, wv, bq, bk, bv)


__all__ = ["dot_product_attention", "self_attention_qkv"]
