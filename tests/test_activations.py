"""dlcore.activations against independent NumPy formulas (Keras 3 definitions), the relu
options, names and (de)serialization, and the fused-kernel mapping used by layers."""
import functools
import math

import numpy as np
import pytest

import dlcore as dl
from dlcore import activations, ops
from dlcore.kernels.elementwise import ACTIVATIONS

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_erf = np.vectorize(math.erf)


def _softplus(x):
    return np.logaddexp(0.0, x)


def _sigmoid(x):
    return 0.5 * (1 + np.tanh(0.5 * x))


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


REFERENCE = {
    "relu": lambda x: np.maximum(x, 0),
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.2 * x),
    "relu6": lambda x: np.clip(x, 0, 6),
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(x)),
    "softplus": _softplus,
    "softsign": lambda x: x / (1 + np.abs(x)),
    "silu": lambda x: x * _sigmoid(x),
    "gelu": lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))),
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "exponential": np.exp,
    "hard_sigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1),
    "hard_silu": lambda x: x * np.clip(x / 6 + 0.5, 0, 1),
    "linear": lambda x: x,
    "mish": lambda x: x * np.tanh(_softplus(x)),
    "softmax": _softmax,
    "log_softmax": lambda x: x - x.max(-1, keepdims=True) - np.log(
        np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)),
}


@pytest.fixture(scope="module")
def x64():
    grid = np.linspace(-7, 7, 141)
    rand = np.random.default_rng(0).standard_normal(59) * 3
    return np.concatenate([grid, rand]).reshape(8, 25)


