"""take_along_axis and top_k (dlcore/ops/indexing.py): values against NumPy and keras.ops (when
importable), ties, broadcasting, negative indices, errors, and the scatter gradient (the finite
differences are in tests/ops/test_gradients.py)."""
import os
import sys

import numpy as np
import pytest

import dlcore as dl
from dlcore import ops

rng = np.random.default_rng(9)


def test_take_along_axis_values():
    x = rng.standard_normal((2, 3, 4))
    idx = rng.integers(0, 3, (2, 5, 4))
    np.testing.assert_array_equal(ops.take_along_axis(x, idx, axis=1).numpy(), np.take_along_axis(x, idx, 1))
    np.testing.assert_array_equal(ops.take_along_axis(x, idx - 3, axis=1).numpy(), np.take_along_axis(x, idx, 1))
    flat = np.array([0, 23, 7])
    np.testing.assert_array_equal(ops.take_along_axis(x, flat).numpy(), x.reshape(-1)[flat])
    b = ops.take_along_axis(x, np.array([[[1, 0]]]), axis=-1)  # broadcasts over the other axes
    np.testing.assert_array_equal(b.numpy(), x[..., [1, 0]])


def test_take_along_axis_scatter_gradient_accumulates_repeats():
    x = dl.Tensor(np.arange(4.0).reshape(1, 4))
    with dl.GradientTape() as tape:
        tape.watch(x)
        y = ops.sum(ops.take_along_axis(x, np.array([[3, 3, 0, -1]]), axis=1))
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [[1, 0, 0, 3]])


@pytest.mark.parametrize("kwargs,exc,fragment", [
    (dict(indices=np.array([[0.5]]), axis=1), TypeError, "integers"),
    (dict(indices=np.array([0]), axis=1), ValueError, "same rank"),
    (dict(indices=np.array([[3]]), axis=1), ValueError, r"\[-3, 3\)"),
    (dict(indices=np.array([[-4]]), axis=1), ValueError, r"\[-3, 3\)"),
    (dict(indices=np.array([[0]]), axis=2), ValueError, "out of bounds"),
    (dict(indices=np.zeros((3, 1), int), axis=1), ValueError, "broadcast"),
])
def test_take_along_axis_errors(kwargs, exc, fragment):
    with pytest.raises(exc, match=fragment):
        ops.take_along_axis(np.ones((2, 3)), **kwargs)


def test_top_k_values_indices_and_ties():
    x = np.array([[1.0, 5.0, 3.0, 5.0, -1.0], [0.0, 0.0, 0.0, 2.0, 1.0]], np.float32)
    values, indices = ops.top_k(x, 3)
    assert values.dtype == np.float32 and indices.dtype == np.int32
    np.testing.assert_array_equal(values.numpy(), [[5, 5, 3], [2, 1, 0]])
    np.testing.assert_array_equal(indices.numpy(), [[1, 3, 2], [3, 4, 0]])  # ties: lower index first
    assert ops.top_k(x, 0)[0].shape == (2, 0)
    with pytest.raises(ValueError, match=r"k.*\[0, 5\]"):
        ops.top_k(x, 6)
    with pytest.raises(ValueError, match="rank >= 1"):
        ops.top_k(np.float32(1.0), 1)


def test_top_k_gradient_flows_to_the_chosen_entries():
    x = dl.Tensor(np.array([[1.0, 4.0, 2.0, 3.0]]))
    with dl.GradientTape() as tape:
        tape.watch(x)
        values, _ = ops.top_k(x, 2)
        y = ops.sum(values * np.array([[10.0, 1.0]]))
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [[0, 10, 0, 1]])


def _keras():
    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    return pytest.importorskip("keras")


def test_keras_parity():
    keras = _keras()
    x = rng.standard_normal((3, 6)).astype(np.float32)
    values, indices = ops.top_k(x, 4)
    k_values, k_indices = (keras.ops.convert_to_numpy(t) for t in keras.ops.top_k(x, 4))
    np.testing.assert_array_equal(values.numpy(), k_values)
    np.testing.assert_array_equal(indices.numpy(), k_indices)
    assert indices.dtype == k_indices.dtype
    idx = rng.integers(-6, 6, (3, 2))
    np.testing.assert_array_equal(ops.take_along_axis(x, idx, axis=1).numpy(),
                                  keras.ops.convert_to_numpy(keras.ops.take_along_axis(x, idx, axis=1)))
    flat = np.array([0, 17, 5])
    np.testing.assert_array_equal(ops.take_along_axis(x, flat, axis=None).numpy(),
                                  keras.ops.convert_to_numpy(keras.ops.take_along_axis(x, flat, axis=None)))
