"""Regularization layers (Dropout, GaussianNoise, GaussianDropout, ActivityRegularization): the
harness at inference, the training behaviour against its statistics, seeding, and errors."""
import math

import numpy as np
import pytest

import dlcore as dl
from dlcore import layers
from harness import check_layer, check_op_gradients

pytestmark = pytest.mark.usefixtures("fresh_session")

NOISE_LAYERS = [
    (layers.Dropout, {"rate": 0.4}),
    (layers.GaussianNoise, {"stddev": 0.3}),
    (layers.GaussianDropout, {"rate": 0.4}),
]


# ---- the harness (the gradient check runs at inference, where these are the identity) -------------------
@pytest.mark.parametrize("cls,kwargs", NOISE_LAYERS + [
    (layers.Dropout, {"rate": 0.5, "noise_shape": (None, 1, 4), "seed": 3}),
    (layers.GaussianNoise, {"stddev": 0.1, "seed": 1}),
    (layers.GaussianDropout, {"rate": 0.2, "seed": 2}),
], ids=lambda v: v.__name__ if isinstance(v, type) else str(v))
def test_noise_layer_harness(cls, kwargs):
    check_layer(cls, kwargs, (2, 3, 4), (2, 3, 4), expected_num_trainable_weights=0,
                expected_num_non_trainable_weights=0, reference=lambda x, w: x)


@pytest.mark.parametrize("kwargs", [{}, {"l1": 0.1}, {"l2": 0.2}, {"l1": 0.05, "l2": 0.5}], ids=str)
def test_activity_regularization_harness(kwargs):
    layer, x, _ = check_layer(layers.ActivityRegularization, kwargs, (3, 4), (3, 4),
                              expected_num_trainable_weights=0, reference=lambda x, w: x)
    (penalty,) = layer.losses
    x = x.astype(np.float64)
    expected = kwargs.get("l1", 0.0) * np.abs(x).sum() + kwargs.get("l2", 0.0) * np.square(x).sum()
    np.testing.assert_allclose(float(penalty.value), expected, rtol=1e-5)


# ---- training behaviour -----------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,kwargs", NOISE_LAYERS, ids=lambda v: v.__name__ if isinstance(v, type) else "")
def test_identity_at_inference(cls, kwargs):
    x = np.random.default_rng(0).standard_normal((4, 5)).astype("float32")
    layer = cls(**kwargs)
    for training in (None, False):
        out = layer(x, training=training)
        np.testing.assert_array_equal(out.value, x)
    assert np.any(layer(x, training=True).value != x)


def test_dropout_training_statistics():
    x = np.ones((400, 250), "float32")
    y = layers.Dropout(0.3)(x, training=True).value
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    assert abs((1 - kept.mean()) - 0.3) < 0.01  # 100k draws: sd of the rate ~0.0015
    assert y.dtype == np.float32


def test_dropout_rate_zero_is_identity_in_training():
    x = np.random.default_rng(0).standard_normal((3, 4)).astype("float32")
    np.testing.assert_array_equal(layers.Dropout(0.0)(x, training=True).value, x)


def test_dropout_noise_shape_shares_the_mask():
    x = np.ones((4, 6, 5), "float32")
    y = layers.Dropout(0.5, noise_shape=(None, 1, 5), seed=0)(x, training=True).value
    for b in range(4):
        assert np.all(y[b] == y[b, :1])  # same mask along axis 1
    assert np.any(y == 0) and np.any(y != 0)


def test_dropout_gradient_in_training_is_the_scaled_mask():
    x = dl.Tensor(np.random.default_rng(0).standard_normal((5, 4)))
    layer = layers.Dropout(0.25, seed=4, dtype="float64")
    with dl.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = dl.ops.sum(y)
    g = tape.gradient(loss, x).value
    mask = y.value != 0
    np.testing.assert_allclose(g, mask / 0.75)


def test_dropout_layer_gradients_in_training_with_a_fixed_generator():
    # A layer re-created with the same seed draws the same mask: finite differences apply.
    check_op_gradients(lambda x: layers.Dropout(0.3, seed=9, dtype="float64")(x, training=True),
                       [np.random.default_rng(1).standard_normal((3, 4))])


def test_gaussian_noise_statistics():
    x = np.full((400, 250), 2.0, "float32")
    noise = layers.GaussianNoise(0.5)(x, training=True).value - 2.0
    assert abs(noise.mean()) < 0.01
    assert noise.std() == pytest.approx(0.5, rel=0.02)


def test_gaussian_dropout_statistics():
    x = np.full((400, 250), 3.0, "float32")
    factor = layers.GaussianDropout(0.2)(x, training=True).value / 3.0
    assert abs(factor.mean() - 1.0) < 0.01
    assert factor.std() == pytest.approx(math.sqrt(0.2 / 0.8), rel=0.02)


# ---- seeding ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,kwargs", NOISE_LAYERS, ids=lambda v: v.__name__ if isinstance(v, type) else "")
def test_seeded_layer_differs_between_calls_and_repeats_across_runs(cls, kwargs):
    x = np.random.default_rng(0).standard_normal((6, 7)).astype("float32")
    first = cls(**kwargs, seed=42)
    a1, a2 = first(x, training=True).value, first(x, training=True).value
    assert np.any(a1 != a2)  # successive calls draw new noise
    second = cls(**kwargs, seed=42)
    np.testing.assert_array_equal(second(x, training=True).value, a1)  # a rerun repeats it
    np.testing.assert_array_equal(second(x, training=True).value, a2)
    clone = cls.from_config(first.get_config())
    np.testing.assert_array_equal(clone(x, training=True).value, a1)  # so does a from_config copy
    assert np.any(cls(**kwargs, seed=43)(x, training=True).value != a1)


