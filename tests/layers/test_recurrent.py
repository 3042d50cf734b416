"""Recurrent layers: the layer harness (shapes, config, weights, finite differences, one fit step),
the published LSTM/GRU equations by hand, Keras 3 parity (when keras is installed), masks,
go_backwards, return_state, initial_state, stateful, dropout, Bidirectional, TimeDistributed, the
generic RNN loop, gradient clipping on an RNN, and the errors on bad input."""
import numpy as np
import pytest

import dlcore as dl
from harness import check_layer, check_op_gradients
from reference import recurrent as ref

L = dl.layers
N, T, K, U = 2, 4, 3, 3


def rand(*shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype(np.float32)


def padded_mask():
    m = np.ones((N, T), dtype=bool)
    m[0, 3:] = False   # trailing padding
    m[1, :1] = False   # leading padding
    return m


# ---- the harness: every layer and its main variants ----------------------------------------------
HARNESS = [
    (L.SimpleRNN, dict(units=U), (N, T, U)),
    (L.SimpleRNN, dict(units=U, return_sequences=True, go_backwards=True, activation="relu"), (N, T, U, "seq")),
    (L.LSTM, dict(units=U), (N, U)),
    (L.LSTM, dict(units=U, return_sequences=True, go_backwards=True), (N, T, U, "seq")),
    (L.LSTM, dict(units=U, return_state=True), "lstm_states"),
    (L.GRU, dict(units=U), (N, U)),
    (L.GRU, dict(units=U, reset_after=False, return_sequences=True), (N, T, U, "seq")),
    (L.GRU, dict(units=U, return_state=True, go_backwards=True, use_bias=False), "gru_states"),
]


def _expected(kind):
    if kind == "lstm_states":
        return [(N, U), (N, U), (N, U)]
    if kind == "gru_states":
        return [(N, U), (N, U)]
    if len(kind) == 4:
        return (N, T, U)
    return (N, U)


@pytest.mark.parametrize("cls,kwargs,kind", HARNESS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_harness(cls, kwargs, kind):
    n_weights = 2 if kwargs.get("use_bias") is False else 3
    check_layer(cls, kwargs, (N, T, K), _expected(kind), expected_num_trainable_weights=n_weights)


@pytest.mark.parametrize("cell_cls,n_weights", [(L.SimpleRNNCell, 3), (L.LSTMCell, 3), (L.GRUCell, 3)],
                         ids=lambda v: getattr(v, "__name__", str(v)))
def test_harness_rnn_over_each_cell(cell_cls, n_weights):
    """RNN(cell) for the three Keras cells: the cell's weights, config (nested) and gradients."""
    check_layer(L.RNN, dict(cell=cell_cls(U), return_sequences=True), (N, T, K), (N, T, U),
                expected_num_trainable_weights=n_weights)


def test_input_gradient_survives_a_dtype_cast_into_the_fused_op():
    """A float64 sequence into a float32 cell: the cast is on the tape, so the gradient reaches
    the input (it was silently None when the op converted the array off the tape)."""
    layer = L.RNN(L.LSTMCell(U), dtype="float64")
    x = dl.Tensor(rand(N, T, K).astype(np.float64))
    with dl.GradientTape() as tape:
        tape.watch([x])
        loss = dl.ops.sum(layer(x))
    (dx,) = tape.gradient(loss, [x])
    assert dx is not None and dx.dtype == np.float64 and np.abs(dx.value).sum() > 0
    reference = dl.layers.RNN(L.LSTMCell(U))
    reference(dl.Tensor(rand(N, T, K)))
    reference.set_weights(layer.get_weights())
    x32 = dl.Tensor(rand(N, T, K))
    with dl.GradientTape() as tape:
        tape.watch([x32])
        loss32 = dl.ops.sum(reference(x32))
    np.testing.assert_allclose(dx.value, tape.gradient(loss32, [x32])[0].value, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_harness_bidirectional(merge_mode):
    out = (N, T, 2 * U) if merge_mode == "concat" else (N, T, U)
    expected = [out, out] if merge_mode is None else out
    check_layer(L.Bidirectional, dict(layer=L.LSTM(U, return_sequences=True), merge_mode=merge_mode),
                (N, T, K), expected, expected_num_trainable_weights=6, check_fit=merge_mode is not None)


def test_harness_bidirectional_gru_states():
    check_layer(L.Bidirectional, dict(layer=L.GRU(U, return_state=True)), (N, T, K),
                [(N, 2 * U), (N, U), (N, U)], expected_num_trainable_weights=6, check_fit=False)


def test_harness_time_distributed():
    layer, _, _ = check_layer(L.TimeDistributed, dict(layer=L.Dense(5)), (N, T, K), (N, T, 5),
                              expected_num_trainable_weights=2, check_gradients=False)
    # the float64 gradient check, with a float64 inner layer
    check_op_gradients(lambda x, w, b: L.TimeDistributed(_dense64(w, b), dtype="float64")(x),
                       [rand(N, T, K), rand(K, 5, seed=1), rand(5, seed=2)], argnums=[0])


def _dense64(w, b):
    d = L.Dense(5, dtype="float64")
    d.build((None, K))
    d.set_weights([np.asarray(w.value), np.asarray(b.value)])
    return d


# ---- published equations, by hand ------------------------------------------------------------------
def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def test_lstm_keras_layout_matches_published_equations():
    """Hochreiter & Schmidhuber (1997) with the forget gate of Gers et al. (2000), written out per
    gate, against a Keras-layout weight set: kernel columns [i | f | c | o]."""
    k, u = 2, 2
    rng = np.random.default_rng(3)
    W = {g: rng.normal(size=(k, u)) for g in "ifco"}
    R = {g: rng.normal(size=(u, u)) for g in "ifco"}
    b = {g: rng.normal(size=u) for g in "ifco"}
    x = rng.normal(size=(1, 3, k))
    layer = L.LSTM(u, return_sequences=True, return_state=True, dtype="float64")
    layer(x)
    layer.set_weights([np.concatenate([W[g] for g in "ifco"], 1), np.concatenate([R[g] for g in "ifco"], 1),
                       np.concatenate([b[g] for g in "ifco"])])
    seq, h_out, c_out = [t.value for t in layer(x)]
    h, c = np.zeros(u), np.zeros(u)
    for t in range(3):
        xt = x[0, t]
        i = sigmoid(xt @ W["i"] + h @ R["i"] + b["i"])
        f = sigmoid(xt @ W["f"] + h @ R["f"] + b["f"])
        g = np.tanh(xt @ W["c"] + h @ R["c"] + b["c"])
        o = sigmoid(xt @ W["o"] + h @ R["o"] + b["o"])
        c = f * c + i * g
        h = o * np.tanh(c)
        np.testing.assert_allclose(seq[0, t], h, rtol=1e-12)
    np.testing.assert_allclose(h_out[0], h, rtol=1e-12)
    np.testing.assert_allclose(c_out[0], c, rtol=1e-12)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_keras_layout_matches_published_equations(reset_after):
    """Cho et al. (2014) in Keras's convention h = z h_prev + (1 - z) hh, kernel columns
    [z | r | h]; reset_after applies r to (h R_h + b_rh) (the cuDNN form), else to h first."""
    k, u = 2, 3
    rng = np.random.default_rng(4)
    W = {g: rng.normal(size=(k, u)) for g in "zrh"}
    R = {g: rng.normal(size=(u, u)) for g in "zrh"}
    bi = {g: rng.normal(size=u) for g in "zrh"}
    br = {g: rng.normal(size=u) for g in "zrh"}
    x = rng.normal(size=(1, 4, k))
    layer = L.GRU(u, reset_after=reset_after, return_sequences=True, dtype="float64")
    layer(x)
    if reset_after:
        bias = np.stack([np.concatenate([bi[g] for g in "zrh"]), np.concatenate([br[g] for g in "zrh"])])
    else:
        bias = np.concatenate([bi[g] for g in "zrh"])
    layer.set_weights([np.concatenate([W[g] for g in "zrh"], 1), np.concatenate([R[g] for g in "zrh"], 1), bias])
    seq = layer(x).value
    h = np.zeros(u)
    for t in range(4):
        xt = x[0, t]
        rb = br if reset_after else {g: 0.0 for g in "zrh"}
        z = sigmoid(xt @ W["z"] + bi["z"] + h @ R["z"] + rb["z"])
        r = sigmoid(xt @ W["r"] + bi["r"] + h @ R["r"] + rb["r"])
        if reset_after:
            hh = np.tanh(xt @ W["h"] + bi["h"] + r * (h @ R["h"] + br["h"]))
        else:
            hh = np.tanh(xt @ W["h"] + bi["h"] + (r * h) @ R["h"])
        h = z * h + (1 - z) * hh
        np.testing.assert_allclose(seq[0, t], h, rtol=1e-12)


def test_default_initializers_follow_keras():
    layer = L.LSTM(4)
    layer(rand(1, 2, 3))
    kernel, recurrent, bias = layer.get_weights()
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(4), atol=1e-5)  # orthogonal (4, 16)
    np.testing.assert_array_equal(bias, np.r_[np.zeros(4), np.ones(4), np.zeros(8)])  # unit_forget_bias
    gru = L.GRU(4)
    gru(rand(1, 2, 3))
    assert gru.get_weights()[2].shape == (2, 12)
    assert L.GRU(4, reset_after=False).cell._bias_shape() == (12,)


# ---- Keras 3 parity --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keras():
    import os

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return pytest.importorskip("keras")


PARITY = [
    ("LSTM", {}), ("LSTM", dict(return_sequences=True, go_backwards=True)),
    ("LSTM", dict(return_state=True)), ("GRU", {}), ("GRU", dict(reset_after=False, return_sequences=True)),
    ("GRU", dict(go_backwards=True, return_state=True)), ("SimpleRNN", dict(return_sequences=True)),
]


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("name,kwargs", PARITY)
def test_keras_parity_outputs_and_gradients(keras, name, kwargs, masked):
    import tensorflow as tf

    x = rand(3, 5, 4, seed=1)
    mask = None
    if masked:
        mask = np.ones((3, 5), bool)
        mask[0, 3:] = False
        mask[1, :2] = False
        mask[2, 2] = False
    k_layer = getattr(keras.layers, name)(5, **kwargs)
    d_layer = getattr(L, name)(5, **kwargs)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        k_out = k_layer(xt, mask=None if mask is None else tf.constant(mask))
        k_outs = k_out if isinstance(k_out, (list, tuple)) else [k_out]
        k_loss = sum(tf.reduce_sum(o * (i + 1.0)) for i, o in enumerate(k_outs))
    k_grads = tape.gradient(k_loss, [xt] + k_layer.trainable_weights)
    d_layer(x)
    d_layer.set_weights([w.numpy() for w in k_layer.weights])
    xd = dl.Tensor(x)
    with dl.GradientTape() as dtape:
        dtape.watch(xd)
        d_out = d_layer(xd, mask=mask)
        d_outs = d_out if isinstance(d_out, (list, tuple)) else [d_out]
        d_loss = None
        for i, o in enumerate(d_outs):
            term = dl.ops.sum(o * (i + 1.0))
            d_loss = term if d_loss is None else d_loss + term
    d_grads = dtape.gradient(d_loss, [xd] + d_layer.trainable_weights)
    for a, b in zip(k_outs, d_outs):
        np.testing.assert_allclose(b.value, a.numpy(), rtol=1e-5, atol=2e-6)
    for a, b in zip(k_grads, d_grads):
        np.testing.assert_allclose(b.value, a.numpy(), rtol=1e-4, atol=2e-5)


def test_keras_parity_bidirectional_with_mask(keras):
    x = rand(3, 5, 4, seed=2)
    mask = np.ones((3, 5), bool)
    mask[0, 2:] = False
    k_layer = keras.layers.Bidirectional(keras.layers.GRU(4, return_sequences=True))
    d_layer = L.Bidirectional(L.GRU(4, return_sequences=True))
    k_out = k_layer(x, mask=mask)
    d_layer(x)
    d_layer.set_weights([w.numpy() for w in k_layer.weights])
    np.testing.assert_allclose(d_layer(x, mask=mask).value, np.asarray(k_out), rtol=1e-5, atol=2e-6)


def test_keras_parity_embedding_mask_zero_pipeline(keras):
    ids = np.array([[3, 7, 2, 0, 0], [5, 1, 0, 0, 0], [4, 4, 4, 4, 9]])

    def build(lib):
        return lib.Sequential([lib.Input(shape=(5,), dtype="int32"), lib.layers.Embedding(10, 6, mask_zero=True),
                               lib.layers.Bidirectional(lib.layers.LSTM(4, return_sequences=True)),
                               lib.layers.GRU(3), lib.layers.Dense(1, activation="sigmoid")])

    km, dm = build(keras), build(dl)
    dm.set_weights([w.numpy() for w in km.weights])
    np.testing.assert_allclose(dm.predict(ids, verbose=0), km.predict(ids, verbose=0), rtol=1e-5, atol=1e-6)


# ---- finite differences through the ops: masks, go_backwards, states, dropout masks -------------------
CELLS = {
    "simple_rnn": (dl.ops.simple_rnn, 1, {}),
    "lstm": (dl.ops.lstm, 4, {}),
    "gru": (dl.ops.gru, 3, {}),
    "gru_reset_before": (dl.ops.gru, 3, {"reset_after": False}),
}


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("variant", ["mask", "mask_backwards_sequences", "zero_output", "dropout"])
def test_op_gradients(cell, variant):
    op, gates, extra = CELLS[cell]
    rng = np.random.default_rng(1)
    x = rng.normal(size=(N, T, K))
    w = rng.normal(size=(K, gates * U)) * 0.5
    r = rng.normal(size=(U, gates * U)) * 0.5
    if cell == "gru":
        b = rng.normal(size=(2, 3 * U)) * 0.1
    else:
        b = rng.normal(size=(gates * U,)) * 0.1
    n_states = 2 if cell == "lstm" else 1
    states = [rng.normal(size=(N, U)) * 0.5 for _ in range(n_states)]
    kw = dict(extra, mask=padded_mask())
    if variant == "mask_backwards_sequences":
        kw.update(go_backwards=True, return_sequences=True)
    if variant == "zero_output":
        kw.update(zero_output_for_mask=True, return_sequences=True)
    if variant == "dropout":
        kw["input_dropout_mask"] = (rng.random((gates, N, K)) > 0.3) / 0.7
        kw["recurrent_dropout_mask"] = (rng.random((gates, N, U)) > 0.3) / 0.7

    def fn(x, w, r, b, *s):
        init = list(s) if cell == "lstm" else s[0]
        return list(op(x, w, r, b, initial_state=init, **kw))  # output and final states

    check_op_gradients(fn, [x, w, r, b] + states)


def test_op_gradient_shared_input_dropout_mask():
    rng = np.random.default_rng(2)
    x, w, r = rng.normal(size=(N, T, K)), rng.normal(size=(K, 4 * U)), rng.normal(size=(U, 4 * U)) * 0.5
    m = (rng.random((N, K)) > 0.5) * 2.0
    check_op_gradients(lambda x, w, r: dl.ops.lstm(x, w, r, input_dropout_mask=m)[0], [x, w, r])


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm"])
def test_weight_gradients_in_one_pass_equal_the_separate_ones(cell):
    """With both kernels trainable the backward takes dW, db and dR from one pass over the gate
    gradients (rows_matmul_tn's second product): the same bits as asking for each alone."""
    op, gates, _ = CELLS[cell]
    rng = np.random.default_rng(3)
    x = dl.Tensor(rng.normal(size=(N, T, K)).astype(np.float32))
    w, r, b = (dl.Variable(rng.normal(size=s).astype(np.float32) * 0.3)
               for s in ((K, gates * U), (U, gates * U), (gates * U,)))

    def grads(sources):
        with dl.GradientTape() as tape:
            loss = dl.ops.sum(op(x, w, r, b, return_sequences=True)[0] ** 2)
        return [g.value for g in tape.gradient(loss, sources)]

    dw, dr, db = grads([w, r, b])
    for alone, together in ((grads([w])[0], dw), (grads([r])[0], dr), (grads([b])[0], db),
                            (grads([w, b])[0], dw), (grads([r, b])[0], dr)):
        np.testing.assert_array_equal(alone, together)


def test_embedding_lookup_gradient():
    ids = np.array([[1, 3, 3], [0, 4, 1]])
    check_op_gradients(lambda t: dl.ops.embedding_lookup(t, ids), [np.random.default_rng(0).normal(size=(5, 2))])


# ---- masks ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [L.SimpleRNN, L.LSTM, L.GRU])
def test_padded_steps_are_skipped(cls):
    """A trailing-padded sequence under a mask gives the same last output and states as the
    unpadded sequence; for go_backwards, leading padding is skipped likewise."""
    x = rand(1, 6, K, seed=4)
    layer = cls(U, return_state=True)
    full = [t.value for t in layer(x[:, :4])]
    mask = np.array([[True] * 4 + [False] * 2])
    padded = np.concatenate([x[:, :4], rand(1, 2, K, seed=9)], axis=1)
    masked = [t.value for t in layer(padded, mask=mask)]
    for a, b in zip(full, masked):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)


def test_embedding_mask_flows_through_stack():
    dl.utils.set_random_seed(0)
    ids = np.array([[4, 2, 7, 0, 0, 0]])
    model = dl.Sequential([dl.Input(shape=(None,), dtype="int32"), L.Embedding(10, 5, mask_zero=True),
                           L.LSTM(4, return_sequences=True), L.GRU(3)])
    short = model.predict(ids[:, :3], verbose=0)
    padded = model.predict(ids, verbose=0)
    np.testing.assert_allclose(padded, short, rtol=1e-6, atol=1e-7)
    emb = model.layers[0]
    out = model.layers[1](emb(dl.Tensor(ids)))
    np.testing.assert_array_equal(out.mask, ids != 0)  # return_sequences passes the mask on
    assert model.layers[2](out).mask is None


def test_masking_layer():
    x = rand(2, 5, 3, seed=5)
    x[0, 3:] = 0.0
    x[1, 0] = 0.0
    layer = L.Masking(0.0)
    out = layer(x)
    np.testing.assert_array_equal(out.mask, np.any(x != 0, axis=-1))
    lstm = L.LSTM(4)
    a = lstm(out).value
    b = lstm(dl.Tensor(x), mask=np.any(x != 0, axis=-1)).value
    np.testing.assert_allclose(a, b, rtol=1e-6)
    check_layer(L.Masking, dict(mask_value=0.5), (2, 4, 3), (2, 4, 3), expected_num_trainable_weights=0)


def test_bidirectional_with_mask_zero_outputs():
    x = rand(2, 5, 3, seed=6)
    mask = np.ones((2, 5), bool)
    mask[0, 3:] = False
    bi = L.Bidirectional(L.LSTM(4, return_sequences=True))
    out = bi(dl.Tensor(x), mask=mask)
    np.testing.assert_array_equal(out.value[0, 3:], 0.0)  # zero_output_for_mask in both directions
    np.testing.assert_array_equal(out.mask, mask)


# ---- states ----------------------------------------------------------------------------------------
def test_initial_state_and_return_state():
    x = rand(N, T, K)
    h0, c0 = rand(N, U, seed=1), rand(N, U, seed=2)
    layer = L.LSTM(U, return_state=True, dtype="float64")
    out, h, c = layer(x, initial_state=[h0, c0])
    _, _, states = ref.lstm(x, *layer.get_weights(), h0=h0, c0=c0)
    np.testing.assert_allclose(h.value, states[0], rtol=1e-10)
    np.testing.assert_allclose(c.value, states[1], rtol=1e-10)
    np.testing.assert_array_equal(out.value, h.value)


def test_initial_state_in_functional_graph():
    """An encoder's states as the decoder's initial_state (the keyword form)."""
    enc_in = dl.Input(shape=(None, K))
    dec_in = dl.Input(shape=(None, K))
    _, h, c = L.LSTM(U, return_state=True)(enc_in)
    dec = L.LSTM(U, return_sequences=True)(dec_in, initial_state=[h, c])
    model = dl.Model([enc_in, dec_in], dec)
    out = model.predict([rand(2, 4, K), rand(2, 3, K, seed=1)], verbose=0)
    assert out.shape == (2, 3, U)


def test_stateful_carries_states_between_calls():
    x = rand(2, 6, K, seed=7)
    layer = L.GRU(U, stateful=True, return_sequences=True)
    first = layer(x[:, :3]).value
    second = layer(x[:, 3:]).value
    whole = L.GRU(U, return_sequences=True)
    whole(x)
    whole.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.concatenate([first, second], 1), whole(x).value, rtol=1e-6, atol=1e-7)
    layer.reset_states()
    np.testing.assert_allclose(layer(x[:, :3]).value, first, rtol=1e-6)


