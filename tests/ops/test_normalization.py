"""Batch-normalization ops: forward against the NumPy reference and float64 finite-difference
gradients (training and inference forms, every output, other axes, batch 1)."""
import numpy as np
import pytest

from dlcore import ops
from harness import check_op_gradients
from reference import norm as ref

rng = np.random.default_rng(0)
SHAPES_AXES = [((6, 3), -1), ((2, 3, 4, 3), -1), ((1, 3, 3, 2), -1), ((2, 3, 4, 5), 1), ((3, 4, 2), 0)]


def _param(shape, axis, low=0.5, high=1.5):
    return rng.uniform(low, high, shape[axis])


@pytest.mark.parametrize("shape,axis", SHAPES_AXES)
def test_training_form(shape, axis):
    x = rng.standard_normal(shape) * 2 + 1
    gamma, beta = _param(shape, axis), rng.standard_normal(shape[axis])
    y, mean, var = ops.batch_normalization_training(x, gamma, beta, axis=axis, epsilon=1e-3)
    y_ref, mean_ref, var_ref = ref.training(x, gamma, beta, 1e-3, axis)
    np.testing.assert_allclose(y.value, y_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(mean.value, mean_ref, rtol=1e-12)
    np.testing.assert_allclose(var.value, var_ref, rtol=1e-12)
    check_op_gradients(lambda t, g, b: ops.batch_normalization_training(t, g, b, axis=axis)[0], [x, gamma, beta])


def test_training_form_all_outputs_and_no_params():
    x = rng.standard_normal((5, 4))
    check_op_gradients(lambda t: ops.batch_normalization_training(t, axis=-1), [x])  # y, mean and var
    y = ops.batch_normalization_training(x)[0].value
    np.testing.assert_allclose(y, ref.training(x, np.ones(4), np.zeros(4), 1e-3)[0], rtol=1e-12)


@pytest.mark.parametrize("shape,axis", SHAPES_AXES)
def test_inference_form(shape, axis):
    x = rng.standard_normal(shape)
    c = shape[axis]
    mean, var, beta, gamma = rng.standard_normal(c), _param(shape, axis), rng.standard_normal(c), _param(shape, axis)
    y = ops.batch_normalization(x.astype("float32"), mean, var, axis, offset=beta, scale=gamma, epsilon=1e-3)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.value, ref.inference(x, gamma, beta, mean, var, 1e-3, axis), rtol=1e-5, atol=1e-5)
    check_op_gradients(lambda t, m, v, b, g: ops.batch_normalization(t, m, v, axis, offset=b, scale=g),
                       [x, mean, var, beta, gamma])


def test_inference_form_keepdims_statistics():
    x = rng.standard_normal((2, 3, 4))
    mean, var = ops.moments(x, axes=(0, 2), keepdims=True)
    assert mean.shape == (1, 3, 1)
    y = ops.batch_normalization(x, mean, var, axis=1)
    np.testing.assert_allclose(y.value, ref.training(x, np.ones(3), np.zeros(3), 1e-3, axis=1)[0], rtol=1e-10)
    check_op_gradients(lambda t: ops.batch_normalization(t, *ops.moments(t, axes=(0, 2)), axis=1), [x])


def test_errors():
    x = np.zeros((2, 3), "float32")
    with pytest.raises(ValueError, match="axis 2 is out of bounds"):
        ops.batch_normalization(x, np.zeros(3), np.ones(3), axis=2)
    with pytest.raises(ValueError, match="one value per channel"):
        ops.batch_normalization(x, np.zeros(4), np.ones(3), axis=-1)
    with pytest.raises(ValueError, match="empty"):
        ops.batch_normalization_training(np.zeros((0, 3)))
