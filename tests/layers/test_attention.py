"""Attention layers: the layer harness, Keras 3 parity of outputs and gradients (Keras as the
oracle, weights copied with set_weights) for EinsumDense, MultiHeadAttention, Attention and
AdditiveAttention with their arguments and masks, dropout statistics, a .dlc round trip of a
model with MultiHeadAttention, bad input, and keras.io's transformer blocks."""
import numpy as np
import pytest

import dlcore as dl
from dlcore.registry import register
from harness import check_layer

L = dl.layers
rng = np.random.default_rng(7)


def rand(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


# ---- Keras parity helper --------------------------------------------------------------------------
def _check_parity(klayer, dlayer, inputs, call_kwargs=None, kinputs=None, rtol=1e-5, atol=2e-6, grad_tol=None,
            pass_list=False):
    """Copy klayer's weights into dlayer, then compare outputs and the gradients of sum(out * r)
    with respect to every float input and every trainable weight."""
    tf = pytest.importorskip("tensorflow")
    call_kwargs = call_kwargs or {}
    kvars = [tf.constant(x) for x in (kinputs or inputs)]
    with tf.GradientTape() as tape:
        for v in kvars:
            if v.dtype.is_floating:
                tape.watch(v)
        kout = klayer(kvars if pass_list else kvars[0], *([] if pass_list else kvars[1:]), **call_kwargs)
        r = np.random.default_rng(3).standard_normal(kout.shape).astype(kout.dtype.name)
        kloss = tf.reduce_sum(kout * r)
    dlayer(*([list(inputs)] if pass_list else inputs), **call_kwargs)  # build
    dlayer.set_weights(klayer.get_weights())
    tensors = [dl.Tensor(x) for x in inputs]
    with dl.GradientTape() as dtape:
        for t in tensors:
            if t.dtype.kind == "f":
                dtape.watch(t)
        dout = dlayer(*([tensors] if pass_list else tensors), **call_kwargs)
        dloss = dl.ops.sum(dl.ops.multiply(dout, r))
    np.testing.assert_allclose(dout.numpy(), kout.numpy(), rtol=rtol, atol=atol)
    float_t = [t for t in tensors if t.dtype.kind == "f"]
    dgrads = dtape.gradient(dloss, float_t + list(dlayer.trainable_weights))
    kfloat = [v for v in kvars if v.dtype.is_floating]
    kgrads = tape.gradient(kloss, kfloat + list(klayer.trainable_weights))
    assert len(dgrads) == len(kgrads)
    gt = grad_tol or dict(rtol=1e-4, atol=1e-5)
    for i, (a, b) in enumerate(zip(dgrads, kgrads)):
        b = np.zeros(a.shape) if b is None else np.asarray(b)
        np.testing.assert_allclose(np.asarray(a.numpy()), b, err_msg=f"gradient {i}", **gt)
    return dout


# ---- harness ------------------------------------------------------------------------------------
@register("layer")
class _SelfAttention(L.MultiHeadAttention):
    """MultiHeadAttention on one input (query = value = key), so the one-input harness takes it."""

    def call(self, inputs, training=None):
        return super().call(inputs, inputs, training=training)


def test_harness_einsum_dense():
    check_layer(L.EinsumDense, dict(equation="abc,cde->abde", output_shape=(None, 2, 3), bias_axes="de"),
                (2, 4, 5), (2, 4, 2, 3), expected_num_trainable_weights=2)
    check_layer(L.EinsumDense, dict(equation="ab,bc->ac", output_shape=4, activation="relu"), (3, 5), (3, 4),
                expected_num_trainable_weights=1)
    check_layer(L.EinsumDense, dict(equation="...b,cb->...c", output_shape=3, bias_axes="c",
                                    activation="tanh"), (2, 3, 4), (2, 3, 3), expected_num_trainable_weights=2)


def test_harness_attention_layers():
    assert issubclass(_SelfAttention, L.MultiHeadAttention)  # MultiHeadAttention, on one input
    check_layer(_SelfAttention, dict(num_heads=2, key_dim=3), (2, 5, 4), (2, 5, 4), expected_num_trainable_weights=8)
    check_layer(_SelfAttention, dict(num_heads=1, key_dim=2, output_shape=3, use_bias=False),
                (2, 3, 4), (2, 3, 3), expected_num_trainable_weights=4)
    check_layer(L.Attention, dict(use_scale=True), [(2, 3, 4), (2, 5, 4)], (2, 3, 4), expected_num_trainable_weights=1)
    check_layer(L.Attention, dict(score_mode="concat"), [(2, 3, 4), (2, 5, 4), (2, 5, 4)], (2, 3, 4),
                expected_num_trainable_weights=1)
    check_layer(L.AdditiveAttention, {}, [(2, 3, 4), (2, 5, 4)], (2, 3, 4), expected_num_trainable_weights=1)


# ---- EinsumDense -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, shape", [
    (dict(equation="abc,cde->abde", output_shape=(None, 3, 4), bias_axes="de"), (2, 5, 6)),
    (dict(equation="abcd,cde->abe", output_shape=(None, 6), bias_axes="e"), (2, 5, 3, 4)),
    (dict(equation="ab,bc->ac", output_shape=4, bias_axes="c", activation="relu"), (3, 5)),
    (dict(equation="...b,bc->...c", output_shape=4, bias_axes="c", activation="gelu"), (2, 3, 5)),
    (dict(equation="abc,cd->abd", output_shape=(3, 4), bias_axes="b"), (2, 3, 5)),  # bias on a free axis
    (dict(equation="abc,dc->adb", output_shape=(4, 3)), (2, 3, 5)),  # general path: transposed output
    (dict(equation="abc,cd->ad", output_shape=(4,)), (2, 3, 5)),  # b summed over the input alone
    (dict(equation="bc...,cd->bd...", output_shape=(4,), bias_axes="d"), (2, 5, 3)),
])
def test_einsum_dense_keras_parity(kwargs, shape):
    keras = pytest.importorskip("keras")
    x = rand(*shape)
    _check_parity(keras.layers.EinsumDense(**kwargs), L.EinsumDense(**kwargs), [x])


