"""Core layers (Dense, Activation, Input/InputLayer, Lambda, Identity): the layer harness, NumPy
references for every activation string, Keras's weight layouts and arguments, and errors."""
import numpy as np
import pytest
from scipy import special

import dlcore as dl
from dlcore import layers
from dlcore.layers.layer import Layer
from dlcore.registry import register
from harness import check_layer, check_op_gradients

pytestmark = pytest.mark.usefixtures("fresh_session")

# ---- NumPy activations, from the Keras 3 formulas (float64) ------------------------------------------
SELU_ALPHA, SELU_SCALE = 1.67326324235437728481704299167171, 1.05070098735548049341933498529460


def _softplus(x):
    return np.logaddexp(0.0, x)


def _hard_sigmoid(x):
    return np.clip(x + 3.0, 0.0, 6.0) / 6.0


ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.2 * x),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0.0))),
    "sigmoid": special.expit,
    "tanh": np.tanh,
    "softplus": _softplus,
    "softsign": lambda x: x / (1.0 + np.abs(x)),
    "silu": lambda x: x * special.expit(x),
    "swish": lambda x: x * special.expit(x),
    "gelu": lambda x: 0.5 * x * (1.0 + special.erf(x / np.sqrt(2.0))),  # keras.activations: exact
    "exponential": np.exp,
    "hard_sigmoid": _hard_sigmoid,
    "hard_silu": lambda x: x * _hard_sigmoid(x),
    "hard_swish": lambda x: x * _hard_sigmoid(x),
    "mish": lambda x: x * np.tanh(_softplus(x)),
    "softmax": lambda x: special.softmax(x, axis=-1),
    "log_softmax": lambda x: special.log_softmax(x, axis=-1),
}


def dense_ref(activation="linear"):
    def ref(x, weights):
        z = np.asarray(x, np.float64) @ weights[0].astype(np.float64)
        if len(weights) > 1:
            z = z + weights[1]
        return ACTIVATIONS[activation](z)

    return ref


# ---- Dense --------------------------------------------------------------------------------------------
def test_every_registered_activation_has_a_reference():
    assert set(dl.registry.registered("activation")) <= set(ACTIVATIONS)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_dense_with_each_activation(activation):
    # small weights keep exponential/softmax tame; bias random so kinks are crossed at random places
    kwargs = {"units": 3, "activation": activation, "bias_initializer": dl.initializers.RandomNormal(stddev=0.5)}
    check_layer(layers.Dense, kwargs, (4, 5), (4, 3), expected_num_trainable_weights=2,
                expected_num_non_trainable_weights=0, reference=dense_ref(activation))


def test_dense_callable_activation_unfused():
    kwargs = {"units": 2, "activation": dl.activations.tanh}
    check_layer(layers.Dense, kwargs, (3, 4), (3, 2), reference=dense_ref("tanh"))


def test_dense_without_bias():
    layer, _, _ = check_layer(layers.Dense, {"units": 2, "use_bias": False}, (3, 4), (3, 2),
                              expected_num_trainable_weights=1, reference=dense_ref())
    assert layer.bias is None and [w.name for w in layer.weights] == ["kernel"]


def test_dense_on_3d_input():
    layer, x, y = check_layer(layers.Dense, {"units": 5, "activation": "relu"}, (2, 3, 4), (2, 3, 5),
                              reference=dense_ref("relu"))
    kernel, bias = layer.get_weights()
    expected = np.maximum(np.einsum("btk,ku->btu", x.astype(np.float64), kernel) + bias, 0)
    np.testing.assert_allclose(y.value, expected, rtol=1e-5, atol=1e-6)


def test_dense_on_4d_input():
    check_layer(layers.Dense, {"units": 2}, (2, 2, 3, 4), (2, 2, 3, 2), reference=dense_ref())


def test_dense_kernel_layout_and_names():
    layer = layers.Dense(3, name="fc")
    layer(np.zeros((2, 7), "float32"))
    assert layer.kernel.shape == (7, 3)  # Keras: (input_dim, units)
    assert layer.bias.shape == (3,)
    assert [w.path for w in layer.weights] == ["fc/kernel", "fc/bias"]
    assert layer.count_params() == 7 * 3 + 3
    np.testing.assert_array_equal(layer.bias.value, 0.0)  # bias_initializer="zeros"
    limit = np.sqrt(6 / (7 + 3))  # glorot_uniform
    assert np.all(np.abs(layer.kernel.value) <= limit)


