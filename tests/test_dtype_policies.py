"""Dtype policies (dl.mixed_precision / dl.dtype_policies) with Keras 3's semantics: the policy
attributes, layers' dtype / compute_dtype / variable_dtype, autocast of inputs and rounding of
outputs, float32 variables and gradients, loss scaling for mixed_float16, config and file round
trips, errors. Outputs are compared with Keras 3.15 (live where installed, and with stored
fixtures computed by it)."""
import json
import os
import zipfile

import numpy as np
import pytest

import dlcore as dl
from dlcore.kernels import _gemm

POLICIES = {  # name: (compute_dtype, variable_dtype), as keras.DTypePolicy(name) reports them
    "float32": ("float32", "float32"), "float64": ("float64", "float64"), "float16": ("float16", "float16"),
    "bfloat16": ("bfloat16", "bfloat16"), "mixed_float16": ("float16", "float32"),
    "mixed_bfloat16": ("bfloat16", "float32"),
}
# Tolerance of an output of the low precision against Keras's: two units in the last place of the
# largest output (float16: 10 fraction bits, bfloat16: 7), since the two round at different points
# (dlcore sums in float32 what Keras sums in float16 / bfloat16 on some paths).
ULPS = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7}

# Keras 3.15 (TensorFlow backend) outputs of the model in _dense_model for _dense_data, per policy.
KERAS_DENSE = {
    "mixed_float16": [[-0.397705, 0.427246, 0.479736], [-0.477295, 0.486816, 0.452393],
                      [-0.435059, 0.540039, 0.544922], [-0.250977, 0.234741, 0.468262]],
    "mixed_bfloat16": [[-0.398438, 0.429688, 0.480469], [-0.478516, 0.488281, 0.453125],
                       [-0.435547, 0.539062, 0.546875], [-0.25, 0.234375, 0.46875]],
}
KERAS_DENSE["float16"], KERAS_DENSE["bfloat16"] = KERAS_DENSE["mixed_float16"], KERAS_DENSE["mixed_bfloat16"]


@pytest.fixture(autouse=True)
def _reset_policy():
    yield
    dl.mixed_precision.set_global_policy(None)


def is_bfloat16(a):
    """Whether every value of the float32 array ``a`` is a bfloat16 value."""
    return not np.any(np.asarray(a, np.float32).view(np.uint32) & 0xFFFF)


def close_in_ulps(y, expected, precision, ulps=2):
    expected = np.asarray(expected, np.float64)
    atol = ulps * ULPS[precision] * 2.0 ** np.floor(np.log2(np.abs(expected).max()))
    np.testing.assert_allclose(np.asarray(y, np.float64), expected, rtol=0, atol=atol)


def _dense_data():
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, (4, 6)).astype("float32")
    weights = [rng.uniform(-0.5, 0.5, s).astype("float32") for s in [(6, 5), (5,), (5, 3), (3,)]]
    return x, weights


def _dense_model(lib):
    return lib.Sequential([lib.Input((6,)), lib.layers.Dense(5, activation="relu"), lib.layers.Dense(3)])


# ---- the policy objects -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(POLICIES))
def test_policy_attributes(name):
    policy = dl.mixed_precision.DTypePolicy(name)
    assert (policy.name, policy.compute_dtype, policy.variable_dtype) == (name, *POLICIES[name])
    assert policy.get_config() == {"name": name} and repr(policy) == f'<DTypePolicy "{name}">'
    assert dl.dtype_policies.get(name) == policy and dl.dtype_policies.get(policy) is policy
    assert dl.dtype_policies.deserialize(dl.dtype_policies.serialize(policy)) == policy
    assert dl.mixed_precision.Policy is dl.dtype_policies.DTypePolicy is dl.mixed_precision.DTypePolicy


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_policy_attributes_match_keras(name):
    keras = pytest.importorskip("keras")
    kp, dp = keras.DTypePolicy(name), dl.mixed_precision.DTypePolicy(name)
    assert (dp.name, dp.compute_dtype, dp.variable_dtype) == (kp.name, kp.compute_dtype, kp.variable_dtype)
    assert dl.dtype_policies.serialize(dp) == keras.dtype_policies.serialize(kp)
    layer, klayer = dl.layers.Dense(2, dtype=name), keras.layers.Dense(2, dtype=name)
    for attr in ("dtype", "compute_dtype", "variable_dtype"):
        assert getattr(layer, attr) == getattr(klayer, attr), attr