@pytest.mark.parametrize("cls,kwargs", [(L.LSTM, {}), (L.GRU, {}), (L.GRU, dict(reset_after=False)),
                                        (L.SimpleRNN, {}), (L.LSTM, dict(return_sequences=True))],
                         ids=["lstm", "gru", "gru_reset_before", "simple_rnn", "lstm_sequences"])
def test_batch_one_inference_matches_the_batch(cls, kwargs):
    """predict on one sequence (the packed few-row path, no initial state) gives exactly that
    sequence's row of a 12-sequence predict (R read in place), and float64 (BLAS) agrees."""
    x = rand(12, 20, 16, seed=3)
    model = dl.Sequential([dl.Input((20, 16)), cls(64, **kwargs)])
    full = model.predict_on_batch(x)
    for i in (0, 7):
        np.testing.assert_array_equal(model.predict_on_batch(x[i:i + 1]), full[i:i + 1])
    model64 = dl.Sequential([dl.Input((20, 16)), cls(64, dtype="float64", **kwargs)])
    model64.set_weights([w.astype(np.float64) for w in model.get_weights()])
    np.testing.assert_allclose(model64.predict_on_batch(x[:1].astype(np.float64)), full[:1], rtol=2e-5,
                               atol=2e-6)


def test_cell_single_step_matches_layer():
    cell = L.LSTMCell(U)
    x = rand(N, K)
    h, (h2, c2) = cell(x, [np.zeros((N, U), np.float32), np.zeros((N, U), np.float32)])
    layer = L.RNN(cell, return_state=True)
    out, h3, c3 = layer(x[:, None, :])
    np.testing.assert_allclose(h.value, out.value, rtol=1e-6)
    np.testing.assert_allclose(c2.value, c3.value, rtol=1e-6)


