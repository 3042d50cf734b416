"""Pooling kernels against the NumPy reference (tests/reference/pooling.py): forward, argmax and
backward, float32/float64, valid/same padding, overlapping and strided windows, odd sizes,
batch 1; bit-identical results for 1 and 2 threads. The 2x2 stride-2 kernels against the general
ones: bit-identical outputs and argmax, ties, NaN, odd sizes, channel counts off the SIMD width.
Global pooling against NumPy: ties share the max gradient, NaN propagates."""
import numpy as np
import pytest

from dlcore.kernels import pooling as pool
from reference import pooling as ref

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
                                 "avg_pool2d_forward", "avg_pool2d_backward", "max_pool2d_2x2_forward",
                                 "max_pool2d_2x2_backward", "avg_pool2d_2x2_forward", "avg_pool2d_2x2_backward",
                                 "global_avg_pool_forward", "global_avg_pool_backward", "global_max_pool_forward",
                                 "global_max_pool_backward"}


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


# ---- the 2x2 stride-2 kernels against the general ones ------------------------------------------
TILE_SHAPES = [(2, 6, 6, 3), (1, 7, 5, 2), (1, 30, 30, 32), (3, 13, 13, 64), (2, 4, 4, 128), (1, 5, 9, 17),
               (2, 2, 2, 1), (1, 3, 3, 40), (1, 9, 4, 33)]


def _tie_heavy(rng, shape, dtype):
    """Values from {-1, 0, 1}: most windows hold ties, several of them for the maximum."""
    return rng.integers(-1, 2, shape).astype(dtype)


@pytest.fixture(params=["intrinsics", "streaming", "portable"])
def backward_row(request):
    """max_pool2d_2x2_backward with its AVX-512 intrinsics row (where the CPU has it), that row
    with non-temporal stores at any size (where the rows are 16-byte aligned), and neither."""
    from dlcore.kernels import _pooling as _pool

    _pool._allow_intrinsics(request.param != "portable")
    threshold = _pool._set_stream_min_bytes(0)
    if request.param != "streaming":
        _pool._set_stream_min_bytes(threshold)
    yield request.param
    _pool._allow_intrinsics(True)
    _pool._set_stream_min_bytes(threshold)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", TILE_SHAPES)