def test_other_dtypes_are_policies_but_not_global_ones():
    policy = dl.mixed_precision.DTypePolicy("int32")
    assert (policy.name, policy.compute_dtype, policy.variable_dtype) == ("int32", "int32", "int32")
    layer = dl.layers.CategoryEncoding(4, output_mode="one_hot", dtype="int32")
    assert layer.dtype == "int32" and layer.get_config()["dtype"] == "int32"
    assert layer(np.array([1, 3])).numpy().dtype == np.int32
    with pytest.raises(ValueError, match="floating-point policies"):
        dl.mixed_precision.set_global_policy("int32")


def test_default_policy_follows_floatx():
    assert dl.mixed_precision.global_policy().name == "float32"
    assert dl.config.dtype_policy().name == "float32"
    layer = dl.layers.Dense(2)
    assert layer.dtype_policy.name == "float32" and layer.compute_dtype == "float32"


@pytest.mark.parametrize("bad", ["float8", "mixed_int8", "foo", "mixed_float32", 3])
def test_bad_policy_names_raise_naming_the_argument(bad):
    with pytest.raises((ValueError, TypeError), match="Cannot convert|must be a string"):
        dl.mixed_precision.DTypePolicy(bad)
    with pytest.raises(ValueError, match="set_global_policy: invalid `policy`"):
        dl.mixed_precision.set_global_policy(bad)
    with pytest.raises(ValueError, match=r"Dense: invalid `dtype`"):
        dl.layers.Dense(2, dtype=bad)
    assert dl.mixed_precision.global_policy().name == "float32"  # nothing changed


def test_global_policy_applies_to_new_layers_only():
    before = dl.layers.Dense(2)
    dl.mixed_precision.set_global_policy("mixed_bfloat16")
    assert dl.mixed_precision.global_policy().name == "mixed_bfloat16"
    after, explicit = dl.layers.Dense(2), dl.layers.Dense(2, dtype="float32")
    assert before.dtype_policy.name == "float32" and explicit.dtype_policy.name == "float32"
    assert (after.dtype_policy.name, after.compute_dtype, after.dtype) == ("mixed_bfloat16", "bfloat16", "float32")
    dl.config.set_dtype_policy("mixed_float16")  # Keras's keras.config spelling
    assert dl.config.dtype_policy().name == "mixed_float16"
    assert dl.Input((3,)).dtype == "float32"  # inputs keep floatx, as in Keras
    dl.mixed_precision.set_global_policy(None)
    assert dl.layers.Dense(2).dtype_policy.name == "float32"


# ---- layer semantics -------------------------------------------------------------------------------
def test_dense_float16_works_and_outputs_float16():
    x, weights = _dense_data()
    layer = dl.layers.Dense(3, dtype="float16")
    y = layer(x)
    assert y.dtype == np.float16 and layer.kernel.dtype == np.float32  # float32 storage of float16 values
    assert np.array_equal(layer.kernel.numpy(), layer.kernel.numpy().astype(np.float16).astype(np.float32))
    layer.set_weights([weights[0][:, :3], weights[1][:3]])
    x16, w16 = x.astype(np.float16).astype(np.float64), weights[0][:, :3].astype(np.float16).astype(np.float64)
    expected = (x16 @ w16 + weights[1][:3]).astype(np.float16)
    close_in_ulps(layer(x).numpy(), expected, "float16", ulps=1)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16", "float16", "bfloat16"])
def test_dense_model_matches_keras_fixture(policy):
    x, weights = _dense_data()
    dl.mixed_precision.set_global_policy(policy)
    model = _dense_model(dl)
    model.set_weights(weights)
    precision = POLICIES[policy][0]
    for y in (model(x).numpy(), model.predict(x, verbose=0)):  # the layer calls and the inference plan
        assert y.dtype == (np.float16 if precision == "float16" else np.float32)
        if precision == "bfloat16":
            assert is_bfloat16(y)
        close_in_ulps(y, KERAS_DENSE[policy], precision)


def test_variables_stay_float32_and_gradients_reach_them():
    x, weights = _dense_data()
    out = {}
    for policy in ("float32", "mixed_bfloat16", "mixed_float16"):
        layer = dl.layers.Dense(5, dtype=policy)
        layer.build((None, 6))
        layer.set_weights(weights[:2])
        with dl.GradientTape() as tape:
            y = layer(x)
            loss = dl.ops.sum(dl.ops.cast(y, "float32") ** 2)
        grads = tape.gradient(loss, layer.trainable_weights)
        assert [v.dtype for v in layer.weights] == [np.float32, np.float32]
        assert [g.dtype for g in grads] == [np.float32, np.float32]
        out[policy] = [np.asarray(g) for g in grads]
    for policy, precision in (("mixed_bfloat16", "bfloat16"), ("mixed_float16", "float16")):
        for g, g32 in zip(out[policy], out["float32"]):
            close_in_ulps(g, g32, precision, ulps=16)
            assert not np.array_equal(g, g32)  # computed at the lower precision


