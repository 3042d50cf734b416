"""Subclassed models: layers created in ``__init__`` (attributes, lists, nested custom layers),
``call(self, x, training=False)``, trained with fit and with a custom GradientTape loop."""
import numpy as np
import pytest

import dlcore as dl
from dlcore import layers

pytestmark = pytest.mark.usefixtures("fresh_session")


def _classification(n=64, features=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = np.argmax(x @ rng.normal(size=(features, classes)), axis=1)
    return x, y


class Block(dl.Layer):
    """A custom layer holding two sublayers: Dense then Dense, with a residual add."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.inner = layers.Dense(units, activation="relu")
        self.outer = layers.Dense(units)

    def call(self, x):
        return x + self.outer(self.inner(x))


class MLP(dl.Model):
    def __init__(self, hidden=8, classes=3, dropout=0.2, **kwargs):
        super().__init__(**kwargs)
        self.stem = layers.Dense(hidden, activation="relu", kernel_regularizer=dl.regularizers.L2(1e-3))
        self.blocks = [Block(hidden), Block(hidden)]  # a list of layers is tracked too
        self.drop = layers.Dropout(dropout)
        self.head = layers.Dense(classes, activation="softmax")

    def call(self, x, training=False):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        x = self.drop(x, training=training)
        return self.head(x)


def _numpy_forward(model, x):
    def dense(layer, h):
        return h @ layer.kernel.value.astype(np.float64) + layer.bias.value

    h = np.maximum(dense(model.stem, x.astype(np.float64)), 0)
    for block in model.blocks:
        h = h + dense(block.outer, np.maximum(dense(block.inner, h), 0))
    logits = dense(model.head, h)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_weights_of_sublayers_and_lists_are_tracked():
    model = MLP()
    assert model.trainable_weights == []  # nothing built before the first call
    x, _ = _classification()
    model(x[:2])
    expected = [model.stem.kernel, model.stem.bias]
    for block in model.blocks:
        expected += [block.inner.kernel, block.inner.bias, block.outer.kernel, block.outer.bias]
    expected += [model.head.kernel, model.head.bias]
    assert [id(w) for w in model.trainable_weights] == [id(w) for w in expected]
    assert model.non_trainable_weights == []
    assert model.count_params() == (5 * 8 + 8) + 2 * 2 * (8 * 8 + 8) + (8 * 3 + 3)
    assert model.layers == [model.stem, *model.blocks, model.drop, model.head]
    assert len(model.losses) == 1  # the stem's kernel regularizer
    np.testing.assert_allclose(float(model.losses[0]), 1e-3 * np.sum(model.stem.kernel.value.astype(np.float64) ** 2),
                               rtol=1e-5)

    model.blocks[1].trainable = False
    assert len(model.trainable_weights) == 8 and len(model.non_trainable_weights) == 4
    text = []
    model.summary(print_fn=text.append)
    assert "Non-trainable params: 144" in "\n".join(text)


def test_call_matches_numpy_and_training_flag_reaches_dropout():
    model = MLP(dropout=0.5)
    x, _ = _classification(n=16)
    inference = np.asarray(model(x))  # training defaults to False in call's signature
    np.testing.assert_allclose(inference, _numpy_forward(model, x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict(x, verbose=0), inference, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(model(x, training=False)), inference)
    assert not np.allclose(np.asarray(model(x, training=True)), inference)


def test_fit_evaluate_predict():
    x, y = _classification()
    model = MLP()
    model.compile(optimizer=dl.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=8, batch_size=16, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.7 * losses[0], losses
    loss, acc = model.evaluate(x, y, verbose=0)
    probs = model.predict(x, verbose=0)
    assert probs.shape == (64, 3)
    assert acc == pytest.approx(np.mean(np.argmax(probs, 1) == y), abs=1e-6)
    reg = 1e-3 * np.sum(model.stem.kernel.value.astype(np.float64) ** 2)
    expected = -np.mean(np.log(probs[np.arange(64), y].astype(np.float64))) + reg
    assert loss == pytest.approx(expected, rel=1e-5)


def test_custom_training_loop():
    x, y = _classification()
    model = MLP()
    optimizer = dl.optimizers.Adam(0.02)
    loss_fn = dl.losses.SparseCategoricalCrossentropy()
    losses = []
    for _ in range(3):
        for start in range(0, 64, 16):
            x_batch, y_batch = x[start:start + 16], y[start:start + 16]
            with dl.GradientTape() as tape:
                y_pred = model(x_batch, training=True)
                loss = loss_fn(y_batch, y_pred) + sum(model.losses)
            grads = tape.gradient(loss, model.trainable_weights)
            assert len(grads) == 12 and all(g is not None for g in grads)
            optimizer.apply_gradients(zip(grads, model.trainable_weights))
        losses.append(float(loss_fn(y, model(x))))
    assert losses[-1] < 0.8 * losses[0], losses


class TwoHeads(dl.Model):
    """A subclassed model with two inputs and two outputs."""

    def __init__(self):
        super().__init__()
        self.left = layers.Dense(4, activation="relu")
        self.right = layers.Dense(4, activation="relu")
        self.cls = layers.Dense(3, activation="softmax")
        self.reg = layers.Dense(1)

    def call(self, inputs, training=False):
        a, b = inputs
        h = dl.ops.concatenate([self.left(a), self.right(b)], axis=-1)
        return [self.cls(h), self.reg(h)]


def test_subclassed_multi_input_multi_output_fit():
    x, y = _classification()
    x2 = x[:, :2] * 2
    model = TwoHeads()
    model.compile(optimizer="adam", loss=["sparse_categorical_crossentropy", "mse"], loss_weights=[1.0, 0.5],
                  metrics=[["accuracy"], ["mae"]])
    history = model.fit([x, x2], [y, x2[:, :1]], epochs=2, verbose=0)
    # without output layers to name them, the outputs are output_0, output_1 (Keras names these
    # after the loss functions instead: sparse_categorical_crossentropy_loss, mse_loss)
    assert set(history.history) == {"loss", "output_0_loss", "output_1_loss", "output_0_accuracy", "output_1_mae"}
    for epoch in range(2):
        h = {k: v[epoch] for k, v in history.history.items()}
        assert h["loss"] == pytest.approx(h["output_0_loss"] + 0.5 * h["output_1_loss"], rel=1e-5)
    assert len(model.trainable_weights) == 8
    probs, reg = model.predict([x, x2], verbose=0)
    assert probs.shape == (64, 3) and reg.shape == (64, 1)