def test_dense_keras_by_hand_numbers():
    layer = layers.Dense(2, activation="relu")
    layer.build((None, 3))
    layer.set_weights([np.array([[1.0, -1.0], [2.0, 0.5], [0.0, 1.0]]), np.array([0.5, -4.0])])
    out = layer(np.array([[1.0, 2.0, 3.0]]))
    np.testing.assert_allclose(out.value, [[5.5, 0.0]])  # [1+4+0.5, -1+1+3-4] -> relu


@pytest.mark.parametrize("kwargs", [{"input_dim": 4}, {"input_shape": (4,)}, {"batch_input_shape": (None, 4)}],
                         ids=str)
def test_dense_input_shape_kwargs(kwargs):
    layer = layers.Dense(3, **kwargs)
    model = dl.Sequential([layer])
    assert model.input_shape == (None, 4)
    assert model.output_shape == (None, 3)
    assert layer.built and layer.kernel.shape == (4, 3)
    config = layer.get_config()
    assert tuple(config["batch_input_shape"]) == (None, 4)
    clone = layers.Dense.from_config(config)
    assert dl.Sequential([clone]).input_shape == (None, 4)


def test_dense_input_shape_with_batch_size():
    model = dl.Sequential([layers.Dense(2, input_shape=(5,), batch_size=8)])
    assert model.input_shape == (8, 5)


def test_dense_regularizers_and_constraints():
    layer = layers.Dense(2, kernel_initializer="ones", bias_initializer="ones",
                         kernel_regularizer=dl.regularizers.L2(0.1), bias_regularizer=dl.regularizers.L1(0.5),
                         activity_regularizer=dl.regularizers.L1(0.01), kernel_constraint="non_neg")
    y = layer(np.ones((1, 3), "float32"))
    penalties = sorted(float(p.value) for p in layer.losses)
    # kernel: 0.1 * 6 ones; bias: 0.5 * 2; activity: 0.01 * sum(|y|) = 0.01 * 2 * 4
    np.testing.assert_allclose(penalties, sorted([0.6, 1.0, 0.08]), rtol=1e-6)
    assert np.all(y.value == 4.0)
    config = layer.get_config()
    assert config["kernel_regularizer"]["class_name"] == "L2"
    assert config["kernel_constraint"]["class_name"] == "NonNeg"


def test_dense_integer_inputs_become_floats():
    layer = layers.Dense(2, kernel_initializer="ones")
    out = layer(np.array([[1, 2, 3]], dtype=np.int64))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.value, [[6.0, 6.0]])


def test_dense_float64_layer():
    layer = layers.Dense(2, dtype="float64")
    out = layer(np.ones((1, 3), "float32"))
    assert layer.kernel.dtype == np.float64 and out.dtype == np.float64


@pytest.mark.parametrize("units", [0, -2, 2.5, "3", None, True])
def test_dense_invalid_units(units):
    with pytest.raises(ValueError, match=f"Dense.*units.*Received: units={units!r}"):
        layers.Dense(units)


def test_dense_rejects_another_input_dim_after_build():
    layer = layers.Dense(2, name="fc")
    layer(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match="fc.*expected axis -1 of input shape to have value 3"):
        layer(np.zeros((1, 4), "float32"))
    with pytest.raises(ValueError, match="fc.*expected min_ndim=2"):
        layers.Dense(2, name="fc_1")(np.zeros((3,), "float32"))


def test_dense_set_weights_wrong_shapes_name_the_layer():
    layer = layers.Dense(3, name="my_dense")
    layer(np.zeros((1, 4), "float32"))
    with pytest.raises(ValueError, match=r"my_dense.*\(4, 3\).*\(3, 4\)"):
        layer.set_weights([np.zeros((3, 4)), np.zeros(3)])  # transposed kernel
    with pytest.raises(ValueError, match=r"my_dense.*\(3,\).*\(4,\)"):
        layer.set_weights([np.zeros((4, 3)), np.zeros(4)])
    with pytest.raises(ValueError, match="my_dense.*expects 2 weights.*has 1"):
        layer.set_weights([np.zeros((4, 3))])


def test_dense_config_round_trip_with_activation_name():
    layer = layers.Dense(4, activation="swish", name="d")
    config = layer.get_config()
    assert config["activation"] == "silu" and config["units"] == 4
    assert layers.Dense.from_config(config).activation is dl.activations.silu


# ---- Activation ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "softmax", "gelu", "mish", "linear"])
def test_activation_layer(activation):
    check_layer(layers.Activation, {"activation": activation}, (2, 3, 4), (2, 3, 4),
                expected_num_trainable_weights=0,
                reference=lambda x, w: ACTIVATIONS[activation](np.asarray(x, np.float64)))