def test_inputs_are_autocast_floats_only():
    layer = dl.layers.Dense(2, dtype="mixed_bfloat16", kernel_initializer="ones")
    x = np.array([[1.0 + 2 ** -10, 3.0]], np.float32)  # 1 + 2**-10 is not a bfloat16 value
    assert layer(x).numpy()[0, 0] == 4.0
    x = np.array([[1.0 + 2 ** -12, 1.0]], np.float32)  # 1 + 2**-12 is not a float16 value
    for autocast, expected in ((True, 0.0), (False, 2.0 ** -12)):
        diff = dl.layers.Dense(1, dtype="mixed_float16", use_bias=False, autocast=autocast)
        diff.build((None, 2))
        diff.set_weights([np.array([[1.0], [-1.0]], np.float32)])
        assert diff(x).numpy()[0, 0] == expected
    emb = dl.layers.Embedding(5, 2, dtype="mixed_bfloat16")
    y = emb(np.array([[1, 4]]))  # integer ids pass unchanged
    assert y.shape == (1, 2, 2) and is_bfloat16(y.numpy())


def test_bf16_dense_uses_the_bf16_kernel_on_every_isa():
    x, weights = _dense_data()
    layer = dl.layers.Dense(5, dtype="mixed_bfloat16")
    layer.build((None, 6))
    layer.set_weights(weights[:2])
    results = []
    for isa in [i for i in _gemm.BF16_ISAS if i == "portable" or _gemm.bf16_isa() == "avx512_bf16"]:
        previous = _gemm.set_bf16_isa(isa)
        try:
            results.append(layer(x).numpy())
        finally:
            _gemm.set_bf16_isa(previous)
    for y in results[1:]:
        np.testing.assert_array_equal(y, results[0])


def test_bf16_pointwise_conv_is_the_bf16_gemm_and_other_convs_round_their_operands():
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (2, 5, 5, 6)).astype("float32")
    conv = dl.layers.Conv2D(4, 1, activation="relu", dtype="mixed_bfloat16")
    dense = dl.layers.Dense(4, activation="relu", dtype="mixed_bfloat16")
    conv.build(x.shape)
    dense.build((None, 6))
    kernel, bias = rng.uniform(-1, 1, (1, 1, 6, 4)).astype("float32"), rng.uniform(-1, 1, 4).astype("float32")
    conv.set_weights([kernel, bias])
    dense.set_weights([kernel[0, 0], bias])
    np.testing.assert_array_equal(conv(x).numpy(), dense(x).numpy())  # the same kernel: bit for bit
    conv3 = dl.layers.Conv2D(4, 3, dtype="mixed_bfloat16", use_bias=False)
    conv3.build(x.shape)
    w = rng.uniform(-1, 1, (3, 3, 6, 4)).astype("float32")
    conv3.set_weights([w])
    rb = _reference_round_bf16
    cols = np.stack([rb(x)[:, i:i + 3, j:j + 3].reshape(2, -1) for i in range(3) for j in range(3)], 1)
    expected = rb((cols.astype(np.float64) @ rb(w).reshape(-1, 4).astype(np.float64)).reshape(2, 3, 3, 4))
    close_in_ulps(conv3(x).numpy(), expected, "bfloat16", ulps=1)


def _reference_round_bf16(a):
    u = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000).astype(np.uint32).view(np.float32)


def _keras_models(lib):
    layers = lib.layers
    q = lib.Input((4, 8))
    return {
        "dense": (lib.Sequential([lib.Input((6,)), layers.Dense(5, activation="relu"), layers.Dense(3)]), (4, 6)),
        "conv": (lib.Sequential([lib.Input((6, 6, 2)), layers.Conv2D(4, 3, activation="relu"), layers.Flatten(),
                                 layers.Dense(3)]), (2, 6, 6, 2)),
        "lstm": (lib.Sequential([lib.Input((5, 3)), layers.LSTM(4), layers.Dense(2)]), (2, 5, 3)),
        "mha": (lib.Model(q, layers.MultiHeadAttention(2, 4)(q, q)), (2, 4, 8)),
    }


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("kind", ["dense", "conv", "lstm", "mha"])
def test_models_match_keras(policy, kind):
    keras = pytest.importorskip("keras")
    keras.mixed_precision.set_global_policy(policy)
    dl.mixed_precision.set_global_policy(policy)
    try:
        kmodel, shape = _keras_models(keras)[kind]
        model, _ = _keras_models(dl)[kind]
    finally:
        keras.mixed_precision.set_global_policy("float32")
    rng = np.random.default_rng(1)
    weights = [rng.uniform(-0.5, 0.5, w.shape).astype("float32") for w in kmodel.get_weights()]
    kmodel.set_weights(weights)
    model.set_weights(weights)
    assert [str(w.dtype) for w in model.weights] == ["float32"] * len(weights)
    x = rng.uniform(-1, 1, shape).astype("float32")
    expected = np.asarray(kmodel(x)).astype(np.float32)
    y = model(x).numpy()
    precision = POLICIES[policy][0]
    assert y.dtype == (np.float16 if precision == "float16" else np.float32)
    close_in_ulps(y, expected, precision)