@pytest.mark.parametrize("name", sorted(REFERENCE))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_against_numpy_formula(name, dtype, x64):
    fn = getattr(activations, name)
    x = x64.astype(dtype)
    y = fn(x)
    y = y.numpy() if isinstance(y, dl.Tensor) else np.asarray(y)
    assert y.shape == x.shape and y.dtype == dtype
    tol = dict(rtol=2e-6, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    if name == "exponential" and dtype == np.float32:
        tol = dict(rtol=2e-6, atol=0)
    np.testing.assert_allclose(y, REFERENCE[name](x64), **tol)


def test_linear_returns_its_input():
    x = np.arange(3.0)
    assert activations.linear(x) is x


def test_softmax_axes():
    x = np.random.default_rng(1).standard_normal((3, 4, 5))
    for axis in (0, 1, -1):
        np.testing.assert_allclose(activations.softmax(x, axis=axis).numpy(), _softmax(x, axis), rtol=1e-12)
        np.testing.assert_allclose(activations.log_softmax(x, axis=axis).numpy(), np.log(_softmax(x, axis)),
                                   rtol=1e-12, atol=1e-12)


def test_gelu_defaults_differ_between_activations_and_ops(x64):
    exact = REFERENCE["gelu"](x64)
    approx = 0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64 ** 3)))
    np.testing.assert_allclose(activations.gelu(x64).numpy(), exact, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(activations.gelu(x64, approximate=True).numpy(), approx, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(ops.gelu(x64).numpy(), approx, rtol=1e-12, atol=1e-13)


def test_leaky_relu_and_elu_arguments(x64):
    np.testing.assert_allclose(activations.leaky_relu(x64, negative_slope=0.05).numpy(),
                               np.where(x64 >= 0, x64, 0.05 * x64))
    np.testing.assert_allclose(activations.elu(x64, alpha=0.5).numpy(),
                               np.where(x64 > 0, x64, 0.5 * np.expm1(x64)), rtol=1e-12, atol=1e-14)


# ---- relu options -------------------------------------------------------------------------------
def _relu_reference(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras 3: x above the threshold (0 at or below it), saturated at max_value; below the
    threshold the output is negative_slope * (x - threshold)."""
    y = np.where(x > threshold, x, 0.0)
    if max_value is not None:
        y = np.clip(y, 0.0, max_value)
    return y - negative_slope * np.maximum(threshold - x, 0.0)


RELU_OPTIONS = [
    dict(max_value=6.0), dict(max_value=6), dict(max_value=2.5), dict(threshold=1.5),
    dict(negative_slope=0.1), dict(negative_slope=0.3, max_value=4.0), dict(negative_slope=0.2, threshold=1.0),
    dict(negative_slope=0.5, max_value=5.0, threshold=2.0), dict(max_value=3.0, threshold=1.0),
]


@pytest.mark.parametrize("kwargs", RELU_OPTIONS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_relu_options(kwargs, x64):
    np.testing.assert_allclose(activations.relu(x64, **kwargs).numpy(), _relu_reference(x64, **kwargs),
                               rtol=1e-12, atol=1e-14)
    y32 = activations.relu(x64.astype(np.float32), **kwargs)
    assert y32.dtype == np.float32


def test_relu_keras_docstring_examples():
    x = np.array([-10, -5, 0.0, 5, 10], dtype=np.float32)
    np.testing.assert_array_equal(activations.relu(x).numpy(), [0, 0, 0, 5, 10])
    np.testing.assert_array_equal(activations.relu(x, negative_slope=0.5).numpy(), [-5, -2.5, 0, 5, 10])
    np.testing.assert_array_equal(activations.relu(x, max_value=5.0).numpy(), [0, 0, 0, 5, 5])
    np.testing.assert_array_equal(activations.relu(x, threshold=5.0).numpy(), [0, 0, 0, 0, 10])


@pytest.mark.parametrize("fn", [
    functools.partial(activations.relu, negative_slope=0.2, max_value=3.0, threshold=0.5),
    functools.partial(activations.relu, max_value=2.0),
    activations.mish, activations.hard_silu, activations.selu, activations.gelu,
], ids=["relu_options", "relu_max", "mish", "hard_silu", "selu", "gelu"])
def test_gradients_match_central_differences(fn):
    # points away from the kinks, float64
    x = np.array([-2.3, -1.1, -0.37, 0.21, 0.8, 1.7, 2.6, 4.1])
    t = dl.Tensor(x)
    with dl.GradientTape() as tape:
        tape.watch(t)
        y = ops.sum(fn(t))
    g = tape.gradient(y, t).numpy()
    h = 1e-6
    num = (np.asarray(fn(x + h)) - np.asarray(fn(x - h))) / (2 * h)
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-8)


# ---- names, get, (de)serialization --------------------------------------------------------------
ALL = ["relu", "leaky_relu", "relu6", "softmax", "elu", "selu", "softplus", "softsign", "silu", "gelu",
       "tanh", "sigmoid", "exponential", "hard_sigmoid", "hard_silu", "linear", "mish", "log_softmax"]


@pytest.mark.parametrize("name", ALL)
def test_get_and_serialize_round_trip(name):
    fn = getattr(activations, name)
    assert activations.get(name) is fn
    assert activations.serialize(fn) == name
    assert activations.get(activations.serialize(fn)) is fn
    assert activations.deserialize(name) is fn
    assert activations.get({"class_name": name, "config": {}}) is fn
    assert activations.get({"class_name": "function", "config": name}) is fn  # Keras 3 file form


def test_aliases():
    assert activations.swish is activations.silu
    assert activations.get("swish") is activations.silu
    assert activations.serialize(activations.swish) == "silu"
    assert activations.get("hard_swish") is activations.hard_silu
    assert activations.serialize("swish") == "silu"


def test_get_passthrough_and_errors():
    assert activations.get(None) is activations.linear

    def custom(x):
        return x

    assert activations.get(custom) is custom
    assert activations.serialize(custom) == "custom"
    with pytest.raises(ValueError, match="Unknown activation identifier.*relu"):
        activations.get("rectifier")
    with pytest.raises(ValueError):
        activations.get(3)


# ---- fused-kernel mapping -----------------------------------------------------------------------
KERNEL_MAP = {
    "linear": ("linear", 0.0), "relu": ("relu", 0.0), "sigmoid": ("sigmoid", 0.0), "tanh": ("tanh", 0.0),
    "softmax": ("softmax", 0.0), "elu": ("elu", 1.0), "selu": ("selu", 0.0), "gelu": ("gelu", 0.0),
    "silu": ("silu", 0.0), "softplus": ("softplus", 0.0), "softsign": ("softsign", 0.0),
    "hard_sigmoid": ("hard_sigmoid", 0.0), "relu6": ("relu6", 0.0), "exponential": ("exponential", 0.0),
    "leaky_relu": ("leaky_relu", 0.2),
}


@pytest.mark.parametrize("name", ALL)
def test_kernel_activation_mapping(name):
    fn = getattr(activations, name)
    expected = KERNEL_MAP.get(name)
    assert activations.kernel_activation(fn) == expected
    assert activations.kernel_activation(name) == expected
    assert activations.kernel_name(fn) == (expected[0] if expected else None)
    if expected:
        assert expected[0] in ACTIVATIONS


def test_kernel_activation_partials_and_others():
    p = functools.partial
    ka = activations.kernel_activation
    assert ka(None) == ("linear", 0.0)
    assert ka(activations.swish) == ("silu", 0.0)
    assert ka(p(activations.leaky_relu, negative_slope=0.1)) == ("leaky_relu", 0.1)
    assert ka(p(activations.elu, alpha=0.5)) == ("elu", 0.5)
    assert ka(p(activations.gelu, approximate=True)) == ("gelu_tanh", 0.0)
    assert ka(p(activations.relu, max_value=6)) == ("relu6", 0.0)
    assert ka(p(activations.relu, negative_slope=0.3)) == ("leaky_relu", 0.3)
    assert ka(p(activations.relu, threshold=1.0)) is None
    assert ka(p(activations.relu, max_value=3.0)) is None
    assert ka(p(activations.softmax, axis=1)) is None
    assert ka(activations.mish) is None
    assert ka(lambda x: x) is None
    assert ka(ops.relu) is None  # not an activations function
    assert ka("no_such_activation") is None


@pytest.mark.parametrize("fn", [getattr(activations, n) for n in KERNEL_MAP] + [
    functools.partial(activations.leaky_relu, negative_slope=0.05),
    functools.partial(activations.elu, alpha=0.7),
    functools.partial(activations.gelu, approximate=True),
], ids=list(KERNEL_MAP) + ["leaky_relu_0.05", "elu_0.7", "gelu_tanh"])
def test_fused_dense_kernel_computes_the_activation(fn):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 9)).astype(np.float32)
    w = (rng.standard_normal((9, 7)) * 0.5).astype(np.float32)
    b = rng.standard_normal(7).astype(np.float32)
    name, alpha = activations.kernel_activation(fn)
    fused = ops.dense(x, w, b, activation=name, alpha=alpha).numpy()
    z = x.astype(np.float64) @ w + b
    expected = np.asarray(fn(z))
    np.testing.assert_allclose(fused, expected, rtol=1e-4, atol=1e-5)


def test_matches_keras_when_available(x64):
    keras = pytest.importorskip("keras")
    for name in ALL:
        ours = getattr(activations, name)(x64.astype(np.float32))
        theirs = keras.ops.convert_to_numpy(getattr(keras.activations, name)(x64.astype(np.float32)))
        np.testing.assert_allclose(np.asarray(ours), theirs, rtol=1e-5, atol=1e-6)
