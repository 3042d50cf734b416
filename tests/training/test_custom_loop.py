"""Custom training loops with ``dl.GradientTape`` (TensorFlow semantics): the issue's loop, its
equivalence with ``fit``, persistent tapes, ``watch``, structured sources, one-shot tapes."""
import numpy as np
import pytest

import dlcore as dl
from dlcore import layers

pytestmark = pytest.mark.usefixtures("fresh_session")


def _classification(n=64, features=8, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = np.argmax(x @ rng.normal(size=(features, classes)), axis=1)
    return x, y


def _mlp(dropout=0.2, l2=1e-3):
    return dl.Sequential([
        dl.Input(shape=(8,)),
        layers.Dense(16, activation="relu", kernel_regularizer=dl.regularizers.L2(l2) if l2 else None),
        layers.Dropout(dropout),
        layers.Dense(4, activation="softmax"),
    ])


def test_issue_custom_loop_reduces_the_loss():
    x, y = _classification()
    model = _mlp()
    optimizer = dl.optimizers.Adam(learning_rate=0.01)
    loss_fn = dl.losses.SparseCategoricalCrossentropy()

    def full_loss():
        return float(loss_fn(y, model(x, training=False)) + sum(model.losses))

    start = full_loss()
    for epoch in range(4):
        for i in range(0, len(x), 16):
            x_batch, y_batch = x[i:i + 16], y[i:i + 16]
            with dl.GradientTape() as tape:
                y_pred = model(x_batch, training=True)
                loss = loss_fn(y_batch, y_pred) + sum(model.losses)
            grads = tape.gradient(loss, model.trainable_weights)
            optimizer.apply_gradients(zip(grads, model.trainable_weights))
    assert full_loss() < 0.7 * start
    assert int(optimizer.iterations) == 16


def test_model_losses_are_the_regularization_penalties():
    model = _mlp(l2=0.05)
    assert len(model.losses) == 1
    kernel = model.layers[0].kernel.value.astype(np.float64)
    assert float(model.losses[0]) == pytest.approx(0.05 * np.sum(kernel ** 2), rel=1e-5)
    # the penalty is differentiable: d(0.05 * sum(W^2))/dW = 0.1 W
    with dl.GradientTape() as tape:
        penalty = sum(model.losses)
    grad_kernel, grad_bias = tape.gradient(penalty, [model.layers[0].kernel, model.layers[0].bias])
    np.testing.assert_allclose(np.asarray(grad_kernel), 0.1 * kernel, rtol=1e-5, atol=1e-8)
    assert grad_bias is None  # unconnected


def test_tape_gradient_of_dense_mse_matches_formula():
    model = dl.Sequential([dl.Input(shape=(3,)), layers.Dense(2)])
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 3)).astype("float32")
    y = rng.normal(size=(5, 2)).astype("float32")
    with dl.GradientTape() as tape:
        loss = dl.losses.MeanSquaredError()(y, model(x))
    d_kernel, d_bias = tape.gradient(loss, model.trainable_weights)
    kernel, bias = (w.astype(np.float64) for w in model.get_weights())
    residual = 2 * (x @ kernel + bias - y) / y.size
    np.testing.assert_allclose(np.asarray(d_kernel), x.T @ residual, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(d_bias), residual.sum(axis=0), rtol=1e-5, atol=1e-6)