class MinimalCell(L.Layer):
    """Keras's documented custom-cell example: h = x W + h R (no fused kernel)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units), name="recurrent_kernel")

    def call(self, inputs, states):
        prev = states[0]
        out = dl.ops.matmul(inputs, self.kernel) + dl.ops.matmul(prev, self.recurrent_kernel)
        return out, [out]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_generic_rnn_loop_matches_fused_simple_rnn():
    x = rand(N, T, K, seed=8)
    mask = padded_mask()
    generic = L.RNN(MinimalCell(U), return_sequences=True, go_backwards=True)
    fused = L.SimpleRNN(U, activation="linear", use_bias=False, return_sequences=True, go_backwards=True)
    generic(x)
    fused(x)
    fused.set_weights(generic.get_weights())
    np.testing.assert_allclose(generic(dl.Tensor(x), mask=mask).value, fused(dl.Tensor(x), mask=mask).value,
                               rtol=1e-5, atol=1e-6)


def test_rnn_config_round_trip_with_registered_cell():
    layer = L.RNN(L.GRUCell(4, reset_after=False), return_sequences=True)
    layer(rand(1, 2, 3))
    clone = dl.layers.deserialize(dl.layers.serialize(layer))
    assert isinstance(clone.cell, L.GRUCell) and clone.cell.reset_after is False
    clone(rand(1, 2, 3))
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(rand(1, 2, 3)).value, layer(rand(1, 2, 3)).value)


# ---- dropout ---------------------------------------------------------------------------------------
def test_dropout_only_in_training_and_seeded():
    x = rand(4, 5, K, seed=3)
    layer = L.LSTM(U, dropout=0.5, recurrent_dropout=0.3, seed=1)
    inference = layer(x, training=False).value
    np.testing.assert_array_equal(layer(x).value, inference)
    train1 = layer(x, training=True).value
    assert not np.allclose(train1, inference)
    again = L.LSTM(U, dropout=0.5, recurrent_dropout=0.3, seed=1)
    again(x)
    again.set_weights(layer.get_weights())
    np.testing.assert_array_equal(again(x, training=True).value, train1)


def test_dropout_layers_train():
    dl.utils.set_random_seed(0)
    model = dl.Sequential([dl.Input(shape=(5, K)), L.GRU(4, dropout=0.2, recurrent_dropout=0.2),
                           L.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    hist = model.fit(rand(16, 5, K), rand(16, 1, seed=1), epochs=2, verbose=0)
    assert np.all(np.isfinite(hist.history["loss"]))


# ---- gradient clipping on an RNN --------------------------------------------------------------------
def _exploding_setup(clip):
    dl.utils.set_random_seed(0)
    exploding = dl.initializers.Orthogonal(gain=1.6)  # |eigenvalues| 1.6: 1.6^20 growth
    model = dl.Sequential([dl.Input(shape=(20, 2)),
                           L.SimpleRNN(8, activation="linear", recurrent_initializer=exploding), L.Dense(1)])
    model.compile(optimizer=dl.optimizers.SGD(learning_rate=0.05, **clip), loss="mse")
    return model


@pytest.mark.parametrize("clip", [dict(clipnorm=1.0), dict(clipvalue=0.1), dict(global_clipnorm=1.0)])
def test_clipping_keeps_an_exploding_rnn_finite(clip):
    x, y = rand(32, 20, 2, seed=1), rand(32, 1, seed=2)
    model = _exploding_setup(clip)
    before = [w.copy() for w in model.get_weights()]
    hist = model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    assert np.all(np.isfinite(hist.history["loss"]))
    steps = [a - b for a, b in zip(model.get_weights(), before)]
    total = np.sqrt(sum(float(np.sum(s * s)) for s in steps))
    if "global_clipnorm" in clip:
        assert total <= 3 * 0.05 * 1.0 + 1e-5
    elif "clipnorm" in clip:
        assert all(np.linalg.norm(s) <= 3 * 0.05 + 1e-5 for s in steps)
    else:
        assert all(np.abs(s).max() <= 3 * 0.05 * 0.1 + 1e-6 for s in steps)
    unclipped = _exploding_setup({})
    hist = unclipped.fit(x, y, epochs=3, batch_size=32, verbose=0)
    assert not np.all(np.isfinite(hist.history["loss"])) or hist.history["loss"][-1] > 1e3


@pytest.mark.parametrize("clip", [dict(clipnorm=0.5), dict(clipvalue=0.01), dict(global_clipnorm=0.5)])
def test_clipping_matches_keras_optimizer(keras, clip):
    """One Adam step on an LSTM's gradients: dlcore's clipped update equals Keras's."""
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=s).astype(np.float32) * 5 for s in [(3, 8), (2, 8), (8,)]]
    weights = [rng.normal(size=g.shape).astype(np.float32) for g in grads]
    k_vars = [keras.Variable(w) for w in weights]
    k_opt = keras.optimizers.Adam(learning_rate=0.1, **clip)
    k_opt.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in grads], k_vars))
    d_vars = [dl.Variable(w) for w in weights]
    d_opt = dl.optimizers.Adam(learning_rate=0.1, **clip)
    d_opt.apply_gradients(zip(grads, d_vars))
    for kv, dv in zip(k_vars, d_vars):
        np.testing.assert_allclose(dv.value, np.asarray(kv.value), rtol=1e-5, atol=1e-6)


