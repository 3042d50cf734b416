"""Pooling kernels against the NumPy reference (tests/reference/pool.py): forward, argmax and
backward, float32/float64, valid/same padding, overlapping and strided windows, odd sizes,
batch 1; bit-identical results for 1 and 2 threads."""
import numpy as np
import pytest

from dlcore.kernels import pool
from reference import pool as ref

DTYPES = (np.float32, np.float64)
# (N, H, W, C), pool, strides, padding
CASES = [
    ((2, 6, 6, 3), (2, 2), (2, 2), "valid"),
    ((1, 7, 5, 2), (2, 2), (2, 2), "valid"),
    ((1, 7, 5, 2), (2, 2), (2, 2), "same"),
    ((2, 5, 7, 4), (3, 3), (1, 1), "same"),
    ((2, 5, 7, 4), (3, 2), (2, 1), "valid"),
    ((1, 9, 9, 1), (3, 3), (2, 2), "same"),
    ((3, 4, 4, 5), (4, 4), (1, 1), "valid"),
    ((1, 3, 8, 2), (1, 3), (1, 2), "same"),
    ((2, 6, 6, 3), (2, 3), (3, 1), "same"),
]


def _geometry(shape, pool_size, strides, padding):
    _, h, w, _ = shape
    oh = ref.output_length(h, pool_size[0], strides[0], padding)
    ow = ref.output_length(w, pool_size[1], strides[1], padding)
    pt = ref.pad_before(h, pool_size[0], strides[0], padding)
    pl = ref.pad_before(w, pool_size[1], strides[1], padding)
    return (oh, ow), (pool_size[0], pool_size[1], strides[0], strides[1], pt, pl)


def _tol(dtype):
    return dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-13)


def test_kernel_table():
    assert set(pool.KERNELS) == {"max_pool2d_forward", "max_pool2d_forward_argmax", "max_pool2d_backward",
                                 "avg_pool2d_forward", "avg_pool2d_backward"}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,pool_size,strides,padding", CASES)
def test_max_pool(shape, pool_size, strides, padding, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    (oh, ow), args = _geometry(shape, pool_size, strides, padding)
    out_shape = (shape[0], oh, ow, shape[3])
    expected = ref.pool2d(x, pool_size, strides, padding, "max")
    y = np.full(out_shape, np.nan, dtype=dtype)
    pool.max_pool2d_forward(x, *args, y, 2)
    np.testing.assert_array_equal(y, expected.astype(dtype))  # max is exact
    y2 = np.full(out_shape, np.nan, dtype=dtype)
    argmax = np.full(out_shape, -1, dtype=np.int32)
    pool.max_pool2d_forward_argmax(x, *args, y2, argmax, 1)
    np.testing.assert_array_equal(y2, y)
    # argmax is the offset kh * PW + kw of a maximum from its window's origin
    kh, kw = np.divmod(argmax, args[1])
    ih = np.arange(oh)[None, :, None, None] * args[2] - args[4] + kh
    iw = np.arange(ow)[None, None, :, None] * args[3] - args[5] + kw
    assert ih.min() >= 0 and iw.min() >= 0 and ih.max() < shape[1] and iw.max() < shape[2]
    picked = x[np.arange(shape[0])[:, None, None, None], ih, iw, np.arange(shape[3])]
    np.testing.assert_array_equal(picked, y)

    dy = rng.standard_normal(out_shape).astype(dtype)
    dx1 = np.full(shape, np.nan, dtype=dtype)
    dx2 = np.full(shape, np.nan, dtype=dtype)
    pool.max_pool2d_backward(dy, argmax, *args, dx1, 1)
    pool.max_pool2d_backward(dy, argmax, *args, dx2, 2)
    np.testing.assert_array_equal(dx1, dx2)  # independent of the thread count
    np.testing.assert_allclose(dx1, ref.pool2d_backward(x, dy, pool_size, strides, padding, "max"), **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,pool_size,strides,padding", CASES)
def test_avg_pool(shape, pool_size, strides, padding, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(dtype)
    (oh, ow), args = _geometry(shape, pool_size, strides, padding)
    out_shape = (shape[0], oh, ow, shape[3])
    y1 = np.full(out_shape, np.nan, dtype=dtype)
    y2 = np.full(out_shape, np.nan, dtype=dtype)
    pool.avg_pool2d_forward(x, *args, y1, 1)
    pool.avg_pool2d_forward(x, *args, y2, 2)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_allclose(y1, ref.pool2d(x, pool_size, strides, padding, "average"), **_tol(dtype))

    dy = rng.standard_normal(out_shape).astype(dtype)
    dx1 = np.full(shape, np.nan, dtype=dtype)
    dx2 = np.full(shape, np.nan, dtype=dtype)
    pool.avg_pool2d_backward(dy, *args, dx1, 1)
    pool.avg_pool2d_backward(dy, *args, dx2, 2)
    np.testing.assert_array_equal(dx1, dx2)
    np.testing.assert_allclose(dx1, ref.pool2d_backward(x, dy, pool_size, strides, padding, "average"),
                               **_tol(dtype))


def test_max_pool_ties_go_to_the_first_cell():
    x = np.zeros((1, 2, 2, 1), dtype=np.float32)  # every cell ties
    y = np.empty((1, 1, 1, 1), dtype=np.float32)
    argmax = np.empty((1, 1, 1, 1), dtype=np.int32)
    pool.max_pool2d_forward_argmax(x, 2, 2, 2, 2, 0, 0, y, argmax, 1)
    assert argmax[0, 0, 0, 0] == 0
    dx = np.empty_like(x)
    pool.max_pool2d_backward(np.ones_like(y), argmax, 2, 2, 2, 2, 0, 0, dx, 1)
    np.testing.assert_array_equal(dx.ravel(), [1, 0, 0, 0])


def test_large_parallel_matches_serial():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 33, 31, 16)).astype(np.float32)
    y1 = np.empty((4, 17, 16, 16), np.float32)
    y2 = np.empty_like(y1)
    for fn in (pool.max_pool2d_forward, pool.avg_pool2d_forward):
        fn(x, 3, 3, 2, 2, 1, 1, y1, 1)
        fn(x, 3, 3, 2, 2, 1, 1, y2, 2)
        np.testing.assert_array_equal(y1, y2)


def test_empty_batch_is_a_no_op():
    x = np.empty((0, 4, 4, 2), np.float32)
    y = np.empty((0, 2, 2, 2), np.float32)
    pool.max_pool2d_forward(x, 2, 2, 2, 2, 0, 0, y, 1)
    pool.avg_pool2d_forward(x, 2, 2, 2, 2, 0, 0, y, 1)
    assert y.shape == (0, 2, 2, 2)