def test_einsum_dense_weights_config_and_init():
    layer = L.EinsumDense("abc,cde->abde", output_shape=(None, 8, 16), bias_axes="de")
    layer(np.zeros((1, 3, 64), np.float32))
    assert [w.shape for w in layer.get_weights()] == [(64, 8, 16), (8, 16)]
    # glorot over fan_in 64, fan_out 128 (Keras passes input/output axes to the initializer)
    limit = np.sqrt(6 / (64 + 128))
    k = layer.get_weights()[0]
    assert k.max() <= limit and k.max() > 0.9 * limit
    assert layer.compute_output_shape((None, 3, 64)) == (None, 3, 8, 16)
    config = layer.get_config()
    assert config["output_shape"] == (None, 8, 16) and config["bias_axes"] == "de"


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(equation="ab->b", output_shape=2), "Invalid einsum equation"),
    (dict(equation="ab,bc->ad", output_shape=2), "has no corresponding dim"),
    (dict(equation="ab,bc->ac", output_shape=2, bias_axes="x"), "Bias dimension 'x'"),
    (dict(equation="abc,cd->abd", output_shape=(7, 2)), "do not match at shared dimension"),
])
def test_einsum_dense_bad_input(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        L.EinsumDense(**kwargs)(np.zeros((2, 3, 4), np.float32) if "abc" in kwargs["equation"] else np.zeros((2, 3)))


# ---- MultiHeadAttention --------------------------------------------------------------------------------
MHA_CASES = [
    (dict(num_heads=2, key_dim=4), {}),
    (dict(num_heads=3, key_dim=4, value_dim=5, output_shape=7), {}),
    (dict(num_heads=2, key_dim=4, use_bias=False), dict(use_causal_mask=True)),
    (dict(num_heads=2, key_dim=3), dict(attention_mask="bts")),
    (dict(num_heads=2, key_dim=3), dict(attention_mask="bts", use_causal_mask=True)),
    (dict(num_heads=2, key_dim=3, dropout=0.3), {}),  # inference: dropout off
    (dict(num_heads=2, key_dim=3, use_gate=True), {}),
    (dict(num_heads=2, key_dim=3, sliding_window=2), dict(use_causal_mask=True)),
]


@pytest.mark.parametrize("kwargs, call", MHA_CASES)
@pytest.mark.parametrize("with_key", [False, True])
def test_mha_keras_parity(kwargs, call, with_key):
    keras = pytest.importorskip("keras")
    B, T, S = 2, 6, 6 if call.get("use_causal_mask") else 7
    q, v = rand(B, T, 8), rand(B, S, 5)
    inputs = [q, v] + ([rand(B, S, 6)] if with_key else [])
    call = dict(call)
    if call.get("attention_mask") == "bts":
        mask = rng.random((B, T, S)) > 0.3
        mask[:, :, 0] = True
        call["attention_mask"] = mask
    kl = keras.layers.MultiHeadAttention(**kwargs)
    dlayer = L.MultiHeadAttention(**kwargs)
    _check_parity(kl, dlayer, inputs, call)  # key, when given, is the third positional input of both
    assert [w.shape for w in dlayer.get_weights()] == [w.shape for w in kl.get_weights()]


def test_mha_float64_and_attention_axes():
    keras = pytest.importorskip("keras")
    q = rand(2, 3, 4, 6, dtype=np.float64)
    for axes in (None, (2,), (1, 2)):
        kl = keras.layers.MultiHeadAttention(num_heads=2, key_dim=3, attention_axes=axes, dtype="float64")
        # Keras's float64 MHA deviates from float64 NumPy by ~1e-8 (a float32 step inside); dlcore's by 1e-15
        _check_parity(kl, L.MultiHeadAttention(num_heads=2, key_dim=3, attention_axes=axes, dtype="float64"), [q, q],
                rtol=1e-6, atol=1e-7, grad_tol=dict(rtol=1e-5, atol=1e-6))


def test_mha_return_attention_scores():
    keras = pytest.importorskip("keras")
    q, v = rand(2, 5, 8), rand(2, 6, 8)
    mask = rng.random((2, 5, 6)) > 0.4
    kl = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    dlayer = L.MultiHeadAttention(num_heads=2, key_dim=4)
    ko, ks = kl(q, v, attention_mask=mask, return_attention_scores=True)
    dlayer(q, v)
    dlayer.set_weights(kl.get_weights())
    do, ds = dlayer(q, v, attention_mask=mask, return_attention_scores=True)
    np.testing.assert_allclose(do.numpy(), ko.numpy(), rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(ds.numpy(), ks.numpy(), rtol=1e-5, atol=1e-6)
    assert ds.shape == (2, 2, 5, 6)


@pytest.mark.parametrize("dropout", [0.0, 0.3])  # Keras: fused path / non-fused path (at inference)
def test_mha_keras_masks_from_embedding(dropout):
    keras = pytest.importorskip("keras")
    ids_q = np.array([[3, 5, 2, 0, 0], [1, 4, 4, 6, 0]])
    ids_v = np.array([[2, 2, 0, 0, 0, 0], [1, 3, 5, 7, 2, 0]])
    for causal in (False, True):
        kemb = keras.layers.Embedding(8, 6, mask_zero=True)
        demb = L.Embedding(8, 6, mask_zero=True)
        kemb.build((None,))
        demb(ids_q)
        demb.set_weights(kemb.get_weights())
        kl = keras.layers.MultiHeadAttention(num_heads=2, key_dim=3, dropout=dropout)
        dlayer = L.MultiHeadAttention(num_heads=2, key_dim=3, dropout=dropout)
        v_ids = ids_q if causal else ids_v
        ko = kl(kemb(ids_q), kemb(v_ids), use_causal_mask=causal)
        dq, dv = demb(ids_q), demb(v_ids)
        assert dq.mask is not None
        dlayer(dq, dv)
        dlayer.set_weights(kl.get_weights())
        do = dlayer(dq, dv, use_causal_mask=causal)
        np.testing.assert_allclose(do.numpy(), ko.numpy(), rtol=1e-5, atol=2e-6)
        np.testing.assert_array_equal(do.mask, ids_q != 0)  # the query's mask propagates


def test_mha_dropout_statistics():
    """training=True: attention weights dropped at the rate and the kept ones scaled, so that with
    uniform attention over values of 1 the output before the projection averages 1."""
    layer = L.MultiHeadAttention(num_heads=2, key_dim=2, dropout=0.4, seed=1, kernel_initializer="zeros",
                                 bias_initializer="ones")
    x = np.zeros((4, 64, 3), np.float32)
    layer(x, x)
    # value projection gives 1 everywhere; output kernel sums heads*value_dim = 4 ones, + bias 1
    ow = [w for w in layer.get_weights()]
    ow[6] = np.ones_like(ow[6]) / 4
    ow[7] = np.zeros_like(ow[7])
    layer.set_weights(ow)
    eval_out = layer(x, x, training=False).numpy()
    np.testing.assert_allclose(eval_out, 1.0, rtol=1e-6)
    train_out = layer(x, x, training=True).numpy()
    assert abs(train_out.mean() - 1.0) < 0.02
    assert train_out.std() > 0.05  # not the identity: weights were dropped
    assert not np.array_equal(train_out, layer(x, x, training=True).numpy())  # a new draw per call


def test_mha_config_roundtrip_and_errors():
    layer = L.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=4, dropout=0.1, output_shape=5,
                                 attention_axes=1, seed=3)
    clone = L.MultiHeadAttention.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="num_heads"):
        L.MultiHeadAttention(num_heads=0, key_dim=2)
    with pytest.raises(ValueError, match="key_dim"):
        L.MultiHeadAttention(num_heads=2, key_dim=-1)
    with pytest.raises(ValueError, match="dropout"):
        L.MultiHeadAttention(num_heads=2, key_dim=2, dropout=1.5)
    mha = L.MultiHeadAttention(num_heads=2, key_dim=2)
    with pytest.raises(ValueError, match="except the last one"):
        mha(np.zeros((1, 3, 4), np.float32), np.zeros((1, 5, 4), np.float32), np.zeros((1, 6, 4), np.float32))
    mha = L.MultiHeadAttention(num_heads=2, key_dim=2)
    x = np.zeros((2, 3, 4), np.float32)
    mha(x, x)
    with pytest.raises(ValueError, match="mask must broadcast"):
        mha(x, x, attention_mask=np.ones((2, 4, 3), bool))