@pytest.mark.parametrize("cls,kwargs", NOISE_LAYERS, ids=lambda v: v.__name__ if isinstance(v, type) else "")
def test_unseeded_layer_follows_set_random_seed(cls, kwargs):
    x = np.random.default_rng(0).standard_normal((6, 7)).astype("float32")
    dl.utils.set_random_seed(123)
    a = cls(**kwargs)(x, training=True).value
    dl.utils.set_random_seed(123)
    b = cls(**kwargs)(x, training=True).value
    np.testing.assert_array_equal(a, b)


def test_seed_can_be_a_generator():
    x = np.ones((4, 5), "float32")
    a = layers.Dropout(0.5, seed=np.random.default_rng(5))(x, training=True).value
    b = layers.Dropout(0.5, seed=np.random.default_rng(5))(x, training=True).value
    np.testing.assert_array_equal(a, b)


def test_dropout_in_fit_is_active_and_in_predict_is_not():
    dl.utils.set_random_seed(0)
    model = dl.Sequential([dl.Input(shape=(20,)), layers.Dropout(0.5), layers.Dense(1, kernel_initializer="ones",
                                                                                   use_bias=False)])
    x = np.ones((4, 20), "float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), 20.0, rtol=1e-6)
    model.compile(optimizer="sgd", loss="mse")
    before = model.evaluate(x, np.full((4, 1), 20.0, "float32"), verbose=0)
    assert before == pytest.approx(0.0, abs=1e-8)
    history = model.fit(x, np.full((4, 1), 20.0, "float32"), epochs=1, batch_size=4, verbose=0, shuffle=False)
    assert history.history["loss"][0] > 0  # dropout changed the outputs during training


# ---- ActivityRegularization -------------------------------------------------------------------------------------
def test_activity_regularization_is_differentiable():
    x = dl.Tensor(np.random.default_rng(0).standard_normal((3, 4)))
    layer = layers.ActivityRegularization(l1=0.1, l2=0.2, dtype="float64")
    with dl.GradientTape() as tape:
        tape.watch(x)
        layer(x)
        (penalty,) = layer.losses
    g = tape.gradient(penalty, x).value
    np.testing.assert_allclose(g, 0.1 * np.sign(x.value) + 0.4 * x.value, rtol=1e-12)


def test_activity_regularization_adds_to_model_loss():
    inp = dl.Input(shape=(3,))
    model = dl.Model(inp, layers.ActivityRegularization(l2=1.0)(inp))
    model.compile(optimizer="sgd", loss="mse")
    x = np.array([[1.0, 2.0, 2.0]], "float32")
    loss = model.evaluate(x, x, verbose=0)
    assert loss == pytest.approx(9.0)  # mse 0 + 1.0 * (1 + 4 + 4)


def test_activity_regularization_losses_reset_per_call():
    layer = layers.ActivityRegularization(l1=1.0)
    layer(np.ones((2, 2), "float32"))
    layer(np.ones((1, 2), "float32"))
    assert len(layer.losses) == 1 and float(layer.losses[0].value) == 2.0


def test_activity_regularization_config():
    assert layers.ActivityRegularization(l1=0.5).get_config()["l1"] == 0.5
    with pytest.raises(ValueError, match="l1"):
        layers.ActivityRegularization(l1=-1.0)


# ---- errors ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,name,value", [
    (layers.Dropout, "rate", -0.1),
    (layers.Dropout, "rate", 1.0),
    (layers.Dropout, "rate", 1.5),
    (layers.Dropout, "rate", "half"),
    (layers.Dropout, "rate", None),
    (layers.GaussianDropout, "rate", 1.0),
    (layers.GaussianDropout, "rate", -0.2),
    (layers.GaussianNoise, "stddev", -1.0),
    (layers.GaussianNoise, "stddev", "x"),
])
def test_invalid_rate(cls, name, value):
    with pytest.raises(ValueError, match=f"{cls.__name__}.*`{name}`.*Received: {name}={value!r}"):
        cls(**{name: value})


def test_invalid_seed_and_noise_shape():
    with pytest.raises(ValueError, match="seed"):
        layers.Dropout(0.5, seed=-1)
    with pytest.raises(ValueError, match="seed"):
        layers.GaussianNoise(0.5, seed="a")
    with pytest.raises(ValueError, match="noise_shape"):
        layers.Dropout(0.5, noise_shape=(2, 0))
    layer = layers.Dropout(0.5, noise_shape=(None, 3), name="drop")
    with pytest.raises(ValueError, match="drop.*noise_shape"):
        layer(np.ones((2, 4), "float32"), training=True)


def test_configs_hold_the_init_arguments():
    config = layers.Dropout(0.2, noise_shape=[None, 1], seed=3).get_config()
    assert (config["rate"], config["noise_shape"], config["seed"]) == (0.2, (None, 1), 3)
    assert layers.GaussianNoise(0.1).get_config()["stddev"] == 0.1
    assert layers.GaussianDropout(0.3, seed=1).get_config()["seed"] == 1
