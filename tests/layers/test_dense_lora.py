"""Dense with LoRA (``lora_rank`` / ``enable_lora``), as Keras 3: weights, the frozen kernel, the
effective kernel, gradients, config, saving, training, and parity with Keras when installed."""
import numpy as np
import pytest

import dlcore as dl
from dlcore import layers
from harness import check_layer, check_op_gradients

pytestmark = pytest.mark.usefixtures("fresh_session")
IN, UNITS, RANK = 5, 3, 2


def _randomize_lora(layer, seed=0):
    rng = np.random.default_rng(seed)
    layer.lora_kernel_b.assign(rng.normal(size=layer.lora_kernel_b.shape).astype(layer.lora_kernel_b.dtype))


def test_harness_with_lora():
    layer, _, _ = check_layer(layers.Dense, {"units": UNITS, "lora_rank": RANK, "lora_alpha": 4.0}, (4, IN),
                              (4, UNITS), expected_num_trainable_weights=3, expected_num_non_trainable_weights=1)
    assert layer.lora_enabled


def test_weights_order_shapes_and_the_frozen_kernel():
    layer = layers.Dense(UNITS, lora_rank=RANK)
    layer(np.ones((2, IN), np.float32))
    assert [w.path for w in layer.weights] == ["dense/kernel", "dense/bias", "dense/lora_kernel_a",
                                               "dense/lora_kernel_b"]
    assert [w.name for w in layer.trainable_weights] == ["bias", "lora_kernel_a", "lora_kernel_b"]
    assert [w.name for w in layer.non_trainable_weights] == ["kernel"]
    assert layer.lora_kernel_a.shape == (IN, RANK) and layer.lora_kernel_b.shape == (RANK, UNITS)
    assert not np.any(layer.lora_kernel_b.value) and np.any(layer.lora_kernel_a.value)  # zeros / he_uniform
    limit = np.sqrt(6.0 / IN)
    assert np.abs(layer.lora_kernel_a.value).max() <= limit


@pytest.mark.parametrize("alpha", [None, 6.0])
def test_the_effective_kernel(alpha):
    layer = layers.Dense(UNITS, activation="relu", lora_rank=RANK, lora_alpha=alpha)
    x = np.random.default_rng(1).normal(size=(4, IN)).astype(np.float32)
    layer(x)
    _randomize_lora(layer)
    k, b, a, bb = layer.get_weights()
    scale = (alpha if alpha is not None else RANK) / RANK
    expected = np.maximum(x @ (k + scale * a @ bb) + b, 0.0)
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-5, atol=1e-6)
    model = dl.Sequential([dl.Input(shape=(IN,)), layer])
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)  # inference path


def test_gradients_reach_a_and_b_and_not_the_kernel():
    rng = np.random.default_rng(2)
    x, k, bias = rng.normal(size=(3, IN)), rng.normal(size=(IN, UNITS)), rng.normal(size=UNITS)
    a, b = rng.normal(size=(IN, RANK)), rng.normal(size=(RANK, UNITS))

    def run(x, a, b):
        layer = layers.Dense(UNITS, activation="tanh", lora_rank=RANK, lora_alpha=3.0, dtype="float64")
        layer.build((None, IN))
        layer.set_weights([k, bias, np.zeros_like(a), np.zeros_like(b)])
        layer.lora_kernel_a.assign(a.value if hasattr(a, "value") else a)
        layer.lora_kernel_b.assign(b.value if hasattr(b, "value") else b)
        return layer(x)

    check_op_gradients(lambda x: run(x, a, b), [x])
    layer = layers.Dense(UNITS, lora_rank=RANK, dtype="float64")
    layer.build((None, IN))
    with dl.GradientTape() as tape:
        loss = dl.ops.sum(dl.ops.square(layer(dl.Tensor(x))))
    grads = tape.gradient(loss, layer.weights)
    assert grads[0] is None  # the frozen kernel
    assert all(g is not None for g in grads[1:])
    # d loss / d b = a^T x^T dy * scale, by hand
    dy = 2 * (x @ layer.kernel.value + layer.bias.value)
    np.testing.assert_allclose(grads[3].value, (layer.lora_kernel_a.value.T @ x.T @ dy), rtol=1e-10)


