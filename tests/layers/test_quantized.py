"""int8 quantization of layers and models (Keras 3 ``quantize("int8")``): Keras's variable names and
dtypes, outputs equal to the NumPy int8 reference (Keras's operations in Keras's order), errors,
inference only, .dlc round trip, the accuracy bound on digits, and Keras parity (bit-exact)."""
import sys
from pathlib import Path

import numpy as np
import pytest

import dlcore as dl
from dlcore import layers

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference import quantized as ref  # noqa: E402


def _mlp(in_dim=24):
    model = dl.Sequential([dl.Input((in_dim,)), layers.Dense(40, activation="relu"), layers.Dense(7)])
    model.build((None, in_dim))
    return model


def _x(n=16, k=24, seed=1):
    return np.random.default_rng(seed).normal(size=(n, k)).astype(np.float32)


def test_dense_quantize_variables_and_policy():
    model = _mlp()
    kernel = model.layers[0].kernel.value.copy()
    model.quantize("int8")
    dense = model.layers[0]
    assert [(w.name, w.dtype, w.shape) for w in dense.weights] == [
        ("bias", np.float32, (40,)), ("kernel", np.int8, (24, 40)), ("kernel_scale", np.float32, (40,))]
    assert dense.trainable_weights == [dense.bias]
    assert dense.dtype_policy.name == "int8_from_float32"
    assert dense.get_config()["dtype"] == "int8_from_float32"
    q, scale = ref.quantize_rows(kernel.T)  # per output column = per row of the transpose
    np.testing.assert_array_equal(dense.kernel.value, q.T)
    np.testing.assert_array_equal(dense.kernel_scale.value, scale)


def test_quantized_dense_matches_int8_reference():
    model = _mlp()
    x = _x()
    model.quantize("int8")
    d0, d1 = model.layers
    h = ref.int8_dense(x, d0.kernel.value, d0.kernel_scale.value, d0.bias.value, relu=True)
    expected = ref.int8_dense(h, d1.kernel.value, d1.kernel_scale.value, d1.bias.value)
    np.testing.assert_array_equal(model.predict(x, verbose=0), expected)
    np.testing.assert_array_equal(model(x).value, expected)  # the same forward through __call__


def test_quantized_dense_close_to_float():
    model = _mlp()
    x = _x()
    y_float = model.predict(x, verbose=0)
    model.quantize("int8")
    y = model.predict(x, verbose=0)
    assert np.abs(y - y_float).max() < 0.02 * np.abs(y_float).max()


def test_dense_on_3d_inputs_and_kernel_updates_repack():
    dense = layers.Dense(5)
    x = np.random.default_rng(2).normal(size=(2, 3, 8)).astype(np.float32)
    dense(x)
    dense.quantize("int8")
    y = dense(x).value
    assert y.shape == (2, 3, 5)
    np.testing.assert_array_equal(y.reshape(6, 5), ref.int8_dense(x.reshape(6, 8), dense.kernel.value,
                                                                  dense.kernel_scale.value, dense.bias.value))
    dense.kernel.assign(-dense.kernel.value)  # an in-place change of the int8 kernel is seen by the next call
    np.testing.assert_array_equal(dense(x).value.reshape(6, 5), ref.int8_dense(
        x.reshape(6, 8), dense.kernel.value, dense.kernel_scale.value, dense.bias.value))


def test_embedding_quantize():
    emb = layers.Embedding(30, 6)
    ids = np.random.default_rng(3).integers(0, 30, size=(5, 4))
    y_float = emb(ids).value
    table = emb.embeddings.value.copy()
    emb.quantize("int8")
    assert [(w.name, w.dtype, w.shape) for w in emb.weights] == [
        ("embeddings", np.int8, (30, 6)), ("embeddings_scale", np.float32, (30,))]
    q, scale = ref.quantize_rows(table)
    np.testing.assert_array_equal(emb.embeddings.value, q)
    y = emb(ids).value
    np.testing.assert_array_equal(y, ref.int8_embedding(ids, q, scale))
    assert np.abs(y - y_float).max() <= np.abs(table).max() / 127
    with pytest.raises(ValueError, match="embedding.*token ids must be in"):
        emb(np.array([[30]]))


def test_errors():
    model = _mlp()
    with pytest.raises(ValueError, match="invalid quantization mode.*Received: mode='int4'"):
        model.quantize("int4")
    with pytest.raises(ValueError, match="invalid quantization mode"):
        model.layers[0].quantize("float16")
    with pytest.raises(ValueError, match="isn't yet built"):
        layers.Dense(3).quantize("int8")
    with pytest.raises(ValueError, match="custom quantization config"):
        model.quantize("int8", config={"weight": "x"})
    with pytest.raises(ValueError, match="Unrecognized keyword"):
        model.quantize("int8", foo=1)

    class MyDense(layers.Dense):
        pass

    sub = MyDense(3)
    sub(np.zeros((1, 2), np.float32))
    with pytest.raises(TypeError, match="subclass MyDense"):
        sub.quantize("int8")
    model.quantize("int8")
    with pytest.raises(ValueError, match="already quantized"):
        model.layers[0].quantize("int8")
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 24"):
        model.layers[0](np.zeros((2, 23), np.float32))
    with pytest.raises(ValueError, match=r"int8_dense: expected inputs of shape \(\.\.\., 24\)"):
        dl.ops.quantized.int8_dense(np.zeros((2, 23), np.float32), model.layers[0].kernel.packed(),
                                    model.layers[0].kernel_scale)


