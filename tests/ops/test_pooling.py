"""Pooling ops: forward against the NumPy reference and float64 finite-difference gradients
across strides, paddings, odd sizes and batch 1; the argmax kernel runs only while recording;
the 2x2 stride-2 path against the general kernels (through the op, ties included)."""
import numpy as np
import pytest

import dlcore as dl
from dlcore import ops
from harness import check_op_gradients
from reference import pooling as ref

CASES = [  # (input shape, pool, strides, padding)
    ((2, 6, 6, 3), 2, None, "valid"),
    ((1, 7, 5, 2), (2, 2), (2, 2), "same"),
    ((2, 5, 7, 2), (3, 3), (1, 1), "same"),
    ((1, 5, 7, 2), (3, 2), (2, 1), "valid"),
    ((2, 5, 5, 1), (3, 3), (2, 2), "same"),
    ((1, 4, 6, 2), (2, 3), (3, 1), "same"),
    ((1, 8, 6, 3), 2, None, "same"),  # "same" on even sizes: the 2x2 kernels
    ((2, 7, 5, 2), 2, 2, "valid"),  # 2x2 kernels, odd sizes: the last row/column gets no gradient
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


@pytest.mark.parametrize("size,general", [(4, False), (6, True)])
def test_max_pool_keeps_argmax_only_while_recording(monkeypatch, size, general):
    from dlcore import kernels

    calls = []
    table = kernels._load_table()
    names = ("max_pool2d_forward", "max_pool2d_forward_argmax") if general else ("max_pool2d_2x2_forward",)
    for name in names:  # the 2x2 kernel records when it is given an argmax buffer
        monkeypatch.setitem(table, name, (lambda f, n: lambda *a: (
            calls.append(n + ("" if n != "max_pool2d_2x2_forward" or a[2] is None else "+argmax")), f(*a)))(
                table[name], name))
    pool = 3 if general else 2
    x = np.random.default_rng(3).standard_normal((1, size, size, 2)).astype("float32")
    ops.max_pool(x, pool)
    assert calls == [names[0]]
    t = dl.Tensor(x)
    with dl.GradientTape() as tape:
        tape.watch(t)
        loss = ops.sum(ops.max_pool(t, pool))
    assert calls[-1] == ("max_pool2d_forward_argmax" if general else "max_pool2d_2x2_forward+argmax")
    assert tape.gradient(loss, t).value.sum() == 8.0  # one cell per window


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("shape", [(3, 12, 10, 16), (1, 9, 7, 5), (1, 2, 2, 1)])
def test_2x2_path_matches_general_kernels(monkeypatch, shape, mode, dtype):
    """The op's 2x2 kernels against the general kernels (pool 2, stride 2 written as 2x2 windows
    of a general geometry), with ties in most windows: same values, one gradient cell per window."""
    from dlcore import kernels

    fn = ops.max_pool if mode == "max" else ops.average_pool
    x = np.random.default_rng(4).integers(-1, 2, shape).astype(dtype)  # values in {-1, 0, 1}: ties
    dy = np.random.default_rng(5).standard_normal(
        (shape[0], shape[1] // 2, shape[2] // 2, shape[3])).astype(dtype)

    def run():
        t = dl.Tensor(x)
        with dl.GradientTape() as tape:
            tape.watch(t)
            y = fn(t, 2)
            loss = ops.sum(ops.multiply(y, dy))
        return y.value, tape.gradient(loss, t).value

    y_fast, dx_fast = run()
    table = kernels._load_table()
    used = []
    for name in ("max_pool2d_2x2_forward", "max_pool2d_2x2_backward", "avg_pool2d_2x2_forward",
                 "avg_pool2d_2x2_backward"):
        monkeypatch.setitem(table, name, (lambda n: lambda *a: used.append(n))(name))
    from dlcore.ops import pooling as pool_ops
    monkeypatch.setattr(pool_ops, "_plan", (lambda plan: lambda *a: plan(*a)._replace(tiles=False))(pool_ops._plan))
    y_general, dx_general = run()
    assert not used
    np.testing.assert_array_equal(y_fast, y_general)
    np.testing.assert_array_equal(dx_fast, dx_general)
    if mode == "max":
        covered = dx_fast[:, :shape[1] // 2 * 2, :shape[2] // 2 * 2]
        nonzero = (covered.reshape(shape[0], shape[1] // 2, 2, shape[2] // 2, 2, shape[3]) != 0).sum(axis=(2, 4))
        assert nonzero.max() <= 1  # ties send the gradient to one cell of the window


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
    with pytest.raises(ValueError, match=r"3-D .*, 4-D .* or 5-D"):
        ops.max_pool(np.zeros((2, 3)), 2)


CASES_3D = [  # (input shape, pool, strides, padding): (H, W) of the N * D images, then D
    ((2, 4, 6, 6, 2), 2, None, "valid"),  # the 2x2 tiles for the first pass
    ((1, 5, 7, 4, 2), (3, 2, 3), (2, 1, 2), "same"),
    ((2, 3, 5, 5, 1), (2, 3, 2), 1, "same"),
    ((1, 6, 4, 5, 2), (3, 1, 2), (3, 2, 1), "valid"),
]


@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("shape,pool,strides,padding", CASES_3D)
def test_pool3d_forward_and_gradients(shape, pool, strides, padding, mode):
    x = np.random.default_rng(8).standard_normal(shape)
    p3 = np.broadcast_to(pool, (3,)).tolist()
    s3 = p3 if strides is None else np.broadcast_to(strides, (3,)).tolist()
    fn = ops.max_pool if mode == "max" else ops.average_pool
    np.testing.assert_allclose(fn(x, pool, strides, padding).value, ref.pool3d(x, p3, s3, padding, mode),
                               rtol=1e-12, atol=1e-12)
    check_op_gradients(lambda t: fn(t, pool, strides, padding), [x])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape, kernel, padding, activation", [
    ((2, 9, 8, 3), (3, 3, 3, 5), "valid", "relu"),
    ((1, 7, 7, 2), (3, 3, 2, 4), "same", "linear"),
    ((1, 6, 9, 2), (2, 3, 2, 3), "valid", "elu"),
])
def test_conv2d_bias_act_max_pool_is_the_two_ops(shape, kernel, padding, activation, dtype):
    rng = np.random.default_rng(0)
    x, k, b = (rng.normal(size=s).astype(dtype) for s in (shape, kernel, kernel[-1:]))
    for bias in (b, None):
        fused = ops.conv2d_bias_act_max_pool(x, k, bias, padding, activation)
        two = ops.max_pool(ops.conv2d_bias_act(x, k, bias, 1, padding, activation=activation), 2, 2, "valid")
        assert fused.shape == two.shape
        np.testing.assert_array_equal(fused.value, two.value)
    # under a tape it is the two ops, with their gradients
    check_op_gradients(lambda a, w, c: ops.conv2d_bias_act_max_pool(a, w, c, padding, "tanh"),
                       [x, k, b], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape, kernel, padding, activation", [
    ((2, 9, 8, 3), (3, 3, 3, 5), "valid", "relu"),     # 7x6 output: the pooling drops a row
    ((3, 7, 7, 4), (3, 3, 4, 33), "same", "linear"),   # 7x7: a row and a column dropped
    ((2, 15, 15, 32), (3, 3, 32, 64), "valid", "relu"),
])
def test_conv2d_bias_act_max_pool_records_one_fused_op(shape, kernel, padding, activation, dtype):
    # under a tape, linear and relu record one ConvPool node (pooled output + argmax, never the
    # conv output): values and gradients as the two ops give them, the kernel frozen or not
    from dlcore.ops.pooling import ConvPool
    rng = np.random.default_rng(0)
    x, k, b = (dl.Variable(rng.normal(size=s).astype(dtype)) for s in (shape, kernel, kernel[-1:]))
    rtol = 1e-5 if dtype == "float32" else 1e-12
    for bias in (b, None):
        # [k, b], [k], [b]: the input is data (a first layer), no input gradient is wanted
        for sources in ([x, k, b], [x, b], [k, b], [k], [b]):
            inputs = x if any(v is x for v in sources) else x.value
            sources = [v for v in sources if v is not None and (v is not b or bias is not None)]
            if not sources:
                continue
            results = []
            for fused in (True, False):
                with dl.GradientTape() as tape:
                    if fused:
                        y = ops.conv2d_bias_act_max_pool(inputs, k, bias, padding, activation)
                        assert y.node.function is ConvPool
                    else:
                        y = ops.max_pool(ops.conv2d_bias_act(inputs, k, bias, 1, padding, activation=activation),
                                         2, 2)
                    loss = ops.sum(y * y)
                results.append([y.value] + list(tape.gradient(loss, sources)))
            np.testing.assert_array_equal(results[0][0], results[1][0])
            for got, want in zip(results[0][1:], results[1][1:]):
                np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * 10)


@pytest.mark.parametrize("activation", ["relu", "linear"])
def test_conv2d_bias_act_max_pool_fused_gradients(activation):
    rng = np.random.default_rng(1)
    x, k, b = rng.normal(size=(2, 7, 6, 3)), rng.normal(size=(3, 3, 3, 4)), rng.normal(size=4)
    check_op_gradients(lambda a, w, c: ops.conv2d_bias_act_max_pool(a, w, c, "same", activation),
                       [x, k, b], rtol=1e-4, atol=1e-6)
    # a first layer (the input is data): the weight gradient straight from the pooled gradient
    check_op_gradients(lambda w, c: ops.conv2d_bias_act_max_pool(x, w, c, "same", activation),
                       [k, b], rtol=1e-4, atol=1e-6)
    check_op_gradients(lambda w, c: ops.conv2d_bias_act_max_pool(x[..., :1], w, c, "valid", activation),
                       [k[:, :, :1], b], rtol=1e-4, atol=1e-6)


def test_conv2d_bias_act_max_pool_errors_name_the_op():
    x = np.zeros((1, 3, 3, 2), "float32")
    with pytest.raises(ValueError, match="expected inputs with 4 channels"):
        ops.conv2d_bias_act_max_pool(x, np.zeros((3, 3, 4, 2), "float32"))
    with pytest.raises(ValueError, match="pool"):  # a 1x1 convolution output: no 2x2 window fits
        ops.conv2d_bias_act_max_pool(x, np.zeros((3, 3, 2, 2), "float32"))


@pytest.mark.parametrize("shape, kernel, padding, activation", [
    ((2, 15, 15, 32), (3, 3, 32, 64), "valid", "relu"),   # the runner's CNN block, 13x13 cut to 12x12
    ((3, 7, 9, 17), (3, 3, 17, 18), "same", "linear"),    # odd sizes, channels not multiples of 16
])
def test_conv_pool_winograd_gradients_match_float64(shape, kernel, padding, activation):
    # float32 training on the Winograd forward and input gradient (forced on wherever it applies)
    # against the float64 direct path (finite-difference checked above): values and every gradient
    from dlcore.kernels import _conv
    if not _conv.OWN_SGEMM:
        pytest.skip("the Winograd path needs AVX-512 (the own GEMM)")
    rng = np.random.default_rng(3)
    arrays = [rng.normal(size=s) for s in (shape, kernel, kernel[-1:])]
    results = {}
    previous = _conv.set_winograd(2)
    try:
        for dtype in ("float32", "float64"):
            x, k, b = (dl.Variable(a.astype(dtype)) for a in arrays)
            with dl.GradientTape() as tape:
                y = ops.conv2d_bias_act_max_pool(x, k, b, padding, activation)
                loss = ops.sum(y * y)
            results[dtype] = [y.value] + list(tape.gradient(loss, [x, k, b]))
    finally:
        _conv.set_winograd(*previous)
    for got, want in zip(results["float32"], results["float64"]):
        assert np.abs(got - want).max() <= 2e-5 * np.abs(want).max()


def test_conv_pool_winograd_is_the_two_ops_bit_for_bit():
    # the shape rule reads x's shape, never dy's: the fused op (dy cut to the pooled 12x12) and the
    # two ops (dy 13x13 with a zero row and column) take the Winograd forward, input and weight
    # gradients alike and give the same bits (the extra tiles add zeros)
    from dlcore.kernels import _conv
    if not _conv.OWN_SGEMM:
        pytest.skip("the Winograd path needs AVX-512 (the own GEMM)")
    assert all(_conv.winograd_path(6, 15, 15, 32, 64, 3, 3, 1, 1, 0, 0, 1, 1, 1, oh, oh, *kind)
               for oh in (12, 13) for kind in ((False, False), (True, False), (False, True)))
    rng = np.random.default_rng(4)
    x, k, b = (dl.Variable(rng.normal(size=s).astype("float32")) for s in ((6, 15, 15, 32), (3, 3, 32, 64), (64,)))
    results = []
    for fused in (True, False):
        with dl.GradientTape() as tape:
            if fused:
                y = ops.conv2d_bias_act_max_pool(x, k, b, "valid", "relu")
            else:
                y = ops.max_pool(ops.conv2d_bias_act(x, k, b, 1, "valid", activation="relu"), 2, 2)
            loss = ops.sum(y * y)
        results.append([y.value] + list(tape.gradient(loss, [x, k, b])))
    for got, want in zip(*results):
        np.testing.assert_array_equal(got, want)
