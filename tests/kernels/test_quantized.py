"""int8 kernels (kernels/quantized.py) against the NumPy reference (tests/reference/quantized.py):
exact int32 products on every ISA path (set_isa), 1 and 2 threads identical."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference import quantized as ref  # noqa: E402

from dlcore.kernels import quantized  # noqa: E402

# (N, K, M): edges of the 8/4/2/1-row tiles, K not a multiple of 4, M not a multiple of 16 or 32
SHAPES = [(1, 1, 1), (3, 5, 17), (13, 37, 50), (9, 64, 32), (70, 130, 33), (2, 4, 16),
          (23, 100, 72), (13, 300, 128), (7, 2060, 40)]  # VNNI: 6x4-panel tiles and tails; rows past 2048 bytes


def rng(seed):
    return np.random.default_rng(seed)


@pytest.fixture(params=[0, 1, 2], ids=["vnni", "avx2", "baseline"])
def isa(request):
    """Runs a test with each int8 GEMM path the CPU has (set_isa), then restores the default."""
    old = quantized.set_isa(request.param)
    if old < 0:
        pytest.skip("the CPU lacks this ISA")
    yield request.param
    quantized.set_isa(old)


def _pack(w):
    k, m = w.shape
    packed = np.empty(((m + 15) // 16) * ((k + 3) // 4) * 64, np.int8)
    csum = np.empty((m + 15) // 16 * 16, np.int32)
    quantized.int8_pack(w, packed, csum)
    return packed, csum


def _quantize(x):
    n, k = x.shape
    q = np.full((n, (k + 3) // 4 * 4), 99, np.int8)  # the padding must be overwritten with zeros
    scale = np.empty(n, np.float32)
    quantized.quantize_rows(x, q, scale, 1)
    return q, scale


def test_kernel_table():
    assert set(quantized.KERNELS) == {"quantize_rows", "int8_pack", "int8_matmul", "int8_dense_forward",
                                      "int8_embedding_forward", "quantize_static", "int8_conv2d_forward",
                                      "int8_depthwise_forward", "int8_max_pool2d_forward", "int8_lstm_forward",
                                      "int8_gru_forward"}


def test_quantize_rows_matches_keras_rule():
    x = rng(0).normal(size=(9, 23)).astype(np.float32)
    x[3] = 0.0
    x[4, :4] = [0.5, -0.5, 1.5, 2.5]  # ties after scaling are exercised by the random rows too
    q, scale = _quantize(x)
    q_ref, scale_ref = ref.quantize_rows(x)
    np.testing.assert_array_equal(scale, scale_ref)
    np.testing.assert_array_equal(q[:, :23], q_ref)
    assert (q[:, 23:] == 0).all()


@pytest.mark.parametrize("shape", SHAPES)
def test_int8_matmul_exact_on_every_path(shape, isa):
    n, k, m = shape
    q = rng(1).integers(-127, 128, size=(n, k)).astype(np.int8)
    q[0, :] = -127  # the extremes: no saturation on the AVX2 path
    w = rng(2).integers(-127, 128, size=(k, m)).astype(np.int8)
    w[:, 0] = 127
    qp = np.zeros((n, (k + 3) // 4 * 4), np.int8)
    qp[:, :k] = q
    packed, csum = _pack(w)
    np.testing.assert_array_equal(csum[:m], w.astype(np.int64).sum(0))
    expected = ref.int8_matmul(q, w)
    for threads in (1, 2):
        acc = np.empty((n, csum.size), np.int32)
        quantized.int8_matmul(qp, packed, csum, acc, threads)
        np.testing.assert_array_equal(acc[:, :m], expected)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("shape", [(3, 5, 17), (130, 70, 40)])
def test_int8_dense_forward_against_reference(shape, relu, isa):
    n, k, m = shape
    x = rng(3).normal(size=(n, k)).astype(np.float32)
    w = rng(4).integers(-127, 128, size=(k, m)).astype(np.int8)
    w_scale = rng(5).uniform(50, 300, size=m).astype(np.float32)
    bias = rng(6).normal(size=m).astype(np.float32)
    packed, csum = _pack(w)
    outs = []
    for threads in (1, 2):
        y = np.empty((n, m), np.float32)
        quantized.int8_dense_forward(x, packed, csum, w_scale, bias, int(relu), 0.0, y, threads)
        outs.append(y)
    np.testing.assert_array_equal(outs[0], outs[1])
    # same float32 operations in the same order as the reference: equal
    np.testing.assert_array_equal(outs[0], ref.int8_dense(x, w, w_scale, bias, relu))


def test_int8_dense_forward_no_bias_and_other_activation():
    x = rng(7).normal(size=(4, 9)).astype(np.float32)
    w = rng(8).integers(-127, 128, size=(9, 6)).astype(np.int8)
    w_scale = np.full(6, 100.0, np.float32)
    packed, csum = _pack(w)
    y = np.empty((4, 6), np.float32)
    quantized.int8_dense_forward(x, packed, csum, w_scale, None, 3, 0.0, y, 1)  # tanh
    np.testing.assert_allclose(y, np.tanh(ref.int8_dense(x, w, w_scale)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_int8_embedding_forward(n_threads):
    table = rng(9).integers(-127, 128, size=(11, 5)).astype(np.int8)
    scale = rng(10).uniform(1, 100, size=11).astype(np.float32)
    ids = rng(11).integers(0, 11, size=37).astype(np.int64)
    y = np.empty((37, 5), np.float32)
    quantized.int8_embedding_forward(ids, table, scale, y, n_threads)
    np.testing.assert_array_equal(y, ref.int8_embedding(ids, table, scale))
    y[:] = 7.0
    with pytest.raises(ValueError, match=r"\[0, 11\), received 11 at position 1"):
        quantized.int8_embedding_forward(np.array([0, 11], np.int64), table, scale, y[:2], n_threads)
    assert np.all(y == 7.0)  # nothing written


def test_quantize_rows_nan_row_gives_nan_outputs():
    x = rng(12).normal(size=(3, 10)).astype(np.float32)
    x[1, 4] = np.nan
    q, scale = _quantize(x)
    assert np.isnan(scale[1]) and not np.isnan(scale[[0, 2]]).any()
    assert (q[1] == 0).all()
    w = rng(13).integers(-127, 128, size=(10, 4)).astype(np.int8)
    packed, csum = _pack(w)
    y = np.empty((3, 4), np.float32)
    quantized.int8_dense_forward(x, packed, csum, np.full(4, 50.0, np.float32), None, 0, 0.0, y, 1)
    assert np.isnan(y[1]).all() and np.isfinite(y[[0, 2]]).all()
    with pytest.raises(ValueError, match="x has 3 rows, y has 2"):
        quantized.int8_dense_forward(x, packed, csum, np.full(4, 50.0, np.float32), None, 0, 0.0, y[:2], 1)


def test_quantize_static_half_to_even_clip_and_nan():
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 300.0, -300.0, np.nan, np.inf, 0.2], np.float32)
    x = np.concatenate([x, rng(14).normal(size=70001).astype(np.float32)])  # more than one task
    for threads in (1, 2):
        q = np.full(x.size, 7, np.int8)
        quantized.quantize_static(x, np.float32(1.0), q, threads)
        np.testing.assert_array_equal(q[:7], [0, 2, 2, 0, -2, 127, -127])
        assert q[7] == 0 and q[8] == 127  # NaN gives 0; inf saturates
        np.testing.assert_array_equal(q[9:], ref.quantize_static(x[9:], 1.0))


# (N, H, W, C, KH, KW, M, strides, pads, dilation): 3x3 valid, same-padded, strided, dilated, 1x1 in place
# (C % 4 == 0) and not (C = 3), one input channel, M not a multiple of 16, more pixels than one task
CONV_CASES = [
    (2, 7, 6, 3, 3, 3, 17, (1, 1), (0, 0), (1, 1)),
    (1, 8, 8, 5, 3, 3, 32, (1, 1), (1, 1), (1, 1)),
    (2, 9, 7, 4, 3, 2, 8, (2, 2), (1, 0), (1, 1)),
    (1, 9, 9, 2, 3, 3, 5, (1, 1), (2, 2), (2, 2)),
    (3, 5, 5, 8, 1, 1, 40, (1, 1), (0, 0), (1, 1)),
    (2, 4, 5, 3, 1, 1, 6, (1, 1), (0, 0), (1, 1)),
    (4, 12, 12, 1, 3, 3, 33, (1, 1), (0, 0), (1, 1)),
]


def _out_hw(h, w, kh, kw, s, p, d):
    return ((h + 2 * p[0] - (kh - 1) * d[0] - 1) // s[0] + 1, (w + 2 * p[1] - (kw - 1) * d[1] - 1) // s[1] + 1)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("case", CONV_CASES)
def test_int8_conv2d_forward_against_reference(case, relu, isa):
    n, h, w, c, kh, kw, m, s, p, d = case
    oh, ow = _out_hw(h, w, kh, kw, s, p, d)
    q = rng(15).integers(-127, 128, size=(n, h, w, c)).astype(np.int8)
    x_scale = rng(16).uniform(20, 60, size=n).astype(np.float32)
    wq = rng(17).integers(-127, 128, size=(kh, kw, c, m)).astype(np.int8)
    w_scale = rng(18).uniform(50, 300, size=m).astype(np.float32)
    bias = rng(19).normal(size=m).astype(np.float32)
    packed, csum = _pack(wq.reshape(-1, m))
    code = int(relu)
    expected = ref.int8_conv2d(q, x_scale, wq, w_scale, bias, s, p, d, (oh, ow), relu=relu)
    for threads in (1, 2):
        y = np.full((n * oh * ow, m), np.nan, np.float32)
        quantized.int8_conv2d_forward(q, x_scale, packed, csum, w_scale, bias, kh, kw, *s, *p, *d, oh, ow, code, 0.0,
                                      y, None, 0.0, threads)
        np.testing.assert_array_equal(y.reshape(n, oh, ow, m), expected)
        yq = np.empty((n * oh * ow, m), np.int8)
        quantized.int8_conv2d_forward(q, x_scale, packed, csum, w_scale, bias, kh, kw, *s, *p, *d, oh, ow, code, 0.0,
                                      None, yq, np.float32(9.5), threads)
        np.testing.assert_array_equal(yq.reshape(n, oh, ow, m), ref.quantize_static(expected, 9.5))


@pytest.mark.parametrize("dm", [1, 3])
@pytest.mark.parametrize("case", [CONV_CASES[0], CONV_CASES[2], CONV_CASES[3], CONV_CASES[6]])
def test_int8_depthwise_forward_against_reference(case, dm):
    n, h, w, c, kh, kw, _, s, p, d = case
    oh, ow = _out_hw(h, w, kh, kw, s, p, d)
    m = c * dm
    q = rng(20).integers(-127, 128, size=(n, h, w, c)).astype(np.int8)
    x_scale = rng(21).uniform(20, 60, size=n).astype(np.float32)
    wq = rng(22).integers(-127, 128, size=(kh, kw, c, dm)).astype(np.int8)
    w_scale = rng(23).uniform(50, 300, size=m).astype(np.float32)
    expected = ref.int8_conv2d(q, x_scale, wq.reshape(kh, kw, 1, m), w_scale, None, s, p, d, (oh, ow), groups=c)
    for threads in (1, 2):
        y = np.empty((n * oh * ow, m), np.float32)
        quantized.int8_depthwise_forward(q, x_scale, wq.reshape(kh, kw, m), w_scale, None, *s, *p, *d, oh, ow, 0, 0.0,
                                         y, None, 0.0, threads)
        np.testing.assert_array_equal(y.reshape(n, oh, ow, m), expected)
        yq = np.empty((n * oh * ow, m), np.int8)
        quantized.int8_depthwise_forward(q, x_scale, wq.reshape(kh, kw, m), w_scale, None, *s, *p, *d, oh, ow, 1, 0.0,
                                         None, yq, np.float32(3.0), threads)
        np.testing.assert_array_equal(yq.reshape(n, oh, ow, m), ref.quantize_static(np.maximum(expected, 0), 3.0))


def test_int8_conv_kernels_refuse_bad_outputs():
    q = np.zeros((1, 4, 4, 2), np.int8)
    packed, csum = _pack(np.ones((18, 3), np.int8))
    scales = np.ones(1, np.float32), np.ones(3, np.float32)
    with pytest.raises(ValueError, match="exactly one"):
        quantized.int8_conv2d_forward(q, scales[0], packed, csum, scales[1], None, 3, 3, 1, 1, 0, 0, 1, 1, 2, 2, 0, 0.0,
                                      None, None, 0.0, 1)
    with pytest.raises(ValueError, match="rows"):
        quantized.int8_conv2d_forward(q, scales[0], packed, csum, scales[1], None, 3, 3, 1, 1, 0, 0, 1, 1, 2, 2, 0, 0.0,
                                      np.empty((3, 3), np.float32), None, 0.0, 1)


@pytest.mark.parametrize("pool,strides", [((2, 2), (2, 2)), ((3, 2), (1, 2)), ((1, 1), (1, 1))])
def test_int8_max_pool2d_forward(pool, strides):
    x = rng(24).integers(-127, 128, size=(3, 7, 6, 5)).astype(np.int8)
    expected = ref.int8_max_pool2d(x, pool, strides)
    for threads in (1, 2):
        y = np.empty(expected.shape, np.int8)
        quantized.int8_max_pool2d_forward(x, *pool, *strides, y, threads)
        np.testing.assert_array_equal(y, expected)


def test_quantize_rows_rounds_the_float32_product_on_ties():
    # Keras rounds the float32 product x * scale; an FMA-fused rounding would round the exact product,
    # which differs where the float32 product is a tie (k + 0.5) and the exact one is not
    scale = np.float32(127.0) / (np.float32(3.0) + np.float32(1e-7))
    x = rng(25).uniform(-3, 3, size=2_000_000).astype(np.float32)
    product = x * scale
    exact = x.astype(np.float64) * np.float64(scale)
    ties = x[(product % 1 == 0.5) & (exact != product)][:22]
    assert ties.size > 0
    row = np.concatenate([[3.0], ties]).astype(np.float32)[None, :]  # max |x| = 3 sets the scale
    q, s = _quantize(row)
    q_ref, s_ref = ref.quantize_rows(row)
    assert s[0] == s_ref[0] == scale
    np.testing.assert_array_equal(q[:, :row.shape[1]], q_ref)
