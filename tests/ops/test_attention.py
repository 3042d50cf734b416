"""dot_product_attention: Keras parity (outputs and gradients), float64 finite differences through
the fused backward, masks, causal, grouped-query heads, dropout statistics, errors."""
import re

import numpy as np
import pytest

import dlcore as dl
from harness import check_op_gradients
from reference import attention as ref

rng = np.random.default_rng(11)


def _qkv(B=2, T=9, S=11, N=2, K=2, H=4, Hv=3, dtype=np.float64):
    return (rng.standard_normal((B, T, N, H)).astype(dtype), rng.standard_normal((B, S, K, H)).astype(dtype),
            rng.standard_normal((B, S, K, Hv)).astype(dtype))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("heads", [(2, 2), (4, 2), (2, 1)])
def test_gradients_fd(causal, heads):
    q, k, v = _qkv(N=heads[0], K=heads[1])
    check_op_gradients(lambda q, k, v: dl.ops.dot_product_attention(q, k, v, is_causal=causal), [q, k, v])


def test_gradients_fd_bias_mask_scale():
    q, k, v = _qkv(T=7, S=70)  # S over one key tile
    bias = rng.standard_normal((1, 2, 7, 70))
    mask = rng.random((2, 1, 1, 70)) > 0.3
    check_op_gradients(lambda q, k, v, b: dl.ops.dot_product_attention(q, k, v, bias=b, mask=mask, scale=0.7,
                                                                        is_causal=True), [q, k, v, bias])


def test_gradients_fd_dropout():
    q, k, v = _qkv()
    check_op_gradients(lambda q, k, v: dl.ops.dot_product_attention(q, k, v, dropout_rate=0.4, seed=3), [q, k, v])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_reference_long(dtype):
    q, k, v = _qkv(B=1, T=150, S=140, N=2, K=1, H=8, Hv=8, dtype=dtype)
    mask = rng.random((1, 1, 150, 140)) > 0.2
    out = dl.ops.dot_product_attention(q, k, v, mask=mask, is_causal=True).numpy()
    expected = ref.attention(*(x.astype(np.float64) for x in (q, k, v)), mask=mask, causal=True)[0]
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out, expected, **tol)


def test_fully_masked_rows_are_uniform_like_keras():
    """A causal row whose visible keys are all masked is uniform over every key (Keras's -large fill)."""
    q, k, v = _qkv(B=1, T=130, S=130, N=1, K=1, H=4, Hv=4)
    mask = np.ones((1, 1, 130, 130), dtype=bool)
    mask[..., 100, :] = False
    mask[..., 3, :2] = False
    mask[..., 3, 2:] = True
    out = dl.ops.dot_product_attention(q, k, v, mask=mask, is_causal=True).numpy()
    np.testing.assert_allclose(out[0, 100, 0], v[0, :, 0].mean(0), rtol=1e-10)
    expected = ref.attention(q, k, v, mask=mask, causal=True)[0]
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)


def test_empty_lengths():
    q, k, v = _qkv(T=0, S=5)
    assert dl.ops.dot_product_attention(q, k, v).shape == (2, 0, 2, 3)
    q, k, v = _qkv(T=4, S=0)
    ts = [dl.Tensor(x) for x in (q, k, v)]
    with dl.GradientTape() as tape:
        for t in ts:
            tape.watch(t)
        out = dl.ops.dot_product_attention(*ts)
        loss = dl.ops.sum(out)
    np.testing.assert_array_equal(out.numpy(), np.zeros((2, 4, 2, 3)))
    dq, dk, dv = tape.gradient(loss, ts)
    np.testing.assert_array_equal(dq.numpy(), np.zeros_like(q))
    assert dk.shape == k.shape and dv.shape == v.shape


def test_dropout_statistics_and_determinism():
    B, T, N, H = 1, 64, 2, 4
    q = np.zeros((B, T, N, H), np.float32)  # uniform attention: out = mean over kept values
    k = np.zeros((B, T, N, H), np.float32)
    v = np.ones((B, T, N, H), np.float32)
    out = dl.ops.dot_product_attention(q, k, v, dropout_rate=0.25, seed=5).numpy()
    # each output is (kept / T) / 0.75; the mean over rows is about 1
    assert abs(out.mean() - 1.0) < 0.03
    keep = ref.dropout_keep(B, N, T, T, 0.25, 5)
    assert abs(keep.mean() - 0.75) < 0.02
    np.testing.assert_allclose(out[0, :, 0, 0], keep[0, 0].mean(-1) / 0.75, rtol=1e-5)
    again = dl.ops.dot_product_attention(q, k, v, dropout_rate=0.25, seed=5).numpy()
    np.testing.assert_array_equal(out, again)


def test_keras_parity_outputs_and_gradients():
    keras = pytest.importorskip("keras")
    tf = pytest.importorskip("tensorflow")
    q, k, v = _qkv(B=2, T=10, S=12, N=4, K=2, H=8, Hv=8, dtype=np.float32)
    bias = rng.standard_normal((1, 4, 10, 12)).astype(np.float32)
    mask = rng.random((2, 1, 10, 12)) > 0.2
    for causal in (False, True):
        tq, tk, tv, tb = (tf.Variable(x) for x in (q, k, v, bias))
        with tf.GradientTape() as tape:
            ko = keras.ops.dot_product_attention(tq, tk, tv, bias=tb, mask=mask, is_causal=causal)
            kl = tf.reduce_sum(ko * ko)
        kg = tape.gradient(kl, [tq, tk, tv, tb])
        ts = [dl.Tensor(x) for x in (q, k, v, bias)]
        with dl.GradientTape() as dtape:
            for t in ts:
                dtape.watch(t)
            do = dl.ops.dot_product_attention(*ts[:3], bias=ts[3], mask=mask, is_causal=causal)
            dl_loss = dl.ops.sum(dl.ops.multiply(do, do))
        dg = dtape.gradient(dl_loss, ts)
        np.testing.assert_allclose(do.numpy(), ko.numpy(), rtol=1e-5, atol=2e-6)
        for a, b in zip(dg, kg):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=2e-5)


