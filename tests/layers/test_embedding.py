"""Embedding and Masking: the layer harness, the lookup against NumPy, mask_zero, the scatter-add
gradient (repeated ids accumulate, deterministically), Keras parity and the errors on bad ids."""
import numpy as np
import pytest

import dlcore as dl
from harness import check_layer, check_op_gradients
from reference import recurrent as ref

L = dl.layers


def ids(*shape, high=7, seed=0):
    return np.random.default_rng(seed).integers(0, high, size=shape)


def test_harness():
    check_layer(L.Embedding, dict(input_dim=7, output_dim=3), (2, 5), (2, 5, 3), expected_num_trainable_weights=1,
                input_dtype="int64")
    check_layer(L.Embedding, dict(input_dim=7, output_dim=4, mask_zero=True), (3, 2, 2), (3, 2, 2, 4),
                expected_num_trainable_weights=1, input_dtype="int32")


def test_lookup_matches_numpy_and_dtypes():
    layer = L.Embedding(9, 4)
    x = ids(3, 6, high=9)
    out = layer(x)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.value, ref.embedding(x, layer.get_weights()[0]).astype(np.float32))
    np.testing.assert_array_equal(layer(x.astype(np.float32)).value, out.value)  # integral floats are ids
    assert layer.compute_output_shape((None, 6)) == (None, 6, 4)
    assert L.Embedding(9, 4, dtype="float64")(x).dtype == np.float64


def test_default_initializer_is_keras_uniform():
    w = L.Embedding(1000, 8)
    w.build()
    table = w.get_weights()[0]
    assert table.min() >= -0.05 and table.max() <= 0.05 and table.std() > 0.02


def test_mask_zero():
    x = np.array([[5, 2, 0, 0], [1, 0, 0, 0]])
    out = L.Embedding(6, 2, mask_zero=True)(x)
    np.testing.assert_array_equal(out.mask, x != 0)
    assert L.Embedding(6, 2)(x).mask is None


def test_weights_argument():
    table = np.arange(12, dtype=np.float32).reshape(6, 2)
    layer = L.Embedding(6, 2, weights=[table])
    np.testing.assert_array_equal(layer(np.array([[5, 0]])).value, table[[[5, 0]]])


def test_gradient_accumulates_repeated_ids():
    x = np.array([[1, 3, 3, 3], [0, 1, 4, 1]])
    table = np.random.default_rng(0).normal(size=(5, 3))
    check_op_gradients(lambda t: dl.ops.embedding_lookup(t, x), [table])
    layer = L.Embedding(5, 3)
    layer(x)
    with dl.GradientTape() as tape:
        loss = dl.ops.sum(layer(x))
    grad = tape.gradient(loss, layer.embeddings).value
    np.testing.assert_array_equal(grad[:, 0], np.bincount(x.ravel(), minlength=5).astype(np.float32))


def test_functional_model_mask_reaches_the_lstm():
    inp = dl.Input(shape=(None,), dtype="int32")
    h = L.Embedding(10, 4, mask_zero=True)(inp)
    out = L.LSTM(3)(h)
    model = dl.Model(inp, out)
    a = model.predict(np.array([[3, 4, 0, 0]]), verbose=0)
    b = model.predict(np.array([[3, 4]]), verbose=0)
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_trains_in_a_model():
    dl.utils.set_random_seed(0)
    model = dl.Sequential([dl.Input(shape=(4,), dtype="int64"), L.Embedding(8, 3), L.Flatten(), L.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    x = ids(32, 4, high=8)
    y = (x.sum(axis=1, keepdims=True) / 10.0).astype(np.float32)
    hist = model.fit(x, y, epochs=20, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]


def test_keras_parity():
    keras = pytest.importorskip("keras")
    x = ids(2, 5, high=10)
    k = keras.layers.Embedding(10, 3, mask_zero=True)
    d = L.Embedding(10, 3, mask_zero=True)
    k_out = k(x)
    d(x)
    d.set_weights([w.numpy() for w in k.weights])
    np.testing.assert_array_equal(d(x).value, np.asarray(k_out))
    assert d.get_config()["mask_zero"] == k.get_config()["mask_zero"]


@pytest.mark.parametrize("bad,match", [(np.array([[1, 10]]), r"\[0, 10\).*\[1, 10\]"),
                                       (np.array([[-1, 2]]), r"\[-1, 2\]"),
                                       (np.array([[0.5, 2.0]]), "integer token ids")])
def test_ids_outside_the_table_are_errors_naming_the_layer(bad, match):
    layer = L.Embedding(10, 2, name="tokens")
    with pytest.raises(ValueError, match=f"tokens.*{match}"):
        layer(bad)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="input_dim"):
        L.Embedding(0, 3)
    with pytest.raises(ValueError, match="output_dim"):
        L.Embedding(3, 2.5)