def test_training_refused():
    model = _mlp()
    model.quantize("int8")
    model.compile("adam", "mse")
    with pytest.raises(ValueError, match="Dense 'dense.*' is quantized \\(int8\\) and runs inference only"):
        model.fit(_x(), np.zeros((16, 7), np.float32), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="inference only"):
        with dl.GradientTape() as tape:
            tape.watch(model.layers[0].bias)
            model(_x())


def test_model_quantize_lists_float_layers_and_filters():
    model = dl.Sequential([dl.Input((6,), dtype="int32"), layers.Embedding(50, 8), layers.Flatten(),
                           layers.Dense(16, activation="relu"), layers.LayerNormalization(), layers.Dense(3)])
    model.build((None, 6))
    with pytest.warns(UserWarning, match="left in float32.*layer_normalization"):
        model.quantize("int8")
    assert model.float_layers == [model.layers[3].name]
    lines = []
    model.summary(print_fn=lines.append)
    assert f"Not quantized (left in float): {model.layers[3].name}" in lines[0]
    assert [getattr(layer, "quantization_mode", None) for layer in model.layers] == ["int8", None, "int8", None,
                                                                                      "int8"]
    other = _mlp()
    other.quantize("int8", filters=lambda layer: layer.name == other.layers[1].name)
    assert [layer.quantization_mode for layer in other.layers] == [None, "int8"]
    assert other.float_layers == []  # filtered out is not "cannot be quantized"
    third = _mlp()
    third.quantize("int8", filters=[third.layers[0].name + "$"])
    assert [layer.quantization_mode for layer in third.layers] == ["int8", None]
    with pytest.raises(ValueError, match="`filters` argument"):
        third.quantize("int8", filters=3)


def test_dlc_round_trip(tmp_path):
    model = dl.Sequential([dl.Input((6,), dtype="int32"), layers.Embedding(50, 8), layers.Flatten(),
                           layers.Dense(16, activation="relu"), layers.Dense(3)])
    ids = np.random.default_rng(4).integers(0, 50, size=(9, 6))
    model.build((None, 6))
    model.quantize("int8")
    y = model.predict(ids, verbose=0)
    path = tmp_path / "q.dlc"
    model.save(path)
    loaded = dl.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(ids, verbose=0), y)
    assert [(w.path, w.dtype) for w in loaded.weights] == [(w.path, w.dtype) for w in model.weights]
    assert loaded.layers[0].embeddings.dtype == np.int8 and loaded.layers[2].kernel.dtype == np.int8
    assert loaded.layers[2].dtype_policy.name == "int8_from_float32"