# ---- bad input ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [L.SimpleRNN, L.LSTM, L.GRU])
def test_two_dimensional_input_is_an_error_naming_the_layer(cls):
    layer = cls(3, name="my_rnn")
    with pytest.raises(ValueError, match=r"my_rnn.*expected ndim=3, found ndim=2.*\(4, 5\)"):
        layer(rand(4, 5))


def test_feature_size_change_is_an_error():
    layer = L.LSTM(3, name="enc")
    layer(rand(2, 4, 5))
    with pytest.raises(ValueError, match=r"enc.*axis -1.*5.*\(2, 4, 6\)"):
        layer(rand(2, 4, 6))


def test_mismatched_initial_state_is_an_error():
    layer = L.LSTM(3, name="dec")
    with pytest.raises(ValueError, match=r"dec.*initial_state\[1\].*\(2, 3\).*\(2, 4\)"):
        layer(rand(2, 4, 5), initial_state=[rand(2, 3), rand(2, 4)])
    with pytest.raises(ValueError, match=r"dec.*expects 2 initial state"):
        layer(rand(2, 4, 5), initial_state=[rand(2, 3)])
    with pytest.raises(ValueError, match=r"initial_state\[0\].*\(2, 3\).*\(5, 3\)"):
        L.GRU(3)(rand(2, 4, 5), initial_state=rand(5, 3))