def test_activation_layer_with_callable():
    layer = layers.Activation(dl.activations.relu6)
    np.testing.assert_allclose(layer(np.array([-1.0, 3.0, 9.0])).value, [0.0, 3.0, 6.0])
    assert layer.get_config()["activation"] == "relu6"


def test_activation_layer_unknown_name():
    with pytest.raises(ValueError, match="relux"):
        layers.Activation("relux")


# ---- Input / InputLayer ---------------------------------------------------------------------------------------
def test_input_shapes_and_dtypes():
    x = dl.Input(shape=(3, 4))
    assert isinstance(x, dl.KerasTensor)
    assert x.shape == (None, 3, 4) and x.dtype == "float32"
    assert dl.Input(shape=(5,), batch_size=8).shape == (8, 5)
    assert dl.Input(shape=7).shape == (None, 7)
    assert dl.Input(batch_shape=(2, 3)).shape == (2, 3)
    assert dl.Input(shape=(2,), dtype="int32").dtype == "int32"
    assert dl.Input(shape=(None, 4)).shape == (None, None, 4)
    named = dl.Input(shape=(2,), name="features")
    assert named.node.layer.name == "features"


def test_input_layer_config_round_trip():
    layer = layers.InputLayer(shape=(3,), dtype="float64", name="inp")
    config = layer.get_config()
    assert config == {"batch_shape": (None, 3), "dtype": "float64", "name": "inp"}
    clone = layers.InputLayer.from_config(config)
    assert clone.output.shape == (None, 3) and clone.output.dtype == "float64"


def test_input_errors():
    with pytest.raises(ValueError, match="shape"):
        dl.Input()
    with pytest.raises(ValueError, match="non-negative"):
        dl.Input(shape=(-1, 3))


def test_input_feeds_a_model():
    inp = dl.Input(shape=(3,))
    model = dl.Model(inp, layers.Dense(2, kernel_initializer="ones")(inp))
    np.testing.assert_allclose(model.predict(np.ones((4, 3), "float32"), verbose=0), 3.0)


# ---- Identity ---------------------------------------------------------------------------------------------
def test_identity_layer():
    layer, x, y = check_layer(layers.Identity, {}, (2, 3), (2, 3), expected_num_trainable_weights=0,
                              reference=lambda x, w: x)


# ---- Lambda ------------------------------------------------------------------------------------------------
def test_lambda_concrete_symbolic_and_arguments():
    layer = layers.Lambda(lambda x, scale: dl.ops.multiply(dl.ops.square(x), scale), arguments={"scale": 3.0})
    x = np.array([[1.0, -2.0]], "float32")
    np.testing.assert_allclose(layer(x).value, [[3.0, 12.0]])
    inp = dl.Input(shape=(2,))
    out = layers.Lambda(lambda t: dl.ops.concatenate([t, dl.ops.negative(t)], axis=-1))(inp)
    assert out.shape == (None, 4)
    model = dl.Model(inp, out)
    np.testing.assert_allclose(model.predict(x, verbose=0), [[1.0, -2.0, -1.0, 2.0]])


def test_lambda_is_differentiable():
    layer = layers.Lambda(lambda t: dl.ops.tanh(dl.ops.multiply(t, t)), dtype="float64")
    check_op_gradients(lambda t: layer(t), [np.random.default_rng(0).standard_normal((3, 2))])


def test_lambda_in_training():
    inp = dl.Input(shape=(3,))
    model = dl.Model(inp, layers.Dense(1)(layers.Lambda(lambda t: dl.ops.multiply(t, 2.0))(inp)))
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).standard_normal((8, 3)).astype("float32")
    history = model.fit(x, x[:, :1], epochs=2, batch_size=8, verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]


def test_lambda_needs_a_callable():
    with pytest.raises(TypeError, match="Lambda.*callable"):
        layers.Lambda(3)


def test_lambda_config_names_the_function():
    def double(x):
        return dl.ops.multiply(x, 2.0)

    assert layers.Lambda(double).get_config()["function"] == "double"


# ---- the harness checks itself -----------------------------------------------------------------------------------
def test_harness_rejects_a_wrong_reference():
    with pytest.raises(AssertionError):
        check_layer(layers.Identity, {}, (2, 3), (2, 3), reference=lambda x, w: 2 * x)