def test_mha_model_dlc_round_trip(tmp_path):
    inputs = dl.Input(shape=(6,), dtype="int32")
    x = L.Embedding(10, 8, mask_zero=True)(inputs)
    x = L.MultiHeadAttention(num_heads=2, key_dim=4)(x, x, use_causal_mask=True)
    outputs = L.Dense(3)(x)
    model = dl.Model(inputs, outputs)
    ids = np.random.default_rng(0).integers(0, 10, (4, 6))
    expected = model.predict(ids, verbose=0)
    path = tmp_path / "mha.dlc"
    model.save(path)
    loaded = dl.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(ids, verbose=0), expected)


# ---- Attention / AdditiveAttention -----------------------------------------------------------------------
ATT_CASES = [
    (dict(), {}),
    (dict(use_scale=True), dict(use_causal_mask=True)),
    (dict(score_mode="concat"), {}),
    (dict(score_mode="concat", use_scale=True), dict(use_causal_mask=True)),
]


@pytest.mark.parametrize("cls", ["Attention", "AdditiveAttention"])
@pytest.mark.parametrize("kwargs, call", ATT_CASES)
@pytest.mark.parametrize("with_key", [False, True])
def test_attention_keras_parity(cls, kwargs, call, with_key):
    keras = pytest.importorskip("keras")
    if cls == "AdditiveAttention":
        kwargs = {k: v for k, v in kwargs.items() if k != "score_mode"}
    T = 5
    inputs = [rand(2, T, 4), rand(2, T if call else 6, 4)] + ([rand(2, T if call else 6, 4)] if with_key else [])
    _check_parity(getattr(keras.layers, cls)(**kwargs), getattr(L, cls)(**kwargs), inputs, call, pass_list=True)


