"""Pooling ops: forward against the NumPy reference and float64 finite-difference gradients
across strides, paddings, odd sizes and batch 1; the argmax kernel runs only while recording."""
import numpy as np
import pytest

import dlcore as dl
from dlcore import ops
from harness import check_op_gradients
from reference import pool as ref

CASES = [  # (input shape, pool, strides, padding)
    ((2, 6, 6, 3), 2, None, "valid"),
    ((1, 7, 5, 2), (2, 2), (2, 2), "same"),
    ((2, 5, 7, 2), (3, 3), (1, 1), "same"),
    ((1, 5, 7, 2), (3, 2), (2, 1), "valid"),
    ((2, 5, 5, 1), (3, 3), (2, 2), "same"),
    ((1, 4, 6, 2), (2, 3), (3, 1), "same"),
]
CASES_1D = [((2, 7, 3), 2, None, "valid"), ((1, 7, 2), 3, 2, "same"), ((2, 6, 2), 3, 1, "same")]


def _ref2d(x, pool, strides, padding, mode):
    pool = (pool, pool) if isinstance(pool, int) else pool
    strides = pool if strides is None else ((strides, strides) if isinstance(strides, int) else strides)
    return ref.pool2d(x, pool, strides, padding, mode)


@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("shape,pool,strides,padding", CASES)
def test_pool2d(shape, pool, strides, padding, mode):
    fn = ops.max_pool if mode == "max" else ops.average_pool
    x = np.random.default_rng(0).standard_normal(shape)
    np.testing.assert_allclose(fn(x.astype("float32"), pool, strides, padding).value,
                               _ref2d(x, pool, strides, padding, mode), rtol=1e-6, atol=1e-6)
    check_op_gradients(lambda t: fn(t, pool, strides, padding), [x])


@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("shape,pool,strides,padding", CASES_1D)
def test_pool1d(shape, pool, strides, padding, mode):
    fn = ops.max_pool if mode == "max" else ops.average_pool
    x = np.random.default_rng(1).standard_normal(shape)
    strides2 = None if strides is None else (1, strides)
    expected = _ref2d(x[:, None], (1, pool), strides2 or (1, pool), padding, mode)[:, 0]
    np.testing.assert_allclose(fn(x, pool, strides, padding).value, expected, rtol=1e-12)
    check_op_gradients(lambda t: fn(t, pool, strides, padding), [x])


@pytest.mark.parametrize("mode", ["max", "average"])
def test_channels_first(mode):
    fn = ops.max_pool if mode == "max" else ops.average_pool
    x = np.random.default_rng(2).standard_normal((2, 3, 5, 4))  # (N, C, H, W)
    y = fn(x, 2, 1, "same", data_format="channels_first").value
    expected = np.transpose(_ref2d(np.transpose(x, (0, 2, 3, 1)), 2, 1, "same", mode), (0, 3, 1, 2))
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    check_op_gradients(lambda t: fn(t, 2, 1, "same", data_format="channels_first"), [x])


def test_max_pool_keeps_argmax_only_while_recording(monkeypatch):
    from dlcore import kernels

    calls = []
    table = kernels._load_table()
    for name in ("max_pool2d_forward", "max_pool2d_forward_argmax"):
        monkeypatch.setitem(table, name, (lambda f, n: lambda *a: (calls.append(n), f(*a)))(table[name], name))
    x = np.random.default_rng(3).standard_normal((1, 4, 4, 2)).astype("float32")
    ops.max_pool(x, 2)
    assert calls == ["max_pool2d_forward"]
    t = dl.Tensor(x)
    with dl.GradientTape() as tape:
        tape.watch(t)
        loss = ops.sum(ops.max_pool(t, 2))
    assert calls[-1] == "max_pool2d_forward_argmax"
    assert tape.gradient(loss, t).value.sum() == 8.0  # one cell per window


def test_integer_input_becomes_float():
    y = ops.max_pool(np.arange(16).reshape(1, 4, 4, 1), 2)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.value.ravel(), [5, 7, 13, 15])


def test_errors():
    x = np.zeros((1, 3, 3, 1), "float32")
    with pytest.raises(ValueError, match="padding"):
        ops.max_pool(x, 2, padding="full")
    with pytest.raises(ValueError, match="pool_size"):
        ops.max_pool(x, 0)
    with pytest.raises(ValueError, match="empty"):
        ops.average_pool(x, 4)
    with pytest.raises(ValueError, match=r"3-D .* or 4-D"):
        ops.max_pool(np.zeros((2, 3)), 2)