def test_harness_rejects_a_wrong_output_shape():
    with pytest.raises(AssertionError, match="output shape"):
        check_layer(layers.Dense, {"units": 2}, (3, 4), (3, 3))


@register("layer")
class _ForgetfulScale(Layer):
    """Test double: get_config omits an __init__ argument."""

    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs):
        return dl.ops.multiply(inputs, self.factor)


@register("layer")
class _WrongGradient(Layer):
    """Test double: a layer whose op has a wrong backward."""

    def call(self, inputs):
        from dlcore.autograd import Function

        class Cube(Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save(x)
                return x ** 3

            @staticmethod
            def backward(ctx, dy, needs):
                (x,) = ctx.saved
                return (dy * 2 * x ** 2,)  # should be 3 x**2

        return Cube.apply(inputs)


def test_harness_rejects_an_incomplete_config():
    with pytest.raises(AssertionError, match="factor"):
        check_layer(_ForgetfulScale, {"factor": 3.0}, (2, 3), (2, 3))


def test_harness_rejects_a_wrong_gradient():
    with pytest.raises(AssertionError, match="finite differences"):
        check_layer(_WrongGradient, {}, (2, 3), (2, 3), check_fit=False)


# ---- issue 12: Dense on (batch, seq, features) is one GEMM, with "gelu" fused ------------------------
def _recording_kernels(monkeypatch):
    from dlcore import kernels

    calls, get = [], kernels.get

    def spy(name, device="cpu"):
        fn = get(name, device)
        if name != "dense_forward":
            return fn

        def dense_forward(x, w, b, code, alpha, y, threads):
            calls.append((x.shape, code))
            return fn(x, w, b, code, alpha, y, threads)
        return dense_forward
    monkeypatch.setattr(kernels, "get", spy)
    return calls


def test_dense_3d_input_is_one_gemm_with_gelu_fused(monkeypatch):
    from dlcore.ops.elementwise import activation_code

    x = np.random.default_rng(0).standard_normal((32, 128, 128)).astype("float32")
    layer = layers.Dense(64, activation="gelu")
    layer.build(x.shape)
    calls = _recording_kernels(monkeypatch)
    y = layer(x).value
    assert calls == [((32 * 128, 128), activation_code("gelu"))]  # one GEMM, exact gelu in its epilogue
    kernel, bias = layer.get_weights()
    z = x.reshape(-1, 128).astype(np.float64) @ kernel + bias
    np.testing.assert_allclose(y.reshape(-1, 64), 0.5 * z * (1 + special.erf(z / np.sqrt(2))), rtol=1e-4, atol=1e-5)
    calls.clear()
    with dl.GradientTape() as tape:  # training: still one GEMM (activation applied after, for backward)
        loss = dl.ops.sum(layer(x))
    tape.gradient(loss, layer.trainable_weights)
    assert [shape for shape, _ in calls] == [(32 * 128, 128)]


def test_dense_gelu_keras_parity():
    import os
    import sys

    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    keras = pytest.importorskip("keras")
    x = np.random.default_rng(1).standard_normal((4, 6, 8)).astype("float32") * 2
    ours, theirs = layers.Dense(5, activation="gelu"), keras.layers.Dense(5, activation="gelu")
    ours.build(x.shape)
    theirs.build(x.shape)
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours(x).value, np.asarray(theirs(x)), rtol=1e-5, atol=1e-5)


def test_dense_relu_training_runs_fused_float32():
    """Recorded Dense(relu) in float32 (the own GEMM with relu fused in the tile stores): the
    output and the gradients of x, kernel and bias match NumPy, zeros and negatives included."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((7, 5)).astype(np.float32)
    x[0] = 0.0  # z = bias there: negative biases give exact zeros whose derivative is 0
    layer = layers.Dense(6, activation="relu")
    layer.build((None, 5))
    layer.bias.assign(np.array([-1, 0, 1, -2, 2, 0.5], np.float32))
    r = rng.standard_normal((7, 6)).astype(np.float32)
    xt = dl.Tensor(x)
    with dl.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt)
        loss = dl.ops.sum(y * r)
    dx, dw, db = tape.gradient(loss, [xt, layer.kernel, layer.bias])
    w, b = layer.kernel.numpy(), layer.bias.numpy()
    z = x.astype(np.float64) @ w + b
    dz = r * (z > 0)
    np.testing.assert_allclose(y.numpy(), np.maximum(z, 0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(dx), dz @ w.T, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(dw), x.T @ dz, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(db), dz.sum(0), rtol=1e-4, atol=1e-5)