# ---- training ----------------------------------------------------------------------------------------
def test_mixed_float16_fit_scales_the_loss_and_lowers_it():
    dl.utils.set_random_seed(0)
    dl.mixed_precision.set_global_policy("mixed_float16")
    x = np.random.default_rng(0).uniform(-1, 1, (64, 6)).astype("float32")
    y = x @ np.linspace(-1, 1, 18).reshape(6, 3).astype("float32")
    model = _dense_model(dl)
    model.compile(dl.optimizers.Adam(0.01), "mse")
    assert type(model.optimizer).__name__ == "LossScaleOptimizer"
    assert type(model.optimizer.inner_optimizer).__name__ == "Adam"
    history = model.fit(x, y, epochs=8, batch_size=16, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert all(v.dtype == np.float32 for v in model.weights)
    model.compile("sgd", "mse", auto_scale_loss=False)
    assert type(model.optimizer).__name__ == "SGD"


def test_mixed_bfloat16_compile_does_not_scale_the_loss():
    dl.mixed_precision.set_global_policy("mixed_bfloat16")
    model = _dense_model(dl)
    model.compile("sgd", "mse")
    assert type(model.optimizer).__name__ == "SGD"


# ---- configs and files --------------------------------------------------------------------------------
def test_config_round_trip_keeps_the_policy():
    layer = dl.layers.Dense(3, dtype="mixed_bfloat16")
    config = layer.get_config()
    assert config["dtype"] == "mixed_bfloat16"
    clone = dl.layers.Dense.from_config(config)
    assert clone.dtype_policy == layer.dtype_policy
    keras_style = {**config, "dtype": {"module": "keras", "class_name": "DTypePolicy",
                                      "config": {"name": "mixed_float16"}, "registered_name": None}}
    assert dl.layers.Dense.from_config(keras_style).compute_dtype == "float16"


@pytest.mark.parametrize("ext", [".dlc", ".keras"])
def test_file_round_trip_keeps_policies_and_outputs(tmp_path, ext):
    x, weights = _dense_data()
    dl.mixed_precision.set_global_policy("mixed_float16")
    model = _dense_model(dl)
    model.set_weights(weights)
    dl.mixed_precision.set_global_policy(None)
    path = os.path.join(tmp_path, "m" + ext)
    model.save(path)
    loaded = dl.models.load_model(path)
    assert [layer.dtype_policy.name for layer in loaded.layers] == ["mixed_float16"] * 2
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    if ext == ".keras":
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
        dense = [layer for layer in config["config"]["layers"] if layer["class_name"] == "Dense"][0]
        assert dense["config"]["dtype"] == {"module": "keras", "class_name": "DTypePolicy",
                                            "config": {"name": "mixed_float16"}, "registered_name": None}


def test_keras_loads_the_policies_dlcore_writes(tmp_path):
    keras = pytest.importorskip("keras")
    x, weights = _dense_data()
    dl.mixed_precision.set_global_policy("mixed_bfloat16")
    model = _dense_model(dl)
    model.set_weights(weights)
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert [layer.dtype_policy.name for layer in loaded.layers] == ["mixed_bfloat16"] * 2
    close_in_ulps(model.predict(x, verbose=0), np.asarray(loaded(x)).astype(np.float32), "bfloat16")


@pytest.mark.parametrize("make", [lambda: dl.layers.Dense(3), lambda: dl.layers.Conv1D(3, 2),
                                  lambda: dl.layers.Embedding(5, 3), lambda: dl.layers.EinsumDense("ab,bc->ac", 3)])
def test_dtype_policy_is_settable_on_quantizable_layers(make):
    """Keras lets layer.dtype_policy be set; the int8-capable layers once shadowed it read-only."""
    layer = make()
    layer.dtype_policy = "mixed_bfloat16"
    assert layer.dtype_policy.name == "mixed_bfloat16" and layer.compute_dtype == "bfloat16"
    assert layer.variable_dtype == "float32"
