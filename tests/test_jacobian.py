"""GradientTape.jacobian and batch_jacobian (TensorFlow semantics), against closed forms."""
import numpy as np
import pytest

import dlcore as dl
from dlcore import ops


def test_jacobian_of_a_matmul_is_the_matrix():
    w = np.random.default_rng(0).normal(size=(3, 2))
    x = dl.Variable(np.random.default_rng(1).normal(size=(3,)), dtype="float64")
    with dl.GradientTape() as tape:
        y = ops.matmul(ops.reshape(x, (1, 3)), w)  # (1, 2)
    jac = tape.jacobian(y, x)
    assert jac.shape == (1, 2, 3)
    np.testing.assert_allclose(jac.value[0], w.T)


def test_jacobian_of_elementwise_square_and_structure():
    x = dl.Variable(np.array([[1.0, 2.0], [3.0, 4.0]]), dtype="float64")
    z = dl.Variable(np.array([5.0]), dtype="float64")
    with dl.GradientTape(persistent=True) as tape:
        y = x * x
    jac = tape.jacobian(y, {"x": x, "z": z})
    assert jac["z"] is None  # unconnected
    zeros = tape.jacobian(y, z, unconnected_gradients="zero")
    assert zeros.shape == (2, 2, 1) and not zeros.value.any()
    with pytest.raises(ValueError, match="'none' or 'zero'"):
        tape.jacobian(y, z, unconnected_gradients="ones")
    expected = np.zeros((2, 2, 2, 2))
    for i in range(2):
        for j in range(2):
            expected[i, j, i, j] = 2 * x.value[i, j]
    np.testing.assert_allclose(jac["x"].value, expected)
    np.testing.assert_allclose(tape.gradient(y, x).value, 2 * x.value)  # persistent: still usable


def test_batch_jacobian_of_a_dense_layer_is_the_kernel_per_sample():
    layer = dl.layers.Dense(3, activation="tanh", dtype="float64")
    x = dl.Tensor(np.random.default_rng(2).normal(size=(4, 2)))
    with dl.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
    jac = tape.batch_jacobian(y, x)
    assert jac.shape == (4, 3, 2)
    kernel = layer.kernel.value
    d = 1 - np.tanh(x.value @ kernel + layer.bias.value) ** 2  # (4, 3)
    np.testing.assert_allclose(jac.value, d[:, :, None] * kernel.T[None], rtol=1e-10)


def test_jacobian_errors():
    x = dl.Variable(np.ones(2), dtype="float64")
    with dl.GradientTape() as tape:
        y = x * 2.0
    tape.gradient(ops.sum(y), x)
    with pytest.raises(RuntimeError, match="persistent=True"):
        tape.jacobian(y, x)
    with dl.GradientTape() as tape:
        y = x * 2.0
    with pytest.raises(ValueError, match="share their first"):
        tape.batch_jacobian(ops.reshape(y, (1, 2)), x)
    with dl.GradientTape() as tape:
        y = x * 2.0
    with pytest.raises(TypeError, match="sources must be Tensors"):
        tape.jacobian(y, [np.ones(2)])
