"""Reduction kernels against the NumPy reference (tests/reference/reduce.py)."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference import reduce as ref  # noqa: E402

from dlcore.kernels import reduce  # noqa: E402

DTYPES = (np.float32, np.float64)
SHAPES = ((1, 1), (0, 5), (5, 0), (7, 13), (257, 129), (3, 64), (3, 65))


def test_kernel_table():
    assert reduce.KERNELS == {"sum_axis0": reduce.sum_axis0, "sum_all": reduce.sum_all}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_sum_axis0(shape, dtype):
    x = np.random.default_rng(0).uniform(-1.0, 1.0, shape).astype(dtype)
    out1 = np.full(shape[1], np.nan, dtype=dtype)  # the kernel zeroes out first
    out2 = np.full(shape[1], np.nan, dtype=dtype)
    reduce.sum_axis0(x, out1, 1)
    reduce.sum_axis0(x, out2, 2)
    np.testing.assert_array_equal(out1, out2)  # independent of the thread count
    expected = ref.sum_axis0(x)
    n = max(shape[0], 1)
    if dtype == np.float32:
        np.testing.assert_allclose(out1, expected, rtol=1e-5, atol=1e-6 * n)
    else:
        np.testing.assert_allclose(out1, expected, rtol=1e-12, atol=1e-15 * n)


def test_sum_axis0_default_threads():
    x = np.arange(12, dtype=np.float64).reshape(4, 3)
    out = np.empty(3)
    reduce.sum_axis0(x, out)
    np.testing.assert_array_equal(out, [18.0, 22.0, 26.0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_axis0_adds_rows_in_order(dtype):
    """Whole 64-column blocks and a narrower last one: each column is 0 + x[0] + x[1] + ...
    in row order (bit for bit), the order that makes the bias gradients deterministic."""
    x = np.random.default_rng(1).standard_normal((300, 150)).astype(dtype) * 1e3
    expected = np.zeros(150, dtype)
    for row in x:
        expected += row
    out = np.empty(150, dtype)
    reduce.sum_axis0(x, out, 2)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", (0, 1, 7, 1000))
def test_sum_all(n, dtype):
    x = np.random.default_rng(2).uniform(-1.0, 1.0, n).astype(dtype) * 100
    out = np.full(1, np.nan, dtype=dtype)
    reduce.sum_all(x, out, 8.0)
    if dtype == np.float32:  # float32 values add exactly in double here: one rounding, to float32
        assert out[0] == dtype(ref.sum_all(x, 8.0))
    else:  # the elements added in order
        acc = 0.0
        for v in x:
            acc += v
        assert out[0] == acc / 8.0
        np.testing.assert_allclose(out[0], ref.sum_all(x, 8.0), rtol=1e-13, atol=1e-12)
    reduce.sum_all(x, out)
    np.testing.assert_allclose(out[0], ref.sum_all(x), rtol=1e-6 if dtype == np.float32 else 1e-13, atol=1e-9)
