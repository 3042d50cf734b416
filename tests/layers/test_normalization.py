"""BatchNormalization: the layer harness (inference form), training-mode statistics and
moving-average updates against the NumPy reference, frozen layers and models running in
inference mode, masks, Keras parity (outputs and moving statistics after training steps) when
keras is importable, errors."""
import os
import sys

import numpy as np
import pytest

import dlcore as dl
from dlcore import layers
from harness import check_layer
from reference import norm as ref

pytestmark = pytest.mark.usefixtures("fresh_session")


def _inference_reference(kwargs, axis=-1):
    def reference(x, w):
        w = list(w)
        gamma = w.pop(0) if kwargs.get("scale", True) else 1.0
        beta = w.pop(0) if kwargs.get("center", True) else 0.0
        mean, var = w
        c = x.shape[axis]
        return ref.inference(x, np.broadcast_to(gamma, c), np.broadcast_to(beta, c), mean, var,
                             kwargs.get("epsilon", 1e-3), axis)
    return reference


@pytest.mark.parametrize("kwargs,shape,n_trainable", [
    ({}, (4, 3), 2),
    ({}, (2, 3, 3, 2), 2),
    ({"axis": 1, "epsilon": 0.01}, (2, 3, 2, 2), 2),
    ({"center": False}, (1, 2, 2, 3), 1),
    ({"scale": False, "center": False}, (3, 5, 2), 0),
])
def test_harness(kwargs, shape, n_trainable):
    layer, x, _ = check_layer(layers.BatchNormalization, kwargs, shape, shape,
                              expected_num_trainable_weights=n_trainable, expected_num_non_trainable_weights=2,
                              reference=_inference_reference(kwargs, kwargs.get("axis", -1)))
    assert [v.name for v in layer.weights][-2:] == ["moving_mean", "moving_variance"]


def _random_weights(layer, rng):
    c = layer.moving_mean.shape[0]
    layer.set_weights([rng.uniform(0.5, 1.5, c), rng.standard_normal(c), rng.standard_normal(c),
                       rng.uniform(0.5, 2.0, c)])


@pytest.mark.parametrize("shape,axis", [((8, 4), -1), ((2, 5, 3, 4), -1), ((3, 4, 2, 2), 1), ((1, 3, 3, 2), -1)])
def test_training_step_normalizes_with_batch_statistics_and_updates_moving_averages(shape, axis):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 2 + 3).astype("float32")
    layer = layers.BatchNormalization(axis=axis, momentum=0.9)
    layer.build(shape)
    _random_weights(layer, rng)
    gamma, beta, mm, mv = layer.get_weights()
    y = layer(x, training=True).value
    y_ref, mean, var = ref.training(x, gamma, beta, 1e-3, axis)
    np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.moving_mean.value, ref.moving_update(mm, mean, 0.9), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.value, ref.moving_update(mv, var, 0.9), rtol=1e-5, atol=1e-6)
    # inference uses the moving statistics and changes nothing
    before = layer.get_weights()
    y_inf = layer(x, training=False).value
    np.testing.assert_allclose(y_inf, ref.inference(x, gamma, beta, *before[2:], 1e-3, axis), rtol=1e-4, atol=1e-4)
    for a, b in zip(before, layer.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_training_mode_gradients_match_the_reference():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 2, 5))
    layer = layers.BatchNormalization(dtype="float64")
    layer.build(x.shape)
    _random_weights(layer, rng)
    dy = rng.standard_normal(x.shape)
    t = dl.Tensor(x)
    with dl.GradientTape() as tape:
        tape.watch(t)
        loss = dl.ops.sum(dl.ops.multiply(layer(t, training=True), dy))
    dx, dgamma, dbeta = tape.gradient(loss, [t, layer.gamma, layer.beta])
    dx_ref, dgamma_ref, dbeta_ref = ref.training_backward(x, dy, layer.gamma.value, 1e-3)
    np.testing.assert_allclose(dx.value, dx_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dgamma.value, dgamma_ref, rtol=1e-10)
    np.testing.assert_allclose(dbeta.value, dbeta_ref, rtol=1e-10)


def test_training_is_deterministic_across_thread_counts():
    x = np.random.default_rng(2).standard_normal((64, 9, 9, 16)).astype("float32")
    outs = []
    old = dl.config.num_threads()
    try:
        for n in (1, 2):
            dl.config.set_num_threads(n)
            layer = layers.BatchNormalization()
            t = dl.Tensor(x)
            with dl.GradientTape() as tape:
                tape.watch(t)
                loss = dl.ops.sum(dl.ops.square(layer(t, training=True)))
            grads = tape.gradient(loss, [t, layer.gamma, layer.beta])
            outs.append([g.value for g in grads] + [layer.moving_mean.value, layer.moving_variance.value])
    finally:
        dl.config.set_num_threads(old)
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


