"""Activation layers (ReLU, LeakyReLU, Softmax, ELU, PReLU): the layer harness, NumPy references
written from the Keras 3 formulas, Keras's documented numbers, and argument errors."""
import warnings

import numpy as np
import pytest

import dlcore as dl
from dlcore import layers
from harness import check_layer

pytestmark = pytest.mark.usefixtures("fresh_session")


# ---- NumPy references -----------------------------------------------------------------------------
def relu_ref(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """keras.activations.relu, step by step."""
    x = np.asarray(x, dtype=np.float64)
    if threshold != 0.0:
        y = np.where(x > threshold, x, 0.0)
    else:
        y = np.maximum(x, 0.0)
    if max_value is not None:
        y = np.clip(y, 0.0, max_value)
    if negative_slope != 0.0:
        y = y - negative_slope * np.maximum(threshold - x, 0.0)
    return y


def softmax_ref(x, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def elu_ref(x, alpha=1.0):
    x = np.asarray(x, dtype=np.float64)
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


# ---- the harness ------------------------------------------------------------------------------------
RELU_CASES = [
    {},
    {"max_value": 1.0},
    {"negative_slope": 0.1},
    {"threshold": 0.5},
    {"max_value": 6.0},
    {"max_value": 1.2, "negative_slope": 0.2, "threshold": -0.3},
    {"negative_slope": 0.3, "threshold": 0.4},
]


@pytest.mark.parametrize("kwargs", RELU_CASES, ids=str)
def test_relu_layer(kwargs):
    check_layer(layers.ReLU, kwargs, (2, 3, 4), (2, 3, 4), expected_num_trainable_weights=0,
                reference=lambda x, w: relu_ref(x, **kwargs))


@pytest.mark.parametrize("kwargs,slope", [({}, 0.3), ({"negative_slope": 0.05}, 0.05)])
def test_leaky_relu_layer(kwargs, slope):
    check_layer(layers.LeakyReLU, kwargs, (3, 5), (3, 5), expected_num_trainable_weights=0,
                reference=lambda x, w: np.where(x >= 0, x, slope * x))


@pytest.mark.parametrize("axis", [-1, 1, 0, (1, 2)], ids=str)
def test_softmax_layer(axis):
    def ref(x, w):
        if isinstance(axis, tuple):
            e = np.exp(x - x.max(axis=axis, keepdims=True))
            return e / e.sum(axis=axis, keepdims=True)
        return softmax_ref(x, axis)

    check_layer(layers.Softmax, {"axis": axis}, (2, 3, 4), (2, 3, 4), expected_num_trainable_weights=0,
                reference=ref)


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_elu_layer(alpha):
    check_layer(layers.ELU, {"alpha": alpha}, (2, 6), (2, 6), expected_num_trainable_weights=0,
                reference=lambda x, w: elu_ref(x, alpha))


def prelu_ref(x, w):
    (alpha,) = w
    return np.where(x > 0, x, alpha * x)


def test_prelu_layer_default():
    layer, x, y = check_layer(layers.PReLU, {}, (2, 3, 4), (2, 3, 4), expected_num_trainable_weights=1,
                              expected_num_non_trainable_weights=0, reference=prelu_ref)
    assert layer.alpha.shape == (3, 4)
    np.testing.assert_array_equal(layer.alpha.value, 0.0)  # alpha_initializer="Zeros": a plain ReLU
    np.testing.assert_allclose(y.value, np.maximum(x, 0))


def test_prelu_layer_shared_axes_and_initializer():
    layer, _, _ = check_layer(layers.PReLU, {"alpha_initializer": dl.initializers.Constant(0.25),
                                             "shared_axes": [1, 2]},
                              (2, 3, 4, 5), (2, 3, 4, 5), expected_num_trainable_weights=1, reference=prelu_ref)
    assert layer.alpha.shape == (1, 1, 5)
    np.testing.assert_array_equal(layer.alpha.value, 0.25)
    assert layer.get_config()["shared_axes"] == [1, 2]


def test_prelu_single_shared_axis_int_and_regularizer():
    layer = layers.PReLU(alpha_initializer="ones", alpha_regularizer=dl.regularizers.L2(0.5), shared_axes=1)
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype("float32")
    layer(x)
    assert layer.alpha.shape == (1, 4) and layer.shared_axes == [1]
    (penalty,) = layer.losses
    np.testing.assert_allclose(float(penalty.value), 0.5 * 4)  # 0.5 * sum(1**2)


# ---- Keras's documented numbers -------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,expected", [
    ({}, [0.0, 0.0, 0.0, 2.0]),
    ({"max_value": 1.0}, [0.0, 0.0, 0.0, 1.0]),
    ({"negative_slope": 1.0}, [-3.0, -1.0, 0.0, 2.0]),
    ({"threshold": 1.5}, [0.0, 0.0, 0.0, 2.0]),
])
def test_relu_keras_docstring_values(kwargs, expected):
    out = layers.ReLU(**kwargs)(np.array([-3.0, -1.0, 0.0, 2.0]))
    np.testing.assert_allclose(out.value, expected)