@pytest.mark.parametrize("cls", ["Attention", "AdditiveAttention"])
def test_attention_masks_and_scores(cls):
    keras = pytest.importorskip("keras")
    q, v = rand(2, 4, 3), rand(2, 5, 3)
    q_mask = np.array([[1, 1, 0, 1], [1, 1, 1, 1]], bool)
    v_mask = np.array([[1, 1, 1, 0, 0], [1, 0, 1, 1, 1]], bool)
    kl, dlayer = getattr(keras.layers, cls)(), getattr(L, cls)()
    ko, ks = kl([q, v], mask=[q_mask, v_mask], return_attention_scores=True)
    dlayer([q, v])
    dlayer.set_weights(kl.get_weights())
    do, ds = dlayer([q, v], mask=[q_mask, v_mask], return_attention_scores=True)
    np.testing.assert_allclose(do.numpy(), ko.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ds.numpy(), ks.numpy(), rtol=1e-5, atol=1e-6)
    plain = dlayer([q, v], mask=[q_mask, v_mask])  # the fused path (Attention) agrees
    np.testing.assert_allclose(plain.numpy(), ko.numpy(), rtol=1e-5, atol=1e-6)
    assert np.all(plain.numpy()[0, 2] == 0)


def test_attention_dropout_statistics():
    layer = L.Attention(dropout=0.5, seed=0)
    q = np.zeros((8, 32, 2), np.float32)
    v = np.ones((8, 64, 2), np.float32)
    np.testing.assert_allclose(layer([q, v]).numpy(), 1.0, rtol=1e-6)  # training=False by default
    out = layer([q, v], training=True).numpy()
    assert abs(out.mean() - 1.0) < 0.03 and out.std() > 0.1


