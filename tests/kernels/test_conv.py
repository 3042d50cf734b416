"""Conv kernels (conv2d_forward / _backward_input / _backward_weight) against the NumPy references
in tests/reference/conv.py: every path (pointwise, direct, im2col), strides, paddings (top/left
given, bottom/right implied), dilations, groups, odd sizes, batch 1, both dtypes; the fused
epilogue for every activation; bit-identical results for 1 and 2 threads; BLAS's thread count
restored; safety under concurrent Python threads."""
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import stalled_team_workers  # noqa: E402
from reference import conv as ref  # noqa: E402
from reference import elementwise as ref_act  # noqa: E402

from dlcore.kernels import _config, _conv, _gemm, conv, elementwise  # noqa: E402

# float32 products: BLAS; the path _gemm's choice takes per shape ("auto"); each own ISA level the
# CPU runs (dl_sgemm.h / dl_sgemm_isa.h tiles) after im2col; where the CPU has AVX-512, the
# implicit-GEMM forward of stride-1 convolutions (dl_conv_tiles.h)
GEMMS = (["blas", "auto-im2col"] + [f"{p}-im2col" for p in _gemm.AVAILABLE_PATHS if p != "blas"]
         + (["own-implicit"] if _conv.OWN_SGEMM else []))


@pytest.fixture(params=GEMMS)
def gemm(request):
    path = request.param.split("-")[0]
    previous = _conv.set_tuning(own_sgemm=path != "blas",
                                implicit=2 if request.param == "own-implicit" else 0)
    previous_path = _gemm.set_path({"own": "avx512", "blas": "auto"}.get(path, path))
    previous_winograd = _conv.set_winograd(1 if request.param == "own-implicit" else 0)  # im2col: im2col
    yield request.param
    _conv.set_winograd(*previous_winograd)
    _gemm.set_path(previous_path)
    _conv.set_tuning(own_sgemm=previous[3], implicit=previous[4])

DTYPES = (np.float32, np.float64)
RTOL = {np.float32: 2e-5, np.float64: 1e-11}

# (N, H, W, C_in, C_out, (KH, KW), (sh, sw), ((pt, pb), (pl, pr)), (dh, dw), groups, path)
CASES = [
    (2, 7, 6, 4, 6, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1, "im2col"),        # 3x3 "same"
    (1, 9, 8, 4, 6, (3, 2), (2, 1), ((1, 0), (0, 1)), (1, 2), 2, "im2col"),        # asymmetric, groups
    (2, 6, 7, 6, 4, (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), 2, "im2col"),        # stride 2, groups
    (1, 12, 11, 5, 7, (5, 5), (3, 3), ((2, 2), (1, 0)), (1, 1), 1, "im2col"),      # odd, big stride
    (1, 5, 5, 2, 2, (3, 3), (1, 1), ((3, 3), (0, 0)), (1, 1), 1, "im2col"),        # padding > extent
    (2, 9, 9, 3, 4, (3, 3), (1, 1), ((0, 0), (0, 0)), (2, 3), 1, "im2col"),        # dilation
    (1, 1, 23, 3, 4, (1, 3), (1, 2), ((0, 0), (2, 0)), (1, 1), 1, "im2col"),       # 1-D, causal
    (1, 1, 301, 3, 4, (1, 3), (1, 1), ((0, 0), (2, 0)), (1, 2), 1, "im2col"),      # 1-D, long
    (3, 5, 5, 3, 6, (1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1), 1, "pointwise"),
    (3, 5, 5, 4, 8, (1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1), 2, "pointwise"),
    (2, 7, 7, 4, 5, (1, 1), (2, 2), ((0, 0), (0, 0)), (1, 1), 1, "im2col"),        # 1x1 stride 2
    (2, 6, 7, 3, 6, (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), 3, "direct"),        # depthwise x2
    (2, 6, 7, 3, 3, (3, 3), (1, 1), ((1, 1), (1, 1)), (2, 2), 3, "direct"),        # depthwise, dilated
    (2, 6, 7, 1, 5, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1, "im2col"),        # one input channel
    (2, 6, 7, 2, 4, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 2, "direct"),        # one channel per group
    (1, 4, 4, 2, 2, (4, 4), (1, 1), ((0, 0), (0, 0)), (1, 1), 1, "im2col"),        # kernel == input
]


def rand(shape, dtype, seed):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape).astype(dtype)


def unpack(case):
    n, h, w, c, o, (kh, kw), (sh, sw), pads, (dh, dw), groups, path = case
    return n, h, w, c, o, kh, kw, sh, sw, pads, dh, dw, groups, path


def tol(dtype, k):
    return dict(rtol=RTOL[dtype], atol=RTOL[dtype] * max(1.0, np.sqrt(k)) * 4)


def test_kernel_table():
    assert conv.KERNELS == {"conv2d_forward": conv.conv2d_forward,
                            "conv2d_pool2x2_forward": conv.conv2d_pool2x2_forward,
                            "conv2d_pool2x2_backward_weight": conv.conv2d_pool2x2_backward_weight,
                            "conv2d_backward_input": conv.conv2d_backward_input,
                            "conv2d_backward_weight": conv.conv2d_backward_weight,
                            "add_bias_channels": conv.add_bias_channels,
                            "depth_columns": conv.depth_columns,
                            "depth_columns_backward": conv.depth_columns_backward,
                            "kernel_depth_to_channels": conv.kernel_depth_to_channels,
                            "kernel_channels_to_depth": conv.kernel_channels_to_depth}


@pytest.mark.parametrize("dtype", DTYPES)
def test_add_bias_channels(dtype):
    y, b = rand((2 * 3 * 4, 5), dtype, 1), rand((5,), dtype, 2)
    expected = ref.bias_add(y, b)
    conv.add_bias_channels(y, b)
    np.testing.assert_allclose(y, expected, rtol=RTOL[dtype])