def test_unsupported_activation_is_an_error():
    with pytest.raises(ValueError, match="LSTMCell.*gelu"):
        L.LSTM(3, activation="gelu")


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="units"):
        L.GRU(0)
    with pytest.raises(ValueError, match="merge mode"):
        L.Bidirectional(L.LSTM(2), merge_mode="max")
    with pytest.raises(ValueError, match="Layer"):
        L.TimeDistributed("dense")


def test_mask_survives_a_pass_through_branch():
    """A layer that returns its input object (Lambda) must not strip the mask that another branch
    of the graph still reads (dlcore/layers/layer.py _attach_mask)."""
    inp = dl.Input(shape=(None,), dtype="int32")
    x = L.Embedding(10, 4, mask_zero=True)(inp)
    y = L.Lambda(lambda t: t)(x)
    z = L.LSTM(3)(x)
    both = dl.Model(inp, [y, z])
    alone = dl.Model(inp, z)
    np.testing.assert_allclose(both.predict(np.array([[3, 4, 0, 0]]), verbose=0)[1],
                               alone.predict(np.array([[3, 4]]), verbose=0), rtol=1e-6)


def test_masked_predict_matches_the_unpadded_sequence():
    x = np.random.default_rng(1).standard_normal((2, 5, 3)).astype("float32")
    masked = dl.Sequential([dl.Input((5, 3)), L.Masking(0.0), L.LSTM(4)])
    x[0, 3:] = 0.0
    unpadded = dl.Sequential([dl.Input((3, 3)), L.LSTM(4)])
    unpadded.set_weights(masked.get_weights())
    np.testing.assert_allclose(masked.predict_on_batch(x)[0], unpadded.predict_on_batch(x[:1, :3])[0],
                               rtol=1e-6, atol=1e-6)
