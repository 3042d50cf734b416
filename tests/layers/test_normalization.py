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
from reference import normalization as ref

pytestmark = pytest.mark.usefixtures("fresh_session")


def _inference_reference(kwargs, axis=-1):
    def reference(x, w):
        w = list(w)
        gamma = w.pop(0) if kwargs.get("scale", True) else 1.0
        beta = w.pop(0) if kwargs.get("center", True) else 0.0
        mean, var = w
        c = x.shape[axis]
        return ref.batch_inference(x, np.broadcast_to(gamma, c), np.broadcast_to(beta, c), mean, var,
                             kwargs.get("epsilon", 1e-3), axis)
    return reference


@pytest.mark.parametrize("kwargs,shape,n_trainable", [
    ({}, (4, 3), 2),
    ({}, (2, 3, 3, 2), 2),
    ({"axis": 1, "epsilon": 0.01}, (2, 3, 2, 2), 2),
    ({"center": False}, (1, 2, 2, 3), 1),
    ({"scale": False, "center": False}, (3, 5, 2), 0),
    ({"synchronized": True, "momentum": 0.5}, (2, 3, 3, 2), 2),
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
    y_ref, mean, var = ref.batch_training(x, gamma, beta, 1e-3, axis)
    np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.moving_mean.value, ref.batch_moving_update(mm, mean, 0.9), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.value, ref.batch_moving_update(mv, var, 0.9), rtol=1e-5, atol=1e-6)
    # inference uses the moving statistics and changes nothing
    before = layer.get_weights()
    y_inf = layer(x, training=False).value
    np.testing.assert_allclose(y_inf, ref.batch_inference(x, gamma, beta, *before[2:], 1e-3, axis), rtol=1e-4, atol=1e-4)
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
    dx_ref, dgamma_ref, dbeta_ref = ref.batch_training_backward(x, dy, layer.gamma.value, 1e-3)
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


def test_synchronized_on_one_replica_is_the_unsynchronized_layer():
    """Without a strategy of several replicas (the multi-rank case: tests/distribute/test_mpi.py)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 3, 3, 2)).astype("float32")
    results = []
    for synchronized in (False, True):
        layer = layers.BatchNormalization(synchronized=synchronized, momentum=0.5)
        t = dl.Tensor(x)
        with dl.distribute.get_strategy().scope(), dl.GradientTape() as tape:
            tape.watch(t)
            y = layer(t, training=True)
            loss = dl.ops.sum(dl.ops.multiply(y, y[:1]))
        grads = tape.gradient(loss, [t] + layer.trainable_weights)
        results.append([y.value, *[np.asarray(g) for g in grads], *layer.get_weights()])
    assert layers.BatchNormalization(synchronized=True).get_config()["synchronized"] is True
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


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


# ==== LayerNormalization, RMSNormalization, GroupNormalization, UnitNormalization ====================
def _ln_reference(kwargs):
    axis = kwargs.get("axis", -1)

    def reference(x, w):
        axes = tuple(np.atleast_1d(axis) % x.ndim)
        shape = [x.shape[i] if i in axes else 1 for i in range(x.ndim)]
        w = [np.reshape(v, shape) for v in w]
        eps = kwargs.get("epsilon", 1e-3)
        x = x.astype(np.float64)
        if kwargs.get("rms_scaling"):
            return x / np.sqrt(x.var(axis=axes, keepdims=True) + eps) * w[0]
        y = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
        if kwargs.get("scale", True):
            y = y * w.pop(0)
        return y + w.pop(0) if kwargs.get("center", True) else y
    return reference


def _rms_reference(kwargs):
    def reference(x, w):
        axes = tuple(np.atleast_1d(kwargs.get("axis", -1)) % x.ndim)
        scale = np.reshape(w[0], [x.shape[i] if i in axes else 1 for i in range(x.ndim)])
        return x / np.sqrt((x.astype(np.float64) ** 2).mean(axis=axes, keepdims=True) + kwargs.get("epsilon", 1e-6)) \
            * scale
    return reference


def _gn_reference(kwargs):
    def reference(x, w):
        axis = kwargs.get("axis", -1) % x.ndim
        c = x.shape[axis]
        groups = c if kwargs["groups"] == -1 else kwargs["groups"]
        xt = np.moveaxis(x.astype(np.float64), axis, -1)
        g = xt.reshape(xt.shape[0], -1, groups, c // groups)
        mean, var = g.mean(axis=(1, 3), keepdims=True), g.var(axis=(1, 3), keepdims=True)
        y = ((g - mean) / np.sqrt(var + kwargs.get("epsilon", 1e-3))).reshape(xt.shape)
        w = list(w)
        if kwargs.get("scale", True):
            y = y * w.pop(0)
        if kwargs.get("center", True):
            y = y + w.pop(0)
        return np.moveaxis(y, -1, axis)
    return reference


def _un_reference(kwargs):
    def reference(x, w):
        axes = tuple(np.atleast_1d(kwargs.get("axis", -1)) % x.ndim)
        return x / np.maximum(np.sqrt((x.astype(np.float64) ** 2).sum(axis=axes, keepdims=True)), 1e-12)
    return reference


HARNESS_CASES = [
    (layers.LayerNormalization, {}, (3, 5), 2, _ln_reference),
    (layers.LayerNormalization, {"axis": [1, 2], "epsilon": 0.01}, (2, 3, 4), 2, _ln_reference),
    (layers.LayerNormalization, {"axis": 1, "center": False}, (2, 3, 4), 1, _ln_reference),
    (layers.LayerNormalization, {"axis": [-1, 1], "scale": False}, (2, 3, 2, 4), 1, _ln_reference),
    (layers.LayerNormalization, {"rms_scaling": True}, (4, 6), 1, _ln_reference),
    (layers.RMSNormalization, {}, (3, 5), 1, _rms_reference),
    (layers.RMSNormalization, {"axis": [1, 2], "epsilon": 1e-3}, (2, 3, 4), 1, _rms_reference),
    (layers.GroupNormalization, {"groups": 2}, (2, 3, 4), 2, _gn_reference),
    (layers.GroupNormalization, {"groups": -1, "center": False}, (2, 3, 3, 4), 1, _gn_reference),
    (layers.GroupNormalization, {"groups": 3, "axis": 1, "epsilon": 0.1, "scale": False}, (2, 6, 4), 1,
     _gn_reference),
    (layers.UnitNormalization, {}, (3, 5), 0, _un_reference),
    (layers.UnitNormalization, {"axis": [1, 2]}, (2, 3, 4), 0, _un_reference),
]


@pytest.mark.parametrize("cls,kwargs,shape,n_trainable,reference", HARNESS_CASES,
                         ids=[f"{c.__name__}-{k}" for c, k, *_ in HARNESS_CASES])
def test_feature_normalization_harness(cls, kwargs, shape, n_trainable, reference):
    check_layer(cls, kwargs, shape, shape, expected_num_trainable_weights=n_trainable,
                expected_num_non_trainable_weights=0, reference=reference(kwargs))


def test_weight_names_order_and_shapes():
    ln = layers.LayerNormalization(axis=[2, 1])
    ln.build((2, 3, 4))
    assert [(v.name, v.shape) for v in ln.weights] == [("gamma", (3, 4)), ("beta", (3, 4))]
    rms = layers.RMSNormalization()
    rms.build((2, 5))
    assert [(v.name, v.shape) for v in rms.weights] == [("scale", (5,))]
    gn = layers.GroupNormalization(groups=2, axis=1)
    gn.build((2, 4, 3))
    assert [(v.name, v.shape) for v in gn.weights] == [("gamma", (4,)), ("beta", (4,))]


def test_initializers_regularizers_constraints():
    ln = layers.LayerNormalization(gamma_initializer="zeros", beta_initializer="ones", gamma_regularizer="l2",
                                   beta_regularizer=dl.regularizers.L1(0.5), beta_constraint="non_neg")
    x = np.random.default_rng(0).standard_normal((2, 4)).astype("float32")
    np.testing.assert_allclose(ln(x).value, np.ones((2, 4)))  # gamma 0, beta 1
    assert len(ln.losses) == 2 and float(ln.losses[1].value) == pytest.approx(0.5 * 4)
    assert ln.beta.constraint is not None
    config = ln.get_config()
    assert config["gamma_initializer"]["class_name"] == "Zeros" and config["beta_constraint"] is not None


@pytest.mark.parametrize("make,fragment", [
    (lambda: layers.LayerNormalization(axis="1"), "axis"),
    (lambda: layers.LayerNormalization(axis=1.5), "axis"),
    (lambda: layers.LayerNormalization(epsilon=0), "epsilon"),
    (lambda: layers.RMSNormalization(axis=None), "axis"),
    (lambda: layers.GroupNormalization(groups=0), "groups"),
    (lambda: layers.GroupNormalization(groups=2.0), "groups"),
    (lambda: layers.UnitNormalization(axis="x"), "axis"),
])
def test_argument_errors(make, fragment):
    with pytest.raises((TypeError, ValueError), match=fragment):
        make()


@pytest.mark.parametrize("layer,shape,fragment", [
    (lambda: layers.LayerNormalization(axis=3), (2, 3), "out of bounds"),
    (lambda: layers.LayerNormalization(axis=[1, -1]), (2, 3), "repeated"),
    (lambda: layers.RMSNormalization(axis=-3), (2, 3), "out of bounds"),
    (lambda: layers.GroupNormalization(groups=4), (2, 6), "multiple"),
    (lambda: layers.GroupNormalization(groups=8), (2, 6), "multiple"),
    (lambda: layers.GroupNormalization(groups=1, axis=0), (2, 6), "non-batch"),
    (lambda: layers.UnitNormalization(axis=[2]), (2, 3), "out of bounds"),
])
def test_build_errors_name_the_layer(layer, shape, fragment):
    with pytest.raises(ValueError, match=fragment) as info:
        layer()(np.zeros(shape, "float32"))
    assert "Normalization" in str(info.value)


def test_layer_normalization_in_a_model_trains_and_predicts():
    inputs = dl.Input((4, 8))
    h = layers.Dense(8, activation="gelu")(inputs)
    outputs = layers.Dense(2)(layers.LayerNormalization()(h))
    model = dl.Model(inputs, outputs)
    model.compile("adam", "mse")
    x = np.random.default_rng(0).standard_normal((16, 4, 8)).astype("float32")
    y = np.random.default_rng(1).standard_normal((16, 4, 2)).astype("float32")
    first = model.fit(x, y, epochs=3, verbose=0).history["loss"]
    assert first[-1] < first[0]
    np.testing.assert_allclose(model.predict(x, verbose=0), model(x).value, rtol=1e-5, atol=1e-6)


# ---- Keras parity: outputs and gradients, live (keras importable) and from stored Keras outputs ------
FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "normalization_keras.npz")
PARITY_CASES = {
    "ln-default": ("LayerNormalization", {}),
    "ln-axis-list": ("LayerNormalization", {"axis": [1, 3]}),
    "ln-axis-1-no-center": ("LayerNormalization", {"axis": 1, "center": False, "epsilon": 0.01}),
    "ln-no-scale": ("LayerNormalization", {"axis": [-2, -1], "scale": False}),
    "ln-rms_scaling": ("LayerNormalization", {"rms_scaling": True}),
    "rms-default": ("RMSNormalization", {}),
    "rms-axis-list": ("RMSNormalization", {"axis": [2, 3], "epsilon": 0.1}),
    "gn-4": ("GroupNormalization", {"groups": 4}),
    "gn-instance": ("GroupNormalization", {"groups": -1, "scale": False}),
    "gn-axis-1": ("GroupNormalization", {"groups": 2, "axis": 1, "center": False, "epsilon": 0.01}),
    "un-default": ("UnitNormalization", {}),
    "un-axis-list": ("UnitNormalization", {"axis": [1, 2]}),
}
PARITY_X = np.random.default_rng(12).standard_normal((2, 4, 6, 8)).astype("float32") * 2 + 0.5
PARITY_R = np.random.default_rng(13).standard_normal(PARITY_X.shape).astype("float32")


def _parity_weights(shapes):
    rs = np.random.default_rng(14)
    return [rs.uniform(0.5, 1.5, s).astype("float32") for s in shapes]


def _dlcore_run(name, kwargs):
    """(y, dL/dx, dL/dweights...) of L = sum(y * R) through dlcore."""
    layer = getattr(layers, name)(**kwargs)
    layer.build(PARITY_X.shape)
    layer.set_weights(_parity_weights([w.shape for w in layer.weights]))
    x = dl.Tensor(PARITY_X)
    with dl.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = dl.ops.sum(dl.ops.multiply(y, PARITY_R))
    grads = tape.gradient(loss, [x] + list(layer.trainable_weights))
    return [y.value] + [g.value for g in grads]


def _keras_run(keras, name, kwargs):
    import tensorflow as tf

    layer = getattr(keras.layers, name)(**kwargs)
    layer.build(PARITY_X.shape)
    layer.set_weights(_parity_weights([tuple(w.shape) for w in layer.weights]))
    x = tf.constant(PARITY_X)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * PARITY_R)
    grads = tape.gradient(loss, [x] + [w.value for w in layer.trainable_weights])
    return [np.asarray(y)] + [np.asarray(g) for g in grads]


def _assert_runs_close(ours, theirs, case_id):
    assert len(ours) == len(theirs), case_id
    for k, (a, b) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4, err_msg=f"{case_id}: output {k}")


@pytest.mark.parametrize("case_id", sorted(PARITY_CASES))
def test_keras_parity_from_stored_outputs(case_id):
    stored = np.load(FIXTURES)
    theirs = [stored[k] for k in sorted((k for k in stored.files if k.startswith(case_id + "/")),
                                        key=lambda k: int(k.rsplit("/", 1)[1]))]
    _assert_runs_close(_dlcore_run(*PARITY_CASES[case_id]), theirs, case_id)


@pytest.mark.parametrize("case_id", sorted(PARITY_CASES))
def test_keras_parity_live(case_id):
    keras = _keras()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras warns that rms_scaling is deprecated
        theirs = _keras_run(keras, *PARITY_CASES[case_id])
    _assert_runs_close(_dlcore_run(*PARITY_CASES[case_id]), theirs, case_id)
    stored = np.load(FIXTURES)
    for k, a in enumerate(theirs):  # the stored outputs are still Keras's
        np.testing.assert_allclose(stored[f"{case_id}/{k}"], a, rtol=1e-5, atol=1e-5)


def write_fixtures():  # python tests/layers/test_normalization.py (needs keras)
    keras = _keras()
    os.makedirs(os.path.dirname(FIXTURES), exist_ok=True)
    arrays = {f"{case_id}/{k}": a for case_id, (name, kwargs) in PARITY_CASES.items()
              for k, a in enumerate(_keras_run(keras, name, kwargs))}
    np.savez_compressed(FIXTURES, **arrays)


if __name__ == "__main__":
    write_fixtures()


def test_transformer_block_inference_never_imports_numba():
    """Build, predict and train-free inference of LayerNormalization/RMSNormalization (and gelu
    Dense, einsum, tril) in a fresh process: the Cython kernels only."""
    import subprocess

    code = (
        "import sys, numpy as np, dlcore as dl\n"
        "x = np.random.default_rng(0).standard_normal((2, 5, 8)).astype('float32')\n"
        "inputs = dl.Input((5, 8))\n"
        "h = dl.layers.LayerNormalization(axis=[1, 2])(dl.layers.Dense(8, activation='gelu')(inputs))\n"
        "model = dl.Model(inputs, dl.layers.RMSNormalization()(dl.layers.LayerNormalization()(h)))\n"
        "y = model.predict(x, verbose=0)\n"
        "s = dl.ops.einsum('bqd,bkd->bqk', y, y)\n"
        "s = dl.ops.where(dl.ops.tril(dl.ops.ones((5, 5))) > 0, s, -1e9)\n"
        "assert y.shape == (2, 5, 8) and s.shape == (2, 5, 5)\n"
        "assert 'numba' not in sys.modules, 'numba imported'\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