def test_attention_bad_input():
    layer = L.Attention()
    with pytest.raises(ValueError, match="list of inputs"):
        layer(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="length 2 or 3"):
        layer([np.zeros((2, 3, 4), np.float32)] * 4)
    with pytest.raises(ValueError, match="score_mode"):
        L.Attention(score_mode="bilinear")


# ---- keras.io transformer blocks ---------------------------------------------------------------------------
class TokenAndPositionEmbedding(L.Layer):
    def __init__(self, maxlen, vocab_size, embed_dim):
        super().__init__()
        self.token_emb = L.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = L.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        maxlen = dl.ops.shape(x)[-1]
        positions = dl.ops.arange(start=0, stop=maxlen, step=1)
        positions = self.pos_emb(positions)
        x = self.token_emb(x)
        return x + positions


class TransformerBlock(L.Layer):
    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1):
        super().__init__()
        self.att = L.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.ffn = dl.Sequential([L.Dense(ff_dim, activation="relu"), L.Dense(embed_dim)])
        self.layernorm1 = L.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = L.LayerNormalization(epsilon=1e-6)
        self.dropout1 = L.Dropout(rate)
        self.dropout2 = L.Dropout(rate)

    def call(self, inputs, causal=False):
        attn_output = self.att(inputs, inputs, use_causal_mask=causal)
        attn_output = self.dropout1(attn_output)
        out1 = self.layernorm1(inputs + attn_output)
        ffn_output = self.ffn(out1)
        ffn_output = self.dropout2(ffn_output)
        return self.layernorm2(out1 + ffn_output)


needs_layernorm = pytest.mark.skipif(not hasattr(L, "LayerNormalization"),
                                     reason="LayerNormalization lands from another branch (issue 12 part 1)")