@pytest.mark.parametrize("ties", [False, True])
def test_max_pool_2x2_matches_general(shape, ties, dtype, backward_row):
    rng = np.random.default_rng(4)
    x = _tie_heavy(rng, shape, dtype) if ties else rng.standard_normal(shape).astype(dtype)
    n, h, w, c = shape
    out_shape = (n, h // 2, w // 2, c)
    geometry = (2, 2, 2, 2, 0, 0)
    y_ref = np.empty(out_shape, dtype)
    arg_ref = np.empty(out_shape, np.int32)
    pool.max_pool2d_forward_argmax(x, *geometry, y_ref, arg_ref, 1)
    for threads in (1, 2):
        y = np.full(out_shape, np.nan, dtype)
        pool.max_pool2d_2x2_forward(x, y, None, threads)
        np.testing.assert_array_equal(y, y_ref)
        y = np.full(out_shape, np.nan, dtype)
        argmax = np.full(out_shape, 255, np.uint8)
        pool.max_pool2d_2x2_forward(x, y, argmax, threads)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(argmax, arg_ref)  # the same tie rule: the first maximum
    dy = rng.standard_normal(out_shape).astype(dtype)
    dx_ref = np.empty(shape, dtype)
    pool.max_pool2d_backward(dy, arg_ref, *geometry, dx_ref, 1)
    for threads in (1, 2):
        dx = np.full(shape, np.nan, dtype)  # fully overwritten, the odd last row/column too
        pool.max_pool2d_2x2_backward(dy, argmax, dx, threads)
        np.testing.assert_array_equal(dx, dx_ref)
    if not ties:
        np.testing.assert_allclose(dx_ref, ref.pool2d_backward(x, dy, (2, 2), (2, 2), "valid", "max"), **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", TILE_SHAPES)
def test_avg_pool_2x2_matches_general(shape, dtype):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(dtype)
    n, h, w, c = shape
    out_shape = (n, h // 2, w // 2, c)
    geometry = (2, 2, 2, 2, 0, 0)
    y_ref = np.empty(out_shape, dtype)
    pool.avg_pool2d_forward(x, *geometry, y_ref, 1)
    dy = rng.standard_normal(out_shape).astype(dtype)
    dx_ref = np.empty(shape, dtype)
    pool.avg_pool2d_backward(dy, *geometry, dx_ref, 1)
    for threads in (1, 2):
        y = np.full(out_shape, np.nan, dtype)
        pool.avg_pool2d_2x2_forward(x, y, threads)
        np.testing.assert_array_equal(y, y_ref)
        dx = np.full(shape, np.nan, dtype)
        pool.avg_pool2d_2x2_backward(dy, dx, threads)
        np.testing.assert_array_equal(dx, dx_ref)


def test_max_pool_2x2_ties_and_nan_as_general():
    # every position of the maximum, the all-equal window, -0.0 against 0.0, NaN first and later
    windows = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [2, 2, 2, 2], [0, 3, 3, 1],
               [-0.0, 0.0, 0.0, -0.0], [np.nan, 5, 1, 1], [1, np.nan, 5, 1], [-np.inf] * 4]
    x = np.array(windows, np.float32).reshape(len(windows), 2, 2, 1).transpose(3, 1, 2, 0).copy()  # C = windows
    y_ref, arg_ref = np.empty((1, 1, 1, len(windows)), np.float32), np.empty((1, 1, 1, len(windows)), np.int32)
    pool.max_pool2d_forward_argmax(x, 2, 2, 2, 2, 0, 0, y_ref, arg_ref, 1)
    y, argmax = np.empty_like(y_ref), np.empty(y_ref.shape, np.uint8)
    pool.max_pool2d_2x2_forward(x, y, argmax, 1)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(argmax, arg_ref)
    assert argmax.ravel()[:7].tolist() == [0, 1, 2, 3, 0, 1, 0]


# ---- global pooling ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 20, 3), (3, 1, 7), (2, 9, 40), (1, 64, 128), (4, 5, 17)])  # (N, L, C)
def test_global_pooling(shape, dtype):
    rng = np.random.default_rng(6)
    x = rng.integers(-2, 3, shape).astype(dtype)  # ties for the max in most channels
    dy = rng.standard_normal((shape[0], shape[2])).astype(dtype)
    results = []
    for threads in (1, 2):
        y_max, y_avg = np.full((2, shape[0], shape[2]), np.nan, dtype)
        pool.global_max_pool_forward(x, y_max, threads)
        pool.global_avg_pool_forward(x, y_avg, threads)
        dx_max, dx_avg = np.full((2,) + shape, np.nan, dtype)
        pool.global_max_pool_backward(x, y_max, dy, dx_max, threads)
        pool.global_avg_pool_backward(dy, dx_avg, threads)
        results.append((y_max, y_avg, dx_max, dx_avg))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)  # independent of the thread count
    y_max, y_avg, dx_max, dx_avg = results[0]
    np.testing.assert_array_equal(y_max, ref.global_pool(x, "max"))
    np.testing.assert_allclose(y_avg, ref.global_pool(x, "average"), **_tol(dtype))
    np.testing.assert_allclose(dx_max, ref.global_pool_backward(x, dy, "max"), **_tol(dtype))
    np.testing.assert_allclose(dx_avg, ref.global_pool_backward(x, dy, "average"), **_tol(dtype))


def test_global_max_pooling_nan():
    x = np.array([[[1.0, 2.0], [np.nan, 5.0], [3.0, 5.0]]], np.float32)  # (1, 3, 2)
    y = np.empty((1, 2), np.float32)
    pool.global_max_pool_forward(x, y, 1)
    assert np.isnan(y[0, 0]) and y[0, 1] == 5.0  # NaN wins, as numpy.max
    dx = np.empty_like(x)
    pool.global_max_pool_backward(x, y, np.ones((1, 2), np.float32), dx, 1)
    assert np.isnan(dx[0, :, 0]).all()  # no cell equals a NaN max: NaN, as 0/0 in TensorFlow's gradient
    np.testing.assert_array_equal(dx[0, :, 1], [0.0, 0.5, 0.5])