def test_frozen_layer_runs_in_inference_mode_even_when_training():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 3)).astype("float32")
    layer = layers.BatchNormalization()
    layer.build(x.shape)
    _random_weights(layer, rng)
    layer.trainable = False
    before = layer.get_weights()
    y = layer(x, training=True).value
    np.testing.assert_allclose(y, layer(x, training=False).value)
    for a, b in zip(before, layer.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 4


def test_frozen_model_keeps_moving_statistics_in_fit():
    x = np.random.default_rng(4).standard_normal((32, 4)).astype("float32") + 2
    y = np.random.default_rng(5).standard_normal((32, 1)).astype("float32")
    bn = layers.BatchNormalization()
    base = dl.Sequential([dl.Input(shape=(4,)), bn])
    model = dl.Sequential([base, layers.Dense(1)])
    base.trainable = False
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    np.testing.assert_array_equal(bn.moving_mean.value, np.zeros(4))
    np.testing.assert_array_equal(bn.moving_variance.value, np.ones(4))
    base.trainable = True
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert np.all(bn.moving_mean.value > 0)


def test_mask_leaves_masked_steps_out_of_the_statistics():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 5, 3)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], bool)
    t = dl.Tensor(x)
    t.mask = mask
    layer = layers.BatchNormalization(momentum=0.0)
    y = layer(t, training=True)
    kept = x[mask]  # (7, 3)
    np.testing.assert_allclose(layer.moving_mean.value, kept.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.value, kept.var(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(y.value[mask], (kept - kept.mean(0)) / np.sqrt(kept.var(0) + 1e-3), rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_array_equal(y.mask, mask)  # the mask passes through


def test_config_and_errors():
    config = layers.BatchNormalization(momentum=0.9).get_config()
    for key in ("axis", "momentum", "epsilon", "center", "scale", "beta_initializer", "gamma_initializer",
                "moving_mean_initializer", "moving_variance_initializer", "synchronized", "renorm"):
        assert key in config
    assert config["momentum"] == 0.9 and config["epsilon"] == 1e-3
    with pytest.raises(ValueError, match=r"Layer 'bn'.*axis 3 is out of bounds.*\(2, 3\)"):
        layers.BatchNormalization(axis=3, name="bn")(np.zeros((2, 3), "float32"))
    layer = layers.BatchNormalization(name="bn2")
    layer(np.zeros((2, 3), "float32"))
    with pytest.raises(ValueError, match=r"layer 'bn2'.*axis -1 of input shape to have value 3.*\(2, 4\)"):
        layer(np.zeros((2, 4), "float32"))
    with pytest.raises(ValueError, match="renorm"):
        layers.BatchNormalization(renorm=True)
    with pytest.raises(ValueError, match="epsilon"):
        layers.BatchNormalization(epsilon=0)


# ---- Keras parity (skipped without keras) ---------------------------------------------------------
def _keras():
    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    return pytest.importorskip("keras")


def test_keras_parity_inference():
    keras = _keras()
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 4, 3, 5)).astype("float32")
    for axis in (-1, 1):
        kl = keras.layers.BatchNormalization(axis=axis, epsilon=0.01)
        dlayer = layers.BatchNormalization(axis=axis, epsilon=0.01)
        kl.build(x.shape)
        dlayer.build(x.shape)
        _random_weights(dlayer, rng)
        kl.set_weights(dlayer.get_weights())
        np.testing.assert_allclose(dlayer(x).value, np.asarray(kl(x, training=False)), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(dlayer(x, training=True).value, np.asarray(kl(x, training=True)),
                                   rtol=1e-4, atol=1e-4)


def test_keras_parity_moving_statistics_after_training_steps():
    keras = _keras()
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((16, 6, 6, 2)) + 1).astype("float32")
    y = rng.integers(0, 3, size=16)

    def build(lib):
        return lib.Sequential([lib.Input(shape=(6, 6, 2)), lib.layers.BatchNormalization(momentum=0.8),
                               lib.layers.GlobalAveragePooling2D(), lib.layers.Dense(3, activation="softmax")])

    km, dm = build(keras), build(dl)
    dm.set_weights(km.get_weights())
    for m in (km, dm):
        m.compile(optimizer=(keras if m is km else dl).optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    for step in range(3):
        batch = slice(step * 5, step * 5 + 6)
        km.train_on_batch(x[batch], y[batch])
        dm.train_on_batch(x[batch], y[batch])
    for kw, dw in zip(km.get_weights(), dm.get_weights()):
        np.testing.assert_allclose(dw, kw, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dm.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-4, atol=1e-5)