def test_lora_weights_as_free_inputs_match_finite_differences():
    rng = np.random.default_rng(3)
    x, k = rng.normal(size=(2, IN)), rng.normal(size=(IN, UNITS))
    scale = 1.5

    def effective(a, b):
        return dl.ops.matmul(dl.Tensor(x), dl.ops.add(dl.Tensor(k), dl.ops.multiply(dl.ops.matmul(a, b), scale)))

    check_op_gradients(effective, [rng.normal(size=(IN, RANK)), rng.normal(size=(RANK, UNITS))])


def test_enable_lora_after_build_and_its_errors():
    layer = layers.Dense(UNITS)
    with pytest.raises(ValueError, match="isn't yet built"):
        layer.enable_lora(RANK)
    layer.build((None, IN))
    before = layer.get_weights()
    layer.enable_lora(4, lora_alpha=8, a_initializer="zeros")
    assert layer.lora_rank == 4 and layer.lora_alpha == 8 and not layer.kernel.trainable
    assert not np.any(layer.lora_kernel_a.value)
    np.testing.assert_array_equal(layer.get_weights()[0], before[0])
    with pytest.raises(ValueError, match="already enabled"):
        layer.enable_lora(2)
    constrained = layers.Dense(UNITS, kernel_constraint="max_norm")
    constrained.build((None, IN))
    with pytest.raises(ValueError, match="incompatible with kernel constraints"):
        constrained.enable_lora(2)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="lora_rank.*positive integer"):
            layers.Dense(UNITS, lora_rank=bad)


def test_config_round_trip_and_saving(tmp_path):
    layer = layers.Dense(UNITS, lora_rank=RANK, lora_alpha=5.0)
    config = layer.get_config()
    assert config["lora_rank"] == RANK and config["lora_alpha"] == 5.0
    assert "lora_rank" not in layers.Dense(UNITS).get_config()
    clone = layers.Dense.from_config(config)
    assert clone.lora_rank == RANK and clone.lora_alpha == 5.0

    model = dl.Sequential([dl.Input(shape=(IN,)), layers.Dense(UNITS, lora_rank=RANK)])
    _randomize_lora(model.layers[0])
    x = np.random.default_rng(4).normal(size=(3, IN)).astype(np.float32)
    path = tmp_path / "lora.dlc"
    model.save(path)
    loaded = dl.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert loaded.layers[0].lora_enabled and not loaded.layers[0].kernel.trainable


def test_fit_trains_only_the_lora_weights_and_bias():
    model = dl.Sequential([dl.Input(shape=(IN,)), layers.Dense(UNITS, lora_rank=RANK)])
    model.compile(optimizer=dl.optimizers.SGD(0.1), loss="mse")
    x = np.random.default_rng(5).normal(size=(16, IN)).astype(np.float32)
    y = np.random.default_rng(6).normal(size=(16, UNITS)).astype(np.float32)
    kernel, _, a, b = model.layers[0].get_weights()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    k2, _, a2, b2 = model.layers[0].get_weights()
    np.testing.assert_array_equal(k2, kernel)
    assert np.any(b2 != b) and np.any(a2 != a)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_against_keras_if_installed():
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(7)
    x = rng.normal(size=(8, IN)).astype(np.float32)
    y = rng.normal(size=(8, UNITS)).astype(np.float32)
    theirs = keras.layers.Dense(UNITS, activation="tanh", lora_rank=RANK)
    kmodel = keras.Sequential([keras.Input(shape=(IN,)), theirs])
    ours = layers.Dense(UNITS, activation="tanh", lora_rank=RANK)
    model = dl.Sequential([dl.Input(shape=(IN,)), ours])
    weights = [w.copy() for w in ours.get_weights()]
    weights[3] = rng.normal(size=(RANK, UNITS)).astype(np.float32)
    theirs.set_weights(weights)
    ours.set_weights(weights)
    assert [w.path.split("/")[-1] for w in theirs.weights] == [w.name for w in ours.weights]
    assert [w.path.split("/")[-1] for w in theirs.trainable_weights] == [w.name for w in ours.trainable_weights]
    np.testing.assert_allclose(model.predict(x, verbose=0), kmodel.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    config = theirs.get_config()
    assert {k: config[k] for k in ("lora_rank", "lora_alpha")} == {k: ours.get_config()[k]
                                                                   for k in ("lora_rank", "lora_alpha")}
    # one SGD step: the same new LoRA weights and bias, the kernel untouched in both
    kmodel.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.compile(optimizer=dl.optimizers.SGD(0.1), loss="mse")
    kmodel.train_on_batch(x, y)
    model.train_on_batch(x, y)
    for mine, keras_w in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(mine, keras_w, rtol=1e-4, atol=1e-6)
