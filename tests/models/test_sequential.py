"""Sequential models: the issue's MLP end to end (summary text, fit/evaluate/predict), add/pop,
``input_shape=`` on the first layer, deferred building, layer access, and Keras parity."""
import os
import sys

import numpy as np
import pytest

import dlcore as dl
from dlcore import layers

pytestmark = pytest.mark.usefixtures("fresh_session")


def _classification(n=60, features=64, classes=10, seed=0):
    """A learnable task: the class is the argmax of a fixed linear map of the features."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = np.argmax(x @ rng.normal(size=(features, classes)), axis=1)
    return x, y


def _issue_mlp():
    """The model from the issue, verbatim."""
    return dl.Sequential([
        dl.Input(shape=(64,)),
        layers.Dense(128, activation="relu", kernel_regularizer=dl.regularizers.L2(1e-4)),
        layers.Dropout(0.2),
        layers.Dense(10, activation="softmax"),
    ])


def _summary(model):
    lines = []
    model.summary(print_fn=lines.append)
    return "\n".join(lines)


def _row(text, name):
    rows = [line for line in text.splitlines() if line.startswith(name + " ")]
    assert len(rows) == 1, f"expected one summary row for {name!r} in:\n{text}"
    return rows[0].split()


# ---- the issue's MLP ------------------------------------------------------------------------------
def test_issue_mlp_summary_text(capsys):
    model = _issue_mlp()
    model.summary()
    text = capsys.readouterr().out
    assert text == _summary(model) + "\n"
    assert 'Model: "sequential"' in text
    assert _row(text, "dense") == ["dense", "(Dense)", "(None,", "128)", "8,320"]
    assert _row(text, "dropout") == ["dropout", "(Dropout)", "(None,", "128)", "0"]
    assert _row(text, "dense_1") == ["dense_1", "(Dense)", "(None,", "10)", "1,290"]
    assert "InputLayer" not in text  # as in Keras, a Sequential summary does not list its input
    assert "Total params: 9,610" in text
    assert "Trainable params: 9,610" in text
    assert "Non-trainable params: 0" in text
    assert model.count_params() == 9610


def test_issue_mlp_fit_evaluate_predict():
    x, y = _classification()
    model = _issue_mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=4, batch_size=16, validation_split=0.25, verbose=0)

    assert isinstance(history, dl.callbacks.History) and model.history is history
    assert history.epoch == [0, 1, 2, 3]
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    for key, values in history.history.items():
        assert len(values) == 4 and all(np.isfinite(values)), key
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert all(0.0 <= a <= 1.0 for a in history.history["accuracy"] + history.history["val_accuracy"])

    result = model.evaluate(x, y, verbose=0)
    assert isinstance(result, list) and len(result) == 2
    loss, acc = result
    probs = model.predict(x, verbose=0)
    assert probs.shape == (60, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-5)
    assert np.all(probs >= 0)

    # evaluate = the NumPy cross-entropy of predict's probabilities + the L2 penalty; accuracy = argmax
    kernel = model.layers[0].kernel.value.astype(np.float64)
    expected_loss = -np.mean(np.log(probs[np.arange(60), y].astype(np.float64))) + 1e-4 * np.sum(kernel ** 2)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
    assert acc == pytest.approx(np.mean(np.argmax(probs, axis=1) == y), abs=1e-6)
    assert model.metrics_names == ["loss", "accuracy"]


def test_predict_is_inference_mode_and_batch_independent():
    x, _ = _classification(n=37)
    model = _issue_mlp()
    full = model.predict(x, verbose=0)
    # batches give the same rows, up to GEMM rounding (the blocking depends on the batch size)
    np.testing.assert_allclose(model.predict(x, batch_size=5, verbose=0), full, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(model.predict(x, batch_size=1000, verbose=0), full, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(model.predict_on_batch(x[:3]), full[:3], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(model(x[:3], training=False)), full[:3], rtol=1e-6)
    # Dropout acts only in training: a training-mode call differs, inference calls do not
    assert not np.allclose(np.asarray(model(x, training=True)), full)


# ---- add / pop / input_shape / deferred build --------------------------------------------------
def test_add_and_pop():
    model = dl.Sequential(name="stack")
    model.add(dl.Input(shape=(3,)))
    model.add(layers.Dense(4, activation="relu", name="hidden"))
    model.add(layers.Dense(2, name="top"))
    assert [layer.name for layer in model.layers] == ["hidden", "top"]
    assert model.output.shape == (None, 2)
    assert model.predict(np.ones((5, 3), "float32"), verbose=0).shape == (5, 2)

    popped = model.pop()
    assert popped.name == "top"
    assert [layer.name for layer in model.layers] == ["hidden"]
    assert model.output.shape == (None, 4)
    assert len(model.weights) == 2  # the popped layer's weights are gone from the model
    assert model.predict(np.ones((5, 3), "float32"), verbose=0).shape == (5, 4)

    model.add(layers.Dense(3, name="new_top"))
    assert model.output.shape == (None, 3)
    out = model.predict(np.ones((2, 3), "float32"), verbose=0)
    hidden = np.maximum(np.ones((2, 3)) @ model.layers[0].kernel.value + model.layers[0].bias.value, 0)
    np.testing.assert_allclose(out, hidden @ model.layers[1].kernel.value + model.layers[1].bias.value,
                               rtol=1e-5, atol=1e-6)


def test_add_and_pop_errors():
    model = dl.Sequential()
    with pytest.raises(ValueError, match="no layers to pop"):
        model.pop()
    with pytest.raises(TypeError, match="Layer instance"):
        model.add("dense")
    model.add(layers.Dense(2, input_shape=(3,)))
    with pytest.raises(ValueError, match="InputLayer"):
        model.add(layers.InputLayer(shape=(3,)))


def test_first_layer_input_shape_builds_immediately():
    model = dl.Sequential([layers.Dense(4, input_shape=(3,)), layers.Dense(2)])
    assert model.input.shape == (None, 3)
    assert model.output.shape == (None, 2)
    assert [tuple(w.shape) for w in model.get_weights()] == [(3, 4), (4,), (4, 2), (2,)]
    text = _summary(model)
    assert _row(text, "dense")[-1] == "16" and _row(text, "dense_1")[-1] == "10"
    assert "Total params: 26" in text


def test_deferred_build_until_fit():
    model = dl.Sequential([layers.Dense(4, activation="relu"), layers.Dense(2)])
    assert not model.built
    assert model.weights == [] and model.trainable_weights == []
    with pytest.raises(AttributeError, match="no defined input"):
        model.input
    with pytest.raises(ValueError, match="not been built"):
        model.count_params()
    assert "unbuilt" in _summary(model)

    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(np.ones((8, 3), "float32"), np.zeros((8, 2), "float32"), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert model.built
    assert [tuple(w.shape) for w in model.get_weights()] == [(3, 4), (4,), (4, 2), (2,)]
    assert model.input.shape == (None, 3) and model.output.shape == (None, 2)
    assert model.layers[0].output.shape == (None, 4)
    assert model.count_params() == 26
    assert "Total params: 26" in _summary(model)


def test_build_with_input_shape():
    model = dl.Sequential([layers.Dense(5), layers.Dense(1)])
    model.build((None, 7))
    assert [tuple(w.shape) for w in model.get_weights()] == [(7, 5), (5,), (5, 1), (1,)]


def test_layer_access_and_symbolic_tensors():
    model = _issue_mlp()
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "Dropout", "Dense"]
    assert model.get_layer("dropout") is model.layers[1]
    assert model.get_layer(index=-1) is model.layers[2]
    with pytest.raises(ValueError, match="No such layer: nope"):
        model.get_layer("nope")
    assert isinstance(model.input, dl.KerasTensor) and model.input.shape == (None, 64)
    assert isinstance(model.output, dl.KerasTensor) and model.output.shape == (None, 10)
    assert model.layers[0].output.shape == (None, 128)
    assert model.layers[2].input is model.layers[1].output

    # a feature extractor from the symbolic graph computes relu(x @ W + b) with the same weights
    features = dl.Model(model.input, model.layers[0].output)
    x, _ = _classification(n=4)
    dense = model.layers[0]
    np.testing.assert_allclose(features.predict(x, verbose=0),
                               np.maximum(x @ dense.kernel.value + dense.bias.value, 0), rtol=1e-5, atol=1e-5)


# ---- Keras parity (skipped without keras) ------------------------------------------------------------
def _keras():
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = "tensorflow"
        pytest.importorskip("tensorflow")
    return pytest.importorskip("keras")


def _twin_mlps(keras, dropout=True):
    def build(lib):
        stack = [lib.Input(shape=(6,)),
                 lib.layers.Dense(8, activation="relu", kernel_regularizer=lib.regularizers.L2(1e-3)),
                 lib.layers.Dropout(0.3) if dropout else None,
                 lib.layers.Dense(4, activation="tanh"),
                 lib.layers.Dense(3, activation="softmax")]
        return lib.Sequential([layer for layer in stack if layer is not None])

    km, dm = build(keras), build(dl)
    assert [w.shape for w in km.get_weights()] == [w.shape for w in dm.get_weights()]
    dm.set_weights(km.get_weights())
    return km, dm


def test_keras_parity_predict_and_evaluate():
    keras = _keras()
    km, dm = _twin_mlps(keras)
    x, y = _classification(n=20, features=6, classes=3, seed=3)
    np.testing.assert_allclose(dm.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-5, atol=1e-7)
    for model in (km, dm):
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy", "sparse_categorical_crossentropy"])
    k_logs = km.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    d_logs = dm.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    assert set(d_logs) == set(k_logs)  # same metric names
    for key in k_logs:  # the loss includes the L2 penalty in both
        assert d_logs[key] == pytest.approx(k_logs[key], rel=1e-5), key


def test_keras_parity_one_sgd_step():
    keras = _keras()
    km, dm = _twin_mlps(keras, dropout=False)
    x, y = _classification(n=16, features=6, classes=3, seed=4)
    km.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    dm.compile(optimizer=dl.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    before = dm.get_weights()
    k_loss = km.train_on_batch(x, y)
    d_loss = dm.train_on_batch(x, y)
    assert float(d_loss) == pytest.approx(float(k_loss), rel=1e-5)
    for i, (kw, dw, w0) in enumerate(zip(km.get_weights(), dm.get_weights(), before)):
        assert not np.array_equal(dw, w0), f"weight {i} did not move"
        np.testing.assert_allclose(dw, kw, rtol=1e-5, atol=1e-6, err_msg=f"weight {i}")


def _cnn(seed):
    dl.utils.set_random_seed(seed)
    return dl.Sequential([
        dl.Input(shape=(11, 10, 2)),
        layers.Conv2D(4, 3, activation="relu"),           # 9x8: the pooling drops a row
        layers.MaxPooling2D(2),
        layers.Conv2D(5, 3, padding="same"),              # linear, "same"
        layers.MaxPooling2D(2),
        layers.Conv2D(3, 1, activation="tanh"),           # tanh: not fused
        layers.MaxPooling2D(1),
        layers.Flatten(),
        layers.Dense(3, activation="softmax"),
    ])


def test_training_fuses_conv_max_pool_pairs_with_the_same_weights(monkeypatch):
    # Under a tape, each fusable Conv2D + MaxPooling2D pair runs as one ConvPool op (from its second
    # call on a shape: the first runs the two layers), and training gives the weights of the plain
    # layer-by-layer calls, bit for bit where the first layer's weight gradient also unpools (with
    # its own kernel from the pooled gradient: to float32 rounding, the last comparison).
    from dlcore.models.sequential import Sequential
    from dlcore.ops import pooling
    from dlcore.ops.pooling import ConvPool

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 11, 10, 2)).astype("float32"), rng.integers(0, 3, 6)
    fused_calls = []
    forward = ConvPool.forward
    monkeypatch.setattr(ConvPool, "forward", staticmethod(lambda *a, **k: (fused_calls.append(1), forward(*a, **k))[1]))
    def layer_by_layer(self, t, training):
        for layer in self._layers:
            t = layer(t, training=training)
        return t

    def train():
        model = _cnn(1)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        for _ in range(3):
            model.train_on_batch(x, y)
        return model.get_weights()

    pooled_first = train()
    monkeypatch.setattr(pooling, "_POOL_WGRAD_MAX_TAPS", 0)
    fused_calls.clear()
    unpooled = train()
    assert len(fused_calls) == 2 * 2  # steps 2 and 3, two fusable pairs each
    monkeypatch.setattr(Sequential, "_call_recording", layer_by_layer)
    plain = train()
    for a, b in zip(unpooled, plain):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(pooled_first, plain):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