@needs_layernorm
def test_keras_io_text_classifier_trains():
    # 15 epochs ended at 0.50-0.72 of the first loss over 20 weight seeds (this test failed ~1 run
    # in 10 at the 0.7 bound); 30 epochs end at 0.13-0.38
    dl.utils.set_random_seed(0)
    maxlen, vocab = 12, 50
    rs = np.random.default_rng(0)
    x = rs.integers(1, vocab, (64, maxlen))
    y = (x[:, 0] > vocab // 2).astype("int64")  # the label is in the first token
    inputs = L.Input(shape=(maxlen,))
    h = TokenAndPositionEmbedding(maxlen, vocab, 16)(inputs)
    h = TransformerBlock(16, 2, 16)(h)
    h = L.GlobalAveragePooling1D()(h)
    h = L.Dropout(0.1)(h)
    h = L.Dense(20, activation="relu")(h)
    outputs = L.Dense(2, activation="softmax")(h)
    model = dl.Model(inputs=inputs, outputs=outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=30, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


@needs_layernorm
def test_gpt_style_causal_lm_trains():
    maxlen, vocab = 10, 12
    rs = np.random.default_rng(1)
    start = rs.integers(0, vocab, (64, 1))
    seq = (start + np.arange(maxlen + 1)) % vocab  # next token = this token + 1
    inputs = L.Input(shape=(maxlen,), dtype="int32")
    h = TokenAndPositionEmbedding(maxlen, vocab, 16)(inputs)
    h = TransformerBlock(16, 2, 32)(h, causal=True)
    outputs = L.Dense(vocab)(h)
    model = dl.Model(inputs, outputs)
    model.compile(optimizer=dl.optimizers.Adam(0.01),
                  loss=dl.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(seq[:, :-1], seq[:, 1:], batch_size=16, epochs=20, verbose=0)
    assert history.history["loss"][-1] < 0.3 * history.history["loss"][0]


def test_causal_lm_without_layernorm_trains():
    """The GPT pattern with what this branch has: embedding + causal MHA + dense, trained by fit."""
    maxlen, vocab = 8, 10
    rs = np.random.default_rng(2)
    seq = (rs.integers(0, vocab, (48, 1)) + np.arange(maxlen + 1)) % vocab
    inputs = L.Input(shape=(maxlen,), dtype="int32")
    e = TokenAndPositionEmbedding(maxlen, vocab, 16)(inputs)
    a = L.MultiHeadAttention(num_heads=2, key_dim=8, dropout=0.1)(e, e, use_causal_mask=True)
    h = L.Dense(32, activation="relu")(dl.layers.add([e, a]))
    outputs = L.Dense(vocab)(h)
    model = dl.Model(inputs, outputs)
    model.compile(optimizer=dl.optimizers.Adam(0.01),
                  loss=dl.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(seq[:, :-1], seq[:, 1:], batch_size=16, epochs=15, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


@pytest.mark.parametrize("kwargs", [dict(num_heads=2, key_dim=3), dict(num_heads=3, key_dim=2, value_dim=4,
                                                                          use_bias=False)])
def test_mha_self_attention_fused_projections(kwargs):
    """mha(x, x) projects q, k, v in one GEMM: the same outputs and gradients (input and every
    weight, Keras's order) as the three separate projections, which a distinct value tensor takes."""
    x = rand(2, 5, 6)
    layer = L.MultiHeadAttention(**kwargs)
    r = rng.standard_normal((2, 5, 6)).astype(np.float32)

    def run(same):
        xt = dl.Tensor(x)
        with dl.GradientTape() as tape:
            tape.watch(xt)
            out = layer(xt, xt if same else dl.Tensor(x.copy()))
            loss = dl.ops.sum(out * r)
        return out.value, tape.gradient(loss, [xt] + list(layer.trainable_weights))

    (fused, fused_grads), (split, split_grads) = run(True), run(False)
    assert layer._fuses_qkv
    np.testing.assert_allclose(fused, split, rtol=1e-5, atol=1e-6)
    assert split_grads[0] is not None  # the value tensor's share of dx is the unfused run's only loss
    np.testing.assert_allclose(np.asarray(fused_grads[1]), np.asarray(split_grads[1]), rtol=1e-5, atol=1e-6)
    for g_fused, g_split in zip(fused_grads[2:], split_grads[2:]):
        np.testing.assert_allclose(np.asarray(g_fused), np.asarray(g_split), rtol=1e-5, atol=1e-6)
    keras = pytest.importorskip("keras")
    tf = pytest.importorskip("tensorflow")
    kl = keras.layers.MultiHeadAttention(**kwargs)
    kx = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(kx)
        kloss = tf.reduce_sum(kl(kx, kx) * r)
    layer.set_weights(kl.get_weights())
    out, grads = run(True)
    np.testing.assert_allclose(out, np.asarray(kl(kx, kx)), rtol=1e-5, atol=2e-6)
    kgrads = tape.gradient(kloss, [kx] + kl.trainable_weights)
    for g, kg in zip(grads, kgrads):
        np.testing.assert_allclose(np.asarray(g), np.asarray(kg), rtol=1e-4, atol=1e-5)