# (N, D, KD, stride_d, (pad before, after), dilation_d, groups): Conv3D's depth axis
DEPTH_CASES = [(2, 5, 3, 1, (1, 1), 1, 1), (1, 7, 2, 2, (0, 1), 1, 2), (2, 6, 2, 1, (2, 0), 2, 1),
               (1, 2, 3, 1, (3, 3), 1, 1)]  # padding wider than the depth: whole taps of zeros


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", DEPTH_CASES, ids=str)
def test_depth_columns_make_conv3d_from_conv2d(case, dtype):
    n, d, kd, sd, (lo, hi), dd, groups = case
    h, w, c, o, kh, kw = 4, 3, 4, 6, 2, 3
    od = (d + lo + hi - (kd - 1) * dd - 1) // sd + 1
    x, k = rand((n, d, h, w, c), dtype, 3), rand((kd, kh, kw, c // groups, o), dtype, 4)
    cols = np.full((n * od, h, w, groups * kd * (c // groups)), np.nan, dtype)
    conv.depth_columns(x, kd, sd, lo, dd, groups, cols)
    np.testing.assert_array_equal(cols, ref.depth_columns(x, kd, sd, lo, dd, groups, od))
    k4 = np.full((kh, kw, kd * (c // groups), o), np.nan, dtype)
    conv.kernel_depth_to_channels(k, k4)
    np.testing.assert_array_equal(k4, ref.kernel_depth_to_channels(k))
    back = np.full_like(k, np.nan)
    conv.kernel_channels_to_depth(k4, back)
    np.testing.assert_array_equal(back, ref.kernel_channels_to_depth(k4, kd))
    np.testing.assert_array_equal(back, k)
    y = np.empty((n * od, h - kh + 1, w - kw + 1, o), dtype)
    conv.conv2d_forward(cols, k4, None, 1, 1, 0, 0, 1, 1, groups, 0, 0.0, y, 1)
    expected = ref.conv3d(x, k, (sd, 1, 1), ((lo, hi), (0, 0), (0, 0)), (dd, 1, 1), groups)
    np.testing.assert_allclose(y.reshape(expected.shape), expected, **tol(dtype, kd * kh * kw * c))
    dcols = rand(cols.shape, dtype, 5)
    dx = np.full(x.shape, np.nan, dtype)
    conv.depth_columns_backward(dcols, kd, sd, lo, dd, groups, dx)
    np.testing.assert_allclose(dx, ref.depth_columns_vjp(dcols, x.shape, kd, sd, lo, dd, groups),
                               rtol=RTOL[dtype], atol=RTOL[dtype])
    # the adjoint identity <depth_columns(x), dcols> == <x, dx>
    np.testing.assert_allclose(np.vdot(cols.astype(np.float64), dcols), np.vdot(x.astype(np.float64), dx),
                               rtol=RTOL[dtype] * 10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[-1]}-{c[0]}x{c[1]}x{c[2]}x{c[3]}-g{c[9]}")
def test_forward_and_backward_against_reference(case, dtype, gemm):
    n, h, w, c, o, kh, kw, sh, sw, pads, dh, dw, groups, path = unpack(case)
    (pt, pb), (pl, pr) = pads
    x = rand((n, h, w, c), dtype, 1)
    k = rand((kh, kw, c // groups, o), dtype, 2)
    b = rand((o,), dtype, 3)
    expected = ref.conv2d(x, k, (sh, sw), pads, (dh, dw), groups, bias=b)
    assert conv.conv_path(kh, kw, sh, sw, pt, pl, h, w, expected.shape[1], expected.shape[2], c, groups) == path
    dy = rand(expected.shape, dtype, 4)
    depth = kh * kw * c // groups
    results = []
    for threads in (1, 2):
        y = np.full(expected.shape, np.nan, dtype)
        conv.conv2d_forward(x, k, b, sh, sw, pt, pl, dh, dw, groups, 0, 0.0, y, threads)
        np.testing.assert_allclose(y, expected, **tol(dtype, depth))
        dx = np.full(x.shape, np.nan, dtype)
        conv.conv2d_backward_input(dy, k, sh, sw, pt, pl, dh, dw, groups, dx, threads)
        np.testing.assert_allclose(dx, ref.conv2d_transpose(dy, k, (h, w), (sh, sw), (pt, pl), (dh, dw), groups),
                                   **tol(dtype, o))
        dk, db = np.full(k.shape, np.nan, dtype), np.full(o, np.nan, dtype)
        conv.conv2d_backward_weight(x, dy, sh, sw, pt, pl, dh, dw, groups, dk, db, threads)
        np.testing.assert_allclose(dk, ref.conv2d_grad_weight(x, dy, (kh, kw), (sh, sw), pads, (dh, dw), groups),
                                   **tol(dtype, dy.size // o))
        np.testing.assert_allclose(db, dy.astype(np.float64).sum(axis=(0, 1, 2)), **tol(dtype, dy.size // o))
        dk2 = np.full(k.shape, np.nan, dtype)
        conv.conv2d_backward_weight(x, dy, sh, sw, pt, pl, dh, dw, groups, dk2, None, threads)
        np.testing.assert_array_equal(dk2, dk)
        results.append((y, dx, dk, db))
    for a, b_ in zip(*results):  # 1 and 2 threads: bit-identical
        np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("name", list(elementwise.ACTIVATIONS))
def test_forward_epilogue_activations(name):
    code, alpha = elementwise.ACTIVATIONS[name], {"leaky_relu": 0.2, "elu": 0.7}.get(name, 0.0)
    for case in (CASES[0], CASES[8], CASES[11]):
        n, h, w, c, o, kh, kw, sh, sw, pads, dh, dw, groups, _ = unpack(case)
        x, k, b = rand((n, h, w, c), np.float64, 1), rand((kh, kw, c // groups, o), np.float64, 2), rand((o,), np.float64, 3)
        z = ref.conv2d(x, k, (sh, sw), pads, (dh, dw), groups, bias=b)
        if name in ("softmax", "log_softmax"):
            expected = getattr(ref_act, name)(z)
        else:
            expected = ref_act.FORWARD[name](z, alpha)
        y = np.empty(z.shape)
        conv.conv2d_forward(x, k, b, sh, sw, pads[0][0], pads[1][0], dh, dw, groups, code, alpha, y, 2)
        np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["linear", "relu", "sigmoid"])
def test_forward_epilogue_float32(name, gemm):
    # linear and relu are fused into the own GEMM's tile stores; others run the row epilogue
    code = elementwise.ACTIVATIONS[name]
    for case in CASES:
        n, h, w, c, o, kh, kw, sh, sw, pads, dh, dw, groups, _ = unpack(case)
        x, k, b = rand((n, h, w, c), np.float32, 1), rand((kh, kw, c // groups, o), np.float32, 2), rand((o,), np.float32, 3)
        z = ref.conv2d(x.astype(np.float64), k.astype(np.float64), (sh, sw), pads, (dh, dw), groups, bias=b)
        y = np.full(z.shape, np.nan, np.float32)
        conv.conv2d_forward(x, k, b, sh, sw, pads[0][0], pads[1][0], dh, dw, groups, code, 0.0, y, 1)
        np.testing.assert_allclose(y, ref_act.FORWARD[name](z, 0.0), **tol(np.float32, kh * kw * c))


def test_no_bias_and_zero_sizes():
    x, k = rand((2, 5, 5, 3), np.float32, 1), rand((3, 3, 3, 4), np.float32, 2)
    y = np.empty((2, 3, 3, 4), np.float32)
    conv.conv2d_forward(x, k, None, 1, 1, 0, 0, 1, 1, 1, 0, 0.0, y, 1)
    np.testing.assert_allclose(y, ref.conv2d(x, k), rtol=1e-5, atol=1e-5)
    # zero batch: nothing to do, nothing read
    conv.conv2d_forward(x[:0], k, None, 1, 1, 0, 0, 1, 1, 1, 0, 0.0, y[:0], 2)
    conv.conv2d_backward_input(y[:0], k, 1, 1, 0, 0, 1, 1, 1, x[:0].copy(), 2)
    dk = np.full(k.shape, np.nan, np.float32)
    db = np.full(4, np.nan, np.float32)
    conv.conv2d_backward_weight(x[:0], y[:0], 1, 1, 0, 0, 1, 1, 1, dk, db, 2)
    assert not dk.any() and not db.any()
    # zero input channels: y = bias
    x0, k0, b = np.empty((1, 3, 3, 0), np.float32), np.empty((1, 1, 0, 2), np.float32), np.ones(2, np.float32)
    y0 = np.full((1, 3, 3, 2), np.nan, np.float32)
    conv.conv2d_forward(x0, k0, b, 1, 1, 0, 0, 1, 1, 1, 0, 0.0, y0, 1)
    np.testing.assert_array_equal(y0, 1.0)


def test_transposed_output_positions_nothing_reaches_are_zero():
    # conv2d_backward_input onto a larger dx (Conv2DTranspose with output_padding): the extra
    # row/column gets exactly 0, the rest matches the scatter definition.
    dy, k = rand((2, 3, 3, 4), np.float64, 1), rand((3, 3, 2, 4), np.float64, 2)
    dx = np.full((2, 8, 8, 2), np.nan)
    conv.conv2d_backward_input(dy, k, 2, 2, 0, 0, 1, 1, 1, dx, 2)
    np.testing.assert_allclose(dx, ref.conv2d_transpose(dy, k, (8, 8), 2), rtol=1e-12, atol=1e-12)
    assert not dx[:, 7].any() and not dx[:, :, 7].any()


def test_large_chunks_are_deterministic_and_match():
    # Enough pixels for many chunks and all DW_SLOTS slots: results independent of n_threads.
    x, k = rand((4, 24, 24, 8), np.float32, 1), rand((3, 3, 8, 16), np.float32, 2)
    dy = rand((4, 24, 24, 16), np.float32, 3)
    outs = []
    for threads in (1, 2, 3):
        dk, db = np.empty_like(k), np.empty(16, np.float32)
        conv.conv2d_backward_weight(x, dy, 1, 1, 1, 1, 1, 1, 1, dk, db, threads)
        outs.append((dk, db))
    for dk, db in outs[1:]:
        np.testing.assert_array_equal(dk, outs[0][0])
        np.testing.assert_array_equal(db, outs[0][1])
    np.testing.assert_allclose(outs[0][0], ref.conv2d_grad_weight(x, dy, (3, 3), 1, ((1, 1), (1, 1))),
                               rtol=1e-4, atol=1e-3)


@pytest.mark.skipif(not _conv.OWN_SGEMM, reason="the implicit-GEMM forward needs AVX-512")
@pytest.mark.parametrize("pixels", [1, 2, 3, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 27, 29, 43])
def test_implicit_forward_every_tile_height(pixels):
    # An image of 1 x `pixels` outputs, and one of pixels/3-wide rows (tiles spanning output rows),
    # in one tile of that height or several of equal heights; 40 channels: a full and a partial
    # column block; "same" padding (the padded copy) and "valid"; bias + relu fused in the store.
    previous = _conv.set_tuning(implicit=1)
    try:
        for oh, ow in {(1, pixels), (3, pixels // 3 or 1)}:
            for pad in (0, 1):
                x = rand((2, oh + 2 - 2 * pad, ow + 2 - 2 * pad, 5), np.float32, pixels)
                k, b = rand((3, 3, 5, 40), np.float32, 7), rand((40,), np.float32, 8)
                y = np.empty((2, oh, ow, 40), np.float32)
                conv.conv2d_forward(x, k, b, 1, 1, pad, pad, 1, 1, 1, elementwise.ACTIVATIONS["relu"], 0.0, y, 1)
                expected = np.maximum(ref.conv2d(x, k, 1, ((pad, pad), (pad, pad)), bias=b), 0.0)
                np.testing.assert_allclose(y, expected, **tol(np.float32, 45))
                y2 = np.empty_like(y)
                conv.conv2d_forward(x, k, b, 1, 1, pad, pad, 1, 1, 1, elementwise.ACTIVATIONS["relu"], 0.0, y2, 2)
                np.testing.assert_array_equal(y2, y)
    finally:
        _conv.set_tuning(implicit=previous[4])


# (N, H, W, C_in, C_out, (KH, KW), (pad_top, pad_left)): odd conv outputs (the floor drops a row
# and a column), 1-3 windows per tile, several tiles across pooled rows, partial column blocks,
# "same" padding (the padded copy), one input channel, the runner's CNN layers.
POOL_CASES = [
    (2, 15, 15, 32, 64, (3, 3), (0, 0)), (1, 32, 32, 1, 32, (3, 3), (0, 0)),
    (3, 6, 6, 64, 128, (3, 3), (0, 0)), (2, 9, 11, 5, 40, (3, 2), (1, 0)),
    (1, 7, 7, 3, 7, (3, 3), (1, 1)), (2, 5, 13, 4, 33, (3, 3), (0, 0)), (1, 4, 4, 2, 3, (3, 3), (1, 1)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: f"{c[0]}x{c[1]}x{c[2]}x{c[3]}->{c[4]}")
def test_conv_pool2x2_matches_conv_then_pool(case, dtype, gemm):
    # Against the reference, and bit-identical to conv2d_forward followed by max_pool2d_2x2_forward
    # (bias + relu or linear fused in the tiles; elu through the buffered path), 1 and 2 threads.
    from dlcore.kernels import pooling
    n, h, w, c, o, (kh, kw), (pt, pl) = case
    x, k, b = rand((n, h, w, c), dtype, 1), rand((kh, kw, c, o), dtype, 2), rand((o,), dtype, 3)
    oh, ow = h + 2 * pt - kh + 1, w + 2 * pl - kw + 1
    pads = ((pt, pt), (pl, pl))
    for name in ("relu", "linear", "elu"):
        code = elementwise.ACTIVATIONS[name]
        z = np.empty((n, oh, ow, o), dtype)
        conv.conv2d_forward(x, k, b, 1, 1, pt, pl, 1, 1, 1, code, 1.0, z, 1)
        expected = np.empty((n, oh // 2, ow // 2, o), dtype)
        pooling.max_pool2d_2x2_forward(np.ascontiguousarray(z[:, :oh // 2 * 2, :ow // 2 * 2]), expected, None, 1)
        for threads in (1, 2):
            y = np.full_like(expected, np.nan)
            conv.conv2d_pool2x2_forward(x, k, b, pt, pl, code, 1.0, y, threads)
            np.testing.assert_array_equal(y, expected)
    y = np.empty_like(expected)
    conv.conv2d_pool2x2_forward(x, k, None, pt, pl, elementwise.ACTIVATIONS["relu"], 0.0, y, 1)
    np.testing.assert_allclose(y, ref.conv2d_max_pool2x2(x, k, pads, relu=True), **tol(dtype, kh * kw * c))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: f"{c[0]}x{c[1]}x{c[2]}x{c[3]}->{c[4]}")
def test_conv_pool2x2_argmax_matches_pooling_kernel(case, dtype, gemm):
    # argmax_out: the bytes max_pool2d_2x2_forward writes for the convolution's output (ties, from
    # relu's zeros, resolve to the first maximum), with y unchanged; 1 and 2 threads
    from dlcore.kernels import pooling
    n, h, w, c, o, (kh, kw), (pt, pl) = case
    x, k, b = rand((n, h, w, c), dtype, 1), rand((kh, kw, c, o), dtype, 2), rand((o,), dtype, 3) - 1
    oh, ow = h + 2 * pt - kh + 1, w + 2 * pl - kw + 1
    for name in ("relu", "linear", "elu"):
        code = elementwise.ACTIVATIONS[name]
        z = np.empty((n, oh, ow, o), dtype)
        conv.conv2d_forward(x, k, b, 1, 1, pt, pl, 1, 1, 1, code, 1.0, z, 1)
        expected = np.empty((n, oh // 2, ow // 2, o), dtype)
        expected_arg = np.empty(expected.shape, np.uint8)
        pooling.max_pool2d_2x2_forward(np.ascontiguousarray(z[:, :oh // 2 * 2, :ow // 2 * 2]), expected,
                                       expected_arg, 1)
        for threads in (1, 2):
            y, arg = np.full_like(expected, np.nan), np.full(expected.shape, 9, np.uint8)
            conv.conv2d_pool2x2_forward(x, k, b, pt, pl, code, 1.0, y, threads, arg)
            np.testing.assert_array_equal(y, expected)
            np.testing.assert_array_equal(arg, expected_arg)
    with pytest.raises(ValueError, match="argmax_out"):
        conv.conv2d_pool2x2_forward(x, k, b, pt, pl, 0, 0.0, y, 1, np.empty((1, 1, 1, 1), np.uint8))


@pytest.mark.parametrize("intrinsics", [True, False], ids=["avx512", "portable"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES + [(37, 6, 6, 1, 16, (3, 3), (0, 0)), (2, 8, 8, 2, 5, (5, 5), (2, 2))],
                         ids=lambda c: f"{c[0]}x{c[1]}x{c[2]}x{c[3]}->{c[4]}")
def test_conv_pool2x2_backward_weight(case, dtype, intrinsics):
    # the weight and bias gradients from the pooled gradient and the forward's argmax match the
    # reference (unpool to the first maximum, relu's derivative, conv2d_grad_weight), relu and
    # linear, the same bits on 1 and 2 threads; taps above one register group (5x5x2 = 50)
    n, h, w, c, o, (kh, kw), (pt, pl) = case
    x, k, b = rand((n, h, w, c), dtype, 1), rand((kh, kw, c, o), dtype, 2), rand((o,), dtype, 3) - 0.2
    oh, ow = h + 2 * pt - kh + 1, w + 2 * pl - kw + 1
    dy = rand((n, oh // 2, ow // 2, o), dtype, 4)
    pads = ((pt, pt), (pl, pl))
    previous = _conv._allow_pool_wgrad_intrinsics(intrinsics)
    try:
        for name in ("relu", "linear"):
            y, arg = np.empty(dy.shape, dtype), np.empty(dy.shape, np.uint8)
            conv.conv2d_pool2x2_forward(x, k, b, pt, pl, elementwise.ACTIVATIONS[name], 0.0, y, 1, arg)
            dw_ref, db_ref = ref.conv2d_max_pool2x2_grad(x, k, dy, pads, bias=b, relu=name == "relu")
            results = []
            for threads in (1, 2):
                dw, db = np.full_like(k, np.nan), np.full(o, np.nan, dtype)
                conv.conv2d_pool2x2_backward_weight(x, dy, y, arg, pt, pl, name == "relu", dw, db, threads)
                np.testing.assert_allclose(dw, dw_ref, **tol(dtype, n * oh * ow // 4))
                np.testing.assert_allclose(db, db_ref, **tol(dtype, n * oh * ow // 4))
                results.append((dw, db))
            np.testing.assert_array_equal(results[0][0], results[1][0])
            np.testing.assert_array_equal(results[0][1], results[1][1])
        dw = np.full_like(k, np.nan)
        conv.conv2d_pool2x2_backward_weight(x, dy, y, arg, pt, pl, False, dw, None, 1)  # no bias gradient
        np.testing.assert_allclose(dw, dw_ref, **tol(dtype, n * oh * ow // 4))
    finally:
        _conv._allow_pool_wgrad_intrinsics(previous)
    with pytest.raises(ValueError, match="argmax_nphwo"):
        wrong = np.zeros((n, oh // 2 + 1, ow // 2, o), np.uint8)
        conv.conv2d_pool2x2_backward_weight(x, dy, y, wrong, pt, pl, True, dw, None, 1)
    with pytest.raises(ValueError, match="do not agree"):
        conv.conv2d_pool2x2_backward_weight(x, dy, y, arg, pt, pl, True, np.ascontiguousarray(dw[..., :1]), None, 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("groups, stride", [(1, 1), (2, 2)])
def test_backward_input_whole_image_tasks(dtype, groups, stride, gemm):
    # many small images: each task takes several whole images (one GEMM over all their pixels);
    # the result matches the reference and does not depend on n_threads
    x_shape, k = (37, 6, 5, 4), rand((3, 3, 4 // groups, 6), dtype, 2)
    oh, ow = (6 - 3) // stride + 1, (5 - 3) // stride + 1
    dy = rand((37, oh, ow, 6), dtype, 3)
    expected = ref.conv2d_transpose(dy, k, x_shape[1:3], (stride, stride), (0, 0), (1, 1), groups)
    outs = []
    for threads in (1, 2, 3):
        dx = np.full(x_shape, np.nan, dtype)
        conv.conv2d_backward_input(dy, k, stride, stride, 0, 0, 1, 1, groups, dx, threads)
        np.testing.assert_allclose(dx, expected, **tol(dtype, 6))
        outs.append(dx)
    for dx in outs[1:]:
        np.testing.assert_array_equal(dx, outs[0])


def _blas_threads():
    import ctypes

    counts = []
    for path in _config._loaded_blas_libraries():
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_num_threads", "openblas_get_num_threads",
                     "scipy_openblas_get_num_threads64_"):
            getter = getattr(lib, name, None)
            if getter is not None:
                counts.append(getter())
                break
    return counts


def test_blas_thread_count_restored():
    before = _blas_threads()
    x, k = rand((2, 8, 8, 4), np.float32, 1), rand((3, 3, 4, 4), np.float32, 2)
    y = np.empty((2, 8, 8, 4), np.float32)
    conv.conv2d_forward(x, k, None, 1, 1, 1, 1, 1, 1, 1, 0, 0.0, y, 2)
    conv.conv2d_backward_input(y, k, 1, 1, 1, 1, 1, 1, 1, np.empty_like(x), 2)
    conv.conv2d_backward_weight(x, y, 1, 1, 1, 1, 1, 1, 1, np.empty_like(k), None, 2)
    assert _blas_threads() == before


def test_concurrent_python_threads():
    x, k = rand((4, 12, 12, 6), np.float32, 1), rand((3, 3, 6, 8), np.float32, 2)
    expected = np.empty((4, 12, 12, 8), np.float32)
    conv.conv2d_forward(x, k, None, 1, 1, 1, 1, 1, 1, 1, 0, 0.0, expected, 1)
    before = _blas_threads()
    errors = []

    def work():
        try:
            for _ in range(20):
                y = np.empty_like(expected)
                conv.conv2d_forward(x, k, None, 1, 1, 1, 1, 1, 1, 1, 0, 0.0, y, 2)
                np.testing.assert_array_equal(y, expected)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert _blas_threads() == before


def test_torch_parity_forward_backward():
    torch = pytest.importorskip("torch")
    x, k, b = rand((2, 9, 8, 6), np.float64, 1), rand((3, 3, 3, 4), np.float64, 2), rand((4,), np.float64, 3)
    y = np.empty((2, 5, 4, 4))
    conv.conv2d_forward(x, k, b, 2, 2, 1, 1, 1, 1, 2, 0, 0.0, y, 2)
    xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    kt = torch.tensor(k.transpose(3, 2, 0, 1), requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, kt, torch.tensor(b), stride=2, padding=1, groups=2)
    np.testing.assert_allclose(y, yt.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)
    dy = rand(y.shape, np.float64, 4)
    yt.backward(torch.tensor(dy.transpose(0, 3, 1, 2)))
    dx, dk = np.empty_like(x), np.empty_like(k)
    conv.conv2d_backward_input(dy, k, 2, 2, 1, 1, 1, 1, 2, dx, 2)
    conv.conv2d_backward_weight(x, dy, 2, 2, 1, 1, 1, 1, 2, dk, None, 2)
    np.testing.assert_allclose(dx, xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dk, kt.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pad", [0, 1])
def test_backward_weight_many_small_images(dtype, pad, gemm):
    # 37 images: the implicit weight gradient takes several whole images per chunk (nimg > 1,
    # padded copies when pad > 0); slots keep the result independent of n_threads
    x, k = rand((37, 6, 5, 4), dtype, 1), rand((3, 3, 4, 6), dtype, 2)
    pads = ((pad, pad), (pad, pad))
    dy = rand(ref.conv2d(x, k, 1, pads).shape, dtype, 3)
    expected = ref.conv2d_grad_weight(x, dy, (3, 3), 1, pads)
    outs = []
    for threads in (1, 2, 3):
        dk, db = np.full(k.shape, np.nan, dtype), np.full(6, np.nan, dtype)
        conv.conv2d_backward_weight(x, dy, 1, 1, pad, pad, 1, 1, 1, dk, db, threads)
        np.testing.assert_allclose(dk, expected, **tol(dtype, dy.size // 6))
        np.testing.assert_allclose(db, dy.astype(np.float64).sum(axis=(0, 1, 2)), **tol(dtype, dy.size // 6))
        outs.append((dk, db))
    for dk, db in outs[1:]:
        np.testing.assert_array_equal(dk, outs[0][0])
        np.testing.assert_array_equal(db, outs[0][1])


@pytest.mark.skipif(not _conv.OWN_SGEMM, reason="the vectorized bias-gradient sums need AVX-512")
@pytest.mark.parametrize("channels", [1, 15, 16, 17, 64, 70, 130])
def test_bias_gradient_vector_sums_match_scalar_order(channels):
    # The bias gradient sums each channel over the chunk's pixels in pixel order; the AVX-512 loop
    # (64 channels a pass, masked tails) must give the bits of the scalar loop. With the implicit
    # paths off, both runs take the same im2col chunks, so own_sgemm toggles only how db is summed.
    x, k = rand((5, 9, 8, 3), np.float32, 1), rand((3, 3, 3, channels), np.float32, 2)
    dy = rand((5, 7, 6, channels), np.float32, 3) * np.float32(1e3)
    outs = []
    for own in (True, False):
        previous = _conv.set_tuning(own_sgemm=own, implicit=0)
        try:
            db = np.full(channels, np.nan, np.float32)
            conv.conv2d_backward_weight(x, dy, 1, 1, 0, 0, 1, 1, 1, np.empty_like(k), db, 2)
        finally:
            _conv.set_tuning(own_sgemm=previous[3], implicit=previous[4])
        outs.append(db)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_allclose(outs[0], dy.astype(np.float64).sum(axis=(0, 1, 2)), rtol=1e-5, atol=1e-2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pad", [0, 1])
def test_backward_weight_of_an_output_cut_short(dtype, pad, gemm):
    # dy covers fewer rows/columns than the convolution's full output (as when a 2x2 pooling's
    # floor drops the last ones): the weight gradient reads x in place at its real row width
    n, h, w, c, o = 3, 15, 14, 5, 6
    x, k = rand((n, h, w, c), dtype, 1), rand((3, 3, c, o), dtype, 2)
    oh, ow = h + 2 * pad - 2 - 1, w + 2 * pad - 2 - 1  # one row and one column short
    dy = rand((n, oh, ow, o), dtype, 3)
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))[:, :oh + 2, :ow + 2]
    expected = ref.conv2d_grad_weight(xp, dy, (3, 3), 1, ((0, 0), (0, 0)))
    dk, db = np.full(k.shape, np.nan, dtype), np.full(o, np.nan, dtype)
    conv.conv2d_backward_weight(x, dy, 1, 1, pad, pad, 1, 1, 1, dk, db, 2)
    np.testing.assert_allclose(dk, expected, **tol(dtype, dy.size // o))
    np.testing.assert_allclose(db, dy.astype(np.float64).sum(axis=(0, 1, 2)), **tol(dtype, dy.size // o))


# ---- Winograd F(2x2, 3x3) (dl_winograd.h): stride-1 3x3 float32 convolutions on AVX-512 ----------
@pytest.fixture(params=["team", "openmp"])
def winograd(request):
    # wherever it applies, whatever the shape rule says; multi-threaded calls on the thread team
    # (the test shapes are under WINO_TEAM_MAX) or on OpenMP
    previous = _conv.set_winograd(2, team_max=0 if request.param == "openmp" else None)
    yield
    _conv.set_winograd(*previous)


def rel_error(y, expected):
    return np.abs(y - expected).max() / max(np.abs(expected).max(), 1e-30)


# (N, H, W, C_in, C_out, pad): odd sizes, one pixel, channels not multiples of 16, "valid" and "same",
# and 245 tiles (three default blocks of 84, evened out to two or three blocks a thread)
WINO_CASES = [(2, 7, 5, 3, 5, 0), (3, 6, 6, 17, 9, 1), (1, 1, 1, 4, 3, 1), (2, 9, 4, 16, 33, 1),
              (1, 3, 3, 2, 2, 0), (2, 15, 15, 32, 64, 0), (1, 2, 7, 20, 18, 1), (5, 15, 15, 32, 64, 0)]


@pytest.mark.skipif(not _conv.OWN_SGEMM, reason="the Winograd path needs AVX-512 (the own GEMM)")
@pytest.mark.parametrize("n, h, w, c, o, pad", WINO_CASES)
@pytest.mark.parametrize("relu", [False, True])
def test_winograd_forward_matches_the_float64_reference(n, h, w, c, o, pad, relu, winograd):
    x, k, b = rand((n, h, w, c), np.float32, 1), rand((3, 3, c, o), np.float32, 2), rand((o,), np.float32, 3)
    expected = ref.conv2d(x, k, 1, ((pad, pad), (pad, pad)), bias=b)
    expected = np.maximum(expected, 0.0) if relu else expected
    code = elementwise.ACTIVATIONS["relu" if relu else "linear"]
    assert _conv.winograd_path(n, h, w, c, o, 3, 3, 1, 1, pad, pad, 1, 1, 1, *expected.shape[1:3])
    y = np.full(expected.shape, np.nan, np.float32)
    conv.conv2d_forward(x, k, b, 1, 1, pad, pad, 1, 1, 1, code, 0.0, y, 1)
    assert rel_error(y, expected) < 1e-5
    y2 = np.empty_like(y)  # 2 threads and another block size: the same bits
    previous = _conv.set_winograd(block_bytes=4096)
    try:
        conv.conv2d_forward(x, k, b, 1, 1, pad, pad, 1, 1, 1, code, 0.0, y2, 2)
    finally:
        _conv.set_winograd(block_bytes=previous[1])
    np.testing.assert_array_equal(y2, y)
    for threads in (2, 3):  # the blocks evened out over the threads: the same bits
        y3 = np.full_like(y, np.nan)
        conv.conv2d_forward(x, k, b, 1, 1, pad, pad, 1, 1, 1, code, 0.0, y3, threads)
        np.testing.assert_array_equal(y3, y)


@pytest.mark.skipif(not _conv.OWN_SGEMM, reason="the Winograd path needs AVX-512 (the own GEMM)")
@pytest.mark.parametrize("n, h, w, c, o, pad", WINO_CASES)
@pytest.mark.parametrize("short", [0, 1, 3])
def test_winograd_backward_input_matches_the_float64_reference(n, h, w, c, o, pad, short, winograd):
    # dy short of the full output by `short` rows and columns (a pooling's floor, training's fused
    # conv + pool): the rows of dx no dy reaches are zero, not computed
    oh, ow = h + 2 * pad - 2 - short, w + 2 * pad - 2 - short
    if oh < 1 or ow < 1:
        pytest.skip("no output left")
    dy, k = rand((n, oh, ow, o), np.float32, 4), rand((3, 3, c, o), np.float32, 5)
    expected = ref.conv2d_transpose(dy, k, (h, w), 1, (pad, pad))
    assert _conv.winograd_path(n, h, w, c, o, 3, 3, 1, 1, pad, pad, 1, 1, 1, oh, ow, True)
    dx = np.full(expected.shape, np.nan, np.float32)
    conv.conv2d_backward_input(dy, k, 1, 1, pad, pad, 1, 1, 1, dx, 1)
    assert rel_error(dx, expected) < 1e-5
    dx2 = np.full_like(dx, np.nan)
    conv.conv2d_backward_input(dy, k, 1, 1, pad, pad, 1, 1, 1, dx2, 2)
    np.testing.assert_array_equal(dx2, dx)


@pytest.mark.skipif(not _conv.OWN_SGEMM, reason="the Winograd path needs AVX-512 (the own GEMM)")
@pytest.mark.parametrize("n, h, w, c, o, pad", [case for case in WINO_CASES if min(case[1:3]) + 2 * case[5] >= 4])
@pytest.mark.parametrize("relu", [False, True])
def test_winograd_pool2x2_is_its_forward_pooled(n, h, w, c, o, pad, relu, winograd):
    # a tile is one pooling window: the pooled output and the argmax bytes are those of the
    # Winograd forward pooled by max_pool2d_2x2_forward's rule, and near the float64 reference
    x, k, b = rand((n, h, w, c), np.float32, 6), rand((3, 3, c, o), np.float32, 7), rand((o,), np.float32, 8)
    code = elementwise.ACTIVATIONS["relu" if relu else "linear"]
    oh, ow = h + 2 * pad - 2, w + 2 * pad - 2
    ph, pw = oh // 2, ow // 2
    z = np.empty((n, oh, ow, o), np.float32)
    conv.conv2d_forward(x, k, b, 1, 1, pad, pad, 1, 1, 1, code, 0.0, z, 1)
    windows = (z[:, :2 * ph, :2 * pw].reshape(n, ph, 2, pw, 2, o).transpose(0, 1, 3, 2, 4, 5)
               .reshape(n, ph, pw, 4, o))
    y, am = np.empty((n, ph, pw, o), np.float32), np.empty((n, ph, pw, o), np.uint8)
    conv.conv2d_pool2x2_forward(x, k, b, pad, pad, code, 0.0, y, 2, am)
    np.testing.assert_array_equal(y, windows.max(axis=3))
    np.testing.assert_array_equal(am, windows.argmax(axis=3))
    expected = ref.conv2d_max_pool2x2(x, k, ((pad, pad), (pad, pad)), bias=b, relu=relu)
    assert rel_error(y, expected) < 1e-5


@pytest.mark.skipif(not _conv.OWN_SGEMM, reason="the Winograd path needs AVX-512 (the own GEMM)")
@pytest.mark.parametrize("n, h, w, c, o, pad", WINO_CASES)
@pytest.mark.parametrize("short", [0, 1])
def test_winograd_backward_weight_matches_the_float64_reference(n, h, w, c, o, pad, short, winograd):
    # dy's tile grid (pixels beyond dy zero, x zero outside): dw and db near the float64
    # reference, the same bits on 1 and 2 threads (fixed slots summed in order)
    oh, ow = h + 2 * pad - 2 - short, w + 2 * pad - 2 - short
    if oh < 1 or ow < 1:
        pytest.skip("no output left")
    x, dy = rand((n, h, w, c), np.float32, 9), rand((n, oh, ow, o), np.float32, 10)
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))[:, :oh + 2, :ow + 2]
    expected = ref.conv2d_grad_weight(xp, dy, (3, 3), 1, ((0, 0), (0, 0)))
    assert _conv.winograd_path(n, h, w, c, o, 3, 3, 1, 1, pad, pad, 1, 1, 1, oh, ow, backward_weight=True)
    outs = []
    for threads in (1, 2):
        dk, db = np.full((3, 3, c, o), np.nan, np.float32), np.full(o, np.nan, np.float32)
        conv.conv2d_backward_weight(x, dy, 1, 1, pad, pad, 1, 1, 1, dk, db, threads)
        outs.append((dk, db))
    assert rel_error(outs[0][0], expected) < 1e-5
    np.testing.assert_allclose(outs[0][1], dy.astype(np.float64).sum(axis=(0, 1, 2)), rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(outs[1][0], outs[0][0])
    np.testing.assert_array_equal(outs[1][1], outs[0][1])


@pytest.mark.skipif(not _conv.OWN_SGEMM, reason="the Winograd path needs AVX-512 (the own GEMM)")
def test_winograd_shape_rule():
    # the runner's CNN at batch 64: the 32->64 and 64->128 forwards and weight gradients and the
    # 32->64 input gradient take Winograd; the one-channel first conv, batch 1, a 64->128 input
    # gradient whose 4x4 dy saves no product, strides, 5x5 kernels and groups stay direct
    assert _conv.winograd_path(64, 15, 15, 32, 64, 3, 3, 1, 1, 0, 0, 1, 1, 1, 12, 12)
    assert _conv.winograd_path(64, 6, 6, 64, 128, 3, 3, 1, 1, 0, 0, 1, 1, 1, 4, 4)
    assert _conv.winograd_path(64, 15, 15, 32, 64, 3, 3, 1, 1, 0, 0, 1, 1, 1, 12, 12, True)
    assert not _conv.winograd_path(64, 6, 6, 64, 128, 3, 3, 1, 1, 0, 0, 1, 1, 1, 4, 4, True)
    assert _conv.winograd_path(64, 15, 15, 32, 64, 3, 3, 1, 1, 0, 0, 1, 1, 1, 12, 12, backward_weight=True)
    assert _conv.winograd_path(64, 6, 6, 64, 128, 3, 3, 1, 1, 0, 0, 1, 1, 1, 4, 4, backward_weight=True)
    assert not _conv.winograd_path(64, 32, 32, 1, 32, 3, 3, 1, 1, 0, 0, 1, 1, 1, 30, 30, backward_weight=True)
    assert not _conv.winograd_path(64, 32, 32, 1, 32, 3, 3, 1, 1, 0, 0, 1, 1, 1, 30, 30)
    assert not _conv.winograd_path(1, 15, 15, 32, 64, 3, 3, 1, 1, 0, 0, 1, 1, 1, 12, 12)
    # few tiles stay direct (batch 4 of the 15x15 layer: 196 tiles), whatever the thread count
    assert not _conv.winograd_path(4, 15, 15, 32, 64, 3, 3, 1, 1, 0, 0, 1, 1, 1, 12, 12)
    assert _conv.winograd_path(6, 15, 15, 32, 64, 3, 3, 1, 1, 0, 0, 1, 1, 1, 12, 12)
    assert not _conv.winograd_path(64, 15, 15, 32, 64, 3, 3, 2, 2, 0, 0, 1, 1, 1, 7, 7)
    assert not _conv.winograd_path(64, 15, 15, 32, 64, 5, 5, 1, 1, 0, 0, 1, 1, 1, 11, 11)
    assert not _conv.winograd_path(64, 15, 15, 32, 64, 3, 3, 1, 1, 0, 0, 1, 1, 2, 13, 13)
    previous = _conv.set_winograd(0)
    try:
        assert not _conv.winograd_path(64, 15, 15, 32, 64, 3, 3, 1, 1, 0, 0, 1, 1, 1, 12, 12)
    finally:
        _conv.set_winograd(*previous)


@pytest.mark.parametrize("pad, pool", [(0, False), (1, False), (0, True), (1, True)])
def test_batch1_implicit_forward_runs_on_the_team(pad, pool):
    """A batch-1 stride-1 convolution (under TEAM_MAX_MACS) splits its output rows over the
    thread team (the image padded once), with the bits of one thread for 2 and 3 threads."""
    from dlcore.kernels import _team

    own, implicit = _conv.set_tuning()[3:5]  # no change: reads the settings
    if not (own and implicit):
        pytest.skip("no implicit GEMM here (own float32 tiles off)")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 15, 13, 8)).astype(np.float32)
    k = rng.standard_normal((3, 3, 8, 24)).astype(np.float32)
    b = rng.standard_normal(24).astype(np.float32)
    oh, ow = 15 - 2 + 2 * pad, 13 - 2 + 2 * pad
    shape = (1, oh // 2, ow // 2, 24) if pool else (1, oh, ow, 24)
    results = []
    guard = _team.set_load_guard(False)
    try:
        for threads in (1, 2, 3):
            y = np.full(shape, np.nan, np.float32)
            jobs = _team.stats()[0]
            if pool:
                conv.conv2d_pool2x2_forward(x, k, b, pad, pad, 1, 0.0, y, threads)
            else:
                conv.conv2d_forward(x, k, b, 1, 1, pad, pad, 1, 1, 1, 1, 0.0, y, threads)
            assert _team.stats()[0] == jobs + (threads > 1)
            results.append(y)
    finally:
        _team.set_load_guard(guard)
    for y in results[1:]:
        np.testing.assert_array_equal(y, results[0])
    z = np.maximum(ref.conv2d(x.astype(np.float64), k.astype(np.float64), padding=((pad, pad), (pad, pad)),
                              bias=b.astype(np.float64)), 0)
    if pool:
        z = z[:, :oh // 2 * 2, :ow // 2 * 2].reshape(1, oh // 2, 2, ow // 2, 2, 24).max(axis=(2, 4))
    np.testing.assert_allclose(results[0], z, rtol=1e-4, atol=1e-4)


def test_batch1_implicit_forward_guard_solo_same_bits():
    """Workers held 2 ms per chunk: the team's load guard runs the convolution alone (all rows in
    one band, its serial form), with one thread's bits."""
    from dlcore.kernels import _team

    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 14, 14, 8)).astype(np.float32)
    k = rng.standard_normal((3, 3, 8, 16)).astype(np.float32)
    ref_y = np.empty((1, 6, 6, 16), np.float32)
    conv.conv2d_pool2x2_forward(x, k, None, 0, 0, 1, 0.0, ref_y, 1)
    with stalled_team_workers(0.002) as solo:
        for _ in range(30):
            y = np.full((1, 6, 6, 16), np.nan, np.float32)
            conv.conv2d_pool2x2_forward(x, k, None, 0, 0, 1, 0.0, y, 2)
            np.testing.assert_array_equal(y, ref_y)
        assert _team.solo_jobs() > solo