def test_leaky_relu_keras_docstring_values():
    out = layers.LeakyReLU(negative_slope=0.5)(np.array([-10, -5, 0.0, 5, 10]))
    np.testing.assert_allclose(out.value, [-5.0, -2.5, 0.0, 5.0, 10.0])


def test_softmax_keras_docstring_values():
    out = layers.Softmax()(np.array([1.0, 2.0, 1.0]))
    np.testing.assert_allclose(out.value, [0.21194157, 0.5761169, 0.21194157], rtol=1e-6)


def test_elu_value_at_minus_one():
    out = layers.ELU()(np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_allclose(out.value, [np.exp(-1.0) - 1.0, 0.0, 2.0], rtol=1e-6)


def test_defaults_match_keras():
    assert layers.LeakyReLU().negative_slope == 0.3
    assert layers.ReLU().get_config()["max_value"] is None
    assert layers.Softmax().axis == -1
    assert layers.ELU().alpha == 1.0
    assert layers.PReLU().get_config()["alpha_initializer"]["class_name"] == "Zeros"


# ---- Softmax with a mask ---------------------------------------------------------------------------------
def test_softmax_mask_excludes_masked_positions():
    x = np.array([[1.0, 2.0, 3.0, 4.0], [0.5, 0.5, 0.5, 0.5]], dtype="float32")
    mask = np.array([[True, True, False, True], [True, False, False, False]])
    out = layers.Softmax()(x, mask=mask).value
    expected = softmax_ref(np.where(mask, x, -np.inf))
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)
    assert np.all(out[~mask] == 0)


def test_softmax_mask_fully_masked_row_is_zero():
    out = layers.Softmax()(np.ones((1, 3), "float32"), mask=np.zeros((1, 3), bool)).value
    np.testing.assert_array_equal(out, 0.0)


def test_softmax_mask_gradient_ignores_masked_logits():
    x = dl.Tensor(np.random.default_rng(1).standard_normal((2, 4)))
    mask = np.array([[1, 1, 0, 1], [0, 1, 1, 1]])
    layer = layers.Softmax(dtype="float64")
    with dl.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, mask=mask)
        loss = dl.ops.sum(dl.ops.multiply(y, np.arange(4.0)))
    g = tape.gradient(loss, x).value
    assert np.all(np.abs(g[mask == 0]) < 1e-12)
    assert np.all(np.abs(g[mask == 1]) > 1e-6)


# ---- arguments and errors ----------------------------------------------------------------------------------
def test_leaky_relu_legacy_alpha_keyword():
    with pytest.warns(DeprecationWarning, match="alpha"):
        layer = layers.LeakyReLU(alpha=0.1)
    assert layer.negative_slope == 0.1
    assert "alpha" not in layer.get_config()
    np.testing.assert_allclose(layer(np.array([-2.0, 3.0])).value, [-0.2, 3.0], rtol=1e-6)


@pytest.mark.parametrize("cls,kwargs,match", [
    (layers.ReLU, {"max_value": -1.0}, "max_value"),
    (layers.ReLU, {"negative_slope": -0.1}, "negative_slope"),
    (layers.ReLU, {"negative_slope": None}, "negative_slope"),
    (layers.ReLU, {"threshold": None}, "threshold"),
    (layers.LeakyReLU, {"negative_slope": -0.5}, "negative_slope"),
    (layers.LeakyReLU, {"negative_slope": None}, "negative_slope"),
    (layers.ELU, {"alpha": "big"}, "alpha"),
    (layers.Softmax, {"axis": 1.5}, "axis"),
    (layers.Softmax, {"axis": ()}, "axis"),
    (layers.PReLU, {"shared_axes": [0]}, "shared_axes"),
])
def test_invalid_arguments(cls, kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        cls(**kwargs)
    assert cls.__name__ in str(info.value)


def test_prelu_shared_axis_out_of_range():
    with pytest.raises(ValueError, match="PReLU .*shared axis 3"):
        layers.PReLU(shared_axes=[3])(np.zeros((2, 3, 4), "float32"))


def test_prelu_rejects_input_of_another_shape_after_build():
    layer = layers.PReLU()
    layer(np.zeros((2, 3, 4), "float32"))
    with pytest.raises(ValueError, match=f"{layer.name}.*expected axis 2 of input shape to have value 4"):
        layer(np.zeros((2, 3, 5), "float32"))
    with pytest.raises(ValueError, match="expected ndim=3"):
        layer(np.zeros((2, 12), "float32"))


def test_prelu_set_weights_wrong_shape_names_layer():
    layer = layers.PReLU(name="my_prelu")
    layer(np.zeros((2, 3), "float32"))
    with pytest.raises(ValueError, match="my_prelu"):
        layer.set_weights([np.zeros((4,))])


def test_prelu_trains_alpha():
    prelu = layers.PReLU()
    model = dl.Sequential([dl.Input(shape=(4,)), prelu])
    model.compile(optimizer="sgd", loss="mse")
    x = -np.abs(np.random.default_rng(0).standard_normal((16, 4))).astype("float32")
    y = 0.5 * x  # the best alpha is 0.5
    before = prelu.alpha.value.copy()
    model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    after = prelu.alpha.value
    assert np.all(after > before)


def test_no_warning_for_plain_construction():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer = layers.LeakyReLU(negative_slope=0.2)
    assert layer.negative_slope == 0.2