def test_one_and_two_threads_bit_identical():
    kernels = pytest.importorskip("dlcore.kernels")
    q, k, v = _qkv(B=2, T=150, S=150, N=4, K=2, H=16, Hv=16, dtype=np.float32)
    do = rng.standard_normal((2, 150, 4, 16)).astype(np.float32)
    results = []
    for threads in (1, 2):
        mask = np.broadcast_to(rng.random((1, 1, 1, 150)) > -1, (2, 4, 150, 150)).view(np.uint8)
        args = (q, k, v, np.zeros((1, 1, 1, 1), np.float32), 0, mask, 1, 0.25, 1, 0.1, 9)
        out, lse = np.empty((2, 150, 4, 16), np.float32), np.empty((2, 4, 150), np.float64)
        kernels.get("attention_forward")(*args, out, lse, threads)
        grads = [np.empty_like(x) for x in (q, k, v)]
        kernels.get("attention_backward")(*args, out, lse, do, *grads, threads)
        results.append([out, lse, *grads])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(query=np.zeros((2, 3, 4))), "4D"),
    (dict(key=np.zeros((2, 5, 2, 3))), "last dimension"),
    (dict(key=np.zeros((2, 5, 3, 4)), value=np.zeros((2, 5, 3, 4))), "multiple"),
    (dict(value=np.zeros((2, 6, 2, 4))), "key (B, S, K, H)"),
    (dict(bias=np.zeros((3, 1, 1, 1))), "bias must broadcast"),
    (dict(mask=np.zeros((1, 1, 4, 1), bool)), "mask must broadcast"),
    (dict(dropout_rate=1.0), "dropout_rate"),
    (dict(attn_logits_soft_cap=30.0), "soft_cap"),
])
def test_bad_input(kwargs, fragment):
    args = dict(query=np.zeros((2, 3, 2, 4)), key=np.zeros((2, 5, 2, 4)), value=np.zeros((2, 5, 2, 4)))
    args.update(kwargs)
    with pytest.raises(ValueError, match=re.escape(fragment)):
        dl.ops.dot_product_attention(**args)


def test_memory_is_linear_in_sequence_length():
    """Forward + backward at 2048 tokens allocate a few arrays of the inputs' size, never the
    (B, N, T, S) score matrix (64 MB here); NumPy allocations are traced by tracemalloc."""
    import tracemalloc

    T = 2048
    q, k, v = (rng.standard_normal((1, T, 4, 32)).astype(np.float32) for _ in range(3))
    ts = [dl.Tensor(x) for x in (q, k, v)]
    tracemalloc.start()
    try:
        with dl.GradientTape() as tape:
            for t in ts:
                tape.watch(t)
            loss = dl.ops.sum(dl.ops.dot_product_attention(*ts, is_causal=True))
        tape.gradient(loss, ts)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 12 * q.nbytes, f"peak {peak / 2**20:.1f} MB"


# ---- self_attention_qkv: the three projections of self-attention as one GEMM ----------------
def _projections(B=2, T=5, D=6, N=2, H=3, Hv=4, bias=True):
    ws = [rng.standard_normal((D, N, h)) for h in (H, H, Hv)]
    bs = [rng.standard_normal((N, h)) for h in (H, H, Hv)] if bias else [None] * 3
    return rng.standard_normal((B, T, D)), ws, bs


@pytest.mark.parametrize("bias", [True, False])
def test_self_attention_qkv_matches_einsum(bias):
    x, ws, bs = _projections(bias=bias)
    outs = dl.ops.attention.self_attention_qkv(x, *ws, *bs)
    for out, w, b in zip(outs, ws, bs):
        expected = np.einsum("abc,cde->abde", x, w) + (0 if b is None else b)
        assert out.value.flags.c_contiguous and out.shape == expected.shape
        np.testing.assert_allclose(out.value, expected, rtol=1e-12, atol=1e-12)


def test_self_attention_qkv_gradients_fd():
    x, ws, bs = _projections()
    check_op_gradients(lambda x, *p: dl.ops.attention.self_attention_qkv(x, *p), [x, *ws, *bs])


def test_self_attention_qkv_only_needed_gradients():
    x, ws, bs = _projections(bias=False)
    xt, wts = dl.Tensor(x), [dl.Tensor(w) for w in ws]
    with dl.GradientTape() as tape:
        tape.watch(xt)
        q, k, v = dl.ops.attention.self_attention_qkv(xt, *wts)
        loss = dl.ops.sum(q) + dl.ops.sum(v)  # k unused: its slot gets zeros
    (dx,) = tape.gradient(loss, [xt])
    expected = np.broadcast_to(ws[0].sum(axis=(1, 2)) + ws[2].sum(axis=(1, 2)), x.shape)
    np.testing.assert_allclose(np.asarray(dx), expected, rtol=1e-12)


def test_self_attention_qkv_errors():
    x, ws, bs = _projections()
    with pytest.raises(ValueError, match="all three biases or none"):
        dl.ops.attention.self_attention_qkv(x, *ws, bs[0], None, None)
    with pytest.raises(ValueError, match=r"x must be \(B, T, D\)"):
        dl.ops.attention.self_attention_qkv(x[0], *ws)
    with pytest.raises(ValueError, match=r"wk must be \(D=6, N, H\)"):
        dl.ops.attention.self_attention_qkv(x, ws[0], ws[1][:3], ws[2])