@pytest.mark.slow
def test_digits_accuracy_within_half_a_point():
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    x_train, y_train, x_test, y_test = x[:1400], y[:1400], x[1400:], y[1400:]
    model = dl.Sequential([dl.Input((64,)), layers.Dense(128, activation="relu"),
                           layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=15, batch_size=64, verbose=0)
    acc_float = np.mean(model.predict(x_test, verbose=0).argmax(1) == y_test)
    model.quantize("int8")
    acc_int8 = np.mean(model.predict(x_test, verbose=0).argmax(1) == y_test)
    assert acc_float > 0.9
    assert abs(acc_int8 - acc_float) <= 0.005


def test_keras_parity_bit_exact():
    keras = pytest.importorskip("keras")
    x = _x()
    model = _mlp()
    kmodel = keras.Sequential([keras.Input((24,)), keras.layers.Dense(40, activation="relu"), keras.layers.Dense(7)])
    kmodel.set_weights(model.get_weights())
    model.quantize("int8")
    kmodel.quantize("int8")
    for ours, theirs in zip(model.layers, kmodel.layers):
        np.testing.assert_array_equal(ours.kernel.value, np.asarray(theirs._kernel))
        np.testing.assert_array_equal(ours.kernel_scale.value, np.asarray(theirs.kernel_scale))
        assert [w.name for w in ours.weights] == [w.name for w in theirs.weights]
    # dlcore keeps Keras's rounding and operation order, so the outputs are equal, not only close
    np.testing.assert_array_equal(model.predict(x, verbose=0), np.asarray(kmodel(x)))
    ids = np.random.default_rng(5).integers(0, 30, size=(5, 4))
    emb, kemb = layers.Embedding(30, 6), keras.layers.Embedding(30, 6)
    emb(ids), kemb(ids)
    kemb.set_weights(emb.get_weights())
    emb.quantize("int8")
    kemb.quantize("int8")
    np.testing.assert_array_equal(emb(ids).value, np.asarray(kemb(ids)))
    # Keras's serialized quantized policy is understood
    config = layers.Dense(3, dtype=kmodel.layers[0].get_config()["dtype"]).get_config()
    assert config["dtype"] == "int8_from_float32"


EINSUM_CASES = [("abc,cde->abde", (None, 4, 5), (2, 3, 6), "de", None), ("ab,bc->ac", (7,), (2, 6), "c", "relu"),
                ("abcd,cde->abe", (None, 5), (2, 3, 4, 6), None, None)]


@pytest.mark.parametrize("equation,output_shape,input_shape,bias_axes,activation", EINSUM_CASES)
def test_einsum_dense_quantize(equation, output_shape, input_shape, bias_axes, activation):
    rng = np.random.default_rng(6)
    x = rng.normal(size=input_shape).astype(np.float32)
    layer = layers.EinsumDense(equation, output_shape=output_shape, bias_axes=bias_axes, activation=activation)
    layer(x)
    if layer.bias is not None:
        layer.bias.assign(rng.normal(size=layer.bias.shape))
    kernel = layer.kernel.value.copy()
    y_float = layer(x).value
    layer.quantize("int8")
    assert layer.kernel.dtype == np.int8 and layer.kernel.shape == kernel.shape
    assert layer.dtype_policy.name == "int8_from_float32"
    y = layer(x).value
    assert y.shape == y_float.shape
    assert np.abs(y - y_float).max() < 0.03 * np.abs(y_float).max()


@pytest.mark.parametrize("equation,output_shape,input_shape,bias_axes,activation", EINSUM_CASES)
def test_einsum_dense_keras_parity_bit_exact(equation, output_shape, input_shape, bias_axes, activation):
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(7)
    x = rng.normal(size=input_shape).astype(np.float32)
    layer = layers.EinsumDense(equation, output_shape=output_shape, bias_axes=bias_axes, activation=activation)
    layer(x)
    if layer.bias is not None:
        layer.bias.assign(rng.normal(size=layer.bias.shape))
    klayer = keras.layers.EinsumDense(equation, output_shape=output_shape, bias_axes=bias_axes, activation=activation)
    klayer.build(input_shape)
    klayer.set_weights(layer.get_weights())
    layer.quantize("int8")
    klayer.quantize("int8")
    np.testing.assert_array_equal(layer.kernel.value, np.asarray(klayer._kernel))
    np.testing.assert_array_equal(layer.kernel_scale.value, np.asarray(klayer.kernel_scale))
    np.testing.assert_array_equal(layer(x).value, np.asarray(klayer(x)))


def test_einsum_dense_without_dense_product_stays_float(tmp_path):
    x = np.random.default_rng(8).normal(size=(2, 3, 6)).astype(np.float32)
    inputs = dl.Input((3, 6))
    outputs = layers.EinsumDense("abc,dc->abd", output_shape=(None, 5))(inputs)
    outputs = layers.EinsumDense("abc,cd->abd", output_shape=(None, 4), bias_axes="d")(outputs)
    model = dl.Model(inputs, outputs)
    with pytest.raises(ValueError, match="dense-product equation.*abc,dc->abd"):
        model.layers[1].quantize("int8")
    with pytest.warns(UserWarning, match="dense-product equation"):
        model.quantize("int8")
    assert model.float_layers == [model.layers[1].name]
    assert model.layers[2].quantization_mode == "int8"
    y = model.predict(x, verbose=0)
    model.save(tmp_path / "e.dlc")
    np.testing.assert_array_equal(dl.saving.load_model(tmp_path / "e.dlc").predict(x, verbose=0), y)


def test_kernel_packed_once_across_predicts(monkeypatch):
    from dlcore.ops import quantized as quantized_ops

    model = _mlp()
    model.quantize("int8")
    x = _x()
    model.predict(x, verbose=0)
    calls = []
    original = quantized_ops.pack_int8
    monkeypatch.setattr(quantized_ops, "pack_int8", lambda w: calls.append(w.shape) or original(w))
    for _ in range(3):
        model.predict(x, verbose=0)
        model.predict_on_batch(x[:1])
        model(x)
    assert calls == []
    model.set_weights(model.get_weights())  # writes through .value: the next call repacks, once per kernel
    model(x)
    model(x)
    assert calls == [(24, 40), (40, 7)]


def test_onnx_export_of_a_quantized_model_is_refused(tmp_path):
    pytest.importorskip("onnx")
    model = _mlp()
    model.quantize("int8")
    with pytest.raises(ValueError, match="int8-quantized layers.*export the float model"):
        model.export(tmp_path / "q.onnx")