def test_custom_loop_equals_fit():
    """Full-batch SGD steps by hand reach exactly the weights fit reaches (no dropout, no shuffle)."""
    x, y = _classification(n=32)
    dl.utils.set_random_seed(3)
    by_fit = _mlp(dropout=0.0)
    initial = by_fit.get_weights()
    by_fit.compile(optimizer=dl.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    by_fit.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)

    by_hand = _mlp(dropout=0.0)
    by_hand.set_weights(initial)
    optimizer = dl.optimizers.SGD(0.1)
    loss_fn = dl.losses.SparseCategoricalCrossentropy()
    for _ in range(3):
        with dl.GradientTape() as tape:
            loss = loss_fn(y, by_hand(x, training=True)) + sum(by_hand.losses)
        grads = tape.gradient(loss, by_hand.trainable_weights)
        optimizer.apply_gradients(zip(grads, by_hand.trainable_weights))
    for w_fit, w_hand, w0 in zip(by_fit.get_weights(), by_hand.get_weights(), initial):
        assert not np.array_equal(w_fit, w0)
        np.testing.assert_allclose(w_hand, w_fit, rtol=1e-6, atol=1e-7)


def test_persistent_tape_gives_several_gradients():
    x = dl.Variable(np.array([1.0, 2.0, 3.0], "float32"))
    with dl.GradientTape(persistent=True) as tape:
        square = dl.ops.sum(x * x)
        cube = dl.ops.sum(x * x * x)
    np.testing.assert_allclose(np.asarray(tape.gradient(square, x)), [2.0, 4.0, 6.0])
    np.testing.assert_allclose(np.asarray(tape.gradient(cube, x)), [3.0, 12.0, 27.0])
    np.testing.assert_allclose(np.asarray(tape.gradient(square, x)), [2.0, 4.0, 6.0])  # a third time


def test_watch_a_constant():
    c = dl.ops.convert_to_tensor(np.array([1.0, -2.0], "float32"))
    with dl.GradientTape() as tape:
        y = dl.ops.sum(c * c * c)
    assert tape.gradient(y, c) is None  # constants are not watched by default
    with dl.GradientTape() as tape:
        tape.watch(c)
        y = dl.ops.sum(c * c * c)
    np.testing.assert_allclose(np.asarray(tape.gradient(y, c)), [3.0, 12.0])


def test_watch_accessed_variables_false():
    v = dl.Variable(np.array([2.0], "float32"))
    w = dl.Variable(np.array([5.0], "float32"))
    with dl.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(w)
        y = dl.ops.sum(v * w)
    grad_v, grad_w = tape.gradient(y, [v, w])
    assert grad_v is None
    np.testing.assert_allclose(np.asarray(grad_w), [2.0])


def test_gradient_with_respect_to_structures():
    a = dl.Variable(np.array([1.0, 2.0], "float32"))
    b = dl.Variable(np.array([[3.0]], "float32"))
    unused = dl.Variable(np.zeros(2, "float32"))
    with dl.GradientTape(persistent=True) as tape:
        y = dl.ops.sum(a * a) + dl.ops.sum(b) * 4.0
    grads = tape.gradient(y, [a, b, unused])
    assert isinstance(grads, list) and len(grads) == 3
    np.testing.assert_allclose(np.asarray(grads[0]), [2.0, 4.0])
    np.testing.assert_allclose(np.asarray(grads[1]), [[4.0]])
    assert grads[2] is None
    nested = tape.gradient(y, (a, [b]))
    assert isinstance(nested, tuple) and isinstance(nested[1], list)
    np.testing.assert_allclose(np.asarray(nested[1][0]), [[4.0]])
    by_key = tape.gradient(y, {"a": a, "b": b})
    assert set(by_key) == {"a", "b"}
    np.testing.assert_allclose(np.asarray(by_key["a"]), [2.0, 4.0])


def test_non_persistent_tape_second_gradient_raises():
    x = dl.Variable(np.array([1.0, 2.0], "float32"))
    with dl.GradientTape() as tape:
        y = dl.ops.sum(x * x)
    tape.gradient(y, x)
    with pytest.raises(RuntimeError, match="non-persistent"):
        tape.gradient(y, x)


def test_no_grad_records_nothing():
    x = dl.Variable(np.array([1.0, 2.0], "float32"))
    with dl.GradientTape() as tape:
        with dl.no_grad():
            y = dl.ops.sum(x * x)
    assert tape.gradient(y, x) is None
